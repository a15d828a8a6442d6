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
    this._iceConnected = false; // set once ICE has a working pair: failures after that are not ICE's
    this._localAddrs = [];
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
      // our host candidates' addresses, for the ICE failure message (a browser that skips
      // loopback gathers none that can reach a 127.0.0.1 server); a handful at most
      pc.onicecandidate = (ev) => {
        const addr = ev.candidate?.address;
        if (addr && this._localAddrs.length < 8 && !this._localAddrs.includes(addr)) this._localAddrs.push(addr);
      };
      pc.oniceconnectionstatechange = () => {
        const s = pc.iceConnectionState;
        if (s === 'connected' || s === 'completed') this._iceConnected = true;
      };
      pc.onconnectionstatechange = () => {
        const s = pc.connectionState;
        if (s === 'failed' || s === 'closed' || s === 'disconnected') {
          if (!this.failure && s !== 'closed') this.failure = this._whyFailed(`connection ${s}`);
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
          const fail = () => reject(new Error(this._whyFailed('connection failed')));
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

  // Bottom-up: DTLS (where a wrong certhash shows) only runs over a working ICE pair, and
  // Firefox marks the DTLS transport failed when ICE fails too; so an ICE failure must be
  // named as such, not blamed on the certhash.
  _whyFailed(fallback) {
    const pc = this.pc;
    const ice = pc?.iceConnectionState ?? 'unknown';
    const dtls = pc?.sctp?.transport?.state;
    const to = this.opts.ip6 ? `[${this.opts.host}]:${this.opts.port}` : `${this.opts.host}:${this.opts.port}`;
    if (ice === 'connected' || ice === 'completed') this._iceConnected = true; // event may still be queued
    if (!this._iceConnected) {
      const local = this._localAddrs.length ? this._localAddrs.join(', ') : 'none';
      return `ICE failed (ICE state ${ice}): no candidate pair reached ${to} (local candidates: ${local})`;
    }
    // Chromium may report the peer connection failed while its DTLS transport still says
    // 'connecting' (the transport's own statechange comes later): over a live ICE pair
    // that is a DTLS failure all the same
    const iceUp = ice === 'connected' || ice === 'completed';
    if (dtls === 'failed' || (iceUp && dtls !== 'connected')) {
      return 'DTLS handshake failed (does the certhash match the server certificate?)';
    }
    if (ice === 'failed' || ice === 'disconnected') return `ICE connectivity to ${to} lost (ICE state ${ice})`;
    return `${fallback} (ICE ${ice}, DTLS ${dtls ?? 'unknown'})`;
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

// ---------------------------------------------------------------------------------------
// Private-to-private WebRTC (libp2p/specs webrtc/webrtc.md). Python runs the signaling
// protocol over the relayed connection (pywasm/transports/browser_webrtc.py); this side
// only drives the RTCPeerConnection. No Noise: each side's DTLS fingerprint is in the SDP,
// which travelled over the authenticated relayed connection.
//
//   const pc = createPeer({ maxBuffered, maxPendingChannels })
//   await pc.ready()             -> '' or a one-line failure
//   await pc.makeOffer()         -> offer SDP (dialer; an 'init' channel first, so the offer
//                                   has a data section to gather candidates for)
//   await pc.acceptOffer(sdp)    -> answer SDP (listener)
//   await pc.acceptAnswer(sdp)   -> '' (dialer)
//   await pc.nextCandidate()     -> JSON of RTCIceCandidate.toJSON(), or null once gathering
//                                   ended, the connection is up or it died
//   await pc.addCandidate(json)  -> '' or why the browser refused it (not fatal: ICE goes on)
//   await pc.connected()         -> '' once connectionState is 'connected', else why not
//   await pc.closeInit()         -> '' once the dialer's 'init' channel opened and its close went out
//   await pc.selectedPair()      -> { local, remote } candidate types/addresses in use, or null
//   await pc.describe()          -> one line: states, candidate pairs, a bounded ICE trace
// Channels and accept()/createChannel()/close()/failure as for dialDirect. The remote's
// 'init' channel is never offered to accept(): it is no libp2p stream.

const MAX_QUEUED_CANDIDATES = 64;
const MAX_TRACE = 48;

class SignaledPeerConnection extends PeerConnection {
  // no class fields here: the base constructor calls _start() before they would be set
  async _start() {
    try {
      this._cands = [];
      this._candWaiter = null;
      this._gatherDone = false;
      this._connWaiters = [];
      this._init = null;
      this._trace = [];
      this._t0 = Date.now();
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      pc.ondatachannel = (ev) => this._incoming(ev.channel);
      pc.oniceconnectionstatechange = () => this._note(`ice ${pc.iceConnectionState}`);
      pc.onicegatheringstatechange = () => this._note(`gathering ${pc.iceGatheringState}`);
      pc.onicecandidate = (ev) => {
        const c = ev.candidate;
        // null: gathering is over; '' : end of this generation (the spec sends neither).
        // Firefox 153 fires the '' one (then null), Chromium 156 only null; either ends the
        // trickle. Candidates go out as the browser wrote them: Chromium's host candidates
        // are mDNS names (<uuid>.local), Firefox's plain addresses (with the test profile's
        // prefs) plus TCP-active ones on port 9. A candidate the other browser refuses is not
        // fatal (addCandidate): ICE meets on the pairs that work. Measured Chromium <->
        // Firefox (e2e/test_webrtc_cross_browser.py): Firefox's pair to Chromium has a
        // peer-reflexive remote (the .local name is not used), Chromium's pair to Firefox a
        // host remote with Firefox's plain address.
        if (!c || !c.candidate) {
          this._gatherDone = true;
          this._wakeCandidate(null);
          return;
        }
        this._note(`local ${c.type ?? '?'} ${c.protocol ?? '?'} ${c.address ?? '?'}:${c.port ?? '?'}`);
        const json = JSON.stringify(c.toJSON());
        if (this._candWaiter) this._wakeCandidate(json);
        else if (this._cands.length < MAX_QUEUED_CANDIDATES) this._cands.push(json);
      };
      pc.onconnectionstatechange = () => {
        const s = pc.connectionState;
        this._note(`connection ${s}`);
        if (s === 'connected') {
          this._wakeConnected('');
          this._wakeCandidate(null); // trickling ends with the connection up (js-libp2p does the same)
        } else if (s === 'failed' || s === 'closed' || s === 'disconnected') {
          if (!this.failure && s !== 'closed') this.failure = this._whyFailed(`connection ${s}`);
          this._finish();
        }
      };
      return '';
    } catch (e) {
      const why = String(e?.message ?? e).split('\n')[0];
      if (!this.failure) this.failure = why;
      this.close();
      return why;
    }
  }

  // A bounded record of what ICE did, for the error a timed-out dial reports: which
  // candidates each side had, which state ICE reached. Never sent anywhere.
  _note(what) {
    if (this._trace.length >= MAX_TRACE) this._trace.splice(MAX_TRACE / 2, 1);
    this._trace.push(`${Date.now() - this._t0}ms ${what}`);
  }

  /** Add a line to the trace (the Python side notes its own steps). */
  note(what) {
    this._note(String(what).slice(0, 200));
  }

  /** One line on where this connection got to: states, the trace, the candidate pairs. */
  async describe() {
    const pc = this.pc;
    if (!pc) return this.failure || 'no peer connection';
    const parts = [
      `connection ${pc.connectionState}, ICE ${pc.iceConnectionState}, gathering ${pc.iceGatheringState}, ` +
        `signaling ${pc.signalingState}, DTLS ${pc.sctp?.transport?.state ?? 'none'}`,
    ];
    try {
      const stats = await pc.getStats();
      const pairs = [];
      const cand = (id) => {
        const c = stats.get(id);
        return c ? `${c.candidateType}:${c.address || c.ip || '?'}:${c.port}` : '?';
      };
      stats.forEach((st) => {
        if (st.type === 'candidate-pair' && pairs.length < 12) {
          pairs.push(`${cand(st.localCandidateId)}->${cand(st.remoteCandidateId)} ${st.state}`);
        }
      });
      parts.push(`pairs [${pairs.join(', ')}]`);
    } catch (e) {
      parts.push(`no stats (${String(e?.message ?? e).split('\n')[0]})`);
    }
    parts.push(`trace [${this._trace.join('; ')}]`);
    return parts.join('; ');
  }

  _whyFailed(fallback) {
    const pc = this.pc;
    return `${fallback} (ICE ${pc?.iceConnectionState ?? 'unknown'}, DTLS ${pc?.sctp?.transport?.state ?? 'unknown'})`;
  }

  _wakeCandidate(value) {
    const w = this._candWaiter;
    this._candWaiter = null;
    if (w) w(value);
  }

  _wakeConnected(why) {
    for (const w of this._connWaiters.splice(0)) w(why);
  }

  _finish() {
    super._finish();
    this._wakeCandidate(null);
    this._wakeConnected(this.failure || 'peer connection closed');
  }

  _incoming(dc) {
    if (dc.label === 'init') return; // the dialer's, closed by the dialer (webrtc.md step 8)
    super._incoming(dc);
  }

  async makeOffer() {
    this._init = this.pc.createDataChannel('init');
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    return this.pc.localDescription.sdp;
  }

  async acceptOffer(sdp) {
    await this.pc.setRemoteDescription({ type: 'offer', sdp: String(sdp) });
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    return this.pc.localDescription.sdp;
  }

  async acceptAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: 'answer', sdp: String(sdp) });
    return '';
  }

  nextCandidate() {
    if (this._cands.length) return this._cands.shift();
    if (this._gatherDone || this._closed || this.pc?.connectionState === 'connected') return null;
    if (this._candWaiter) throw new Error('concurrent nextCandidate on a peer connection');
    return new Promise((resolve) => {
      this._candWaiter = resolve;
    });
  }

  async addCandidate(json) {
    try {
      const init = JSON.parse(String(json));
      if (init === null || init === '' || init?.candidate === '') {
        this._note('remote end-of-candidates');
        return ''; // end of candidates
      }
      this._note(`remote ${String(init?.candidate ?? '').slice(0, 120)}`);
      await this.pc.addIceCandidate(init);
      return '';
    } catch (e) {
      const why = String(e?.message ?? e).split('\n')[0] || 'bad candidate';
      this._note(`refused: ${why}`);
      return why;
    }
  }

  connected() {
    if (this.pc?.connectionState === 'connected') return '';
    if (this._closed) return this.failure || 'peer connection closed';
    return new Promise((resolve) => this._connWaiters.push(resolve));
  }

  async closeInit() {
    const dc = this._init;
    if (!dc) return '';
    this._init = null;
    this._note(`init ${dc.readyState}`);
    if (dc.readyState === 'connecting') {
      await new Promise((resolve) => {
        dc.addEventListener('open', resolve, { once: true });
        dc.addEventListener('close', resolve, { once: true });
      });
      this._note(`init ${dc.readyState}`);
    }
    if (dc.readyState !== 'closed') {
      // Not waiting for the 'close' event: it needs the remote to answer the SCTP stream
      // reset, and a Firefox 153 listener sometimes never does (measured: 2 in 12 Chromium
      // -> Firefox dials). The browser keeps the channel's id until the reset completes,
      // so no later stream can reuse it early.
      dc.addEventListener('close', () => this._note('init closed'), { once: true });
      dc.close();
      this._note('init close sent');
    }
    return '';
  }

  async selectedPair() {
    if (!this.pc) return null;
    const stats = await this.pc.getStats();
    let pair = null;
    // the standard way (Chromium 156 and Firefox 153 both have RTCTransportStats)
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    // Firefox before RTCTransportStats flags the pair in use with its own `selected`
    if (!pair) stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.selected === true) pair = s; });
    if (!pair) stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return null;
    // Chromium reports address '' (and ip '') for a candidate it knows by an mDNS name only,
    // its own host candidates included; Firefox gives the address. '' means "hidden", not
    // "none": the candidate type still says host / prflx / srflx / relay.
    const side = (id) => {
      const c = stats.get(id);
      return c ? { type: c.candidateType, protocol: c.protocol, address: c.address || c.ip || '', port: c.port } : null;
    };
    return { local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId) };
  }
}

/** A peer connection for private-to-private WebRTC; see the section header above. */
export function createPeer(opts = {}) {
  if (!available()) throw new Error('no RTCPeerConnection in this environment');
  const o = typeof opts?.toJs === 'function' ? opts.toJs({ dict_converter: Object.fromEntries }) : (opts ?? {});
  return new SignaledPeerConnection({
    maxBuffered: o.maxBuffered,
    maxPendingChannels: o.maxPendingChannels,
  });
}
