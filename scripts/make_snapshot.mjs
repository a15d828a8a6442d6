// Builds the Pyodide memory snapshot that createNode() (browser/src/index.mjs) restores
// instead of booting Pyodide, installing the wheel and importing pywasm on every page load.
//
//   node scripts/make_snapshot.mjs <site>/pyodide
//
// Reads the runtime and the patched pyodide-lock.json from that folder (as assembled by
// scripts/build_site.sh), installs the pywasm wheel named in the lock (sha256 checked),
// imports the modules createNode() needs, and writes next to them:
//
//   pywasm-snapshot.bin.gz   the gzipped memory image (the relay serves no Content-Encoding;
//                            the page inflates it with DecompressionStream)
//   pywasm-snapshot.json     { format, file, sha256, size, pyodide, wheel, wheelSha256 }:
//                            createNode() uses the snapshot only when pyodide equals the
//                            loaded runtime's version and wheelSha256 the lock's pywasm entry
//                            (Pyodide itself also refuses an image of another build id)
//
// What must NOT be in the image: JS objects. The shims (registerJsModule) are registered
// after the restore, and pywasm imports them lazily, so nothing here touches them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';

export const SNAPSHOT_FORMAT = 1;
export const MANIFEST = 'pywasm-snapshot.json';
export const IMAGE = 'pywasm-snapshot.bin.gz';
// Imported before the image is taken: everything createNode() and a dial/ping reach.
const PRELOAD = [
  'pywasm.browser_node',
  'pywasm.crypto.web',
  'pywasm.transports.browser_websocket',
  'pywasm.services.echo',
];

async function main(dir) {
  const lockPath = path.join(dir, 'pyodide-lock.json');
  const lock = JSON.parse(fs.readFileSync(lockPath, 'utf8'));
  const entry = lock.packages?.pywasm;
  if (!entry) throw new Error(`no pywasm entry in ${lockPath}`);
  const wheel = new Uint8Array(fs.readFileSync(path.join(dir, entry.file_name)));
  const sha = crypto.createHash('sha256').update(wheel).digest('hex');
  if (sha !== entry.sha256) throw new Error(`${entry.file_name}: sha256 ${sha} != lock ${entry.sha256}`);

  const mod = await import(pathToFileURL(path.join(dir, 'pyodide.mjs')).href);
  const py = await mod.loadPyodide({ indexURL: dir + path.sep, _makeSnapshot: true, fullStdLib: false,
    stdout: () => {}, stderr: (s) => console.error(s) });
  const site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
  py.unpackArchive(wheel, 'wheel', { extractDir: site });
  py.runPython(`import importlib\nimportlib.invalidate_caches()\n${PRELOAD.map((m) => `import ${m}`).join('\n')}`);
  // the image must hold no JS module of ours: they are per page, registered after restore
  const leaked = py.runPython("import sys; [m for m in sys.modules if m.startswith('pywasm_') and m.endswith('_js')]").toJs();
  if (leaked.length) throw new Error(`JS modules imported before the snapshot: ${leaked}`);
  const image = py.makeMemorySnapshot();
  const gz = zlib.gzipSync(image, { level: 6 });
  fs.writeFileSync(path.join(dir, IMAGE), gz);
  const manifest = {
    format: SNAPSHOT_FORMAT,
    file: IMAGE,
    sha256: crypto.createHash('sha256').update(gz).digest('hex'),
    size: image.length,
    pyodide: mod.version,
    wheel: entry.file_name,
    wheelSha256: entry.sha256,
  };
  fs.writeFileSync(path.join(dir, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  console.log(`snapshot: ${(image.length / 1048576).toFixed(1)} MiB image, ${(gz.length / 1048576).toFixed(1)} MiB gzipped (Pyodide ${mod.version}, ${entry.file_name})`);
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/make_snapshot.mjs <site>/pyodide');
  process.exit(2);
}
main(path.resolve(dir)).then(() => process.exit(0), (e) => {
  console.error(`make_snapshot: ${String(e?.message ?? e).split('\n')[0]}`);
  process.exit(1);
});
