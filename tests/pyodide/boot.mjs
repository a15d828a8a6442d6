// Shared by run.mjs and bench_aead.mjs: boot Pyodide from node_modules (offline), register
// the JS crypto module, install wheels from .cache/pyodide-wheels.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WHEELS = path.join(ROOT, '.cache/pyodide-wheels');

export const log = (s) => process.stderr.write(`[pyodide] ${s}\n`);

/** Build or refresh the wheel cache (scripts/pyodide_wheels.sh is a no-op when warm). */
export function buildWheels() {
  if (process.env.PYWASM_PYODIDE_NO_BUILD) return;
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/pyodide_wheels.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`scripts/pyodide_wheels.sh failed (${r.status ?? r.signal})`);
}

/** Wheel file names in the cache; throws naming the first required prefix missing. */
export function wheelFiles(required) {
  const files = fs.existsSync(WHEELS) ? fs.readdirSync(WHEELS).filter((f) => f.endsWith('.whl')).sort() : [];
  for (const need of required) {
    if (!files.some((f) => f.startsWith(need))) {
      throw new Error(`no ${need}*.whl in ${WHEELS}: run bash scripts/pyodide_wheels.sh`);
    }
  }
  return files;
}

/** Pyodide rejects Node Buffers where it wants a typed array: hand it a plain view. */
export function readBytes(p) {
  const b = fs.readFileSync(p);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Copy a host directory into the Emscripten FS, skipping caches. */
export function copyTree(FS, src, dst) {
  FS.mkdirTree(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === '__pycache__' || ent.name === '.hypothesis' || ent.name === 'node_modules') continue;
    const s = path.join(src, ent.name);
    const d = `${dst}/${ent.name}`;
    if (ent.isDirectory()) copyTree(FS, s, d);
    else if (ent.isFile()) FS.writeFile(d, readBytes(s));
  }
}

/**
 * Boot Pyodide, register the crypto module, unpack `wheels` into site-packages.
 * Returns { pyodide, sitePackages, cryptoPath, bootMs, installMs }.
 */
export async function boot({ wheels, bundle = !!process.env.PYWASM_CRYPTO_BUNDLE }) {
  const t0 = performance.now();
  const { loadPyodide } = await import(pathToFileURL(path.join(ROOT, 'node_modules/pyodide/pyodide.mjs')).href);
  const pyodide = await loadPyodide({ indexURL: path.join(ROOT, 'node_modules/pyodide') + path.sep });
  // Raw writes keep Python's output byte for byte (pytest's progress dots have no newline).
  pyodide.setStdout({ write: (buf) => fs.writeSync(1, buf) });
  pyodide.setStderr({ write: (buf) => fs.writeSync(2, buf) });
  const t1 = performance.now();

  const cryptoPath = bundle ? 'browser/dist/crypto.mjs' : 'browser/src/crypto.mjs';
  if (bundle && !fs.existsSync(path.join(ROOT, cryptoPath))) throw new Error(`${cryptoPath} missing: npm run build`);
  pyodide.registerJsModule('pywasm_crypto_js', await import(pathToFileURL(path.join(ROOT, cryptoPath)).href));

  // sysconfig says "//lib/..." here; normalize so path prefix checks work.
  const sitePackages = pyodide.runPython(
    "import os, sysconfig; '/' + os.path.normpath(sysconfig.get_paths()['purelib']).lstrip('/')",
  );
  for (const whl of wheels) {
    pyodide.unpackArchive(readBytes(path.join(WHEELS, whl)), 'wheel', { extractDir: sitePackages });
  }
  pyodide.runPython('import importlib; importlib.invalidate_caches()');
  const t2 = performance.now();
  return { pyodide, sitePackages, cryptoPath, bootMs: t1 - t0, installMs: t2 - t1 };
}
