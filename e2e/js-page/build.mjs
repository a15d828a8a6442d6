// Bundles e2e/js-page/main.mjs (js-libp2p for the browser) with esbuild, offline.
//   node e2e/js-page/build.mjs OUTDIR
// OUTDIR receives index.html and js-page.mjs; it is served over http://127.0.0.1 by the
// e2e harness.
import * as esbuild from 'esbuild'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const out = path.resolve(process.argv[2] ?? path.join(HERE, '../../.cache/e2e/js-page'))
fs.mkdirSync(out, { recursive: true })

await esbuild.build({
  absWorkingDir: path.resolve(HERE, '../..'), // resolves node_modules at the repo root
  entryPoints: [path.join(HERE, 'main.mjs')],
  outfile: path.join(out, 'js-page.mjs'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: false,
  sourcemap: 'inline',
  logLevel: 'warning'
})
fs.copyFileSync(path.join(HERE, 'index.html'), path.join(out, 'index.html'))
console.log(out)
