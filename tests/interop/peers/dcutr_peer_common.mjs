// What the js DCUtR peers share (js_dcutr_peer.mjs, js_nat_peer.mjs): the node (TCP as
// each peer configures it, circuit relay, Noise, yamux, identify, ping, DCUtR), the JSON
// event output, an echo handler that also runs on limited connections, the report of each
// direct connection to the peer under test (echo + ping over it, as a "direct" event), the
// relayed address(es) they print, and their run after the addresses: "ready", the stdin
// lifeline and the optional --dial.

import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'

const ECHO = '/echo/1.0.0'
const PING = '/ipfs/ping/1.0.0'
const STEP_MS = 20_000
const DIAL_MS = 20_000
const RESERVE_WAIT_MS = 30_000
const STOP_MS = 2000

// `transport` is the peer's own TCP transport; `relay` (reserve on it) and `dial` (a relayed
// address) as given on the command line, or null
export async function createDcutrNode ({ transport, listen = [], appendAnnounce = [], relay = null, dial = null }) {
  const node = await createLibp2p({
    addresses: { listen: relay != null ? [...listen, `${relay}/p2p-circuit`] : listen, appendAnnounce },
    transports: [transport, circuitRelayTransport({ reservationCompletionTimeout: 20_000 })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000 },
    services: { identify: identify(), ping: ping(), dcutr: dcutr() }
  })
  await serveEcho(node)
  // the relay (reserved on, or the hop of the relayed address we dial) is not under test
  const relays = new Set()
  if (relay != null) relays.add(relay.split('/p2p/').at(-1))
  if (dial != null && dial.includes('/p2p-circuit')) relays.add(dial.split('/p2p-circuit')[0].split('/p2p/').at(-1))
  reportConnections(node, (peer) => relays.has(peer))
  return node
}

// Prints the relayed address(es), one a line, once the reservation is up.
export async function printRelayedAddrs (node) {
  const deadline = Date.now() + RESERVE_WAIT_MS
  let relayed = []
  while (Date.now() < deadline) {
    relayed = node.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit'))
    if (relayed.length > 0) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  if (relayed.length === 0) throw new Error(`no relayed address after ${RESERVE_WAIT_MS / 1000} s`)
  for (const a of relayed) process.stdout.write(`${a}\n`)
}

// After the address lines: "ready", then answer "conns" lines on stdin until it closes (the
// test's lifeline) or SIGTERM; with `dial`, dial it and report "dialed" or "dial-failed".
export async function runPeer (node, dial) {
  process.stdout.write('ready\n')
  emit({ event: 'addresses', addrs: node.getMultiaddrs().map(String) })
  const stop = async () => { try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, STOP_MS))]) } finally { process.exit(0) } }
  process.on('SIGTERM', stop)
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'conns') emit({ event: 'conns', conns: node.getConnections().map(describe) })
  }).on('close', stop)
  if (dial == null) return
  try {
    const conn = await node.dial(multiaddr(dial), { signal: AbortSignal.timeout(DIAL_MS) })
    emit({ event: 'dialed', ...describe(conn) })
  } catch (err) {
    emit({ event: 'dial-failed', error: `${err?.name ?? 'Error'}: ${err?.message ?? err}` })
  }
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const describe = (c) => ({ peer: c.remotePeer.toString(), direction: c.direction, remote_addr: c.remoteAddr.toString(), limited: c.limits != null, status: c.status })

// echo for the peer's checks; limited connections allowed so a relayed echo can be tried too
async function serveEcho (node) {
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
function reportConnections (node, notUnderTest) {
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
