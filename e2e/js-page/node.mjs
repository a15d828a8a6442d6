// The browser js-libp2p node shared by the e2e page (main.mjs) and the browser benchmark
// page (benchmarks/peers/browser_js/): dialer-only, websockets, webtransport, webrtc-direct,
// noise, yamux, identify, ping. startRelayed() builds a different node instead: one that
// listens through a circuit relay and on /webrtc (private-to-private WebRTC), with echo.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { echo } from '@libp2p/echo'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
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

// A node reachable through `relayAddr` (`<relay ws addr>/p2p/<relay id>`): a reservation
// there (listen `<relayAddr>/p2p-circuit`, circuit-relay-v2's way to listen on one given
// relay) plus `/webrtc`, which announces `<relayed addr>/webrtc` and answers the
// /webrtc-signaling/0.0.1 protocol on relayed connections. It dials /webrtc addresses too.
// It becomes the page's node (start() returns it, stop() stops it).
export async function startRelayed (relayAddr) {
  if (node != null) throw new Error('a js-libp2p node is already running on this page')
  node = await createLibp2p({
    addresses: { listen: [`${relayAddr}/p2p-circuit`, '/webrtc'] },
    transports: [
      webSockets(),
      circuitRelayTransport(),
      // loopback needs no STUN server (and none is reachable offline)
      webRTC({ rtcConfiguration: { iceServers: [] } })
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping(), echo: echo() }
  })
  return node
}

export async function stop () {
  if (node != null) await node.stop()
  node = null
}
