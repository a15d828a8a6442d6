// js-libp2p 3.3 + @libp2p/gossipsub 17 peer for pywasm's pubsub interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs js_pubsub_peer.mjs listen [options]
//
//   listen [--listen MA]... [--topic T]... [--heartbeat-ms N] [--floodsub] [--stdin-lifeline]
//       Prints each listen multiaddr (ending in /p2p/<id>) on its own stdout line, then
//       "ready". Then reads one JSON command per stdin line and prints one JSON event per
//       stdout line:
//         {"cmd":"dial","addr":MA}             -> {"event":"dialed","peer":ID} | {"event":"error",...}
//         {"cmd":"publish","topic":T,"data":HEX} -> {"event":"published","msg_id":HEX,"recipients":N}
//         {"cmd":"mesh","topic":T}             -> {"event":"mesh","topic":T,"peers":[ID...],"subscribers":[ID...]}
//       and, unasked, {"event":"message","topic","data","from","seqno","msg_id","source"} for
//       every message received (hex fields). stdin closing stops the node (the lifeline).
//
// Message ids are js's (publicKeyToProtobuf(key) || seqno for signed messages); the
// pywasm side compares them with its own js-compatible msg-id function.

import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { floodsub } from '@libp2p/floodsub'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { fromString, toString } from 'uint8arrays'

function parseArgs (argv) {
  const opts = { mode: argv[0], listen: [], topics: [], heartbeatMs: 1000, floodsub: false, stdinLifeline: false }
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value after ${a}`)
      return argv[++i]
    }
    switch (a) {
      case '--listen': opts.listen.push(next()); break
      case '--topic': opts.topics.push(next()); break
      case '--heartbeat-ms': opts.heartbeatMs = Number(next()); break
      case '--floodsub': opts.floodsub = true; break
      case '--stdin-lifeline': opts.stdinLifeline = true; break
      default: throw new Error(`unknown argument ${a}`)
    }
  }
  if (opts.mode !== 'listen') throw new Error('usage: js_pubsub_peer.mjs listen ...')
  if (opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

const hex = (u8) => (u8 == null ? null : toString(u8, 'base16'))
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

function pubsubService (opts) {
  if (opts.floodsub) return floodsub()
  return gossipsub({
    heartbeatInterval: opts.heartbeatMs,
    allowPublishToZeroTopicPeers: true,
    emitSelf: false
  })
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const node = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000, maxConnections: 10_000 },
    services: { identify: identify(), pubsub: pubsubService(opts) }
  })
  const ps = node.services.pubsub
  const onMessage = (msgId, source, msg) => {
    emit({
      event: 'message',
      topic: msg.topic,
      data: hex(msg.data),
      from: msg.type === 'signed' ? msg.from.toString() : null,
      seqno: msg.type === 'signed' ? msg.sequenceNumber.toString(16).padStart(16, '0') : null,
      msg_id: msgId,
      source: source?.toString() ?? null
    })
  }
  if (opts.floodsub) {
    ps.addEventListener('message', (evt) => onMessage(null, null, evt.detail))
  } else {
    ps.addEventListener('gossipsub:message', (evt) => {
      const { msgId, propagationSource, msg } = evt.detail
      onMessage(hex(fromString(msgId, 'base64')), propagationSource, msg)
    })
  }
  for (const t of opts.topics) ps.subscribe(t)

  for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma.toString()}\n`)
  process.stdout.write('ready\n')

  const stop = async () => {
    try { await node.stop() } finally { process.exit(0) }
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (!line.trim()) return
    handle(JSON.parse(line)).catch((err) => emit({ event: 'error', error: String(err?.stack ?? err) }))
  })
  if (opts.stdinLifeline) rl.on('close', stop)

  async function handle (cmd) {
    switch (cmd.cmd) {
      case 'dial': {
        const conn = await node.dial(multiaddr(cmd.addr), { signal: AbortSignal.timeout(30_000) })
        emit({ event: 'dialed', peer: conn.remotePeer.toString() })
        break
      }
      case 'publish': {
        const res = await ps.publish(cmd.topic, fromString(cmd.data, 'base16'))
        // js does not return the id: recompute it the way js does for signed messages
        emit({ event: 'published', topic: cmd.topic, recipients: res.recipients.length })
        break
      }
      case 'mesh': {
        const mesh = opts.floodsub ? [] : ps.getMeshPeers(cmd.topic)
        const subs = ps.getSubscribers(cmd.topic).map((p) => p.toString())
        emit({ event: 'mesh', topic: cmd.topic, peers: mesh, subscribers: subs })
        break
      }
      default:
        emit({ event: 'error', error: `unknown command ${cmd.cmd}` })
    }
  }
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
