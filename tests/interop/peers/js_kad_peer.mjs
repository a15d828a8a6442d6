// js-libp2p 3.3 + @libp2p/kad-dht 16 peer for pywasm's Kademlia interop tests.
//
// Run with (Node 20):  node --import ./polyfill.mjs js_kad_peer.mjs listen [--protocol ID]
//
// Listens on loopback TCP as a DHT server (clientMode: false, passthroughMapper so
// loopback addresses are kept), prints its multiaddrs and "ready", then takes one JSON
// command per stdin line and prints one JSON answer per command ({"id": n, "ok": ...}).
// stdin closing stops the node (the harness's lifeline).
//
//   {"id":1,"cmd":"connect","addr":MA}            dial, wait until the peer is in the table
//   {"id":2,"cmd":"find_peer","peer":ID}           DHT findPeer: FINAL_PEER addresses
//   {"id":3,"cmd":"put","key":HEX,"value":HEX}     DHT put (js validates first)
//   {"id":4,"cmd":"get","key":HEX}                 DHT get: first VALUE
//   {"id":5,"cmd":"provide","cid":CID}             DHT provide
//   {"id":6,"cmd":"find_providers","cid":CID}      DHT findProviders: PROVIDER peers
//   {"id":7,"cmd":"table"}                         routing table peer ids

import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'

const argv = process.argv.slice(2)
if (argv[0] !== 'listen') throw new Error('usage: js_kad_peer.mjs listen [--protocol ID] [--stdin-lifeline]')
let protocol = '/ipfs/kad/1.0.0'
for (let i = 1; i < argv.length; i++) {
  if (argv[i] === '--protocol') protocol = argv[++i]
  else if (argv[i] === '--stdin-lifeline') { /* always on: stdin carries commands */ } else throw new Error(`unknown argument ${argv[i]}`)
}

const hex = (u8) => Buffer.from(u8).toString('hex')
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))
function emit (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  connectionManager: { inboundConnectionThreshold: 100_000, maxIncomingPendingConnections: 1_000 },
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({ protocol, clientMode: false, peerInfoMapper: passthroughMapper, allowQueryWithZeroPeers: true })
  }
})
const dht = node.services.dht

function tablePeers () {
  return [...dht.routingTable.kb.toIterable()].map(p => p.peerId.toString())
}

async function run (cmd, signal) {
  switch (cmd.cmd) {
    case 'connect': {
      const conn = await node.dial(multiaddr(cmd.addr), { signal })
      const id = conn.remotePeer.toString()
      while (!tablePeers().includes(id)) {
        signal.throwIfAborted()
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      return { peer: id, table: tablePeers() }
    }
    case 'find_peer': {
      const events = []
      for await (const ev of dht.findPeer(peerIdFromString(cmd.peer), { signal })) {
        events.push(ev.name)
        if (ev.name === 'FINAL_PEER') return { addrs: ev.peer.multiaddrs.map(String), events }
      }
      throw new Error(`no FINAL_PEER (events: ${events.join(',')})`)
    }
    case 'put': {
      const events = []
      for await (const ev of dht.put(unhex(cmd.key), unhex(cmd.value), { signal })) {
        events.push(ev.name)
      }
      return { events }
    }
    case 'get': {
      const events = []
      for await (const ev of dht.get(unhex(cmd.key), { signal })) {
        events.push(ev.name)
        if (ev.name === 'VALUE') return { value: hex(ev.value), from: ev.from.toString() }
      }
      throw new Error(`no VALUE (events: ${events.join(',')})`)
    }
    case 'provide': {
      const events = []
      for await (const ev of dht.provide(CID.parse(cmd.cid), { signal })) events.push(ev.name)
      return { events }
    }
    case 'find_providers': {
      const providers = {}
      for await (const ev of dht.findProviders(CID.parse(cmd.cid), { signal })) {
        if (ev.name === 'PROVIDER') {
          for (const p of ev.providers) providers[p.id.toString()] = p.multiaddrs.map(String)
          if (Object.keys(providers).length > 0) break
        }
      }
      return { providers }
    }
    case 'table':
      return { table: tablePeers() }
    default:
      throw new Error(`unknown command ${cmd.cmd}`)
  }
}

for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma.toString()}\n`)
process.stdout.write('ready\n')

const stop = async () => { try { await node.stop() } finally { process.exit(0) } }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let cmd
  try { cmd = JSON.parse(line) } catch { return }
  const signal = AbortSignal.timeout(cmd.timeout_ms ?? 60_000)
  run(cmd, signal).then(
    (res) => emit({ id: cmd.id, ok: true, ...res }),
    (err) => emit({ id: cmd.id, ok: false, error: `${err?.name ?? 'Error'}: ${err?.message ?? err}` })
  )
})
rl.on('close', stop)
