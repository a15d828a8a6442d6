// js-libp2p in the browser, for pywasm's e2e tests: a dialer-only node (websockets, noise,
// yamux, identify, ping) exposed to the test driver as `window.jsp2p`.
//
// Built by build.mjs (esbuild, offline) into .cache/e2e/js-page/ next to index.html.
import { multiaddr } from '@multiformats/multiaddr'
import { start, stop } from './node.mjs'

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

window.jsp2p = { start, dial, stop }
window.dispatchEvent(new Event('jsp2p-ready'))
