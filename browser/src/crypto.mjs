// The JS half of pywasm's crypto backend (pywasm/crypto/web.py calls it through
// pyodide.ffi after the bootstrap registers it as the module "pywasm_crypto_js").
//
// Thin on purpose: primitives only, no protocol logic. Bytes cross as Uint8Array. Any
// function may return a value or a Promise of it; the Python side awaits what needs it.
// Two implementations of the same functions:
//   * "node":  node:crypto (OpenSSL), synchronous and fast. Used under Node, where the
//              Pyodide test suite runs the core on a synchronous event loop.
//   * "noble": @noble/ciphers + @noble/curves (synchronous, pure JS) and WebCrypto for
//              RSA (asynchronous). Used in browsers. Where WebCrypto has
//              ChaCha20-Poly1305 (Chromium), the aead* functions use it and return
//              Promises (see `aeadImpl`); @noble stays the fallback.
// Under Node, PYWASM_CRYPTO_JS=noble selects the browser implementation, so the browser
// code path is testable without a browser. RSA stays on node:crypto there: the WebCrypto
// path returns Promises, which the synchronous test loop cannot await.
//
// Error contract (web.py maps these): a thrown Error whose `name` is "InvalidKeyError"
// for malformed keys, "CryptoError" for other failures. Expected negative outcomes are
// values, not exceptions (cheaper across the FFI): aeadOpen* return undefined on a bad
// tag (undefined, not null: Pyodide turns null into jsnull, not None), *Verify false.

import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
const wanted = isNode ? (process.env.PYWASM_CRYPTO_JS || 'node') : 'noble';
// Kept out of browser bundles: build.mjs marks node:* external and this import never runs there.
const nodeCrypto = isNode && wanted === 'node' ? await import('node:crypto') : null;
const nodeRsa = isNode ? nodeCrypto ?? (await import('node:crypto')) : null;

/** Which implementation is active: "node" or "noble". */
export const impl = nodeCrypto ? 'node' : 'noble';

const TAG = 16;
const hex = (s) => Uint8Array.from(s.match(/../g), (h) => parseInt(h, 16));

