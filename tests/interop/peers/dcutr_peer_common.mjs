// What the js DCUtR peers share (js_dcutr_peer.mjs, js_nat_peer.mjs): the JSON event
// output, an echo handler that also runs on limited connections, and the report of each
// direct connection to the peer under test (echo + ping over it, as a "direct" event).

import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'

export const ECHO = '/echo/1.0.0'
const PING = '/ipfs/ping/1.0.0'
const STEP_MS = 20_000

export const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
export const describe = (c) => ({ peer: c.remotePeer.toString(), direction: c.direction, remote_addr: c.remoteAddr.toString(), limited: c.limits != null, status: c.status })

// echo for the peer's checks; limited connections allowed so a relayed echo can be tried too
export async function serveEcho (node) {
  await node.handle(ECHO, async (stream) => {
    try {
      for await (const c of stream) {
        if (!stream.send(c)) await stream.onDrain()
      }
      await stream.close()
    } catch (err) { stream.abort(err) }
  }, { runOnLimitedConnection: true })
}

async function echoOver (conn) {
  const signal = AbortSignal.timeout(STEP_MS)
  const data = randomBytes(32 * 1024)
  const stream = await conn.newStream(ECHO, { signal })
  const received = new Uint8ArrayList()
  const reader = (async () => { for await (const c of stream) received.append(c) })()
  for (let off = 0; off < data.byteLength; off += 8192) {
    if (!stream.send(data.subarray(off, off + 8192))) await stream.onDrain({ signal })
  }
  await stream.close({ signal })
  await reader
  return Buffer.from(received.subarray()).equals(data)
}

async function pingOver (conn) {
  const signal = AbortSignal.timeout(STEP_MS)
  const stream = await conn.newStream(PING, { signal })
  const data = randomBytes(32)
  const t0 = performance.now()
  stream.send(data)
  const got = new Uint8ArrayList()
  for await (const c of stream) {
    got.append(c)
    if (got.byteLength >= 32) break
  }
  const ms = performance.now() - t0
  await stream.close({ signal }).catch(() => {})
  if (!Buffer.from(got.subarray(0, 32)).equals(data)) throw new Error('ping: wrong bytes back')
  return ms
}

// Every connection opened or closed becomes an event; a direct one to a peer for which
// notUnderTest(peerId) is false is used both ways (echo, ping) and reported as "direct".
export function reportConnections (node, notUnderTest) {
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connection', ...describe(c) })
    if (c.limits != null || notUnderTest(c.remotePeer.toString())) return
    ;(async () => {
      const out = { event: 'direct', ...describe(c) }
      try {
        out.echo_ok = await echoOver(c)
        out.ping_ms = await pingOver(c)
      } catch (err) {
        out.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
      }
      emit(out)
    })()
  })
  node.addEventListener('connection:close', (evt) => emit({ event: 'close', ...describe(evt.detail) }))
}
