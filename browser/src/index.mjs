// pywasm in the browser: `createNode(options)` boots Pyodide from local files, installs the
// pywasm wheel offline, registers the JS shims and starts a libp2p Host (pywasm/browser_node.py).
//
//   import { createNode } from '/pywasm.mjs';
//   const node = await createNode({ onProgress: (stage, detail) => console.log(stage, detail) });
//   const remote = await node.dial('/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3Koo...');
//   const ms = await node.ping('/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3Koo...');
//   const [relayed, rtc] = await node.listen('/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3Koo.../p2p-circuit/webrtc');
//   await node.stop();
//
// Bundled by browser/build.mjs into browser/dist/pywasm.mjs (crypto.mjs, websocket.mjs and
// @noble inlined); the site serves it as /pywasm.mjs next to /pyodide/. Never touches a CDN:
// the runtime and the wheel come from `indexURL` (default: the pyodide/ folder next to this
// module), and the wheel is found through the (patched) pyodide-lock.json there.
//
// Options:
//   indexURL       where pyodide.mjs, the runtime and the wheels are (URL or string)
//   onProgress     (stage, detail) => void; stages: "runtime", "install", "shims", "python",
//                  "host", "ready" (detail: a short human string)
//   install        "unpack" (default: fetch the wheel named in the lock, check its sha256,
//                  unpackArchive; fastest) or "loadPackage" (Pyodide's own loader)
//   wheelURL       install this wheel instead of looking it up in the lock
//   snapshot       false: never restore pyodide/pywasm-snapshot.json's memory image (default:
//                  restore it when it was built from this wheel and this Pyodide, else boot
//                  normally; node.timings.snapshot says "used", "unused" or "failed: why")
//   dialTimeoutMs  bound on one dial (default 10000); pingTimeoutMs likewise for a ping
//   pyodide        an already loaded Pyodide instance to use instead of booting one
//   stdout/stderr  (line) => void for Python's output (default: console)
// Every failure rejects with an Error whose message is one line (error.type: the Python
// error class, when there is one).

import * as cryptoModule from './crypto.mjs';
import * as websocketModule from './websocket.mjs';
import * as webrtcModule from './webrtc.mjs';
import * as webtransportModule from './webtransport.mjs';

export { cryptoModule, websocketModule, webrtcModule };

export const CRYPTO_MODULE_NAME = 'pywasm_crypto_js';
export const WEBSOCKET_MODULE_NAME = 'pywasm_websocket_js';
export const WEBRTC_MODULE_NAME = 'pywasm_webrtc_js';
export const WEBTRANSPORT_MODULE_NAME = 'pywasm_webtransport_js';
export const WHEEL_PACKAGE = 'pywasm';
const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
const DEFAULT_PING_TIMEOUT_MS = 10_000;
// The JS-side guard on a Python call, on top of the Python deadlines (never a hang).
const GUARD_SLACK_MS = 3_000;

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

export class PywasmError extends Error {
  constructor(message, type = 'PywasmError') {
    super(String(message).split('\n')[0]);
    this.name = 'PywasmError';
    this.type = type;
  }
}

/** Register the crypto and WebSocket shims with a Pyodide instance (also for PyScript). */
export function registerShims(pyodide) {
  pyodide.registerJsModule(CRYPTO_MODULE_NAME, cryptoModule);
  pyodide.registerJsModule(WEBSOCKET_MODULE_NAME, websocketModule);
  pyodide.registerJsModule(WEBRTC_MODULE_NAME, webrtcModule);
  pyodide.registerJsModule(WEBTRANSPORT_MODULE_NAME, webtransportModule);
}

function defaultIndexURL() {
  return new URL('./pyodide/', import.meta.url).href;
}

function dirURL(u) {
  const s = String(u instanceof URL ? u.href : u);
  return s.endsWith('/') ? s : `${s}/`;
}

