// createNode() (browser/dist/pywasm.mjs) in Node: boots Pyodide from a site laid out like
// .cache/site/ (pywasm.mjs next to pyodide/ with the wheel and a patched lock), dials a
// native pywasm node over WebSocket, pings it, and checks the error paths.
//
//   node --experimental-websocket tests/pyodide/create_node.mjs    # Node 20/21 need the flag
//
// Site: PYWASM_SITE=<dir> (e.g. .cache/site from scripts/build_site.sh) or, by default, a
// temporary one assembled here from node_modules/pyodide, .cache/pyodide-wheels and
// browser/dist/pywasm.mjs (built first). The native node is
// `.venv/bin/python -m pywasm listen --listen /ip4/127.0.0.1/tcp/0/ws`; only its PID is
// killed at the end. Prints one JSON line and "N passed, M failed"; exit 1 on a failed
// check, 3 on a runner error.
//
// Options (environment): PYWASM_PYODIDE_NO_BUILD=1 (skip wheel + bundle builds),
// PYWASM_INSTALL=unpack|loadPackage (how createNode installs the wheel).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, WHEELS, buildWheels, log, wheelFiles } from './boot.mjs';
import { closedPort, startNative, stopNative } from './native.mjs';

const NEGATIVE_DEADLINE_MS = 8_000;
const PINGS = 5;

/** Assemble a minimal site in a temp dir; returns its path. */
function makeSite() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pywasm-site-'));
  const pyo = path.join(dir, 'pyodide');
  fs.mkdirSync(pyo);
  const src = path.join(ROOT, 'node_modules/pyodide');
  for (const f of fs.readdirSync(src)) {
    if (/\.(mjs|js|wasm|zip|json|map)$/.test(f) && f !== 'package.json' && f !== 'pyodide-lock.json') {
      fs.symlinkSync(path.join(src, f), path.join(pyo, f));
    }
  }
  const [whl] = wheelFiles(['pywasm-']).filter((f) => f.startsWith('pywasm-'));
  const bytes = fs.readFileSync(path.join(WHEELS, whl));
  fs.writeFileSync(path.join(pyo, whl), bytes);
  const lock = JSON.parse(fs.readFileSync(path.join(src, 'pyodide-lock.json'), 'utf8'));
  const version = whl.split('-')[1];
  lock.packages.pywasm = {
    name: 'pywasm',
    version,
    file_name: whl,
    install_dir: 'site',
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
    package_type: 'package',
    imports: ['pywasm'],
    depends: [],
    unvendored_tests: false,
  };
  fs.writeFileSync(path.join(pyo, 'pyodide-lock.json'), JSON.stringify(lock));
  fs.copyFileSync(path.join(ROOT, 'browser/dist/pywasm.mjs'), path.join(dir, 'pywasm.mjs'));
  return dir;
}

