// js-libp2p in the browser, for benchmarks/browser_run.py: the same dialer-only node as the
// e2e page (websockets, noise, yamux, identify, ping) plus an echo throughput helper, exposed
// as `window.jsbench`. Built by build.mjs (esbuild, offline) next to index.html.
import { multiaddr } from '@multiformats/multiaddr'
import { start, stop } from '../../../e2e/js-page/node.mjs'

const ECHO = '/echo/1.0.0'

// create the node, dial, ping once: { pingMs, atMs (performance.now(): ms since navigation) }
async function firstPing (addr, timeoutMs = 20000) {
  const n = await start()
  const signal = AbortSignal.timeout(timeoutMs)
  const conn = await n.dial(multiaddr(addr), { signal })
  const pingMs = await n.services.ping.ping(conn.remotePeer, { signal })
  return { pingMs, atMs: performance.now() }
}

// echo `size` random bytes on a new /echo/1.0.0 stream over the existing connection, read
// the answer to EOF concurrently, check it byte for byte: { seconds, bytes, ok }
async function echo (addr, size, chunk = 65536, timeoutMs = 120000) {
  const n = await start()
  const signal = AbortSignal.timeout(timeoutMs)
  const ma = multiaddr(addr)
  await n.dial(ma, { signal })
  const payload = new Uint8Array(size)
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, Math.min(size, i + 65536)))
  const got = new Uint8Array(size)
  const t0 = performance.now()
  const stream = await n.dialProtocol(ma, ECHO, { signal })
  let received = 0
  let overflow = false
  const reader = (async () => {
    for await (const c of stream) {
      const buf = c instanceof Uint8Array ? c : c.subarray()
      if (received + buf.byteLength > size) { overflow = true; break }
      got.set(buf, received)
      received += buf.byteLength
    }
  })()
  for (let off = 0; off < size; off += chunk) {
    if (!stream.send(payload.subarray(off, Math.min(size, off + chunk)))) await stream.onDrain({ signal })
  }
  await stream.close({ signal })
  await reader
  const seconds = (performance.now() - t0) / 1000
  let ok = !overflow && received === size
  if (ok) { for (let i = 0; i < size; i++) { if (got[i] !== payload[i]) { ok = false; break } } }
  return { seconds, bytes: received, ok }
}

window.jsbench = { start, firstPing, echo, stop }