function fail(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** A Node Buffer as a plain Uint8Array view (Pyodide converts those cleanly). */
function u8(b) {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

// ----- ChaCha20-Poly1305 ------------------------------------------------------------------
// The nonce arrives as the 12 Noise bytes (4 zero bytes, 64-bit little-endian counter); the
// batch functions step the counter by one per frame.

function nonceAt(first, i) {
  if (i === 0) return first;
  const n = new Uint8Array(12);
  n.set(first);
  const dv = new DataView(n.buffer);
  const c = dv.getBigUint64(4, true) + BigInt(i);
  if (c > 0xffffffffffffffffn) throw fail('CryptoError', 'AEAD counter overflow');
  dv.setBigUint64(4, c, true);
  return n;
}

/** Frame lengths arrive packed as little-endian uint32s. */
function readLengths(packed) {
  const dv = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const n = packed.byteLength >>> 2;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getUint32(4 * i, true);
  return out;
}

function nodeSealInto(key, nonce, ad, pt, out, off) {
  const c = nodeCrypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  if (ad.length) c.setAAD(ad, { plaintextLength: pt.length });
  const body = c.update(pt);
  c.final();
  out.set(body, off);
  out.set(c.getAuthTag(), off + pt.length);
}

// Returns false on a bad tag.
function nodeOpenInto(key, nonce, ad, ct, out, off) {
  if (ct.length < TAG) return false;
  const n = ct.length - TAG;
  const d = nodeCrypto.createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  d.setAuthTag(ct.subarray(n));
  if (ad.length) d.setAAD(ad, { plaintextLength: n });
  const body = d.update(ct.subarray(0, n));
  try {
    d.final();
  } catch {
    return false;
  }
  out.set(body, off);
  return true;
}

function nobleSealInto(key, nonce, ad, pt, out, off) {
  const ct = chacha20poly1305(key, nonce, ad.length ? ad : undefined).encrypt(pt);
  out.set(ct, off);
}

function nobleOpenInto(key, nonce, ad, ct, out, off) {
  if (ct.length < TAG) return false;
  let pt;
  try {
    pt = chacha20poly1305(key, nonce, ad.length ? ad : undefined).decrypt(ct);
  } catch {
    return false;
  }
  out.set(pt, off);
  return true;
}

const sealInto = nodeCrypto ? nodeSealInto : nobleSealInto;
const openInto = nodeCrypto ? nodeOpenInto : nobleOpenInto;

function checkAeadKey(key) {
  if (key.length !== 32) throw fail('InvalidKeyError', `ChaCha20-Poly1305 key must be 32 bytes, got ${key.length}`);
}

// WebCrypto ChaCha20-Poly1305 (Chromium: importKey("raw-secret", ...)); asynchronous, so
// the aead* functions below return Promises when it is active. Probed once at load with
// an RFC 8439 (2.8.2) vector, so a browser with a broken or partial implementation falls
// back to @noble. Never used under Node unless PYWASM_CRYPTO_JS=webcrypto (Node 20 lacks it).
const CHACHA = 'ChaCha20-Poly1305';
const wcSubtle = globalThis.crypto?.subtle;

async function probeWebChaCha() {
  if (!wcSubtle) return false;
  try {
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
    const nonce = hex('070000004041424344454647');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const pt = new TextEncoder().encode('Ladies and Gentlemen of the class of \'99: If I could offer you only one tip for the future, sunscreen would be it.');
    const k = await wcSubtle.importKey('raw-secret', key, { name: CHACHA }, false, ['encrypt', 'decrypt']);
    const ct = new Uint8Array(await wcSubtle.encrypt({ name: CHACHA, iv: nonce, additionalData: ad }, k, pt));
    const tag = Array.from(ct.subarray(ct.length - TAG), (x) => x.toString(16).padStart(2, '0')).join('');
    if (tag !== '1ae10b594f09e26a7e902ecbd0600691') return false;
    const back = new Uint8Array(await wcSubtle.decrypt({ name: CHACHA, iv: nonce, additionalData: ad }, k, ct));
    return back.length === pt.length && back.every((x, i) => x === pt[i]);
  } catch {
    return false;
  }
}

const webChaCha = nodeCrypto ? false : (!isNode || wanted === 'webcrypto') && (await probeWebChaCha());

/** Which ChaCha20-Poly1305 implementation is active: "node", "webcrypto" or "noble". */
export const aeadImpl = nodeCrypto ? 'node' : webChaCha ? 'webcrypto' : 'noble';

// web.py converts each session key to one Uint8Array and reuses it: cache its CryptoKey.
const webKeys = new WeakMap();
function webKey(key) {
  let k = webKeys.get(key);
  if (!k) {
    k = wcSubtle.importKey('raw-secret', key, { name: CHACHA }, false, ['encrypt', 'decrypt']);
    webKeys.set(key, k);
  }
  return k;
}

const webParams = (nonce, ad) => (ad.length ? { name: CHACHA, iv: nonce, additionalData: ad } : { name: CHACHA, iv: nonce });

async function webSeal(key, nonce, ad, pt) {
  return new Uint8Array(await wcSubtle.encrypt(webParams(nonce, ad), await webKey(key), pt));
}

// undefined on a bad tag (WebCrypto throws OperationError)
async function webOpen(key, nonce, ad, ct) {
  try {
    return new Uint8Array(await wcSubtle.decrypt(webParams(nonce, ad), await webKey(key), ct));
  } catch {
    return undefined;
  }
}

function joinAll(parts, total) {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** ciphertext || tag */
export function aeadSeal(key, nonce, ad, pt) {
  checkAeadKey(key);
  if (webChaCha) return webSeal(key, nonce, ad, pt);
  const out = new Uint8Array(pt.length + TAG);
  sealInto(key, nonce, ad, pt, out, 0);
  return out;
}

/** plaintext, or undefined when the tag does not verify */
export function aeadOpen(key, nonce, ad, ct) {
  checkAeadKey(key);
  if (ct.length < TAG) return undefined;
  if (webChaCha) return webOpen(key, nonce, ad, ct);
  const out = new Uint8Array(ct.length - TAG);
  return openInto(key, nonce, ad, ct, out, 0) ? out : undefined;
}

/**
 * Seal consecutive frames in one FFI crossing. `data` is the plaintexts concatenated,
 * `lengths` their lengths (packed uint32 LE). Returns the ciphertexts concatenated (each
 * frame grows by 16 bytes).
 */
export function aeadSealMany(key, firstNonce, ad, data, lengths) {
  checkAeadKey(key);
  const lens = readLengths(lengths);
  if (webChaCha) {
    const jobs = [];
    let off = 0;
    for (let i = 0; i < lens.length; i++) {
      jobs.push(webSeal(key, nonceAt(firstNonce, i), ad, data.subarray(off, off + lens[i])));
      off += lens[i];
    }
    return Promise.all(jobs).then((parts) => joinAll(parts, data.length + TAG * lens.length));
  }
  const out = new Uint8Array(data.length + TAG * lens.length);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < lens.length; i++) {
    const n = lens[i];
    sealInto(key, nonceAt(firstNonce, i), ad, data.subarray(src, src + n), out, dst);
    src += n;
    dst += n + TAG;
  }
  return out;
}

/**
 * Seal consecutive frames laid out as Noise wire frames: for each frame a 2-byte
 * big-endian length, then ciphertext || tag. Same arguments as aeadSealMany. With
 * WebCrypto the frames are sealed concurrently and a Promise of the buffer is returned,
 * which the WebSocket shim can send without Python awaiting it (Connection.sendLater).
 */
export function aeadSealFramed(key, firstNonce, ad, data, lengths) {
  checkAeadKey(key);
  const lens = readLengths(lengths);
  let total = 0;
  for (const n of lens) {
    if (n + TAG > 0xffff) throw fail('CryptoError', `Noise frame of ${n} plaintext bytes is too long`);
    total += 2 + n + TAG;
  }
  const out = new Uint8Array(total);
  if (webChaCha) {
    const jobs = [];
    let src = 0;
    let dst = 0;
    for (let i = 0; i < lens.length; i++) {
      const n = lens[i];
      const at = dst;
      out[at] = (n + TAG) >>> 8;
      out[at + 1] = (n + TAG) & 0xff;
      jobs.push(webSeal(key, nonceAt(firstNonce, i), ad, data.subarray(src, src + n)).then((ct) => out.set(ct, at + 2)));
      src += n;
      dst += 2 + n + TAG;
    }
    return Promise.all(jobs).then(() => out);
  }
  let src = 0;
  let dst = 0;
  for (let i = 0; i < lens.length; i++) {
    const n = lens[i];
    out[dst] = (n + TAG) >>> 8;
    out[dst + 1] = (n + TAG) & 0xff;
    sealInto(key, nonceAt(firstNonce, i), ad, data.subarray(src, src + n), out, dst + 2);
    src += n;
    dst += 2 + n + TAG;
  }
  return out;
}

/**
 * aeadSealFramed boxed as { pending: Uint8Array | Promise }, for callers that pass the
 * result on without awaiting it: a Promise returned to Python would become a Python
 * awaitable, while a plain object stays the same JS object on its way back to JS.
 */
export function aeadSealFramedLater(key, firstNonce, ad, data, lengths) {
  return { pending: aeadSealFramed(key, firstNonce, ad, data, lengths) };
}

/** Open consecutive frames (lengths are the ciphertext lengths); undefined if any tag fails. */
export function aeadOpenMany(key, firstNonce, ad, data, lengths) {
  checkAeadKey(key);
  const lens = readLengths(lengths);
  let total = 0;
  for (const n of lens) {
    if (n < TAG) return undefined;
    total += n - TAG;
  }
  if (webChaCha) {
    const jobs = [];
    let off = 0;
    for (let i = 0; i < lens.length; i++) {
      jobs.push(webOpen(key, nonceAt(firstNonce, i), ad, data.subarray(off, off + lens[i])));
      off += lens[i];
    }
    return Promise.all(jobs).then((parts) => (parts.some((p) => p === undefined) ? undefined : joinAll(parts, total)));
  }
  const out = new Uint8Array(total);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < lens.length; i++) {
    const n = lens[i];
    if (!openInto(key, nonceAt(firstNonce, i), ad, data.subarray(src, src + n), out, dst)) return undefined;
    src += n;
    dst += n - TAG;
  }
  return out;
}

/**
 * The receive mirror of aeadSealFramed: cut Noise wire frames (2-byte big-endian length,
 * ciphertext || tag) out of `rest` (the partial frame a previous call returned, or
 * undefined) followed by `data`, and open every complete one, counters firstNonce, +1, ...
 *
 * `data` is a Uint8Array, null/undefined (the source ended), a Promise of either, or a
 * box { pending: any of those } (websocket.mjs readLater: a read still waiting for a
 * message; boxed because a Promise returned to Python turns into a Python Future). A
 * Promise is awaited here, so the caller crosses from Python to JS and back once per
 * burst of messages, not once for the read and again for the decryption, and the
 * ciphertext never enters Python.
 *
 * Returns (or, when `data` is a Promise or WebCrypto runs, resolves to)
 *   { plain, frames, rest, ended, malformed }
 * plain: the plaintexts concatenated, or undefined when a tag does not verify; frames: how
 * many were opened; rest: the trailing partial frame (< 65537 bytes, copied), to pass back
 * next time; ended: `data` was null (nothing else is looked at); malformed: -1, or the
 * length of a frame too short to hold its tag (the frames before it are in `plain`, the
 * bytes from it on are dropped: the caller ends the connection).
 */
export function aeadOpenFramed(key, firstNonce, ad, rest, data) {
  checkAeadKey(key);
  if (data && !(data instanceof Uint8Array) && 'pending' in data) data = data.pending;
  if (data && typeof data.then === 'function') {
    return data.then((d) => openFramedNow(key, firstNonce, ad, rest, d));
  }
  return openFramedNow(key, firstNonce, ad, rest, data);
}

const EMPTY = new Uint8Array(0);

function openFramedNow(key, firstNonce, ad, rest, data) {
  const held = rest && rest.length ? rest : EMPTY;
  if (data === null || data === undefined) {
    return { plain: EMPTY, frames: 0, rest: held, ended: true, malformed: -1 };
  }
  // Complete the held partial frame with the bytes it lacks (a small copy), then cut the
  // remaining frames out of `data` in place: the received buffer is never copied whole.
  const views = [];
  let total = 0;
  let malformed = -1;
  let pos = 0;
  let left = EMPTY;
  const scan = (buf, from) => {
    let at = from;
    while (buf.length - at >= 2) {
      const n = (buf[at] << 8) | buf[at + 1];
      if (n < TAG) {
        malformed = n;
        return -1;
      }
      if (at + 2 + n > buf.length) break;
      views.push(buf.subarray(at + 2, at + 2 + n));
      total += n - TAG;
      at += 2 + n;
    }
    return at;
  };
  if (held.length) {
    const len = held.length >= 2 ? (held[0] << 8) | held[1] : data.length ? (held[0] << 8) | data[0] : -1;
    const want = len < 0 ? 2 : 2 + Math.max(len, 0);
    pos = Math.min(want - held.length, data.length);
    const head = cat(held, data.subarray(0, pos));
    const end = scan(head, 0);
    if (end >= 0 && end < head.length) left = head; // still partial: all of data went in
  }
  if (malformed < 0 && left === EMPTY) {
    const end = scan(data, pos);
    // slice, not subarray: a view would pin the whole received buffer until the next call
    if (end >= 0 && end < data.length) left = data.slice(end);
  }
  if (malformed >= 0) left = EMPTY;
  const done = (plain) => ({ plain, frames: views.length, rest: left, ended: false, malformed });
  if (!views.length) return done(EMPTY);
  if (webChaCha) {
    const jobs = views.map((ct, i) => webOpen(key, nonceAt(firstNonce, i), ad, ct));
    return Promise.all(jobs).then((parts) => done(parts.some((p) => p === undefined) ? undefined : joinAll(parts, total)));
  }
  const out = new Uint8Array(total);
  let dst = 0;
  for (let i = 0; i < views.length; i++) {
    if (!openInto(key, nonceAt(firstNonce, i), ad, views[i], out, dst)) return done(undefined);
    dst += views[i].length - TAG;
  }
  return done(out);
}

// ----- X25519 and Ed25519 -------------------------------------------------------------------
// Node takes raw keys only through DER wrappers; these fixed prefixes make the PKCS#8 /
// SubjectPublicKeyInfo encodings of a 32-byte key (RFC 8410).
const PKCS8_X25519 = hex('302e020100300506032b656e04220420');
const SPKI_X25519 = hex('302a300506032b656e032100');
const PKCS8_ED25519 = hex('302e020100300506032b657004220420');
const SPKI_ED25519 = hex('302a300506032b6570032100');

function cat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function check32(what, b) {
  if (b.length !== 32) throw fail('InvalidKeyError', `${what} must be 32 bytes, got ${b.length}`);
}

const nodeKey = {
  priv: (prefix, raw) => nodeCrypto.createPrivateKey({ key: cat(prefix, raw), format: 'der', type: 'pkcs8' }),
  pub: (prefix, raw) => nodeCrypto.createPublicKey({ key: cat(prefix, raw), format: 'der', type: 'spki' }),
  rawPublic: (keyObject) => u8(nodeCrypto.createPublicKey(keyObject).export({ format: 'der', type: 'spki' })).subarray(12),
};

const isZero = (b) => b.every((x) => x === 0);

export function x25519Public(priv) {
  check32('X25519 private key', priv);
  if (nodeCrypto) return nodeKey.rawPublic(nodeKey.priv(PKCS8_X25519, priv)).slice();
  return x25519.getPublicKey(priv);
}

/** Shared secret; throws CryptoError for a low-order peer point (all-zero result). */
export function x25519Shared(priv, pub) {
  check32('X25519 private key', priv);
  check32('X25519 public key', pub);
  let shared;
  try {
    if (nodeCrypto) {
      shared = u8(nodeCrypto.diffieHellman({
        privateKey: nodeKey.priv(PKCS8_X25519, priv),
        publicKey: nodeKey.pub(SPKI_X25519, pub),
      }));
    } else {
      shared = x25519.getSharedSecret(priv, pub);
    }
  } catch (e) {
    throw fail('CryptoError', `X25519 failed (low-order point?): ${e.message}`);
  }
  if (isZero(shared)) throw fail('CryptoError', 'X25519 produced an all-zero shared secret');
  return shared;
}

export function ed25519Public(seed) {
  check32('Ed25519 seed', seed);
  if (nodeCrypto) return nodeKey.rawPublic(nodeKey.priv(PKCS8_ED25519, seed)).slice();
  return ed25519.getPublicKey(seed);
}

export function ed25519Sign(seed, msg) {
  check32('Ed25519 seed', seed);
  if (nodeCrypto) return u8(nodeCrypto.sign(null, msg, nodeKey.priv(PKCS8_ED25519, seed)));
  return ed25519.sign(msg, seed);
}

export function ed25519Verify(pub, msg, sig) {
  check32('Ed25519 public key', pub);
  if (sig.length !== 64) return false;
  try {
    if (nodeCrypto) return nodeCrypto.verify(null, msg, nodeKey.pub(SPKI_ED25519, pub), sig);
    // zip215:false = RFC 8032 strict rules, the ones OpenSSL and Go apply.
    return ed25519.verify(sig, msg, pub, { zip215: false });
  } catch {
    return false;
  }
}

// ----- ECDSA over SHA-256 (P-256, secp256k1), DER signatures ---------------------------------
const CURVES = { p256, secp256k1 };

function curveOf(name) {
  const c = CURVES[name];
  if (!c) throw fail('InvalidKeyError', `unsupported curve ${name}`);
  return c;
}

/** 65-byte uncompressed SEC1 point. */
export function ecdsaPublic(curve, priv) {
  const c = curveOf(curve);
  check32(`${curve} private key`, priv);
  try {
    return c.getPublicKey(priv, false);
  } catch (e) {
    throw fail('InvalidKeyError', `${curve} private key out of range`);
  }
}

export function ecdsaSign(curve, priv, msg) {
  const c = curveOf(curve);
  check32(`${curve} private key`, priv);
  try {
    return c.sign(msg, priv, { prehash: true, format: 'der' });
  } catch (e) {
    throw fail('InvalidKeyError', `${curve} signing failed: ${e.message}`);
  }
}

export function ecdsaVerify(curve, pub, msg, sig) {
  const c = curveOf(curve);
  try {
    c.Point.fromBytes(pub).assertValidity();
  } catch {
    throw fail('InvalidKeyError', `invalid ${curve} public point`);
  }
  try {
    // lowS:false: OpenSSL and Go emit high-S signatures; accept them as OpenSSL does.
    return c.verify(sig, msg, pub, { prehash: true, format: 'der', lowS: false });
  } catch {
    return false;
  }
}

// ----- RSA PKCS#1 v1.5 with SHA-256 ------------------------------------------------------------
// Keys: PKCS#1 DER private, SubjectPublicKeyInfo DER public. Node: synchronous OpenSSL.
// Browsers: WebCrypto (Promises), which wants PKCS#8, so PKCS#1 is wrapped/unwrapped here.

const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
// SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption OID, NULL }, OCTET STRING <pkcs1> }
const RSA_ALG_ID = hex('300d06092a864886f70d0101010500');

function derLen(n) {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function derTlv(tag, body) {
  return cat(cat(Uint8Array.of(tag), derLen(body.length)), body);
}

function pkcs1ToPkcs8(pkcs1) {
  return derTlv(0x30, cat(cat(hex('020100'), RSA_ALG_ID), derTlv(0x04, pkcs1)));
}

// Reads one TLV at `off`: [tag, bodyStart, bodyEnd].
function derRead(b, off) {
  if (off + 2 > b.length) throw fail('InvalidKeyError', 'truncated DER');
  const tag = b[off];
  let len = b[off + 1];
  let p = off + 2;
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k < 1 || k > 4 || p + k > b.length) throw fail('InvalidKeyError', 'bad DER length');
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + b[p + i];
    p += k;
  }
  if (p + len > b.length) throw fail('InvalidKeyError', 'truncated DER');
  return [tag, p, p + len];
}

