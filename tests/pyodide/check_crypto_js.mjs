// Cross-checks the two implementations inside browser/src/crypto.mjs against each other in
// Node: "node" (OpenSSL) and "noble" (what browsers run), plus the WebCrypto RSA path that
// the Pyodide suite cannot reach (its Promises need the JS event loop). Random inputs;
// deterministic primitives must agree byte for byte.
//
//   node tests/pyodide/check_crypto_js.mjs        (run.mjs runs it first)
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

const SRC = new URL('../../browser/src/crypto.mjs', import.meta.url).href;
const saved = process.env.PYWASM_CRYPTO_JS;
process.env.PYWASM_CRYPTO_JS = 'node';
const node = await import(`${SRC}?impl=node`);
process.env.PYWASM_CRYPTO_JS = 'noble';
const noble = await import(`${SRC}?impl=noble`);
if (saved === undefined) delete process.env.PYWASM_CRYPTO_JS;
else process.env.PYWASM_CRYPTO_JS = saved;
assert.equal(node.impl, 'node');
assert.equal(noble.impl, 'noble');

const rnd = (n) => new Uint8Array(randomBytes(n));
const t0 = performance.now();

// ChaCha20-Poly1305, single and batched, including empty frames and associated data.
for (let round = 0; round < 20; round++) {
  const key = rnd(32);
  const nonce = new Uint8Array(12);
  nonce.set(rnd(8), 4);
  nonce[11] = 0x7f; // keep counter + i below 2^64
  const ad = rnd(round % 3 === 0 ? 0 : 13);
  const frames = [0, 1, 15, 16, 17, 1000, 65535].map((n) => rnd(n));
  const packed = new Uint8Array(4 * frames.length);
  const dv = new DataView(packed.buffer);
  frames.forEach((f, i) => dv.setUint32(4 * i, f.length, true));
  const data = new Uint8Array(frames.reduce((a, f) => a + f.length, 0));
  frames.reduce((off, f) => (data.set(f, off), off + f.length), 0);

  const a = node.aeadSealMany(key, nonce, ad, data, packed);
  const b = noble.aeadSealMany(key, nonce, ad, data, packed);
  assert.deepEqual(a, b, 'batched seal differs between node and noble');
  const single = node.aeadSeal(key, nonce, ad, frames[3]);
  assert.deepEqual(noble.aeadOpen(key, nonce, ad, single), frames[3]);
  const ctLens = new Uint8Array(packed.length);
  const cdv = new DataView(ctLens.buffer);
  frames.forEach((f, i) => cdv.setUint32(4 * i, f.length + 16, true));
  assert.deepEqual(node.aeadOpenMany(key, nonce, ad, b, ctLens), data);
  assert.deepEqual(noble.aeadOpenMany(key, nonce, ad, a, ctLens), data);
  const bad = a.slice();
  bad[bad.length - 1] ^= 1;
  assert.equal(node.aeadOpenMany(key, nonce, ad, bad, ctLens), undefined);
  assert.equal(noble.aeadOpenMany(key, nonce, ad, bad, ctLens), undefined);

  // aeadOpenFramed (the receive mirror of aeadSealFramed): the wire split anywhere, the
  // partial frame carried over, a Promise and a {pending} box as input, then the end.
  // (frames of at most 65519 bytes: the last one is cut to fit a Noise frame)
  const fLens = new Uint8Array(packed);
  new DataView(fLens.buffer).setUint32(4 * (frames.length - 1), 65519, true);
  const fData = data.subarray(0, data.length - 16);
  const wire = node.aeadSealFramed(key, nonce, ad, fData, fLens);
  assert.deepEqual(wire, noble.aeadSealFramed(key, nonce, ad, fData, fLens));
  for (const impl of [node, noble]) {
    const cut1 = 1 + (round * 7919) % (wire.length - 2);
    const cut2 = cut1 + ((wire.length - cut1) >> 1);
    let rest;
    let count = 0;
    const got = [];
    for (const [i, part] of [wire.subarray(0, cut1), wire.subarray(cut1, cut2), wire.subarray(cut2)].entries()) {
      const input = i === 0 ? part : i === 1 ? Promise.resolve(part) : { pending: Promise.resolve(part) };
      const r = await impl.aeadOpenFramed(key, nonceAt(nonce, count), ad, rest, input);
      assert.equal(r.ended, false);
      assert.equal(r.malformed, -1);
      got.push(r.plain);
      count += r.frames;
      rest = r.rest;
    }
    assert.equal(count, frames.length);
    assert.equal(rest.length, 0);
    assert.deepEqual(Buffer.concat(got), Buffer.from(fData));
    const end = impl.aeadOpenFramed(key, nonce, ad, wire.subarray(0, 5), { pending: null });
    assert.equal(end.ended, true);
    assert.equal(end.rest.length, 5);
    assert.equal(impl.aeadOpenFramed(key, nonce, ad, undefined, tamperFramed(wire)).plain, undefined);
    const short = impl.aeadOpenFramed(key, nonce, ad, undefined, Uint8Array.of(...wire.subarray(0, 2 + frames[0].length + 16), 0, 15, 1, 2));
    assert.deepEqual([short.frames, short.malformed, short.plain.length], [1, 15, frames[0].length]);
  }
}

