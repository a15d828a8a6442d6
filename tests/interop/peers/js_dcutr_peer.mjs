// js-libp2p 3.x peer with @libp2p/dcutr + circuitRelayTransport for pywasm's DCUtR interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs js_dcutr_peer.mjs [options]
//
//   --listen MA       a direct listen address (repeatable), e.g. /ip4/6.6.6.6/tcp/0
//   --relay MA        reserve on this relay (listen on MA/p2p-circuit) before "ready"
//   --dial MA         after "ready", dial MA (a relayed address) and print a "dialed" event
//   --confirm-public  treat our bound public addresses as verified. js only puts verified
//                     addresses in its DCUtR CONNECT and identify; normally AutoNAT verifies
//                     them, which these tests leave out (the namespace has no other peers)
//
// Prints its addresses (direct ones, then relayed ones) and "ready"; then JSON events:
//   {"event": "connection"|"close", "peer", "direction", "remote_addr", "limited"}
//   {"event": "direct", "peer", "echo_ok", "ping_ms", ...}  after echo + ping over each new
//       non-limited connection (neither opts in to limited connections, so both would fail
//       on a relayed one)
//   {"event": "conns", "conns": [...]}  answers a "conns" line on stdin
// It exits when stdin closes (the test's lifeline). DEBUG=libp2p:dcutr* logs DCUtR on stderr.

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

const opts = { listen: [], relay: null, dial: null, confirmPublic: false }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  switch (argv[i]) {
    case '--listen': opts.listen.push(argv[++i]); break
    case '--relay': opts.relay = argv[++i]; break
    case '--dial': opts.dial = argv[++i]; break
    case '--confirm-public': opts.confirmPublic = true; break
    default: throw new Error(`unknown argument ${argv[i]}`)
  }
}


const listen = [...opts.listen]
if (opts.relay != null) listen.push(`${opts.relay}/p2p-circuit`)

const node = await createLibp2p({
  addresses: { listen },
  transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 20_000 })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000 },
  services: { identify: identify(), ping: ping(), dcutr: dcutr() }
})

await serveEcho(node)
// the relay (reserved on, or the hop of the relayed address we dial) is not under test
reportConnections(node, (peer) => (opts.relay != null && opts.relay.endsWith(peer)) || (opts.dial != null && opts.dial.split('/p2p/')[1] === peer))

if (opts.confirmPublic) {
  for (const ma of node.components.transportManager.getAddrs()) {
    if (!ma.toString().includes('/p2p-circuit')) node.components.addressManager.confirmObservedAddr(ma, { type: 'transport' })
  }
}

// our direct addresses as bound, then the relayed one(s) once the reservation is up
for (const ma of node.components.transportManager.getAddrs()) {
  if (!ma.toString().includes('/p2p-circuit')) process.stdout.write(`${ma}/p2p/${node.peerId}\n`)
}
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
