// The browser js-libp2p node shared by the e2e page (main.mjs) and the browser benchmark
// page (benchmarks/peers/browser_js/): dialer-only, websockets, webtransport, webrtc-direct,
// noise, yamux, identify, ping.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { webTransport } from '@libp2p/webtransport'
import { createLibp2p } from 'libp2p'

let node = null

export async function start () {
  if (node != null) return node
  node = await createLibp2p({
    addresses: { listen: [] },
    // webRTCDirect: no STUN servers (nothing is reachable offline; loopback needs none)
    transports: [webSockets(), webTransport(), webRTCDirect({ rtcConfiguration: { iceServers: [] } })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // browsers refuse ws:// and loopback by default: the test relay is both
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping() }
  })
  return node
}

export async function stop () {
  if (node != null) await node.stop()
  node = null
}
