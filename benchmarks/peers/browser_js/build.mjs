// Bundles benchmarks/peers/browser_js/main.mjs (js-libp2p for the browser) with esbuild, offline.
//   node benchmarks/peers/browser_js/build.mjs OUTDIR      -> OUTDIR/jsbench.mjs
import * as esbuild from 'esbuild'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const out = path.resolve(process.argv[2] ?? path.join(HERE, '../../../.cache/bench/browser-js'))
fs.mkdirSync(out, { recursive: true })
await esbuild.build({
  absWorkingDir: path.resolve(HERE, '../../..'),
  entryPoints: [path.join(HERE, 'main.mjs')],
  outfile: path.join(out, 'jsbench.mjs'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  logLevel: 'warning'
})
console.log(out)
