// Shared by ws_dial.mjs and create_node.mjs: the native pywasm node they dial
// (`.venv/bin/python -m pywasm listen --listen /ip4/127.0.0.1/tcp/0/ws`) and a closed port.
// Only the child's own PID is ever signalled.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT } from './boot.mjs';

export const LISTEN = '/ip4/127.0.0.1/tcp/0/ws';
export const NODE_START_TIMEOUT_MS = 30_000;

/** Start the native node; resolve with { child, addr } once it printed its /ws/p2p/ address. */
export function startNative() {
  const py = path.join(ROOT, '.venv/bin/python');
  const child = spawn(py, ['-m', 'pywasm', 'listen', '--listen', LISTEN], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // `timeout` in CI sends SIGTERM: take the native node (and only it) down with us
  const killChild = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); };
  process.on('exit', killChild);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killChild(); process.exit(130); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`native node printed no /ws/p2p/ address in ${NODE_START_TIMEOUT_MS} ms`)), NODE_START_TIMEOUT_MS);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`native node exited (${code ?? sig})`)); });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (/\/ws\/p2p\//.test(line)) { clearTimeout(timer); resolve({ child, addr: line.trim() }); }
    });
  }).catch((e) => { killChild(); throw e; });
}

/** Stop what `startNative()` started (SIGTERM to that PID), whether or not it came up. */
export async function stopNative(native, nativeP) {
  const n = native ?? (await nativeP.catch(() => null));
  if (n) n.child.kill('SIGTERM');
}

/** A TCP port nothing listens on (bound then released). */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
