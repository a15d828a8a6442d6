// WebSocket shim for pywasm inside Pyodide (pywasm/transports/browser_websocket.py).
//
// Registered as the JS module "pywasm_websocket_js" (pyodide.registerJsModule). Python never
// hands JS a callback: everything is pull-based, so no Python proxies need to be kept alive
// or destroyed. A connection is:
//
//   const c = open(url, maxBuffered)   // starts connecting (binaryType "arraybuffer")
//   await c.opened()                   // resolves true on "open"; resolves to a one-line
//                                      // error string when the socket fails or closes first
//   c.read()                           // Uint8Array (every queued byte, concatenated) when
//                                      // data is queued, null at the end (clean close or
//                                      // failure: see c.failure), else a Promise of either
//                                      // (settled one task after the next message, with
//                                      // all that arrived meanwhile: one wake-up a burst)
//   c.readLater()                      // { pending: what read() returns }: the box keeps a
//                                      // Promise a JS object on its way through Python (which
//                                      // turns a returned Promise into a Future) to JS that
//                                      // awaits it (crypto.mjs aeadOpenFramed)
//   c.send(u8)                         // one binary message
//   c.sendLater(data, nbytes, maxMsg)  // data: a Uint8Array, a Promise of one (e.g. frames
//                                      // still being encrypted) or a box { pending: either }
//                                      // (aeadSealFramedLater); sent once it resolves, in
//                                      // call order with send(), split into messages of at
//                                      // most maxMsg bytes. Returns at once: the caller does
//                                      // not wait for the Promise. A rejected Promise fails
//                                      // the connection (close 1011, see c.failure).
//   c.bufferedAmount                   // bytes handed to send()/sendLater() and not yet on
//                                      // the wire (nbytes counts until the data resolves)
//   c.drained(lowWater)                // true when bufferedAmount <= lowWater or the socket
//                                      // is not open, else a Promise resolving (to true) once
//                                      // either holds
//   c.close(code, reason)              // starts the close handshake (after the sendLater
//                                      // data still pending, unless code is not 1000);
//                                      // never throws
//   await c.closed()                   // resolves when the socket is CLOSED
//   c.failure                          // "" or why the connection ended abnormally
//
// WebSocket has no way to pause reception: the bound on queued, unread bytes (maxBuffered)
// is enforced by closing the socket (code 1009 "message too big") and failing the
// connection, so an application that stops reading loses its connection, not its memory.
//
// Uses the global WebSocket: browsers, Deno, Node >= 22, and Node 20/21 when started with
// --experimental-websocket.

export const CLOSE_NORMAL = 1000;
export const CLOSE_NO_STATUS = 1005;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;
// Default bound on received bytes nobody has read yet (Python passes its own).
export const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;
// How often a pending drained() looks at bufferedAmount. Browsers fire no event when the
// send buffer empties, so a JS timer checks; it must be a real timer (>= 4 ms, the clamp
// browsers apply anyway): Pyodide's event loop runs sleeps this short as immediate
// callbacks, so polling from Python spun the page at 100% CPU while the socket drained.
export const DRAIN_POLL_MS = 5;

const CLEAN_CODES = new Set([CLOSE_NORMAL, 1001, CLOSE_NO_STATUS]);

/** True when a WebSocket implementation is available. */
export function available() {
  return typeof globalThis.WebSocket === 'function';
}

// Runs fn in a later task (after messages already queued, in practice), not a microtask.
const nextTask = (() => {
  if (typeof MessageChannel !== 'function') return (fn) => setTimeout(fn, 0);
  const ch = new MessageChannel();
  const queue = [];
  ch.port1.onmessage = () => queue.shift()();
  ch.port1.unref?.(); // Node: a pending port must not keep the process alive
  return (fn) => {
    queue.push(fn);
    ch.port2.postMessage(0);
  };
})();

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

