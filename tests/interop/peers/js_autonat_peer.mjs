// js-libp2p 3.x peer running @libp2p/autonat-v2 (client and server) for pywasm's interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs js_autonat_peer.mjs [--listen MA]... [--dial MA]
//
// Prints each listen multiaddr (ending in /p2p/<id>) on its own stdout line, then "ready".
// With --dial it then connects to MA (identify runs, which lets the AutoNAT v2 client ask
// that peer to verify our addresses). Afterwards one JSON line per event:
//   {"event": "self:peer:update", "addrs": [...]}   our address set changed
//   {"event": "dialed", "peer": ...}                --dial succeeded
// It exits when stdin closes (the test's lifeline). Set DEBUG=libp2p:auto-nat-v2* to see
// the client's verdicts on stderr.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const listen = []
let dial = null
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--listen') listen.push(argv[++i])
  else if (argv[i] === '--dial') dial = argv[++i]
  else throw new Error(`unknown argument ${argv[i]}`)
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const node = await createLibp2p({
  addresses: { listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    autoNAT: autoNATv2({ startupDelay: 0 })
  },
  connectionManager: { inboundConnectionThreshold: 1000 }
})

node.addEventListener('self:peer:update', () => {
  out({ event: 'self:peer:update', addrs: node.getMultiaddrs().map(String) })
})

// unverified public addresses are not in getMultiaddrs() until AutoNAT confirms them:
// print what the transports bound
for (const ma of node.components.transportManager.getAddrs()) {
  process.stdout.write(`${ma}/p2p/${node.peerId}\n`)
}
process.stdout.write('ready\n')

process.stdin.on('end', async () => { await node.stop(); process.exit(0) })
process.stdin.resume()

if (dial != null) {
  try {
    const conn = await node.dial(multiaddr(dial), { signal: AbortSignal.timeout(30_000) })
    out({ event: 'dialed', peer: conn.remotePeer.toString() })
  } catch (err) {
    out({ event: 'dial-failed', error: String(err) })
  }
}