// Pyodide under Node wants a path, browsers a URL.
function forPyodide(url) {
  if (isNode && url.startsWith('file:')) return decodeURIComponent(new URL(url).pathname);
  return url;
}

async function fetchBytes(url) {
  if (isNode && url.startsWith('file:')) {
    const fs = await import('node:fs/promises');
    const b = await fs.readFile(new URL(url));
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new PywasmError(`cannot fetch ${url}: ${e?.message ?? e}`);
  }
  if (!res.ok) throw new PywasmError(`cannot fetch ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function sha256Hex(bytes) {
  const d = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
}

function withTimeout(promise, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new PywasmError(`${what} did not finish within ${Math.round(ms)} ms`, 'TimeoutError')), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// Name of the snapshot manifest in indexURL (written by scripts/make_snapshot.mjs).
export const SNAPSHOT_MANIFEST = 'pywasm-snapshot.json';
const SNAPSHOT_FORMAT = 1;

async function fetchOptional(url) {
  try {
    return await fetchBytes(url);
  } catch {
    return null; // absent (404) or unreachable: the caller boots without it
  }
}

// The memory image built with this very wheel, or null (no snapshot, or a stale one).
// The Pyodide version is checked in loadRuntime, the build id by Pyodide itself.
async function fetchSnapshot(indexURL, lockPromise) {
  const raw = await fetchOptional(new URL(SNAPSHOT_MANIFEST, indexURL).href);
  if (!raw) return null;
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    return null;
  }
  const lock = await lockPromise;
  if (manifest?.format !== SNAPSHOT_FORMAT || !manifest.wheelSha256
      || manifest.wheelSha256 !== lock?.packages?.[WHEEL_PACKAGE]?.sha256) return null;
  const gz = await fetchOptional(new URL(manifest.file, indexURL).href);
  if (!gz || (await sha256Hex(gz)) !== manifest.sha256) return null;
  const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream('gzip'));
  const image = new Uint8Array(await new Response(stream).arrayBuffer());
  return image.length === manifest.size ? { image, pyodide: manifest.pyodide } : null;
}

async function loadRuntime(indexURL, opts, lockContents, snapshot = null) {
  let mod;
  try {
    mod = await import(/* @vite-ignore */ new URL('pyodide.mjs', indexURL).href);
  } catch (e) {
    throw new PywasmError(`cannot load Pyodide from ${indexURL}pyodide.mjs: ${String(e?.message ?? e).split('\n')[0]}`);
  }
  const out = opts.stdout ?? ((s) => console.log(s));
  const err = opts.stderr ?? ((s) => console.warn(s));
  if (snapshot && snapshot.pyodide !== mod.version) {
    throw new PywasmError(`snapshot is for Pyodide ${snapshot.pyodide}, not ${mod.version}`);
  }
  try {
    return await mod.loadPyodide({
      indexURL: forPyodide(indexURL),
      stdout: out,
      stderr: err,
      fullStdLib: false,
      // the lock file fetched once, by createNode, so the wheel download can start early
      ...(lockContents ? { lockFileContents: lockContents } : {}),
      ...(snapshot ? { _loadSnapshot: snapshot.image } : {}),
    });
  } catch (e) {
    throw new PywasmError(`Pyodide failed to start: ${String(e?.message ?? e).split('\n')[0]}`);
  }
}

// The wheel's bytes, checked against the sha256 in the lock file (or opts.wheelURL, unchecked).
async function fetchWheel(lockfile, indexURL, opts) {
  let url = opts.wheelURL ? String(opts.wheelURL) : null;
  let sha = null;
  if (!url) {
    const entry = lockfile?.packages?.[WHEEL_PACKAGE];
    if (!entry) {
      throw new PywasmError(`no "${WHEEL_PACKAGE}" entry in ${indexURL}pyodide-lock.json: build the site with scripts/build_site.sh`);
    }
    url = new URL(entry.file_name, indexURL).href;
    sha = entry.sha256 || null;
  }
  const bytes = await fetchBytes(url);
  if (sha) {
    const got = await sha256Hex(bytes);
    if (got !== sha) throw new PywasmError(`${url}: sha256 ${got} does not match pyodide-lock.json (${sha})`);
  }
  return bytes;
}

async function installWheel(pyodide, indexURL, opts, wheelBytes) {
  if (opts.install === 'loadPackage') {
    const errors = [];
    await pyodide.loadPackage(WHEEL_PACKAGE, {
      messageCallback: () => {},
      errorCallback: (m) => errors.push(String(m)),
      checkIntegrity: true,
    });
    // a failed loadPackage logs, it does not throw: the import check below decides
    return errors.length ? errors[0].split('\n')[0] : '';
  }
  const bytes = await (wheelBytes ?? fetchWheel(pyodide.lockfile, indexURL, opts));
  const site = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  pyodide.unpackArchive(bytes, 'wheel', { extractDir: site });
  pyodide.runPython('import importlib; importlib.invalidate_caches()');
  return '';
}

function unwrap(result, what) {
  // [true, value, ms] or [false, type, message]
  const arr = result.toJs({ depth: 1 });
  result.destroy?.();
  if (arr[0] === true) return arr[1];
  // Python's messages already name the address; `what` only prefixes the others
  throw new PywasmError(what ? `${what}: ${arr[2]}` : arr[2], arr[1]);
}

// A synchronous Python call returning a list, as a JS array; errors as one-line Errors.
function syncList(fn, what) {
  let list;
  try {
    list = fn();
  } catch (e) {
    throw new PywasmError(`${what}: ${String(e?.message ?? e).trim().split('\n').pop()}`, e?.type);
  }
  const out = list.toJs({ dict_converter: Object.fromEntries });
  list.destroy?.();
  return out;
}

/** Boot Pyodide, install pywasm, start a Host. Resolves to the node object (see header). */
export async function createNode(options = {}) {
  const opts = { ...options };
  const progress = (stage, detail = '') => {
    try {
      opts.onProgress?.(stage, detail);
    } catch {
      /* a broken progress callback must not break the boot */
    }
  };
  const indexURL = dirURL(opts.indexURL ?? defaultIndexURL());
  const dialTimeoutMs = Number(opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS);
  const pingTimeoutMs = Number(opts.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS);
  if (!(dialTimeoutMs > 0) || !(pingTimeoutMs > 0)) throw new PywasmError('dialTimeoutMs and pingTimeoutMs must be positive numbers');
  const timings = {};
  const t0 = performance.now();
  let mark = t0;
  const lap = (name) => {
    const now = performance.now();
    timings[name] = Math.round(now - mark);
    mark = now;
  };

  let pyodide = opts.pyodide;
  let wheelBytes = null;
  let fromSnapshot = false;
  timings.snapshot = 'unused';
  if (!pyodide) {
    progress('runtime', `loading Pyodide from ${indexURL}`);
    let lock = null;
    if (opts.install !== 'loadPackage') {
      // Boot-time overlap: fetch pyodide-lock.json once (handed to loadPyodide) and the
      // wheel (+ sha256 check) while the runtime compiles and starts. Errors surface where
      // they did before: a bad lock in loadPyodide, a bad wheel in the install stage.
      lock = fetchBytes(new URL('pyodide-lock.json', indexURL).href).then((b) => JSON.parse(new TextDecoder().decode(b)));
      lock.catch(() => {});
      wheelBytes = lock.then((l) => fetchWheel(l, indexURL, opts));
      wheelBytes.catch(() => {});
      // A memory snapshot (scripts/make_snapshot.mjs) of Pyodide with this wheel installed
      // and pywasm imported skips most of the boot; any failure falls back to a full boot.
      if (opts.snapshot !== false && !opts.wheelURL && typeof DecompressionStream === 'function') {
        let snap = null;
        try {
          snap = await fetchSnapshot(indexURL, lock);
        } catch {
          snap = null;
        }
        if (snap) {
          try {
            pyodide = await loadRuntime(indexURL, opts, lock, snap);
            fromSnapshot = true;
            timings.snapshot = 'used';
          } catch (e) {
            timings.snapshot = `failed: ${String(e?.message ?? e).split('\n')[0]}`;
          }
        }
      }
    }
    if (!pyodide) pyodide = await loadRuntime(indexURL, opts, lock);
  }
  lap('runtimeMs');

  progress('install', 'installing the pywasm wheel');
  // After a restore too: the image holds the interpreter's memory but not the file system
  // (Emscripten keeps files in JS), so modules pywasm imports lazily need the files again.
  const installError = await installWheel(pyodide, indexURL, opts, wheelBytes);
  if (fromSnapshot) {
    // The image holds one PRNG state for every page: reseed from the OS (crypto.getRandomValues).
    pyodide.runPython('import random as _r; _r.seed(); del _r');
  }
  lap('installMs');

  progress('shims', `crypto: ${cryptoModule.impl}${cryptoModule.aeadImpl ? ` (AEAD: ${cryptoModule.aeadImpl})` : ''}`);
  registerShims(pyodide);

  progress('python', 'importing pywasm');
  let bn;
  try {
    bn = pyodide.pyimport('pywasm.browser_node');
  } catch (e) {
    const why = installError || String(e?.message ?? e).trim().split('\n').pop();
    throw new PywasmError(`cannot import pywasm in Pyodide: ${why}`);
  }
  lap('importMs');

  progress('host', 'creating the libp2p host');
  const cfg = pyodide.toPy({ dial_timeout: dialTimeoutMs / 1000, ping_timeout: pingTimeoutMs / 1000 });
  const pyNode = unwrap(await bn.js_call(undefined, 'create', cfg), 'cannot create the node');
  cfg.destroy();
  lap('hostMs');
  timings.totalMs = Math.round(performance.now() - t0);

  const host = pyNode.host;
  const peerId = String(pyNode.peer_id);
  let stopped = false;

  const call = async (method, maddr, guardMs) => {
    if (stopped) throw new PywasmError(`${method}: the node is stopped`, 'ConfigError');
    if (typeof maddr !== 'string') throw new PywasmError(`${method}: the multiaddr must be a string, not ${typeof maddr}`, 'DialError');
    const p = bn.js_call(pyNode, method, maddr);
    return unwrap(await withTimeout(p, guardMs, `${method} ${maddr}`), null);
  };

  const node = {
    peerId,
    pyodide,
    host,
    timings,
    multiaddrs: () => syncList(() => pyNode.addrs(), 'multiaddrs'),
    // [{ peer, addr, direction, muxer, security }] for each live connection
    connections: () => syncList(() => pyNode.connections(), 'connections'),
    dial: (maddr) => call('dial', maddr, dialTimeoutMs + GUARD_SLACK_MS),
    ping: (maddr) => call('ping', maddr, dialTimeoutMs + pingTimeoutMs + GUARD_SLACK_MS),
    // listen through a relay: '<relay>/p2p/<id>/p2p-circuit' (reserve) or '.../p2p-circuit/webrtc'
    // (reserve + private-to-private WebRTC); resolves to the new multiaddrs (strings)
    listen: async (maddr) => {
      const v = await call('listen', maddr, 2 * dialTimeoutMs + 2 * GUARD_SLACK_MS);
      const out = typeof v?.toJs === 'function' ? v.toJs() : v;
      v?.destroy?.();
      return Array.from(out, String);
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      unwrap(await withTimeout(bn.js_call(pyNode, 'stop'), 15_000, 'stop'), 'stop');
    },
  };
  progress('ready', `peer ${peerId} in ${timings.totalMs} ms`);
  return node;
}

export default createNode;
