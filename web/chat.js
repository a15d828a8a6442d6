// Chat page glue: boot the pywasm node, find the relay, hand both to chat.py (the app,
// in Python). No framework, no CDN.
//
// For tests: window.pywasmChat = { node, relay, chat (the Python ChatNode), error };
// <body data-state>: booting -> joining -> joined (or error).
import { createNode } from '/pywasm.mjs';

const $ = (id) => document.getElementById(id);
const app = { node: null, relay: null, chat: null, error: '' };
window.pywasmChat = app;

function fail(msg) {
  app.error = msg;
  document.body.dataset.state = 'error';
  $('error').textContent = msg;
  $('error').hidden = false;
}

async function relayAddress() {
  const res = await fetch('/relay.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`cannot fetch /relay.json: HTTP ${res.status}`);
  const info = await res.json();
  const addrs = Array.isArray(info.multiaddrs) ? info.multiaddrs : [];
  const secure = location.protocol === 'https:';
  const pick = addrs.find((a) => (secure ? /\/(wss|tls\/ws)\//.test(`${a}/`) : /\/ws\//.test(`${a}/`)))
    ?? addrs.find((a) => /\/wss?\//.test(`${a}/`));
  if (!pick) throw new Error(`/relay.json lists no WebSocket address (${addrs.join(', ') || 'none'})`);
  return pick;
}

async function main() {
  const [node, relay, source] = await Promise.all([
    createNode({ onProgress: (stage, detail) => { $('status').textContent = detail || stage; } }),
    relayAddress(),
    fetch('chat.py', { cache: 'no-store' }).then((r) => {
      if (!r.ok) throw new Error(`cannot fetch chat.py: HTTP ${r.status}`);
      return r.text();
    }),
  ]);
  app.node = node;
  app.relay = relay;
  // what e2e/harness.py must_py() expects of window[<name>]
  app.pyodide = node.pyodide;
  app.host = node.host;
  $('status').textContent = 'joining the chat';
  // chat.py as a module named "chat_app", so its functions keep their globals
  const py = node.pyodide;
  py.FS.writeFile('/home/pyodide/chat_app.py', source);
  py.runPython("import sys\nif '/home/pyodide' not in sys.path: sys.path.insert(0, '/home/pyodide')");
  const mod = py.pyimport('chat_app');
  await mod.start(node.host, relay);
  $('status').textContent = 'joined';
}

main().catch((e) => {
  console.error(e);
  fail(String(e?.message ?? e).split('\n').filter(Boolean).pop());
});
