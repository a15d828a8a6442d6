// Bundles e2e/js-page/p2p_bench.mjs (js-libp2p private-to-private WebRTC for
// benchmarks/webrtc_p2p_run.py) with esbuild, offline.
//   node e2e/js-page/build_p2p_bench.mjs OUTFILE
import * as esbuild from 'esbuild'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const out = path.resolve(process.argv[2] ?? path.join(HERE, '../../.cache/bench/p2pbench.mjs'))

await esbuild.build({
  absWorkingDir: path.resolve(HERE, '../..'), // resolves node_modules at the repo root
  entryPoints: [path.join(HERE, 'p2p_bench.mjs')],
  outfile: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  logLevel: 'warning'
})
console.log(out)
