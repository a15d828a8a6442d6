// js-libp2p in the browser, for pywasm's e2e tests: a dialer-only node (websockets, noise,
// yamux, identify, ping) exposed to the test driver as `window.jsp2p`.
//
// Built by build.mjs (esbuild, offline) into .cache/e2e/js-page/ next to index.html.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

let node = null

async function start () {
  if (node != null) return node
  node = await createLibp2p({
    addresses: { listen: [] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // browsers refuse ws:// and loopback by default: the e2e relay is both
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping() }
  })
  return node
}

// dial(maddr) -> { peerId, remotePeer, pingMs, protocols }
async function dial (addr, timeoutMs = 20000) {
  const n = await start()
  const signal = AbortSignal.timeout(timeoutMs)
  const conn = await n.dial(multiaddr(addr), { signal })
  const pingMs = await n.services.ping.ping(conn.remotePeer, { signal })
  let protocols = []
  try {
    const peer = await n.peerStore.get(conn.remotePeer)
    protocols = peer.protocols
  } catch {}
  return { peerId: n.peerId.toString(), remotePeer: conn.remotePeer.toString(), pingMs, protocols }
}

async function stop () {
  if (node != null) await node.stop()
  node = null
}

window.jsp2p = { start, dial, stop }
window.dispatchEvent(new Event('jsp2p-ready'))
