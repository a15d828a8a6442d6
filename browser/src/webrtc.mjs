// WebRTC shim for pywasm in the browser (registered as the JS module `pywasm_webrtc_js`).
//
// Dumb on purpose: it owns the RTCPeerConnection and its data channels and moves bytes;
// every protocol decision (framing, FIN/RESET, Noise, which channel is which stream) is
// Python's (pywasm/transports/browser_webrtc_direct.py, webrtc_stream.py). Like
// websocket.mjs it is pull-based: Python awaits promises returned here, JS never calls
// into Python.
//
//   const pc = dialDirect({ host, port, ip6, fingerprint, ufrag })   // webrtc-direct
//   await pc.ready()             -> '' or a one-line failure
//   pc.localFingerprint()        -> 'AB:CD:...' (sha-256 of our DTLS certificate)
//   pc.handshake                 -> Channel (negotiated, id 0: Noise runs on it)
//   pc.createChannel()           -> Channel (label '', in-band negotiation)
//   await pc.accept()            -> Channel opened by the remote, or null once closed
//   pc.close(); pc.failure       -> '' or why the connection died
//
//   Channel: id, read() -> Uint8Array (all bytes received so far, concatenated: the
//   libp2p framing is a byte stream) | null (closed) | Promise of either;
//   send(u8) (queued until the channel opens, as RFC 8832 allows); bufferedAmount;
//   waitBufferedBelow(n) -> Promise; close().
//
// Bounds: a channel whose unread bytes pass `maxBuffered` is closed (Python reads
// continuously, so only a stuck page gets there); at most `maxPendingChannels` remote
// channels wait for accept(), more are closed.

const DEFAULT_MAX_BUFFERED = 32 * 1024 * 1024;
const DEFAULT_MAX_PENDING_CHANNELS = 1024;
const MAX_MESSAGE_SIZE = 16384;

export function available() {
  return typeof globalThis.RTCPeerConnection === 'function';
}

function concat(chunks, total) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

class Channel {
  constructor(dc, maxBuffered) {
    this.dc = dc;
    this.maxBuffered = maxBuffered;
    this._chunks = [];
    this._queued = 0;
    this._waiter = null;
    this._ended = false;
    this._early = [];
    this._earlyBytes = 0;
    this._lowWaiters = [];
    this.failure = '';
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = 0;
    dc.onmessage = (ev) => {
      const d = ev.data;
      if (typeof d === 'string') {
        this._push(new TextEncoder().encode(d)); // not libp2p framing: Python will reset
        return;
      }
      if (!d || d.byteLength === 0) return;
      this._push(new Uint8Array(d));
    };
    dc.onopen = () => {
      const early = this._early;
      this._early = [];
      this._earlyBytes = 0;
      for (const m of early) this._send(m);
    };
    dc.onclose = () => this._end();
    dc.onerror = (ev) => {
      if (!this.failure) this.failure = ev?.error?.message || 'data channel error';
    };
    dc.onbufferedamountlow = () => this._wakeLow();
  }

  get id() {
    return this.dc.id ?? -1;
  }

  _push(u8) {
    if (this._waiter) {
      const w = this._waiter;
      this._waiter = null;
      w(u8);
      return;
    }
    this._queued += u8.byteLength;
    if (this._queued > this.maxBuffered) {
      this.failure = `more than ${this.maxBuffered} unread bytes`;
      this._chunks = [];
      this._queued = 0;
      this.close();
      this._end();
      return;
    }
    this._chunks.push(u8);
  }

  _end() {
    this._ended = true;
    if (this._waiter && this._chunks.length === 0) {
      const w = this._waiter;
      this._waiter = null;
      w(null);
    }
    this._wakeLow();
  }

  _wakeLow() {
    for (const w of this._lowWaiters.splice(0)) w(true);
  }

  read() {
    if (this._chunks.length) {
      const out = concat(this._chunks, this._queued);
      this._chunks = [];
      this._queued = 0;
      return out;
    }
    if (this._ended) return null;
    if (this._waiter) throw new Error('concurrent read on a data channel');
    return new Promise((resolve) => {
      this._waiter = resolve;
    });
  }

  _send(u8) {
    this.dc.send(u8);
  }

  send(u8) {
    const state = this.dc.readyState;
    if (state === 'connecting') {
      this._early.push(u8);
      this._earlyBytes += u8.byteLength;
    } else if (state === 'open') {
      this._send(u8);
    } else {
      throw new Error(`data channel is ${state}`);
    }
  }

  get bufferedAmount() {
    return this.dc.bufferedAmount + this._earlyBytes;
  }

  waitBufferedBelow(limit) {
    if (this.bufferedAmount <= limit || this._ended) return true;
    this.dc.bufferedAmountLowThreshold = Math.max(0, limit - this._earlyBytes);
    return new Promise((resolve) => this._lowWaiters.push(resolve));
  }

  close() {
    try {
      this.dc.close();
    } catch {
      /* already closed */
    }
  }
}

