// Pyodide-in-Node dials a native pywasm node over WebSocket (browser transport + JS shim).
//
//   node --experimental-websocket tests/pyodide/ws_dial.mjs     # Node 20/21 need the flag
//
// Starts `.venv/bin/python -m pywasm listen --listen /ip4/127.0.0.1/tcp/0/ws` (only that
// PID is killed at the end), boots Pyodide offline (boot.mjs), installs the wheels,
// registers browser/src/websocket.mjs as "pywasm_websocket_js", then runs
// tests/pyodide/ws_dial.py on the real WebLoop (runPythonAsync: WebSocket events are JS
// tasks, the synchronous test loop cannot serve them). Checks: address parsing, dial (remote
// peer id), ping, identify (agent "pywasm/..."), byte-exact 1 MiB echo, a 16 MiB echo
// (throughput), a closed port, a server that never answers the upgrade (open deadline) and a
// wrong /p2p/ id all rejected with DialError.
// Prints one JSON line and "N passed, M failed"; exits 1 on any failure, 3 on a runner error.
//
// Options (environment):
//   PYWASM_PYODIDE_NO_BUILD=1   do not run scripts/pyodide_wheels.sh
//   PYWASM_WS_ECHO_BIG=<bytes>  size of the throughput echo (default 16 MiB, 0 = skip)
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, boot, buildWheels, log, wheelFiles } from './boot.mjs';
import { closedPort, startNative, stopNative } from './native.mjs';

const ECHO_BIG = Number(process.env.PYWASM_WS_ECHO_BIG ?? 16 * 1024 * 1024);

/** A TCP server that accepts and never answers (a WebSocket upgrade there hangs). */
function silentServer() {
  return new Promise((resolve, reject) => {
    const sockets = new Set();
    const srv = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); s.on('close', () => sockets.delete(s)); });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve({
      port: srv.address().port,
      close: () => { for (const s of sockets) s.destroy(); srv.close(); },
    }));
  });
}

async function main() {
  if (typeof globalThis.WebSocket !== 'function') {
    throw new Error('no global WebSocket: run node --experimental-websocket tests/pyodide/ws_dial.mjs');
  }
  const t0 = performance.now();
  buildWheels();
  const wheels = wheelFiles(['pywasm-']).filter((f) => f.startsWith('pywasm-'));
  const nativeP = startNative(); // starts while Pyodide boots
  let native;
  let silent;
  try {
    const tBoot = performance.now();
    const { pyodide, bootMs, installMs } = await boot({ wheels });
    pyodide.registerJsModule('pywasm_websocket_js', await import(pathToFileURL(path.join(ROOT, 'browser/src/websocket.mjs')).href));
    native = await nativeP;
    silent = await silentServer();
    const cfg = pyodide.toPy({ target: native.addr, closed_port: await closedPort(), silent_port: silent.port, echo_big: ECHO_BIG });
    pyodide.globals.set('CFG', cfg);
    const src = fs.readFileSync(path.join(ROOT, 'tests/pyodide/ws_dial.py'), 'utf8');
    const tRun = performance.now();
    const text = await pyodide.runPythonAsync(`${src}\nimport json\njson.dumps(await main(CFG))`);
    const tDone = performance.now();
    const res = JSON.parse(text);
    res.target = native.addr;
    res.boot_ms = Math.round(bootMs);
    res.install_ms = Math.round(installMs);
    res.boot_to_first_ping_ms = res.dial_to_first_ping_ms === undefined ? null
      : Math.round(tRun - tBoot + res.dial_to_first_ping_ms);
    res.run_ms = Math.round(tDone - tRun);
    res.total_ms = Math.round(tDone - t0);
    const entries = Object.entries(res.checks);
    const failed = entries.filter(([, v]) => v !== 'ok');
    console.log(JSON.stringify(res));
    for (const [name, why] of failed) log(`FAIL ${name}: ${why}`);
    console.log(`${entries.length - failed.length} passed, ${failed.length} failed`);
    return failed.length || !entries.length ? 1 : 0;
  } finally {
    silent?.close();
    await stopNative(native, nativeP);
  }
}

main().then((code) => process.exit(code), (e) => {
  log(`ws_dial runner error: ${e?.stack ?? e}`);
  process.exit(3);
});
