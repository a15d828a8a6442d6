// Runs the pure core's tests inside Pyodide, in Node, offline.
//
//   node tests/pyodide/run.mjs                       # tests/unit tests/conformance tests/pyodide
//   node tests/pyodide/run.mjs tests/unit/test_noise.py -- -x -k handshake
//
// What it proves: the pywasm *wheel* (not a source mount) installs into stock Pyodide with
// nothing but pure wheels, and the core's tests pass there with crypto through JS
// (browser/src/crypto.mjs registered as "pywasm_crypto_js").
//
// Steps: build/refresh the wheels (scripts/pyodide_wheels.sh: cached, a no-op when warm),
// cross-check the JS crypto implementations (check_crypto_js.mjs, ~0.5 s), boot Pyodide
// from node_modules/pyodide (no CDN: the npm package ships no wheels and loadPackage is
// never called), unpack every wheel from .cache/pyodide-wheels into site-packages
// (pyodide.unpackArchive: no resolver needed, every dependency is there), copy tests/ and
// pytest.ini into the in-memory FS, run pytest.main, exit with its code (5 = nothing
// collected, a failure too). Async tests run on tests/_sync_loop.py (see tests/conftest.py).
//
// Options (environment):
//   PYWASM_PYODIDE_NO_BUILD=1   do not run scripts/pyodide_wheels.sh (use the cache as is)
//   PYWASM_CRYPTO_JS=noble      use the browser implementation of the JS crypto (@noble)
//   PYWASM_CRYPTO_BUNDLE=1      load browser/dist/crypto.mjs (npm run build) instead of src
import path from 'node:path';
import { ROOT, boot, buildWheels, copyTree, log, readBytes, wheelFiles } from './boot.mjs';

const DEFAULT_PATHS = ['tests/unit', 'tests/conformance', 'tests/pyodide'];
const WORK = '/work/pywasm'; // in Pyodide's MEMFS: a copy of tests/ and pytest.ini
const sec = (x) => `${(x / 1000).toFixed(2)} s`;

function parseArgs(argv) {
  const i = argv.indexOf('--');
  const paths = i < 0 ? argv : argv.slice(0, i);
  const extra = i < 0 ? [] : argv.slice(i + 1);
  return { paths: paths.length ? paths : DEFAULT_PATHS, extra };
}

async function main() {
  const t0 = performance.now();
  const { paths, extra } = parseArgs(process.argv.slice(2));
  buildWheels();
  const wheels = wheelFiles(['pywasm-', 'pytest-', 'pluggy-', 'iniconfig-', 'packaging-', 'pygments-']);
  // The JS crypto's browser paths (noble, WebCrypto RSA) against OpenSSL, outside Pyodide.
  await import('./check_crypto_js.mjs');

  const { pyodide, sitePackages, cryptoPath, bootMs, installMs } = await boot({ wheels });
  const tInstalled = performance.now();

  copyTree(pyodide.FS, path.join(ROOT, 'tests'), `${WORK}/tests`);
  pyodide.FS.writeFile(`${WORK}/pytest.ini`, readBytes(path.join(ROOT, 'pytest.ini')));
  pyodide.FS.chdir(WORK);

  const env = pyodide.toPy({
    paths, extra, wheels, cryptoPath, sitePackages, boot: sec(bootMs), install: sec(installMs),
  });
  pyodide.globals.set('RUN', env);
  let code;
  try {
    code = pyodide.runPython(`
import sys, platform
from importlib.metadata import version
import pywasm
from pywasm.crypto import get_backend
from pywasm.crypto.web import WebCryptoBackend

backend = get_backend()
print(f"[pyodide] Python {platform.python_version()} ({sys.platform}), Pyodide {__import__('pyodide').__version__}")
print(f"[pyodide] boot {RUN['boot']}, wheel install {RUN['install']} ({len(RUN['wheels'])} wheels)")
print(f"[pyodide] pywasm {version('pywasm')} (wheel) from {pywasm.__file__}")
print(f"[pyodide] crypto backend: {type(backend).__name__} (js impl: {getattr(backend, 'impl', '?')}, module {RUN['cryptoPath']})")
assert isinstance(backend, WebCryptoBackend), f"expected WebCryptoBackend, got {type(backend).__name__}"
assert pywasm.__file__.startswith(RUN["sitePackages"] + "/"), (
    f"pywasm must come from the installed wheel, not {pywasm.__file__}"
)

import pytest
# no faulthandler watchdog: it needs a thread, and Pyodide has none
args = [*RUN['paths'], "-p", "no:cacheprovider", "-o", "faulthandler_timeout=0", "-q", *RUN['extra']]
print("[pyodide] pytest " + " ".join(args), flush=True)
int(pytest.main(args))
`);
  } finally {
    env.destroy();
  }
  const tDone = performance.now();
  log(`boot ${sec(bootMs)}, wheel install ${sec(installMs)}, tests ${sec(tDone - tInstalled)}, total ${sec(tDone - t0)}`);
  if (code === 5) log('pytest collected no tests: failing');
  process.exit(code);
}

main().catch((e) => {
  log(`runner error: ${e?.stack ?? e}`);
  process.exit(3);
});
