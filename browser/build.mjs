// Bundles the browser-side JS with esbuild (offline; esbuild is in node_modules).
//
//   npm run build        (= node browser/build.mjs)
//
// browser/src/index.mjs -> browser/dist/pywasm.mjs (createNode, see below), and
// browser/src/crypto.mjs -> browser/dist/crypto.mjs: one ES module with @noble inlined,
// for pages that load Pyodide and register it as "pywasm_crypto_js". Node imports the
// source directly and needs no build. `node:*` imports stay external: the module only
// loads node:crypto when it runs under Node.
import * as esbuild from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// src/index.mjs -> dist/pywasm.mjs: createNode() for pages (served as /pywasm.mjs), with
// crypto.mjs, websocket.mjs and @noble inlined; Pyodide itself is loaded at run time from
// the indexURL folder (a dynamic import esbuild leaves alone).
const entries = [
  { in: 'src/crypto.mjs', out: 'crypto' },
  { in: 'src/index.mjs', out: 'pywasm' },
];

const result = await esbuild.build({
  absWorkingDir: HERE,
  entryPoints: entries.map((e) => ({ in: path.join(HERE, e.in), out: e.out })),
  outdir: path.join(HERE, 'dist'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'], // top-level await, BigInt
  external: ['node:*'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
});

for (const [file, info] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith('.map')) continue;
  console.log(`[build] ${path.relative(process.cwd(), path.resolve(HERE, file))} ${(info.bytes / 1024).toFixed(1)} KiB`);
}