function pkcs8ToPkcs1(pkcs8) {
  const [, s] = derRead(pkcs8, 0); // outer SEQUENCE
  const [, , vEnd] = derRead(pkcs8, s); // version
  const [, , aEnd] = derRead(pkcs8, vEnd); // AlgorithmIdentifier
  const [tag, oStart, oEnd] = derRead(pkcs8, aEnd);
  if (tag !== 0x04) throw fail('InvalidKeyError', 'not a PKCS#8 private key');
  return pkcs8.slice(oStart, oEnd);
}

function nodeRsaPublic(spki) {
  let key;
  try {
    key = nodeRsa.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw fail('InvalidKeyError', 'malformed RSA public key');
  }
  if (key.asymmetricKeyType !== 'rsa') throw fail('InvalidKeyError', 'not an RSA public key');
  return key;
}

function nodeRsaPrivate(pkcs1) {
  let key;
  try {
    key = nodeRsa.createPrivateKey({ key: pkcs1, format: 'der', type: 'pkcs1' });
  } catch {
    throw fail('InvalidKeyError', 'malformed RSA private key');
  }
  if (key.asymmetricKeyType !== 'rsa') throw fail('InvalidKeyError', 'not an RSA private key');
  return key;
}

const subtle = () => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw fail('CryptoError', 'WebCrypto (crypto.subtle) is not available: RSA needs a secure context');
  return s;
};

