// A js-libp2p 3.3 universal-connectivity chat member for e2e/test_chat.py:
// tcp + websockets, noise, yamux, identify, ping, @libp2p/gossipsub 17 with UC's message-id
// function (sha-256 of the decimal sequence number, js-peer/src/lib/libp2p.ts), subscribed
// to the UC topics.
//
// Run with (Node 20):  node --import tests/interop/peers/polyfill.mjs --experimental-websocket \
//                           e2e/peers/js_chat_peer.mjs listen [--stdin-lifeline]
//   Prints each listen multiaddr then "ready"; reads one JSON command per stdin line:
//     {"cmd":"dial","addr":MA}               -> {"event":"dialed","peer":ID}
//     {"cmd":"publish","text":T}             -> {"event":"published","recipients":N}
//     {"cmd":"mesh","topic":T}               -> {"event":"mesh","topic":T,"peers":[...],"subscribers":[...]}
//     {"cmd":"dm","addr":MA,"text":T}        -> {"event":"dm-sent","status":N}  (/universal-connectivity/dm/1.0.0)
//   and {"event":"dm","from","text"} for every DM received.
//   and prints {"event":"message","topic","text","from","msg_id"} for every message received.
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { pbStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { decodeMessage, encodeMessage, message } from 'protons-runtime'
import { toString } from 'uint8arrays'

// UC's js-peer/src/lib/protobuf/direct-message.proto, as protons would generate it
const DM_PROTOCOL = '/universal-connectivity/dm/1.0.0'
const Metadata = message((obj, w, opts = {}) => {
  if (opts.lengthDelimited !== false) w.fork()
  if (obj.clientVersion != null) { w.uint32(10); w.string(obj.clientVersion) }
  if (obj.timestamp != null) { w.uint32(16); w.int64(obj.timestamp) }
  if (opts.lengthDelimited !== false) w.ldelim()
}, (reader, length) => {
  const obj = {}
  const end = length == null ? reader.len : reader.pos + length
  while (reader.pos < end) {
    const tag = reader.uint32()
    switch (tag >>> 3) {
      case 1: obj.clientVersion = reader.string(); break
      case 2: obj.timestamp = reader.int64(); break
      default: reader.skipType(tag & 7)
    }
  }
  return obj
})
const RequestCodec = message((obj, w, opts = {}) => {
  if (opts.lengthDelimited !== false) w.fork()
  if (obj.metadata != null) { w.uint32(10); Metadata.encode(obj.metadata, w) }
  if (obj.content != null && obj.content !== '') { w.uint32(18); w.string(obj.content) }
  if (obj.type != null && obj.type !== '') { w.uint32(26); w.string(obj.type) }
  if (opts.lengthDelimited !== false) w.ldelim()
}, (reader, length) => {
  const obj = { content: '', type: '' }
  const end = length == null ? reader.len : reader.pos + length
  while (reader.pos < end) {
    const tag = reader.uint32()
    switch (tag >>> 3) {
      case 1: obj.metadata = Metadata.decode(reader, reader.uint32()); break
      case 2: obj.content = reader.string(); break
      case 3: obj.type = reader.string(); break
      default: reader.skipType(tag & 7)
    }
  }
  return obj
})
const ResponseCodec = message((obj, w, opts = {}) => {
  if (opts.lengthDelimited !== false) w.fork()
  if (obj.metadata != null) { w.uint32(10); Metadata.encode(obj.metadata, w) }
  if (obj.status != null && obj.status !== 0) { w.uint32(16); w.int32(obj.status) }
  if (obj.statusText != null) { w.uint32(26); w.string(obj.statusText) }
  if (opts.lengthDelimited !== false) w.ldelim()
}, (reader, length) => {
  const obj = { status: 0 }
  const end = length == null ? reader.len : reader.pos + length
  while (reader.pos < end) {
    const tag = reader.uint32()
    switch (tag >>> 3) {
      case 1: obj.metadata = Metadata.decode(reader, reader.uint32()); break
      case 2: obj.status = reader.int32(); break
      case 3: obj.statusText = reader.string(); break
      default: reader.skipType(tag & 7)
    }
  }
  return obj
})
const asProto = (codec) => ({ encode: (o) => encodeMessage(o, codec), decode: (b) => decodeMessage(b, codec) })
const DirectMessageRequest = asProto(RequestCodec)
const DirectMessageResponse = asProto(ResponseCodec)
const metadata = () => ({ clientVersion: '0.0.1', timestamp: BigInt(Date.now()) })

const CHAT_TOPIC = 'universal-connectivity'
const TOPICS = [CHAT_TOPIC, 'universal-connectivity-file', 'universal-connectivity-browser-peer-discovery']

// UC: sha256(TextEncoder.encode(msg.sequenceNumber.toString()))
function ucMsgId (msg) {
  const seq = msg.type === 'signed' ? msg.sequenceNumber.toString() : null
  const h = createHash('sha256')
  h.update(seq != null ? Buffer.from(seq) : Buffer.from(msg.data))
  return new Uint8Array(h.digest())
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main () {
  const argv = process.argv.slice(2)
  if (argv[0] !== 'listen') throw new Error('usage: js_chat_peer.mjs listen [--stdin-lifeline]')
  const lifeline = argv.includes('--stdin-lifeline')
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, msgIdFn: ucMsgId, ignoreDuplicatePublishError: true })
    }
  })
  const ps = node.services.pubsub
  ps.addEventListener('gossipsub:message', (evt) => {
    const { msgId, msg } = evt.detail
    if (msg.topic !== CHAT_TOPIC) return
    emit({
      event: 'message',
      topic: msg.topic,
      text: new TextDecoder().decode(msg.data),
      from: msg.type === 'signed' ? msg.from.toString() : null,
      msg_id: toString(Buffer.from(msgId, 'base64'), 'base16')
    })
  })
  for (const t of TOPICS) ps.subscribe(t)
  await node.handle(DM_PROTOCOL, async (stream, connection) => {
    const signal = AbortSignal.timeout(5000)
    const pb = pbStream(stream)
    const req = await pb.read(DirectMessageRequest, { signal })
    await pb.write({ status: 200, metadata: metadata() }, DirectMessageResponse, { signal })
    emit({ event: 'dm', from: connection.remotePeer.toString(), text: req.content, type: req.type })
    await pb.unwrap().close({ signal })
  }, { runOnLimitedConnection: true })
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
  if (lifeline) rl.on('close', stop)

  async function handle (cmd) {
    switch (cmd.cmd) {
      case 'dial': {
        const conn = await node.dial(multiaddr(cmd.addr), { signal: AbortSignal.timeout(30_000) })
        emit({ event: 'dialed', peer: conn.remotePeer.toString() })
        break
      }
      case 'publish': {
        const res = await ps.publish(CHAT_TOPIC, new TextEncoder().encode(cmd.text))
        emit({ event: 'published', text: cmd.text, recipients: res.recipients.length })
        break
      }
      case 'dm': {
        const signal = AbortSignal.timeout(10_000)
        const stream = await node.dialProtocol(multiaddr(cmd.addr), DM_PROTOCOL, { signal })
        const pb = pbStream(stream)
        await pb.write({ content: cmd.text, type: 'text/plain', metadata: metadata() }, DirectMessageRequest, { signal })
        const res = await pb.read(DirectMessageResponse, { signal })
        emit({ event: 'dm-sent', status: res.status, text: cmd.text })
        await pb.unwrap().close({ signal })
        break
      }
      case 'mesh': {
        emit({
          event: 'mesh',
          topic: cmd.topic,
          peers: ps.getMeshPeers(cmd.topic).map(String),
          subscribers: ps.getSubscribers(cmd.topic).map(String)
        })
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
