// WebTransport shim for pywasm inside Pyodide (pywasm/transports/browser_webtransport.py).
//
// Registered as the JS module "pywasm_webtransport_js". Same design as websocket.mjs: Python
// never hands JS a callback; it calls methods and awaits the promises they return.
//
//   const s = open(url, hashes, maxBuffered)   // hashes: array of sha-256 digests (Uint8Array)
//   await s.ready()          // true, or a one-line error string (handshake failed, bad hash ...)
//   await s.createStream()   // a Stream (below); throws when the session is gone
//   s.acceptStream()         // a Stream the server opened, null once the session ended,
//                            // else a Promise of either
//   s.close(code, reason)    // never throws
//   await s.closed()         // resolves to "" (clean) or why the session ended
//   s.failure                // "" or why the session ended abnormally
//
//   stream.read()            // Uint8Array (every chunk queued so far, concatenated), null at
//                            // EOF (or failure: see stream.failure), else a Promise of either
//   stream.write(u8)         // true when the stream can take more now, else a Promise that
//                            // resolves (true) once it can; throws when the stream is gone
//   await stream.closeWrite()
//   stream.reset(code)       // abort both directions; never throws
//
// Unlike WebSocket, WebTransport streams have flow control: the shim reads ahead at most
// `maxBuffered` bytes per stream and then stops pulling, so a slow Python reader slows the
// sender instead of growing memory.

export const DEFAULT_MAX_BUFFERED = 4 * 1024 * 1024;

export function available() {
  return typeof globalThis.WebTransport === 'function';
}

function oneLine(e) {
  return String(e?.message ?? e ?? 'error').split('\n')[0];
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

class Stream {
  constructor(bidi, maxBuffered) {
    this.maxBuffered = maxBuffered;
    this.failure = '';
    this._chunks = [];
    this._queued = 0;
    this._ended = false;
    this._waiter = null;
    this._pumping = false;
    this._reader = bidi.readable.getReader();
    this._writer = bidi.writable.getWriter();
    this._writeClosed = false;
    this._pump();
  }

  async _pump() {
    if (this._pumping) return;
    this._pumping = true;
    try {
      while (!this._ended && this._queued < this.maxBuffered) {
        let r;
        try {
          r = await this._reader.read();
        } catch (e) {
          this._end(`stream reset: ${oneLine(e)}`);
          return;
        }
        if (r.done) {
          this._end('');
          return;
        }
        const u8 = r.value;
        if (!u8 || u8.byteLength === 0) continue;
        if (this._waiter) {
          const w = this._waiter;
          this._waiter = null;
          w(u8);
          continue;
        }
        this._chunks.push(u8);
        this._queued += u8.byteLength;
      }
    } finally {
      this._pumping = false;
    }
  }

  _end(failure) {
    if (failure && !this.failure) this.failure = failure;
    this._ended = true;
    if (this._waiter && this._chunks.length === 0) {
      const w = this._waiter;
      this._waiter = null;
      w(null);
    }
  }

  read() {
    if (this._chunks.length) {
      const out = concat(this._chunks, this._queued);
      this._chunks = [];
      this._queued = 0;
      if (!this._ended) this._pump(); // room again: resume pulling
      return out;
    }
    if (this._ended) return null;
    if (this._waiter) throw new Error('concurrent read on a WebTransport stream');
    const p = new Promise((resolve) => {
      this._waiter = resolve;
    });
    this._pump();
    return p;
  }

  write(u8) {
    if (this._writeClosed) throw new Error(this.failure || 'write side is closed');
    const w = this._writer;
    w.write(u8).catch((e) => {
      if (!this.failure) this.failure = `write failed: ${oneLine(e)}`;
    });
    if (w.desiredSize === null) throw new Error(this.failure || 'stream errored');
    if (w.desiredSize > 0) return true;
    return w.ready.then(
      () => true,
      (e) => {
        throw new Error(this.failure || `stream errored: ${oneLine(e)}`);
      },
    );
  }

  async closeWrite() {
    if (this._writeClosed) return;
    this._writeClosed = true;
    try {
      await this._writer.close();
    } catch (e) {
      if (!this.failure) this.failure = `close failed: ${oneLine(e)}`;
      throw new Error(this.failure);
    }
  }

  reset(code = 0) {
    this._writeClosed = true;
    this._chunks = [];
    this._queued = 0;
    this._end('reset locally');
    try {
      this._writer.abort(code).catch(() => {});
    } catch {
      /* already errored */
    }
    try {
      this._reader.cancel(code).catch(() => {});
    } catch {
      /* already errored */
    }
  }
}

class Session {
  constructor(url, hashes, maxBuffered) {
    this.url = url;
    this.maxBuffered = maxBuffered > 0 ? maxBuffered : DEFAULT_MAX_BUFFERED;
    this.failure = '';
    this._closedReason = null;
    this._closedWaiters = [];
    this._incoming = null;
    try {
      this.wt = new globalThis.WebTransport(url, {
        serverCertificateHashes: hashes.map((h) => ({ algorithm: 'sha-256', value: h })),
      });
    } catch (e) {
      this.wt = null;
      this._readyResult = `cannot open ${url}: ${oneLine(e)}`;
      this._settleClosed(this._readyResult);
      return;
    }
    this._ready = this.wt.ready.then(
      () => true,
      (e) => `cannot open ${url}: ${oneLine(e)}`,
    );
    this.wt.closed.then(
      (info) => this._settleClosed(info && info.closeCode ? `closed by the server (code ${info.closeCode}${info.reason ? `: ${info.reason}` : ''})` : ''),
      (e) => this._settleClosed(`session failed: ${oneLine(e)}`),
    );
  }

  _settleClosed(reason) {
    if (this._closedReason !== null) return;
    this._closedReason = reason;
    if (reason && !this.failure) this.failure = reason;
    for (const w of this._closedWaiters.splice(0)) w(reason);
  }

  ready() {
    if (this._readyResult !== undefined) return Promise.resolve(this._readyResult);
    return this._ready;
  }

  closed() {
    if (this._closedReason !== null) return Promise.resolve(this._closedReason);
    return new Promise((resolve) => this._closedWaiters.push(resolve));
  }

  async createStream() {
    if (!this.wt || this._closedReason !== null) throw new Error(this.failure || 'session is closed');
    const bidi = await this.wt.createBidirectionalStream();
    return new Stream(bidi, this.maxBuffered);
  }

  acceptStream() {
    if (!this.wt || this._closedReason !== null) return null;
    if (!this._incoming) this._incoming = this.wt.incomingBidirectionalStreams.getReader();
    return this._incoming.read().then(
      (r) => (r.done ? null : new Stream(r.value, this.maxBuffered)),
      () => null,
    );
  }

  close(code = 0, reason = '') {
    if (!this.wt) return;
    try {
      this.wt.close({ closeCode: code, reason });
    } catch {
      /* already closed */
    }
    this._settleClosed(this._closedReason ?? '');
  }
}

/** Start a session to `url` accepting the certificates whose sha-256 digests are `hashes`. */
export function open(url, hashes, maxBuffered = DEFAULT_MAX_BUFFERED) {
  if (!available()) throw new Error('this browser has no WebTransport');
  const list = Array.from(hashes ?? [], (h) => (h instanceof Uint8Array ? h : new Uint8Array(h)));
  return new Session(String(url), list, Number(maxBuffered));
}
