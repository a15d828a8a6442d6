// js-libp2p 3.3 benchmark peer (Node 20): tcp / noise / yamux only.
//
//   node --import ../../tests/interop/peers/polyfill.mjs js_bench.mjs listen [--listen MA] [--chunk BYTES]
//   node --import ... js_bench.mjs perf MA --upload N --download N [--chunk BYTES]
//   node --import ... js_bench.mjs conn MA [--count N]
//
// Same contract as pywasm_bench.py / py_bench.py / ceiling.py:
// * listen: prints each multiaddr (ending in /p2p/<id>) on its own line, then "ready";
//   serves identify, ping and /perf/1.0.0 until SIGTERM/SIGINT or until stdin closes.
// * perf: one /perf/1.0.0 run over a NEW connection; one JSON line, timed from just before
//   the dial to the last byte received.
// * conn: in this one process, `count` times: dial a NEW connection, one ping, close it;
//   one JSON line with ms per iteration (dial start -> ping answer; closing not timed).
//
// /perf/1.0.0 is written here (no @libp2p/perf in this registry snapshot); data moves
// in --chunk sized writes (default 1 MiB) so the stack, not this program, is measured.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const PERF = '/perf/1.0.0'

function parseArgs (argv) {
  const o = { mode: argv[0], target: null, listen: '/ip4/127.0.0.1/tcp/0', upload: 0, download: 0, count: 20, chunk: 1 << 20 }
  let i = 1
  if (o.mode !== 'listen') o.target = argv[i++]
  for (; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[++i]
    if (v === undefined) throw new Error(`missing value after ${a}`)
    switch (a) {
      case '--listen': o.listen = v; break
      case '--upload': o.upload = Number(v); break
      case '--download': o.download = Number(v); break
      case '--count': o.count = Number(v); break
      case '--chunk': o.chunk = Number(v); break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (!['listen', 'perf', 'conn'].includes(o.mode)) throw new Error('usage: js_bench.mjs listen|perf|conn ...')
  if (o.mode !== 'listen' && !o.target) throw new Error(`${o.mode} needs a multiaddr`)
  return o
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function makeNode (listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // loopback dials allowed explicitly
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: {
      // js refuses a 6th inbound connection per host per second by default; the
      // conn benchmark opens 20+ in a row from 127.0.0.1
      inboundConnectionThreshold: 1_000_000,
      maxIncomingPendingConnections: 10_000,
      maxConnections: 100_000
    },
    services: { identify: identify(), ping: ping({ maxInboundStreams: 1024 }) }
  })
}

async function sendZeros (stream, n, chunk, signal) {
  const block = new Uint8Array(chunk)
  while (n > 0) {
    const take = Math.min(n, chunk)
    if (!stream.send(take === chunk ? block : block.subarray(0, take))) await stream.onDrain({ signal })
    n -= take
  }
}

async function perfServe (stream, chunk) {
  let header = new Uint8Array(0)
  for await (const c of stream) {
    if (header.byteLength < 8) {
      const buf = c instanceof Uint8Array ? c : c.subarray()
      const h = new Uint8Array(Math.min(8, header.byteLength + buf.byteLength))
      h.set(header)
      h.set(buf.subarray(0, h.byteLength - header.byteLength), header.byteLength)
      header = h
    }
  }
  if (header.byteLength < 8) throw new Error('perf: EOF before the 8-byte header')
  const wanted = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0))
  await sendZeros(stream, wanted, chunk)
  await stream.close()
}

async function listenMode (o) {
  const node = await makeNode([o.listen])
  await node.handle(PERF, (stream) => {
    perfServe(stream, o.chunk).catch(err => {
      process.stderr.write(`perf: ${err?.stack ?? err}\n`)
      stream.abort(err)
    })
  }, { maxInboundStreams: 1024 })
  for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma}\n`)
  process.stdout.write('ready\n')
  const stop = async () => {
    try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))]) } finally { process.exit(0) }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
}

async function perfMode (o) {
  const signal = AbortSignal.timeout(600_000)
  const node = await makeNode([])
  const result = { ok: false, impl: 'js-libp2p' }
  try {
    const start = performance.now()
    const conn = await node.dial(multiaddr(o.target), { signal })
    const stream = await conn.newStream(PERF, { signal })
    const header = new Uint8Array(8)
    new DataView(header.buffer).setBigUint64(0, BigInt(o.download))
    stream.send(header)
    await sendZeros(stream, o.upload, o.chunk, signal)
    await stream.close({ signal })
    let received = 0
    for await (const c of stream) received += c.byteLength
    const end = performance.now()
    if (received !== o.download) throw new Error(`perf: expected ${o.download} bytes back, got ${received}`)
    Object.assign(result, { ok: true, upload_bytes: o.upload, download_bytes: received, seconds: (end - start) / 1000 })
  } catch (err) {
    result.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
  }
  emit(result)
  try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))]) } catch {}
  process.exit(result.ok ? 0 : 1)
}

async function connMode (o) {
  const node = await makeNode([])
  const target = multiaddr(o.target)
  const result = { ok: false, impl: 'js-libp2p', ms: [] }
  let prev = null
  let reused = 0
  try {
    for (let i = 0; i < o.count; i++) {
      const signal = AbortSignal.timeout(30_000)
      const t0 = performance.now()
      const conn = await node.dial(target, { signal })
      await node.services.ping.ping(conn.remotePeer, { signal })
      result.ms.push(performance.now() - t0)
      if (prev != null && conn.id === prev) reused++
      prev = conn.id
      await conn.close()
    }
    result.reused_connections = reused
    result.ok = true
  } catch (err) {
    result.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
  }
  emit(result)
  try { await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))]) } catch {}
  process.exit(result.ok ? 0 : 1)
}

const o = parseArgs(process.argv.slice(2))
if (o.mode === 'listen') await listenMode(o)
else if (o.mode === 'perf') await perfMode(o)
else await connMode(o)