// The answer a webrtc-direct server would give: ICE-lite, passive DTLS, ufrag == pwd.
function serverAnswer({ host, port, ip6, fingerprint, ufrag }) {
  const ipv = ip6 ? 'IP6' : 'IP4';
  return [
    'v=0',
    `o=- 0 0 IN ${ipv} ${host}`,
    's=-',
    't=0 0',
    'a=ice-lite',
    `m=application ${port} UDP/DTLS/SCTP webrtc-datachannel`,
    `c=IN ${ipv} ${host}`,
    'a=mid:0',
    'a=ice-options:ice2',
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${ufrag}`,
    `a=fingerprint:sha-256 ${fingerprint}`,
    'a=setup:passive',
    'a=sctp-port:5000',
    `a=max-message-size:${MAX_MESSAGE_SIZE}`,
    `a=candidate:1467250027 1 UDP 1467250027 ${host} ${port} typ host`,
    'a=end-of-candidates',
    '',
  ].join('\r\n');
}

// SDP munging (webrtc-direct step 5): our ufrag and password become the shared string.
export function mungeOffer(sdp, ufrag) {
  const nl = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .replace(/\na=ice-ufrag:[^\r\n]*\r?\n/, `\na=ice-ufrag:${ufrag}${nl}`)
    .replace(/\na=ice-pwd:[^\r\n]*\r?\n/, `\na=ice-pwd:${ufrag}${nl}`);
}

class PeerConnection {
  constructor(opts) {
    this.opts = opts;
    this.maxBuffered = Number(opts.maxBuffered ?? DEFAULT_MAX_BUFFERED);
    this.maxPending = Number(opts.maxPendingChannels ?? DEFAULT_MAX_PENDING_CHANNELS);
    this.failure = '';
    this._pending = [];
    this._acceptWaiter = null;
    this._closed = false;
    this._channels = new Set(); // to end them when the connection goes (pc.close() fires no events)
    this.pc = null;
    this.handshake = null;
    this._ready = this._start();
  }

  async _start() {
    try {
      const certificate = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
      const pc = new RTCPeerConnection({ iceServers: [], certificates: [certificate] });
      this.pc = pc;
      pc.ondatachannel = (ev) => this._incoming(ev.channel);
      pc.onconnectionstatechange = () => {
        const s = pc.connectionState;
        if (s === 'failed' || s === 'closed' || s === 'disconnected') {
          if (!this.failure && s !== 'closed') {
            this.failure = pc.sctp?.transport?.state === 'failed' ? 'DTLS handshake failed' : `connection ${s}`;
          }
          this._finish();
        }
      };
      this.handshake = this._track(new Channel(pc.createDataChannel('', { negotiated: true, id: 0 }), this.maxBuffered));
      const offer = await pc.createOffer();
      await pc.setLocalDescription({ type: 'offer', sdp: mungeOffer(offer.sdp, this.opts.ufrag) });
      await pc.setRemoteDescription({ type: 'answer', sdp: serverAnswer(this.opts) });
      const dc = this.handshake.dc;
      if (dc.readyState !== 'open') {
        await new Promise((resolve, reject) => {
          dc.addEventListener('open', resolve, { once: true });
          dc.addEventListener('close', () => reject(new Error(this.failure || 'handshake channel closed before opening')), { once: true });
          // a certhash that does not match fails DTLS: say so at once instead of timing out
          const dtls = pc.sctp?.transport;
          const fail = () => reject(new Error(dtls?.state === 'failed'
            ? 'DTLS handshake failed (does the certhash match the server certificate?)'
            : 'connection failed (ICE or DTLS: does the certhash match the server certificate?)'));
          dtls?.addEventListener('statechange', () => dtls.state === 'failed' && fail());
          pc.addEventListener('connectionstatechange', () => pc.connectionState === 'failed' && fail());
        });
      }
      return '';
    } catch (e) {
      const why = String(e?.message ?? e).split('\n')[0];
      if (!this.failure) this.failure = why;
      this.close();
      return why;
    }
  }

  ready() {
    return this._ready;
  }

  _track(ch) {
    this._channels.add(ch);
    ch.dc.addEventListener('close', () => this._channels.delete(ch));
    return ch;
  }

  _incoming(dc) {
    const ch = this._track(new Channel(dc, this.maxBuffered));
    if (this._acceptWaiter) {
      const w = this._acceptWaiter;
      this._acceptWaiter = null;
      w(ch);
      return;
    }
    if (this._pending.length >= this.maxPending || this._closed) {
      ch.close();
      return;
    }
    this._pending.push(ch);
  }

  accept() {
    if (this._pending.length) return this._pending.shift();
    if (this._closed) return null;
    if (this._acceptWaiter) throw new Error('concurrent accept on a peer connection');
    return new Promise((resolve) => {
      this._acceptWaiter = resolve;
    });
  }

  localFingerprint() {
    const sdp = this.pc?.localDescription?.sdp ?? '';
    const m = sdp.match(/^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)\s*$/m);
    return m ? m[1].toUpperCase() : '';
  }

  createChannel() {
    if (this._closed || !this.pc) throw new Error(this.failure || 'peer connection is closed');
    return this._track(new Channel(this.pc.createDataChannel(''), this.maxBuffered));
  }

  _finish() {
    if (this._closed) return;
    this._closed = true;
    for (const ch of this._channels) ch._end();
    this._channels.clear();
    if (this._acceptWaiter) {
      const w = this._acceptWaiter;
      this._acceptWaiter = null;
      w(null);
    }
  }

  close() {
    this._finish();
    try {
      this.pc?.close();
    } catch {
      /* already closed */
    }
  }
}

/** Start a webrtc-direct connection; see the header. */
export function dialDirect(opts) {
  if (!available()) throw new Error('no RTCPeerConnection in this environment');
  const o = typeof opts?.toJs === 'function' ? opts.toJs({ dict_converter: Object.fromEntries }) : opts;
  return new PeerConnection({
    host: String(o.host),
    port: Number(o.port),
    ip6: Boolean(o.ip6),
    fingerprint: String(o.fingerprint),
    ufrag: String(o.ufrag),
    maxBuffered: o.maxBuffered,
    maxPendingChannels: o.maxPendingChannels,
  });
}