/** Expect `fn()` to reject within the deadline with a one-line Error matching `re`. */
async function rejects(fn, re) {
  const t = performance.now();
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('HANG')), NEGATIVE_DEADLINE_MS); })]);
    return 'resolved, expected a rejection';
  } catch (e) {
    if (e?.message === 'HANG') return `no answer within ${NEGATIVE_DEADLINE_MS} ms`;
    if (!(e instanceof Error)) return `rejected with a non-Error: ${e}`;
    if (e.message.includes('\n')) return `multi-line message: ${JSON.stringify(e.message.slice(0, 300))}`;
    if (!re.test(e.message)) return `message ${JSON.stringify(e.message)} does not match ${re}`;
    return { ok: true, message: e.message, type: e.type, ms: Math.round(performance.now() - t) };
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  if (typeof globalThis.WebSocket !== 'function') {
    throw new Error('no global WebSocket: run node --experimental-websocket tests/pyodide/create_node.mjs');
  }
  if (!process.env.PYWASM_PYODIDE_NO_BUILD) {
    buildWheels();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'browser/build.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error('browser/build.mjs failed');
  }
  const site = process.env.PYWASM_SITE ? path.resolve(process.env.PYWASM_SITE) : makeSite();
  const checks = {};
  const res = { site, checks };
  const nativeP = startNative();
  let native;
  let node;
  try {
    const { createNode } = await import(pathToFileURL(path.join(site, 'pywasm.mjs')).href);
    const stages = [];
    const t0 = performance.now();
    node = await createNode({
      install: process.env.PYWASM_INSTALL || 'unpack',
      onProgress: (stage, detail) => { stages.push(stage); log(`${stage}: ${detail}`); },
      dialTimeoutMs: 3000,
      pingTimeoutMs: 3000,
    });
    res.boot_ms = Math.round(performance.now() - t0);
    res.timings = node.timings;
    res.stages = stages;
    res.peer_id = node.peerId;
    checks.boot = /^12D3Koo/.test(node.peerId) && Array.isArray(node.multiaddrs()) && stages.at(-1) === 'ready'
      && typeof node.host?.toString === 'function' && typeof node.pyodide?.runPython === 'function'
      ? 'ok' : `bad node object: ${node.peerId} ${stages}`;

    native = await nativeP;
    const expected = native.addr.split('/p2p/')[1];
    res.target = native.addr;
    const t1 = performance.now();
    try {
      const remote = await node.dial(native.addr);
      res.dial_ms = Math.round(performance.now() - t1);
      checks.dial = remote === expected ? 'ok' : `remote ${remote} != ${expected}`;
    } catch (e) {
      checks.dial = `${e.type ?? e.name}: ${e.message}`;
    }
    try {
      const rtts = [];
      for (let i = 0; i < PINGS; i++) rtts.push(await node.ping(native.addr));
      res.first_ping_after_boot_ms = Math.round(performance.now() - t1);
      res.ping_rtts_ms = rtts.map((x) => Math.round(x * 100) / 100);
      checks.ping = rtts.every((x) => typeof x === 'number' && x > 0 && x < 3000) ? 'ok' : `rtts ${rtts}`;
    } catch (e) {
      checks.ping = `${e.type ?? e.name}: ${e.message}`;
    }
    const conns = node.connections();
    res.connections = conns;
    checks.connections = conns.length === 1 && conns[0].peer === expected ? 'ok' : `connections ${JSON.stringify(conns)}`;

    // errors: one line, no hang
    const other = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK';
    const wrong = `${native.addr.split('/p2p/')[0]}/p2p/${other}`;
    const port = await closedPort();
    const neg = {
      closed_port: [() => node.dial(`/ip4/127.0.0.1/tcp/${port}/ws/p2p/${other}`), /cannot connect|refused|closed|error/i],
      wrong_peer: [() => node.dial(wrong), /peer|mismatch|expected/i],
      unsupported: [() => node.dial('/ip4/127.0.0.1/tcp/4001'), /unsupported multiaddr/],
      garbage: [() => node.dial('not a multiaddr'), /invalid multiaddr/],
      not_string: [() => node.dial(42), /must be a string/],
    };
    res.errors = {};
    for (const [name, [fn, re]] of Object.entries(neg)) {
      const r = await rejects(fn, re);
      if (typeof r === 'string') checks[`error_${name}`] = r;
      else { checks[`error_${name}`] = 'ok'; res.errors[name] = `${r.type}: ${r.message} (${r.ms} ms)`; }
    }
    // still alive after the failures
    try {
      const ms = await node.ping(native.addr);
      checks.ping_after_errors = ms > 0 ? 'ok' : `rtt ${ms}`;
    } catch (e) {
      checks.ping_after_errors = `${e.type ?? e.name}: ${e.message}`;
    }
    const ts = performance.now();
    await node.stop();
    res.stop_ms = Math.round(performance.now() - ts);
    const after = await rejects(() => node.dial(native.addr), /stopped/);
    checks.stopped = typeof after === 'string' ? after : 'ok';
    node = null;

    const entries = Object.entries(checks);
    const failed = entries.filter(([, v]) => v !== 'ok');
    console.log(JSON.stringify(res));
    for (const [name, why] of failed) log(`FAIL ${name}: ${why}`);
    console.log(`${entries.length - failed.length} passed, ${failed.length} failed`);
    return failed.length ? 1 : 0;
  } finally {
    if (node) await node.stop().catch(() => {});
    await stopNative(native, nativeP);
    if (!process.env.PYWASM_SITE) fs.rmSync(site, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (e) => {
  log(`create_node runner error: ${e?.stack ?? e}`);
  process.exit(3);
});
