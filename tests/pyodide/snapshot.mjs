// createNode()'s two boot paths in Node, against a site built by scripts/build_site.sh
// (which makes pyodide/pywasm-snapshot.json + .bin.gz with scripts/make_snapshot.mjs):
//
//   node --experimental-websocket tests/pyodide/snapshot.mjs      # PYWASM_SITE=<dir>, default .cache/site
//
// 1. snapshot present and current: restored ("used"), crypto + WebSocket shims work after
//    the restore (dial + ping a native node over /ws, i.e. Noise through the JS crypto shim),
//    a lazily imported module loads, and the PRNG is reseeded (two boots differ);
// 2. image corrupted (sha256 mismatch): not used, full boot, dial + ping;
// 3. image for another Pyodide version: restore refused ("failed: ..."), full boot, ping;
// 4. snapshot: false: not even fetched.
// Prints "N passed, M failed"; exit 1 on a failed check, 3 on a runner error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, log } from './boot.mjs';
import { startNative, stopNative } from './native.mjs';

const SITE = path.resolve(process.env.PYWASM_SITE || path.join(ROOT, '.cache/site'));
const MANIFEST = 'pywasm-snapshot.json';

/** A copy of the site (the big runtime files linked) whose snapshot `mutate` spoils. */
function spoiledSite(mutate) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pywasm-snap-'));
  fs.copyFileSync(path.join(SITE, 'pywasm.mjs'), path.join(dir, 'pywasm.mjs'));
  const src = path.join(SITE, 'pyodide');
  const dst = path.join(dir, 'pyodide');
  fs.mkdirSync(dst);
  for (const f of fs.readdirSync(src)) fs.symlinkSync(path.join(src, f), path.join(dst, f));
  const man = JSON.parse(fs.readFileSync(path.join(src, MANIFEST), 'utf8'));
  fs.rmSync(path.join(dst, MANIFEST));
  fs.rmSync(path.join(dst, man.file));
  const image = fs.readFileSync(path.join(src, man.file));
  mutate(man, image);
  fs.writeFileSync(path.join(dst, MANIFEST), JSON.stringify(man));
  fs.writeFileSync(path.join(dst, man.file), image);
  return dir;
}

async function bootAndPing(site, addr, opts = {}) {
  const { createNode } = await import(`${pathToFileURL(path.join(site, 'pywasm.mjs')).href}?${Math.random()}`);
  const node = await createNode({ dialTimeoutMs: 5000, pingTimeoutMs: 5000, stdout: () => {}, ...opts });
  try {
    const rtt = await node.ping(addr);
    const rand = node.pyodide.runPython('import random; random.getrandbits(64)').toString();
    const lazy = node.pyodide.runPython('import importlib, pywasm.identity.peer_id as m; m.__name__');
    return { snapshot: node.timings.snapshot, rtt, rand, lazy, timings: node.timings };
  } finally {
    await node.stop().catch(() => {});
  }
}

async function main() {
  if (typeof globalThis.WebSocket !== 'function') throw new Error('run node with --experimental-websocket');
  if (!fs.existsSync(path.join(SITE, 'pyodide', MANIFEST))) {
    throw new Error(`${SITE}/pyodide/${MANIFEST} missing: run bash scripts/build_site.sh`);
  }
  const checks = {};
  const res = {};
  const nativeP = startNative();
  let native;
  const tmp = [];
  try {
    native = await nativeP;
    const a = await bootAndPing(SITE, native.addr);
    const b = await bootAndPing(SITE, native.addr);
    res.snapshot_boots = [a.timings, b.timings];
    checks.used = a.snapshot === 'used' && b.snapshot === 'used' ? 'ok' : `snapshot: ${a.snapshot} / ${b.snapshot}`;
    checks.ping_after_restore = a.rtt > 0 && b.rtt > 0 ? 'ok' : `rtt ${a.rtt} ${b.rtt}`;
    checks.lazy_import = a.lazy === 'pywasm.identity.peer_id' ? 'ok' : `lazy import gave ${a.lazy}`;
    checks.reseeded = a.rand !== b.rand ? 'ok' : `same random bits in two boots: ${a.rand}`;

    const corrupt = spoiledSite((_m, img) => { img[img.length >> 1] ^= 0xff; });
    tmp.push(corrupt);
    const c = await bootAndPing(corrupt, native.addr);
    res.corrupt_boot = c.timings;
    checks.corrupt_falls_back = c.snapshot === 'unused' && c.rtt > 0 ? 'ok' : `snapshot ${c.snapshot}, rtt ${c.rtt}`;

    const other = spoiledSite((m) => { m.pyodide = '0.0.1'; });
    tmp.push(other);
    const d = await bootAndPing(other, native.addr);
    res.other_pyodide_boot = d.timings;
    checks.version_falls_back = /^failed: /.test(d.snapshot) && d.rtt > 0 ? 'ok' : `snapshot ${d.snapshot}, rtt ${d.rtt}`;

    const e = await bootAndPing(SITE, native.addr, { snapshot: false });
    checks.opt_out = e.snapshot === 'unused' && e.rtt > 0 ? 'ok' : `snapshot ${e.snapshot}`;
    res.full_boot = e.timings;
  } finally {
    await stopNative(native, nativeP);
    for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
  }
  const entries = Object.entries(checks);
  const failed = entries.filter(([, v]) => v !== 'ok');
  console.log(JSON.stringify(res));
  for (const [name, why] of failed) log(`FAIL ${name}: ${why}`);
  console.log(`${entries.length - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  log(`snapshot runner error: ${e?.stack ?? e}`);
  process.exit(3);
});
