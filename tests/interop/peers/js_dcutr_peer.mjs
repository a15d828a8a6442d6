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

import { tcp } from '@libp2p/tcp'
import { createDcutrNode, printRelayedAddrs, runPeer } from './dcutr_peer_common.mjs'

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

const node = await createDcutrNode({ transport: tcp(), listen: opts.listen, relay: opts.relay, dial: opts.dial })

if (opts.confirmPublic) {
  for (const ma of node.components.transportManager.getAddrs()) {
    if (!ma.toString().includes('/p2p-circuit')) node.components.addressManager.confirmObservedAddr(ma, { type: 'transport' })
  }
}

// our direct addresses as bound, then the relayed one(s) once the reservation is up
for (const ma of node.components.transportManager.getAddrs()) {
  if (!ma.toString().includes('/p2p-circuit')) process.stdout.write(`${ma}/p2p/${node.peerId}\n`)
}
if (opts.relay != null) await printRelayedAddrs(node)
await runPeer(node, opts.dial)
