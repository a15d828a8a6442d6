// Pyodide-in-Node: WebSocket send backpressure waits on a promise instead of spinning the
// event loop (regression test for the busy-poll behind the Chromium echo stalls).
//
//   node --experimental-websocket tests/pyodide/ws_backpressure.mjs    # Node 20/21 need the flag
//
// Starts the native node (native.mjs; only that PID is killed), boots Pyodide offline
// (boot.mjs), registers browser/src/websocket.mjs, then runs tests/pyodide/ws_backpressure.py
// on the real WebLoop: echoes through a local TCP proxy that throttles the upload, with a
// 16 KiB send high-water mark, so writes really wait for the socket to drain; counts the
// loop callbacks scheduled per wait; and, deterministically, a write on a fake socket (the
// real shim over a stand-in WebSocket) whose send buffer drains only after 300 ms.
// Prints one JSON line and "N passed, M failed"; exits 1 on any failure, 3 on a runner error.
//
// Options (environment):
//   PYWASM_PYODIDE_NO_BUILD=1      do not run scripts/pyodide_wheels.sh
//   PYWASM_WS_BP_SIZE=<bytes>      bytes per echo (default 8 MiB)
//   PYWASM_WS_BP_ROUNDS=<n>        echoes (default 3)
//   PYWASM_WS_BP_RATE=<bytes/s>    upload rate through the proxy (default 4 MiB/s)
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, boot, buildWheels, log, wheelFiles } from './boot.mjs';
import { startNative, stopNative } from './native.mjs';

const SIZE = Number(process.env.PYWASM_WS_BP_SIZE ?? 8 * 1024 * 1024);
const ROUNDS = Number(process.env.PYWASM_WS_BP_ROUNDS ?? 3);
// Upload rate the proxy lets through. Slower than Pyodide can send, so the kernel's socket
// buffers fill and the WebSocket's bufferedAmount stays high for real (on a bare loopback
// it drains within one event-loop turn and a polling write would not show its spin).
const RATE_BYTES_PER_S = Number(process.env.PYWASM_WS_BP_RATE ?? 4 * 1024 * 1024);

// A WebSocket stand-in whose send buffer drains only after `drainMs`: lets the Python side
// wait on backpressure for a known time, which on a real loopback socket never lasts.
function fakeSocketModule(shim) {
  class FakeWebSocket {
    constructor() { this.readyState = 1; this.bufferedAmount = 0; this.sent = 0; }
    send(u8) { this.bufferedAmount += u8.byteLength; this.sent += u8.byteLength; }
    close() { this.readyState = 3; }
  }
  return {
    // a shim connection over a FakeWebSocket whose buffer empties `drainMs` after each send
    open(drainMs) {
      const real = globalThis.WebSocket;
      globalThis.WebSocket = FakeWebSocket;
      let conn;
      try { conn = shim.open('ws://fake.invalid/', 1 << 20); } finally { globalThis.WebSocket = real; }
      const ws = conn.ws;
      const send = ws.send.bind(ws);
      ws.send = (u8) => { send(u8); setTimeout(() => { ws.bufferedAmount = 0; }, drainMs); };
      ws.onopen();
      return conn;
    },
    // the server closes cleanly (code 1000) while Python may be waiting in read()
    closeClean(conn) {
      conn.ws.readyState = 3;
      conn.ws.onclose({ code: 1000, reason: '' });
    },
  };
}

/** A TCP proxy to `port` that throttles client->server bytes to RATE_BYTES_PER_S. */
function throttleProxy(port) {
  return new Promise((resolve, reject) => {
    const sockets = new Set();
    const srv = net.createServer((client) => {
      const up = net.connect(port, '127.0.0.1');
      for (const s of [client, up]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => { sockets.delete(s); client.destroy(); up.destroy(); }); }
      up.pipe(client);
      client.on('data', (chunk) => {
        client.pause();
        up.write(chunk);
        setTimeout(() => client.resume(), Math.ceil((chunk.length / RATE_BYTES_PER_S) * 1000));
      });
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve({
      port: srv.address().port,
      close: () => { for (const s of sockets) s.destroy(); srv.close(); },
    }));
  });
}

async function main() {
  if (typeof globalThis.WebSocket !== 'function') {
    throw new Error('no global WebSocket: run node --experimental-websocket tests/pyodide/ws_backpressure.mjs');
  }
  buildWheels();
  const wheels = wheelFiles(['pywasm-']).filter((f) => f.startsWith('pywasm-'));
  const nativeP = startNative(); // starts while Pyodide boots
  let native;
  let proxy;
  try {
    const { pyodide } = await boot({ wheels });
    const shim = await import(pathToFileURL(path.join(ROOT, 'browser/src/websocket.mjs')).href);
    pyodide.registerJsModule('pywasm_websocket_js', shim);
    pyodide.registerJsModule('pywasm_ws_fake', fakeSocketModule(shim));
    native = await nativeP;
    const m = /\/tcp\/(\d+)\//.exec(native.addr);
    if (!m) throw new Error(`no TCP port in ${native.addr}`);
    proxy = await throttleProxy(Number(m[1]));
    const target = native.addr.replace(`/tcp/${m[1]}/`, `/tcp/${proxy.port}/`);
    pyodide.globals.set('CFG', pyodide.toPy({ target, size: SIZE, rounds: ROUNDS }));
    const src = fs.readFileSync(path.join(ROOT, 'tests/pyodide/ws_backpressure.py'), 'utf8');
    const text = await pyodide.runPythonAsync(`${src}\nimport json\njson.dumps(await main(CFG))`);
    const res = JSON.parse(text);
    const entries = Object.entries(res.checks);
    const failed = entries.filter(([, v]) => v !== 'ok');
    console.log(JSON.stringify(res));
    for (const [name, why] of failed) log(`FAIL ${name}: ${why}`);
    console.log(`${entries.length - failed.length} passed, ${failed.length} failed`);
    return failed.length || !entries.length ? 1 : 0;
  } finally {
    proxy?.close();
    await stopNative(native, nativeP);
  }
}

main().then((code) => process.exit(code), (e) => {
  log(`ws_backpressure runner error: ${e?.stack ?? e}`);
  process.exit(3);
});
