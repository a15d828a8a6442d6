// js-libp2p 3.x peer for pywasm's interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs --experimental-websocket js_peer.mjs ...
//
//   listen [--listen MA]... [--muxer yamux|mplex|both] [--key-type ed25519|rsa|secp256k1]
//          [--security noise|tls|both]
//          [--stdin-lifeline] [--echo-protocol P (echo also served under P, e.g. /x/echo)]
//       Prints each listen multiaddr (ending in /p2p/<id>) on its own stdout line, then
//       "ready". Afterwards it prints one JSON object per line for every event worth
//       asserting on (inbound connection, identify of the remote, echo/perf served).
//       With --stdin-lifeline it exits when stdin closes, so a crashed harness leaves no
//       orphan behind.
//
//   dial MA [--muxer ...] [--echo-bytes N] [--perf-up N --perf-down N] [--no-ping]
//           [--no-identify] [--timeout-ms N] [--echo-protocol P] [--echo-read-before-close]
//       Dials MA, runs identify, ping, a byte-exact echo of N random bytes (default 1 MiB)
//       and optionally perf; prints one JSON line with the results and exits 0, or prints
//       {"ok": false, "error": ...} and exits 1.
//
// Protocols served: identify, ping (js services), /echo/1.0.0 (@libp2p/echo) and
// /perf/1.0.0 (our own implementation of the perf spec: no @libp2p/perf on this registry).

import { randomBytes } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { tls } from '@libp2p/tls'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { echo } from '@libp2p/echo'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'

const PERF_PROTOCOL = '/perf/1.0.0'
const ECHO_PROTOCOL = '/echo/1.0.0'
const CHUNK = 64 * 1024

