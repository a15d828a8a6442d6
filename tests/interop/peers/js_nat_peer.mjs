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

import { tcp } from '@libp2p/tcp'
import { createDcutrNode, printRelayedAddrs, runPeer } from './dcutr_peer_common.mjs'

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
if (opts.localPort == null) throw new Error('--local-port is required')

const node = await createDcutrNode({
  transport: tcp({ dialOpts: { localPort: opts.localPort } }),
  appendAnnounce: opts.announce,
  relay: opts.relay,
  dial: opts.dial
})

// there is no direct listen address: the relayed one(s), or without a relay our id on a
// placeholder address (the harness wants one address line)
if (opts.relay != null) await printRelayedAddrs(node)
else process.stdout.write(`/ip4/0.0.0.0/tcp/0/p2p/${node.peerId}\n`)
await runPeer(node, opts.dial)
