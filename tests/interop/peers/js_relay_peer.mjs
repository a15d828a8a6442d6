// js-libp2p 3.x + @libp2p/circuit-relay-v2 peer for pywasm's circuit relay interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs js_relay_peer.mjs MODE ...
//
//   relay [--stdin-lifeline] [--data-limit N] [--duration-limit S]
//       A js relay (circuitRelayServer) on loopback TCP. Prints its listen multiaddrs,
//       then "ready"; then JSON events (reservation made, connection).
//
//   listen RELAY_MA [--stdin-lifeline]
//       Reserves on the relay (listens on RELAY_MA/p2p-circuit), prints its relayed
//       multiaddr(s) once the reservation is up, then "ready". Serves identify and
//       /echo/1.0.0 on limited connections; prints a JSON event per inbound connection.
//
//   dial TARGET_MA [--echo-bytes N] [--timeout-ms N]
//       Dials a relayed address, identifies the remote over the limited connection and
//       echoes N random bytes over /echo/1.0.0 (runOnLimitedConnection); one JSON result.

import { randomBytes } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'

const ECHO = '/echo/1.0.0'

function parseArgs (argv) {
  const opts = { mode: argv[0], target: null, stdinLifeline: false, echoBytes: 64 * 1024, timeoutMs: 60_000, dataLimit: null, durationLimit: null }
  let i = 1
  if (opts.mode === 'listen' || opts.mode === 'dial') { opts.target = argv[1]; i = 2 }
  for (; i < argv.length; i++) {
    const a = argv[i]
    const next = () => argv[++i]
    switch (a) {
      case '--stdin-lifeline': opts.stdinLifeline = true; break
      case '--echo-bytes': opts.echoBytes = Number(next()); break
      case '--timeout-ms': opts.timeoutMs = Number(next()); break
      case '--data-limit': opts.dataLimit = BigInt(next()); break
      case '--duration-limit': opts.durationLimit = Number(next()) * 1000; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (!['relay', 'listen', 'dial'].includes(opts.mode)) throw new Error('usage: js_relay_peer.mjs relay|listen|dial ...')
  return opts
}

function emit (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }

async function echoHandler (stream) {
  let total = 0
  for await (const c of stream) {
    total += c.byteLength
    if (!stream.send(c)) await stream.onDrain()
  }
  await stream.close()
  emit({ event: 'echo', bytes: total })
}

async function makeNode (opts, listen, services) {
  const node = await createLibp2p({
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 20_000 })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000 },
    // the dialer identifies explicitly: js serves one identify stream per connection at once
    services: { identify: identify({ runOnConnectionOpen: opts.mode !== 'dial' }), ping: ping(), ...services }
  })
  await node.handle(ECHO, (stream) => {
    echoHandler(stream).catch(err => { process.stderr.write(`echo: ${err?.stack ?? err}\n`); stream.abort(err) })
  }, { runOnLimitedConnection: true, maxInboundStreams: 64 })
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connection', peer: c.remotePeer.toString(), direction: c.direction, remote_addr: c.remoteAddr.toString(), limited: c.limits != null })
  })
  return node
}

function lifeline (node, opts) {
  const stop = async () => { try { await node.stop() } finally { process.exit(0) } }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  if (opts.stdinLifeline) {
    process.stdin.on('end', stop)
    process.stdin.on('close', stop)
    process.stdin.resume()
  }
}

async function relayMode (opts) {
  const reservations = { maxReservations: 64 }
  if (opts.dataLimit != null) reservations.defaultDataLimit = opts.dataLimit
  if (opts.durationLimit != null) reservations.defaultDurationLimit = opts.durationLimit
  const node = await makeNode(opts, ['/ip4/127.0.0.1/tcp/0'], { relay: circuitRelayServer({ reservations }) })
  for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma.toString()}\n`)
  process.stdout.write('ready\n')
  lifeline(node, opts)
}

async function listenMode (opts) {
  const node = await makeNode(opts, [`${opts.target}/p2p-circuit`], {})
  const deadline = Date.now() + opts.timeoutMs
  let addrs = []
  while (Date.now() < deadline) {
    addrs = node.getMultiaddrs().map(String).filter(a => a.includes('/p2p-circuit'))
    if (addrs.length > 0) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  if (addrs.length === 0) throw new Error('no relayed address after the reservation timeout')
  for (const a of addrs) process.stdout.write(`${a}\n`)
  process.stdout.write('ready\n')
  node.addEventListener('peer:identify', (evt) => {
    emit({ event: 'identify', peer: evt.detail.peerId.toString(), agent: evt.detail.agentVersion ?? null, listen_addrs: evt.detail.listenAddrs.map(String) })
  })
  lifeline(node, opts)
}

async function dialMode (opts) {
  const signal = AbortSignal.timeout(opts.timeoutMs)
  const node = await makeNode(opts, [], {})
  const result = { ok: false, impl: 'js-libp2p', local_peer: node.peerId.toString() }
  try {
    const conn = await node.dial(multiaddr(opts.target), { signal })
    result.remote_peer = conn.remotePeer.toString()
    result.remote_addr = conn.remoteAddr.toString()
    result.limited = conn.limits != null
    const id = await node.services.identify.identify(conn, { signal })
    result.identify = { peer: id.peerId.toString(), agent: id.agentVersion ?? null, protocols: [...id.protocols].sort(), listen_addrs: id.listenAddrs.map(String) }
    // ping did not opt in to limited connections: js must refuse to open it
    try {
      await node.services.ping.ping(conn.remotePeer, { signal })
      result.ping_on_limited = 'allowed'
    } catch (err) {
      result.ping_on_limited = `${err?.name ?? 'Error'}`
    }
    const data = randomBytes(opts.echoBytes)
    const stream = await conn.newStream(ECHO, { signal, runOnLimitedConnection: true })
    const received = new Uint8ArrayList()
    const reader = (async () => { for await (const c of stream) received.append(c) })()
    for (let off = 0; off < data.byteLength; off += 16384) {
      if (!stream.send(data.subarray(off, off + 16384))) await stream.onDrain({ signal })
    }
    await stream.close({ signal })
    await reader
    if (!Buffer.from(received.subarray()).equals(data)) throw new Error(`echo: got ${received.byteLength} of ${data.byteLength} bytes or different bytes`)
    result.echo = { bytes: data.byteLength, ok: true }
    result.ok = true
  } catch (err) {
    result.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
    process.stderr.write(`${err?.stack ?? err}\n`)
  }
  emit(result)
  try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))]) } catch {}
  process.exit(result.ok ? 0 : 1)
}

const opts = parseArgs(process.argv.slice(2))
const run = { relay: relayMode, listen: listenMode, dial: dialMode }[opts.mode]
run(opts).catch(err => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  emit({ ok: false, error: `${err?.name ?? 'Error'}: ${err?.message ?? err}` })
  process.exit(1)
})
