// Node 20 lacks Promise.withResolvers (added in Node 22), which js-libp2p 3.x calls.
// Loaded with `node --import ./polyfill.mjs`; a no-op on Node >= 22.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
