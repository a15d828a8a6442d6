// js-libp2p 3.x peer with @libp2p/dcutr behind a real NAT, for tests/interop/test_nat_holepunch.py.
//
// Run with (Node 20), inside a private namespace of tests/interop/nat_topology.py:
//   node --import ./polyfill.mjs js_nat_peer.mjs --local-port P --announce MA [--relay MA] [--dial MA]
//
//   --local-port P  every TCP dial leaves from local port P (@libp2p/tcp dialOpts.localPort).
//                   js cannot dial from its listening port (Node sockets have no
//                   SO_REUSEPORT), so this peer listens on no TCP port at all: a hole
//                   punched from P is entered by the peer's dial as a TCP simultaneous open
//   --announce MA   the router's mapping of P (/ip4/<router>/tcp/P): js-libp2p ignores TCP
//                   observed addresses (js-libp2p#2620), so it cannot learn it from
//                   identify; an operator of a port-preserving NAT would configure it so
//   --relay MA      reserve on this relay (listen on MA/p2p-circuit) before "ready"
//   --dial MA       after "ready", dial MA (a relayed address) and print a "dialed" event
//
// Prints its relayed address(es) and "ready"; then the JSON events of js_dcutr_peer.mjs
// ("connection", "close", "direct", "conns"). It exits when stdin closes (the test's
// lifeline). DEBUG=libp2p:dcutr* logs DCUtR on stderr.

import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { describe, emit, reportConnections, serveEcho } from './dcutr_peer_common.mjs'

const DIAL_MS = 20_000

const opts = { localPort: null, announce: [], relay: null, dial: null }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  switch (argv[i]) {
    case '--local-port': opts.localPort = Number(argv[++i]); break
    case '--announce': opts.announce.push(argv[++i]); break
    case '--relay': opts.relay = argv[++i]; break
    case '--dial': opts.dial = argv[++i]; break
    default: throw new Error(`unknown argument ${argv[i]}`)
  }
}


const listen = []
if (opts.relay != null) listen.push(`${opts.relay}/p2p-circuit`)
if (opts.localPort == null) throw new Error('--local-port is required')

const node = await createLibp2p({
  addresses: { listen, appendAnnounce: opts.announce },
  transports: [tcp({ dialOpts: { localPort: opts.localPort } }), circuitRelayTransport({ reservationCompletionTimeout: 20_000 })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000 },
  services: { identify: identify(), ping: ping(), dcutr: dcutr() }
})

await serveEcho(node)
// the relay (reserved on, or the hop of the relayed address we dial) is not under test
reportConnections(node, (peer) => (opts.relay != null && opts.relay.endsWith(peer)) || (opts.dial != null && opts.dial.includes(`/p2p/${peer}/p2p-circuit`)))

// the relayed address(es) once the reservation is up (there is no direct listen address)
if (opts.relay != null) {
  const deadline = Date.now() + 30_000
  let relayed = []
  while (Date.now() < deadline) {
    relayed = node.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit'))
    if (relayed.length > 0) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  if (relayed.length === 0) throw new Error('no relayed address after 30 s')
  for (const a of relayed) process.stdout.write(`${a}\n`)
} else {
  // the harness wants one address line: our id on a placeholder address
  process.stdout.write(`/ip4/0.0.0.0/tcp/0/p2p/${node.peerId}\n`)
}
process.stdout.write('ready\n')
emit({ event: 'addresses', addrs: node.getMultiaddrs().map(String) })

const stop = async () => { try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))]) } finally { process.exit(0) } }
process.on('SIGTERM', stop)
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'conns') emit({ event: 'conns', conns: node.getConnections().map(describe) })
}).on('close', stop)

if (opts.dial != null) {
  try {
    const conn = await node.dial(multiaddr(opts.dial), { signal: AbortSignal.timeout(DIAL_MS) })
    emit({ event: 'dialed', ...describe(conn) })
  } catch (err) {
    emit({ event: 'dial-failed', error: `${err?.name ?? 'Error'}: ${err?.message ?? err}` })
  }
}
