// js-libp2p in the browser, for pywasm's e2e tests: a dialer-only node (websockets, noise,
// yamux, identify, ping) exposed to the test driver as `window.jsp2p`; or, after
// listenRelayed(), a node listening through a circuit relay and on /webrtc (node.mjs).
//
// Built by build.mjs (esbuild, offline) into .cache/e2e/js-page/ next to index.html.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { start, startRelayed, stop } from './node.mjs'

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

// listenRelayed(relayAddr) -> { peerId, addrs }: a node reserved on that relay and
// listening on /webrtc (node.mjs startRelayed); resolves once a /webrtc address is announced
async function listenRelayed (relayAddr, timeoutMs = 30000) {
  const n = await startRelayed(relayAddr)
  const deadline = Date.now() + timeoutMs
  let addrs = n.getMultiaddrs().map(String)
  while (!addrs.some((a) => a.includes('/p2p-circuit/webrtc/'))) {
    if (Date.now() > deadline) throw new Error(`no /webrtc address announced after ${timeoutMs} ms: ${addrs}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    addrs = n.getMultiaddrs().map(String)
  }
  return { peerId: n.peerId.toString(), addrs }
}

function describe (c) {
  return {
    id: c.id,
    peer: c.remotePeer.toString(),
    addr: c.remoteAddr.toString(),
    limited: c.limits != null,
    direction: c.direction,
    multiplexer: c.multiplexer ?? null,
    encryption: c.encryption ?? null,
    status: c.status
  }
}

// connections() -> every open connection of the page's node, described
async function connections () {
  const n = await start()
  return n.getConnections().map(describe)
}

// echoOver(connectionId, nbytes) -> byte-exact /echo/1.0.0 round trip over that connection
async function echoOver (connId, nbytes, timeoutMs = 60000) {
  const n = await start()
  const conn = n.getConnections().find((c) => c.id === connId)
  if (!conn) throw new Error(`no connection ${connId}`)
  const data = new Uint8Array(nbytes)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 255
  const signal = AbortSignal.timeout(timeoutMs)
  const t0 = performance.now()
  const stream = await conn.newStream('/echo/1.0.0', { signal })
  const parts = []
  let got = 0
  const reader = (async () => {
    for await (const c of stream) {
      const u8 = c.subarray ? c.subarray() : c
      parts.push(u8.slice())
      got += u8.byteLength
    }
  })()
  for (let off = 0; off < data.length; off += 65536) {
    if (!stream.send(data.subarray(off, off + 65536))) await stream.onDrain({ signal })
  }
  await stream.close({ signal })
  await reader
  const ms = performance.now() - t0
  const back = new Uint8Array(got)
  let o = 0
  for (const p of parts) { back.set(p, o); o += p.byteLength }
  let equal = got === data.length
  for (let i = 0; equal && i < got; i++) if (back[i] !== data[i]) equal = false
  return { sent: data.length, received: got, equal, ms: Math.round(ms), protocol: stream.protocol }
}

// pingPeer(peerId) -> ms over the node's connection to that peer (js prefers an unlimited one)
async function pingPeer (peerId, timeoutMs = 20000) {
  const n = await start()
  return await n.services.ping.ping(peerIdFromString(peerId), { signal: AbortSignal.timeout(timeoutMs) })
}

// dialWebRTC(addr) -> the connection a dial of a /webrtc address gave, a ping over it and
// a 1 MiB echo over it (libp2p picks the transport from the address)
async function dialWebRTC (addr, nbytes = 1024 * 1024, timeoutMs = 60000) {
  const n = await start()
  const signal = AbortSignal.timeout(timeoutMs)
  const t0 = performance.now()
  const conn = await n.dial(multiaddr(addr), { signal })
  const dialMs = performance.now() - t0
  const pingMs = await n.services.ping.ping(multiaddr(addr), { signal })
  const echo = await echoOver(conn.id, nbytes, timeoutMs)
  return { dialMs: Math.round(dialMs), pingMs, conn: describe(conn), echo, conns: n.getConnections().map(describe) }
}

window.jsp2p = { start, dial, stop, listenRelayed, connections, echoOver, pingPeer, dialWebRTC }
window.dispatchEvent(new Event('jsp2p-ready'))