function parseArgs (argv) {
  const opts = {
    mode: argv[0],
    target: null,
    listen: [],
    muxer: 'both',
    keyType: 'ed25519',
    security: 'noise',
    echoBytes: 1024 * 1024,
    perfUp: null,
    perfDown: null,
    ping: true,
    identify: true,
    timeoutMs: 60_000,
    stdinLifeline: false,
    echoProtocol: ECHO_PROTOCOL,
    echoHalfClose: true
  }
  let i = 1
  if (opts.mode === 'dial') {
    opts.target = argv[1]
    i = 2
  }
  for (; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value after ${a}`)
      return argv[++i]
    }
    switch (a) {
      case '--listen': opts.listen.push(next()); break
      case '--muxer': opts.muxer = next(); break
      case '--key-type': opts.keyType = next().toLowerCase(); break
      case '--security': opts.security = next(); break
      case '--echo-bytes': opts.echoBytes = Number(next()); break
      case '--perf-up': opts.perfUp = Number(next()); break
      case '--perf-down': opts.perfDown = Number(next()); break
      case '--no-ping': opts.ping = false; break
      case '--no-identify': opts.identify = false; break
      case '--timeout-ms': opts.timeoutMs = Number(next()); break
      case '--stdin-lifeline': opts.stdinLifeline = true; break
      case '--echo-protocol': opts.echoProtocol = next(); break
      // kubo's stream forwarder tears the stream down at the first EOF: read everything
      // back before closing instead of half-closing right after sending
      case '--echo-read-before-close': opts.echoHalfClose = false; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (opts.mode !== 'listen' && opts.mode !== 'dial') {
    throw new Error('usage: js_peer.mjs listen|dial ...')
  }
  if (opts.mode === 'dial' && opts.target == null) throw new Error('dial needs a multiaddr')
  if (opts.mode === 'listen' && opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

function encrypters (name) {
  // --security noise|tls|both (both: noise preferred, as pywasm offers them)
  switch (name) {
    case 'noise': return [noise()]
    case 'tls': return [tls()]
    case 'both': return [noise(), tls()]
    default: throw new Error(`unknown security ${name}`)
  }
}

function muxers (name) {
  // The order is the preference the dialer proposes.
  switch (name) {
    case 'yamux': return [yamux()]
    case 'mplex': return [mplex()]
    case 'both': return [yamux(), mplex()]
    default: throw new Error(`unknown muxer ${name}`)
  }
}

async function privateKey (type) {
  switch (type) {
    case 'ed25519': return generateKeyPair('Ed25519')
    case 'rsa': return generateKeyPair('RSA', 2048)
    case 'secp256k1': return generateKeyPair('secp256k1')
    default: throw new Error(`unknown key type ${type}`)
  }
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function chunkOf (c) {
  return c instanceof Uint8Array ? c : c.subarray()
}

// Send `data` with backpressure: `send` returns false when the stream's buffer is full.
async function sendAll (stream, data, signal) {
  for (let off = 0; off < data.byteLength; off += CHUNK) {
    const piece = data.subarray(off, Math.min(off + CHUNK, data.byteLength))
    if (!stream.send(piece)) {
      await stream.onDrain({ signal })
    }
  }
}

// The perf protocol (libp2p/specs perf/perf.md), server side: a big-endian u64 says how
// many bytes to send back; everything after it until EOF is upload to discard.
async function perfHandler (stream) {
  const header = new Uint8ArrayList()
  let uploaded = 0
  for await (const c of stream) {
    const buf = chunkOf(c)
    if (header.byteLength < 8) {
      const need = 8 - header.byteLength
      header.append(buf.subarray(0, need))
      uploaded += Math.max(0, buf.byteLength - need)
    } else {
      uploaded += buf.byteLength
    }
  }
  if (header.byteLength < 8) {
    stream.abort(new Error('perf: stream ended before the 8-byte header'))
    return
  }
  const wanted = Number(header.subarray(0, 8).reduce((acc, b) => (acc << 8n) | BigInt(b), 0n))
  const block = new Uint8Array(CHUNK)
  let left = wanted
  while (left > 0) {
    const n = Math.min(left, CHUNK)
    if (!stream.send(block.subarray(0, n))) await stream.onDrain()
    left -= n
  }
  await stream.close()
  emit({ event: 'perf', uploaded, downloaded: wanted })
}

// Echo for extra protocol ids (/echo/1.0.0 itself is @libp2p/echo's).
async function echoHandler (stream) {
  let total = 0
  let end = 'eof'
  try {
    for await (const c of stream) {
      // send() queues the chunk even when it returns false (buffer over its mark)
      total += c.byteLength
      if (!stream.send(c)) await stream.onDrain()
    }
  } catch (err) {
    // kubo's /x/ forwarding never half-closes: when its TCP side closes after reading
    // every byte back it may reset the stream instead (seen in CI). The bytes echoed
    // so far are still the result; anything other than a reset is a real failure.
    if (err?.name !== 'StreamResetError') throw err
    end = 'reset'
  }
  emit({ event: 'echo', protocol: stream.protocol, bytes: total, end })
  if (end === 'eof') await stream.close()
}

async function perfClient (connection, up, down, signal) {
  const start = performance.now()
  const stream = await connection.newStream(PERF_PROTOCOL, { signal })
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(down))
  stream.send(header)
  const block = new Uint8Array(CHUNK)
  let left = up
  while (left > 0) {
    const n = Math.min(left, CHUNK)
    if (!stream.send(block.subarray(0, n))) await stream.onDrain({ signal })
    left -= n
  }
  const uploadDone = performance.now()
  await stream.close({ signal })
  let received = 0
  for await (const c of stream) received += c.byteLength
  const end = performance.now()
  if (received !== down) throw new Error(`perf: expected ${down} bytes back, got ${received}`)
  const mib = 1024 * 1024
  return {
    upload_bytes: up,
    download_bytes: down,
    upload_s: (uploadDone - start) / 1000,
    total_s: (end - start) / 1000,
    upload_mib_s: up / mib / ((uploadDone - start) / 1000),
    download_mib_s: down / mib / ((end - uploadDone) / 1000)
  }
}

async function echoClient (connection, size, signal, protocol, halfClose) {
  const data = randomBytes(size)
  const start = performance.now()
  const stream = await connection.newStream(protocol, { signal })
  const received = new Uint8ArrayList()
  let gotAll
  const allReceived = new Promise(resolve => { gotAll = resolve })
  const reader = (async () => {
    for await (const c of stream) {
      received.append(c)
      if (received.byteLength > size) throw new Error(`echo: overread ${received.byteLength}/${size}`)
      if (received.byteLength === size) gotAll()
    }
    gotAll()
  })()
  await sendAll(stream, data, signal)
  if (halfClose) {
    await stream.close({ signal })
    await reader
  } else {
    await Promise.race([allReceived, reader])
    reader.catch(() => {})
    await stream.close({ signal }).catch(() => {})
  }
  const ms = performance.now() - start
  if (received.byteLength !== size) throw new Error(`echo: got ${received.byteLength} of ${size} bytes`)
  if (!Buffer.from(received.subarray()).equals(data)) throw new Error('echo: bytes differ')
  return { bytes: size, ms, ok: true }
}

function keyTypeOf (publicKeyProtobuf, peerId) {
  if (publicKeyProtobuf != null) {
    try {
      return publicKeyFromProtobuf(publicKeyProtobuf).type
    } catch {}
  }
  return peerId?.type ?? null
}

function identifyJson (res) {
  return {
    peer: res.peerId.toString(),
    agent: res.agentVersion ?? null,
    protocol_version: res.protocolVersion ?? null,
    protocols: [...res.protocols].sort(),
    listen_addrs: res.listenAddrs.map(String),
    observed_addr: res.observedAddr?.toString() ?? null,
    key_type: keyTypeOf(res.publicKey, res.peerId)
  }
}

async function makeNode (opts, listen) {
  return createLibp2p({
    privateKey: await privateKey(opts.keyType),
    addresses: { listen },
    transports: [tcp(), webSockets()],
    connectionEncrypters: encrypters(opts.security),
    streamMuxers: muxers(opts.muxer),
    // Loopback dials must be allowed; Node's default gater already does, this makes it
    // explicit (a browser build would deny private addresses otherwise).
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: {
      // js refuses a 6th inbound connection per host per second by default: tests and
      // benchmarks open many in a row from 127.0.0.1.
      inboundConnectionThreshold: 100_000,
      maxIncomingPendingConnections: 1_000,
      maxConnections: 10_000
    },
    services: {
      identify: identify({ runOnConnectionOpen: opts.mode === 'listen' }),
      ping: ping(),
      echo: echo({ timeout: 120_000, maxInboundStreams: 256 })
    }
  })
}

async function listenMode (opts) {
  const node = await makeNode(opts, opts.listen)
  await node.handle(PERF_PROTOCOL, (stream) => {
    perfHandler(stream).catch(err => {
      process.stderr.write(`perf handler: ${err?.stack ?? err}\n`)
      stream.abort(err)
    })
  }, { maxInboundStreams: 256 })
  if (opts.echoProtocol !== ECHO_PROTOCOL) {
    // e.g. /x/echo, the only id kubo's stream mounting can open
    await node.handle(opts.echoProtocol, (stream) => {
      echoHandler(stream).catch(err => {
        process.stderr.write(`echo handler: ${err?.stack ?? err}\n`)
        stream.abort(err)
      })
    }, { maxInboundStreams: 256 })
  }
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connection', peer: c.remotePeer.toString(), direction: c.direction, remote_addr: c.remoteAddr.toString(), muxer: c.multiplexer ?? null, encryption: c.encryption ?? null })
  })
  node.addEventListener('peer:identify', (evt) => {
    emit({ event: 'identify', ...identifyJson(evt.detail) })
  })
  for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma.toString()}\n`)
  process.stdout.write('ready\n')
  const stop = async () => {
    try { await node.stop() } finally { process.exit(0) }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  if (opts.stdinLifeline) {
    process.stdin.on('end', stop)
    process.stdin.on('close', stop)
    process.stdin.resume()
  }
}

async function dialMode (opts) {
  const signal = AbortSignal.timeout(opts.timeoutMs)
  const node = await makeNode(opts, [])
  const result = { ok: false, impl: 'js-libp2p', local_peer: node.peerId.toString() }
  try {
    const t0 = performance.now()
    const conn = await node.dial(multiaddr(opts.target), { signal })
    result.connect_ms = performance.now() - t0
    result.remote_peer = conn.remotePeer.toString()
    result.muxer = conn.multiplexer ?? null
    result.encryption = conn.encryption ?? null
    if (opts.identify) result.identify = identifyJson(await node.services.identify.identify(conn, { signal }))
    if (opts.ping) result.ping_ms = await node.services.ping.ping(conn.remotePeer, { signal })
    if (opts.echoBytes > 0) result.echo = await echoClient(conn, opts.echoBytes, signal, opts.echoProtocol, opts.echoHalfClose)
    if (opts.perfUp != null || opts.perfDown != null) {
      result.perf = await perfClient(conn, opts.perfUp ?? 0, opts.perfDown ?? 0, signal)
    }
    result.ok = true
  } catch (err) {
    result.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
    process.stderr.write(`${err?.stack ?? err}\n`)
  }
  emit(result)
  try {
    await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))])
  } catch {}
  process.exit(result.ok ? 0 : 1)
}

const opts = parseArgs(process.argv.slice(2))
if (opts.mode === 'listen') {
  await listenMode(opts)
} else {
  await dialMode(opts)
}
