// ChaCha20-Poly1305 throughput through the Pyodide FFI: WebCryptoBackend (Python) calling
// browser/src/crypto.mjs, one crossing per frame vs one per batch, next to the same JS
// called directly (the FFI-free ceiling).
//
//   node tests/pyodide/bench_aead.mjs [frameKiB=64] [totalMiB=64] [batch=16]
//   PYWASM_CRYPTO_JS=noble node tests/pyodide/bench_aead.mjs     (the browser implementation)
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, boot, buildWheels, wheelFiles } from './boot.mjs';

const [frameKiB = 64, totalMiB = 64, batch = 16] = process.argv.slice(2).map(Number);
buildWheels();
const { pyodide, bootMs, installMs, cryptoPath } = await boot({ wheels: wheelFiles(['pywasm-']).filter((f) => f.startsWith('pywasm-')) });
const js = await import(pathToFileURL(path.join(ROOT, cryptoPath)).href);
console.log(`[bench] boot ${(bootMs / 1000).toFixed(2)} s, pywasm wheel install ${(installMs / 1000).toFixed(2)} s, js impl ${js.impl}`);

// FFI-free baseline: the JS function alone.
{
  const key = new Uint8Array(32).fill(7);
  const nonce = new Uint8Array(12);
  const frame = new Uint8Array(frameKiB * 1024).fill(1);
  const n = Math.max(1, Math.round((totalMiB * 1024) / frameKiB));
  js.aeadSeal(key, nonce, new Uint8Array(0), frame);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) js.aeadSeal(key, nonce, new Uint8Array(0), frame);
  const s = (performance.now() - t0) / 1000;
  console.log(`[bench] js only      seal ${frameKiB} KiB frames: ${((n * frameKiB) / 1024 / s).toFixed(0)} MiB/s`);
}

pyodide.runPython(`
import time
from pywasm.crypto.web import WebCryptoBackend

FRAME_KIB, TOTAL_MIB, BATCH = ${frameKiB}, ${totalMiB}, ${batch}

def run(coro):
    # The JS side answers synchronously under Node, so the coroutine never suspends.
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("backend suspended: a JS Promise?")

b = WebCryptoBackend()
key = bytes(range(32))
frame = bytes(FRAME_KIB * 1024)
n = max(BATCH, (TOTAL_MIB * 1024) // FRAME_KIB // BATCH * BATCH)
mib = n * FRAME_KIB / 1024

def bench(label, fn):
    fn(1)  # warm up
    t = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t
    print(f"[bench] {label:<28} {mib / dt:7.0f} MiB/s  ({n} x {FRAME_KIB} KiB in {dt*1000:.0f} ms)")

def seal_single(k):
    for i in range(k):
        run(b.aead_seal(key, i, b"", frame))

def seal_batched(k):
    frames = [frame] * BATCH
    for i in range(0, k, BATCH):
        run(b.aead_seal_many(key, i, b"", frames))

cts = [run(b.aead_seal(key, i, b"", frame)) for i in range(BATCH)]

def open_single(k):
    for i in range(k):
        run(b.aead_open(key, i % BATCH, b"", cts[i % BATCH]))

def open_batched(k):
    for i in range(0, k, BATCH):
        run(b.aead_open_many(key, 0, b"", cts))

bench("seal single (1 call/frame)", seal_single)
bench(f"seal batched ({BATCH}/call)", seal_batched)
bench("open single (1 call/frame)", open_single)
bench(f"open batched ({BATCH}/call)", open_batched)
`);