async function webImport(format, der, usages, extractable = false) {
  try {
    return await subtle().importKey(format, der, RSA_ALG, extractable, usages);
  } catch {
    throw fail('InvalidKeyError', `malformed RSA ${format === 'spki' ? 'public' : 'private'} key`);
  }
}

// WebCrypto implementations (browsers). Exported under `webRsa` so Node can cross-check
// them against OpenSSL (tests/pyodide/check_crypto_js.mjs).
export const webRsa = {
  async verify(spki, msg, sig) {
    const key = await webImport('spki', spki, ['verify']);
    try {
      return await subtle().verify(RSA_ALG, key, sig, msg);
    } catch {
      return false;
    }
  },
  async sign(pkcs1, msg) {
    const key = await webImport('pkcs8', pkcs1ToPkcs8(pkcs1), ['sign']);
    return new Uint8Array(await subtle().sign(RSA_ALG, key, msg));
  },
  async generate(bits) {
    const pair = await subtle().generateKey(
      { ...RSA_ALG, modulusLength: bits, publicExponent: Uint8Array.of(1, 0, 1) },
      true,
      ['sign', 'verify'],
    );
    const pkcs8 = new Uint8Array(await subtle().exportKey('pkcs8', pair.privateKey));
    const spki = new Uint8Array(await subtle().exportKey('spki', pair.publicKey));
    return [pkcs8ToPkcs1(pkcs8), spki];
  },
  async publicFromPrivate(pkcs1) {
    const key = await webImport('pkcs8', pkcs1ToPkcs8(pkcs1), ['sign'], true);
    const { n, e } = await subtle().exportKey('jwk', key);
    const pub = await subtle().importKey('jwk', { kty: 'RSA', n, e, alg: 'RS256', ext: true }, RSA_ALG, true, ['verify']);
    return new Uint8Array(await subtle().exportKey('spki', pub));
  },
};

export function rsaVerify(spki, msg, sig) {
  if (!nodeRsa) return webRsa.verify(spki, msg, sig);
  const key = nodeRsaPublic(spki);
  try {
    return nodeRsa.verify('sha256', msg, { key, padding: nodeRsa.constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false;
  }
}

export function rsaSign(pkcs1, msg) {
  if (!nodeRsa) return webRsa.sign(pkcs1, msg);
  const key = nodeRsaPrivate(pkcs1);
  return u8(nodeRsa.sign('sha256', msg, { key, padding: nodeRsa.constants.RSA_PKCS1_PADDING }));
}

/** [private PKCS#1 DER, public SPKI DER] */
export function rsaGenerate(bits) {
  if (!nodeRsa) return webRsa.generate(bits);
  const { privateKey, publicKey } = nodeRsa.generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: 65537,
    privateKeyEncoding: { type: 'pkcs1', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  return [u8(privateKey), u8(publicKey)];
}

export function rsaPublicFromPrivate(pkcs1) {
  if (!nodeRsa) return webRsa.publicFromPrivate(pkcs1);
  return u8(nodeRsa.createPublicKey(nodeRsaPrivate(pkcs1)).export({ format: 'der', type: 'spki' }));
}
