// js-libp2p side of benchmarks/webrtc_p2p_run.py: private-to-private WebRTC between two
// pages through a circuit relay v2 hop, the js way (@libp2p/webrtc's webRTC() +
// circuitRelayTransport()). Exposed as `window.p2pbench`; bundled by build_p2p_bench.mjs.
//
//   listen(relayAddr)  -> '<relayAddr>/p2p-circuit/webrtc/p2p/<id>' once announced
//                         (a reservation on the relay; answers /webrtc-signaling/0.0.1)
//   dial(addr)         -> the connection a dial of that /webrtc address gave (described)
//   echo(peer, n, chunk) -> n bytes over /echo/1.0.0 on the direct connection to `peer`,
//                         written while the answer is read, compared byte for byte
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { echo as echoService } from '@libp2p/echo'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webRTC } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

let node = null

async function create (listen) {
  if (node != null) throw new Error('p2pbench: a node already runs on this page')
  node = await createLibp2p({
    addresses: { listen },
    transports: [
      webSockets(),
      circuitRelayTransport(),
      // loopback needs no STUN server (and none is reachable offline)
      webRTC({ rtcConfiguration: { iceServers: [] } })
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // browsers refuse ws:// and loopback by default: the bench relay is both
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping(), echo: echoService() }
  })
  return node
}

function describe (c) {
  return {
    id: c.id,
    peer: c.remotePeer.toString(),
    addr: c.remoteAddr.toString(),
    limited: c.limits != null,
    direction: c.direction,
    multiplexer: c.multiplexer ?? null,
    encryption: c.encryption ?? null
  }
}

// onCreated() runs once createLibp2p resolved (before the reservation is known to be up)
async function listen (relayAddr, timeoutMs = 30000, onCreated = () => {}) {
  const n = await create([`${relayAddr}/p2p-circuit`, '/webrtc'])
  onCreated()
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const a = n.getMultiaddrs().map(String).find((x) => x.includes('/p2p-circuit/webrtc/'))
    if (a) return a
    if (Date.now() > deadline) throw new Error(`no /webrtc address after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

// a dialer: no reservation of its own; dials /webrtc addresses through the relay
async function startDialer () {
  await create([])
  return node.peerId.toString()
}

async function dial (addr, timeoutMs = 60000) {
  const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
  return { conn: describe(conn), conns: node.getConnections().map(describe) }
}

function directTo (peer) {
  const c = node.getConnections().find((x) => x.remotePeer.toString() === peer && x.limits == null &&
    x.remoteAddr.toString().includes('/webrtc'))
  if (!c) throw new Error(`no direct /webrtc connection to ${peer}: ${JSON.stringify(node.getConnections().map(describe))}`)
  return c
}

async function echo (peer, nbytes, chunk = 65536, timeoutMs = 300000) {
  const conn = directTo(peer)
  const data = new Uint8Array(nbytes)
  crypto.getRandomValues(data.subarray(0, Math.min(nbytes, 65536)))
  for (let off = 65536; off < nbytes; off += 65536) data.copyWithin(off, 0, Math.min(65536, nbytes - off))
  for (let i = 0; i < nbytes; i += 4096) data[i] = (i >> 12) & 255 // no two 64 KiB blocks alike
  const signal = AbortSignal.timeout(timeoutMs)
  const t0 = performance.now()
  const stream = await conn.newStream('/echo/1.0.0', { signal })
  let got = 0
  let equal = true
  const reader = (async () => {
    for await (const c of stream) {
      const u8 = c.subarray ? c.subarray() : c
      for (let i = 0; equal && i < u8.byteLength; i += 997) if (u8[i] !== data[got + i]) equal = false
      if (equal && u8.byteLength && u8[u8.byteLength - 1] !== data[got + u8.byteLength - 1]) equal = false
      got += u8.byteLength
    }
  })()
  for (let off = 0; off < nbytes; off += chunk) {
    if (!stream.send(data.subarray(off, Math.min(off + chunk, nbytes)))) await stream.onDrain({ signal })
  }
  await stream.close({ signal })
  await reader
  const seconds = (performance.now() - t0) / 1000
  return { seconds, bytes: got, ok: equal && got === nbytes, conn: describe(conn) }
}

async function stop () {
  if (node != null) await node.stop()
  node = null
}

window.p2pbench = { listen, startDialer, dial, echo, stop, connections: () => node.getConnections().map(describe) }