function nonceAt(first, i) {
  const n = first.slice();
  const dv = new DataView(n.buffer);
  dv.setBigUint64(4, dv.getBigUint64(4, true) + BigInt(i), true);
  return n;
}

function tamperFramed(wire) {
  const t = wire.slice();
  t[t.length - 1] ^= 1;
  return t;
}

// X25519 / Ed25519 agree.
for (let round = 0; round < 10; round++) {
  const a = rnd(32);
  const b = rnd(32);
  assert.deepEqual(node.x25519Public(a), noble.x25519Public(a));
  assert.deepEqual(node.x25519Shared(a, noble.x25519Public(b)), noble.x25519Shared(b, node.x25519Public(a)));
  const msg = rnd(round * 10);
  const pub = node.ed25519Public(a);
  assert.deepEqual(pub, noble.ed25519Public(a));
  const sig = node.ed25519Sign(a, msg);
  assert.deepEqual(sig, noble.ed25519Sign(a, msg));
  assert.equal(noble.ed25519Verify(pub, msg, sig), true);
  sig[0] ^= 1;
  assert.equal(noble.ed25519Verify(pub, msg, sig), false);
  assert.equal(node.ed25519Verify(pub, msg, sig), false);
}

// RSA: WebCrypto (browser path) against OpenSSL (node path).
const { privateKey, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicExponent: 65537,
  privateKeyEncoding: { type: 'pkcs1', format: 'der' },
  publicKeyEncoding: { type: 'spki', format: 'der' },
});
const pkcs1 = new Uint8Array(privateKey);
const spki = new Uint8Array(publicKey);
const msg = rnd(100);
const sig = node.rsaSign(pkcs1, msg);
assert.deepEqual(await node.webRsa.sign(pkcs1, msg), sig, 'PKCS#1 v1.5 signatures are deterministic');
assert.equal(await node.webRsa.verify(spki, msg, sig), true);
assert.equal(await node.webRsa.verify(spki, rnd(100), sig), false);
assert.equal(await node.webRsa.verify(spki, msg, sig.subarray(1)), false);
assert.deepEqual(await node.webRsa.publicFromPrivate(pkcs1), spki);
await assert.rejects(node.webRsa.verify(new Uint8Array([0x30, 0]), msg, sig), { name: 'InvalidKeyError' });
const [wPriv, wPub] = await node.webRsa.generate(2048);
assert.deepEqual(node.rsaPublicFromPrivate(wPriv), wPub, 'WebCrypto key unwraps to valid PKCS#1');
assert.equal(node.rsaVerify(wPub, msg, await node.webRsa.sign(wPriv, msg)), true);

console.error(`[crypto-js] node vs noble vs WebCrypto cross-check passed (${(performance.now() - t0).toFixed(0)} ms)`);
