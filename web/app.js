// Demo: boot a pywasm node (Pyodide, served from /pyodide/), dial the relay named in
// /relay.json over WebSocket, ping it every second. No framework, no CDN.
//
// For tests (e2e/): <body data-state> goes booting -> dialing -> connected (or error), and
// window.pywasmDemo exposes { node, relay, rtts, error }.
import { createNode } from '/pywasm.mjs';

const STAGES = ['runtime', 'install', 'shims', 'python', 'host', 'ready'];
const PING_INTERVAL_MS = 1000;
const KEEP_RTTS = 60;
const $ = (id) => document.getElementById(id);
const demo = { node: null, relay: null, rtts: [], error: '' };
window.pywasmDemo = demo;

function setState(state) { document.body.dataset.state = state; }
function status(text) { $('status').textContent = text; }
function showError(msg) {
  demo.error = msg;
  $('error').textContent = msg;
  $('error').hidden = !msg;
}
const short = (id) => (id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id);

async function relayAddress() {
  let res;
  try {
    res = await fetch('/relay.json', { cache: 'no-store' });
  } catch (e) {
    throw new Error(`cannot fetch /relay.json: ${e.message}`);
  }
  if (!res.ok) throw new Error(`cannot fetch /relay.json: HTTP ${res.status}`);
  const info = await res.json();
  const addrs = Array.isArray(info.multiaddrs) ? info.multiaddrs : [];
  // plain /ws first (a page on http://); /wss when the page is https
  const secure = location.protocol === 'https:';
  const pick = addrs.find((a) => (secure ? /\/(wss|tls\/ws)\//.test(`${a}/`) : /\/ws\//.test(`${a}/`)))
    ?? addrs.find((a) => /\/wss?\//.test(`${a}/`));
  if (!pick) throw new Error(`/relay.json lists no WebSocket address (${addrs.join(', ') || 'none'})`);
  return { peerId: info.peerId, addr: pick };
}

function renderConnections() {
  const rows = demo.node.connections();
  const body = $('connections');
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = 5;
    td.className = 'muted';
    td.textContent = 'none';
    return;
  }
  for (const c of rows) {
    const tr = body.insertRow();
    tr.dataset.peer = c.peer;
    for (const [text, code] of [[short(c.peer), true], [c.addr, true], [c.direction, false], [c.security, false], [c.muxer, false]]) {
      const td = tr.insertCell();
      if (code) {
        const el = document.createElement('code');
        el.textContent = text;
        el.title = text === short(c.peer) ? c.peer : text;
        td.append(el);
      } else td.textContent = text;
    }
  }
}

function drawChart() {
  const cv = $('rtt-chart');
  const ctx = cv.getContext('2d');
  const w = cv.width;
  const h = cv.height;
  ctx.clearRect(0, 0, w, h);
  const data = demo.rtts;
  if (!data.length) return;
  const max = Math.max(5, ...data) * 1.15;
  ctx.strokeStyle = getComputedStyle(document.body).getPropertyValue('--accent').trim() || '#2f6fdf';
  ctx.lineWidth = 2;
  ctx.beginPath();
  data.forEach((v, i) => {
    const x = (i / (KEEP_RTTS - 1)) * (w - 4) + 2;
    const y = h - 2 - (v / max) * (h - 4);
    if (i) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

function recordRtt(ms) {
  demo.rtts.push(ms);
  if (demo.rtts.length > KEEP_RTTS) demo.rtts.shift();
  const sorted = [...demo.rtts].sort((a, b) => a - b);
  $('rtt').textContent = `${ms.toFixed(1)} ms`;
  $('rtt-stats').textContent = `min ${sorted[0].toFixed(1)} · median ${sorted[sorted.length >> 1].toFixed(1)} · max ${sorted.at(-1).toFixed(1)} (last ${sorted.length})`;
  drawChart();
}

async function pingLoop() {
  // one ping at a time; a failed ping re-dials on the next tick (ping dials when needed)
  try {
    recordRtt(await demo.node.ping(demo.relay.addr));
    if (demo.error) showError('');
    setState('connected');
  } catch (e) {
    showError(e.message);
    $('rtt').textContent = 'no answer';
    setState('error');
  }
  renderConnections();
  setTimeout(pingLoop, PING_INTERVAL_MS);
}

async function main() {
  const t0 = performance.now();
  let step = 0;
  demo.node = await createNode({
    onProgress: (stage, detail) => {
      step = Math.max(step, STAGES.indexOf(stage) + 1);
      $('progress').value = step;
      status(detail || stage);
    },
  });
  $('peer-id').textContent = demo.node.peerId;
  $('boot-time').textContent = `${Math.round(performance.now() - t0)} ms (Pyodide ${demo.node.timings.runtimeMs} ms, wheel ${demo.node.timings.installMs} ms)`;

  setState('dialing');
  status('fetching /relay.json');
  demo.relay = await relayAddress();
  $('relay-addr').textContent = demo.relay.addr;
  status(`dialing ${demo.relay.addr}`);
  const remote = await demo.node.dial(demo.relay.addr);
  $('relay-peer').textContent = remote;
  status(`connected to ${short(remote)}`);
  setState('connected');
  renderConnections();
  pingLoop();
}

main().catch((e) => {
  setState('error');
  status('failed');
  showError(e?.message ?? String(e));
  console.error(e);
});