class Connection {
  constructor(url, maxBuffered) {
    this.url = url;
    this.maxBuffered = maxBuffered > 0 ? maxBuffered : DEFAULT_MAX_BUFFERED;
    this.failure = '';
    this.closeCode = 0;
    this._chunks = [];
    this._queued = 0;
    this._ended = false; // no more data will be queued
    this._waiter = null; // resolve() of a pending read
    this._deliverQueued = false; // a _deliver() is scheduled
    this._isOpen = false;
    this._openWaiters = [];
    this._closedWaiters = [];
    this._isClosed = false;
    // sendLater: bytes promised but not yet handed to the socket, and the tail of the
    // ordered chain of pending sends (null when nothing is pending)
    this._pending = 0;
    this._chain = null;
    this._closeQueued = false;
    let ws;
    try {
      ws = new globalThis.WebSocket(url);
    } catch (e) {
      // bad URL (SyntaxError) or a blocked port: fail like a connection error
      this._end(`cannot open ${url}: ${e?.message ?? e}`);
      this._settleOpen(`cannot open ${url}: ${e?.message ?? e}`);
      this._isClosed = true;
      this.ws = null;
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      this._isOpen = true;
      this._settleOpen(true);
    };
    ws.onmessage = (ev) => {
      if (this._ended) return;
      const d = ev.data;
      if (!(d instanceof ArrayBuffer)) {
        // libp2p sends only binary messages; text means the peer is not libp2p
        this._fail(`received a text message from ${url}`, 1003);
        return;
      }
      if (d.byteLength === 0) return;
      const u8 = new Uint8Array(d);
      if (this._waiter && !this._deliverQueued) {
        // Hand the waiting reader this message one task later, with any that arrive
        // meanwhile: a burst then wakes the reader (Python) once, not once per message.
        this._deliverQueued = true;
        nextTask(() => this._deliver());
      }
      this._queued += u8.byteLength;
      if (this._queued > this.maxBuffered) {
        this._chunks = [];
        this._queued = 0;
        this._fail(`receive buffer over ${this.maxBuffered} bytes: the application stopped reading`, CLOSE_TOO_BIG);
        return;
      }
      this._chunks.push(u8);
    };
    ws.onerror = (ev) => {
      // the event carries no reason in browsers; Node's has .message / .error
      const why = ev?.message || ev?.error?.message || 'connection error';
      if (!this._isOpen) this._settleOpen(`cannot connect to ${url}: ${why}`);
      else if (!this._ended && !this.failure) this.failure = `WebSocket error: ${why}`;
    };
    ws.onclose = (ev) => {
      this.closeCode = ev.code;
      if (!this._isOpen) {
        this._settleOpen(`cannot connect to ${url}: closed before opening (code ${ev.code})`);
      }
      if (!this._ended && !this.failure && !CLEAN_CODES.has(ev.code)) {
        this.failure = `connection closed abnormally (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
      }
      this._end();
      this._isClosed = true;
      for (const w of this._closedWaiters.splice(0)) w(true);
    };
  }

  _deliver() {
    this._deliverQueued = false;
    if (!this._waiter || !this._chunks.length) return;
    const w = this._waiter;
    this._waiter = null;
    const out = concat(this._chunks, this._queued);
    this._chunks = [];
    this._queued = 0;
    w(out);
  }

  _settleOpen(value) {
    for (const w of this._openWaiters.splice(0)) w(value);
    this._openResult = value;
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

  _fail(why, code) {
    if (!this.failure) this.failure = why;
    this._end();
    this.close(code, why.slice(0, 100));
  }

  opened() {
    if (this._openResult !== undefined) return Promise.resolve(this._openResult);
    return new Promise((resolve) => this._openWaiters.push(resolve));
  }

  closed() {
    if (this._isClosed) return Promise.resolve(true);
    return new Promise((resolve) => this._closedWaiters.push(resolve));
  }

  read() {
    if (this._chunks.length) {
      const out = concat(this._chunks, this._queued);
      this._chunks = [];
      this._queued = 0;
      return out;
    }
    if (this._ended) return null;
    if (this._waiter) throw new Error('concurrent read on a WebSocket connection');
    return new Promise((resolve) => {
      this._waiter = resolve;
    });
  }

  readLater() {
    return { pending: this.read() };
  }

  _checkSendable() {
    if (!this.ws || this.ws.readyState !== 1 || this._closeQueued) {
      throw new Error(this.failure || 'WebSocket is not open');
    }
  }

  send(u8) {
    this._checkSendable();
    // behind pending sendLater data, so the byte stream keeps the caller's order
    if (this._chain) this.sendLater(u8, u8.byteLength, 0);
    else this.ws.send(u8);
  }

  sendLater(data, nbytes, maxMsg = 0) {
    this._checkSendable();
    const n = Math.max(0, Number(nbytes) || 0);
    const max = Math.max(0, Number(maxMsg) || 0);
    this._pending += n;
    const prev = this._chain ?? Promise.resolve();
    // a box { pending } carries a Promise through Python untouched (Pyodide turns a
    // Promise returned to Python into a Python awaitable)
    const value = data instanceof Uint8Array || !data || !('pending' in data) ? data : data.pending;
    const link = prev
      .then(() => value)
      .then(
        (u8) => {
          this._pending -= n;
          const ws = this.ws;
          if (ws.readyState !== 1) return; // reset, failed or closed meanwhile: dropped
          try {
            if (!max || u8.byteLength <= max) ws.send(u8);
            else for (let off = 0; off < u8.byteLength; off += max) ws.send(u8.subarray(off, off + max));
          } catch (e) {
            this._fail(`sending failed: ${e?.message ?? e}`, CLOSE_INTERNAL_ERROR);
          }
        },
        (e) => {
          this._pending -= n;
          this._fail(`sending failed: ${e?.message ?? e}`, CLOSE_INTERNAL_ERROR);
        },
      );
    this._chain = link;
    link.then(() => {
      if (this._chain === link) this._chain = null;
    });
  }

  get bufferedAmount() {
    return (this.ws ? this.ws.bufferedAmount : 0) + this._pending;
  }

  _drainedBelow(lowWater) {
    // a socket that is not open never drains: report "go on" so the next send() throws
    return !this.ws || this.ws.readyState !== 1 || this.ws.bufferedAmount + this._pending <= lowWater;
  }

  drained(lowWater = 0) {
    const low = Math.max(0, Number(lowWater) || 0);
    if (this._drainedBelow(low)) return true;
    return new Promise((resolve) => {
      const check = () => {
        if (this._drainedBelow(low)) resolve(true);
        else setTimeout(check, DRAIN_POLL_MS);
      };
      setTimeout(check, DRAIN_POLL_MS);
    });
  }

  get readyState() {
    return this.ws ? this.ws.readyState : 3;
  }

  close(code = CLOSE_NORMAL, reason = '') {
    // our own close: nothing more is delivered (browsers drop messages once CLOSING)
    this._end();
    if (!this.ws) return;
    if (this._chain && code === CLOSE_NORMAL && !this.failure) {
      // a clean close goes out after the data already promised to sendLater
      if (this._closeQueued) return;
      this._closeQueued = true;
      this._chain.then(() => this._closeNow(code, reason));
      return;
    }
    this._closeNow(code, reason);
  }

  _closeNow(code, reason) {
    try {
      this.ws.close(code, reason);
    } catch {
      try {
        this.ws.close();
      } catch {
        /* already closed */
      }
    }
  }
}

/** Start connecting to `url`; see the header for the returned object. */
export function open(url, maxBuffered = DEFAULT_MAX_BUFFERED) {
  if (!available()) {
    throw new Error('no global WebSocket (under Node 20/21 run node with --experimental-websocket)');
  }
  return new Connection(String(url), Number(maxBuffered));
}
