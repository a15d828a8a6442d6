"""Drive headless Chromium: WebTransport echo of N MiB over one bidirectional stream to
each server in turn (benchmarks/quic_stacks/run.sh); medians, server CPU per MiB.
usage: drive.py HTTP_PORT ROUNDS MIB label:port:pid [label:port:pid ...]"""
import sys, time, json, os
from playwright.sync_api import sync_playwright

http_port, rounds, mib = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
targets = [t.split(":") for t in sys.argv[4:]]
h = open("cert.sha256").read().strip()
TICK = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK  # utime+stime (fields 14,15)

def tree_cpu(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
                kids.setdefault(int(f[1]), []).append(int(d))
            except OSError:
                pass
    tot, todo = 0.0, list(kids.get(root, []))
    while todo:
        p = todo.pop()
        try:
            tot += cpu(p)
        except OSError:
            pass
        todo += kids.get(p, [])
    return tot

JS = """async ([url, hex, total]) => {
  const hash = new Uint8Array(hex.match(/../g).map(x => parseInt(x, 16)));
  const t0 = performance.now();
  const wt = new WebTransport(url, {serverCertificateHashes: [{algorithm: "sha-256", value: hash}]});
  await wt.ready;
  const t1 = performance.now();
  const s = await wt.createBidirectionalStream();
  const w = s.writable.getWriter(); const r = s.readable.getReader();
  const chunk = new Uint8Array(64 * 1024); for (let i = 0; i < chunk.length; i++) chunk[i] = i & 255;
  const writer = (async () => { for (let n = 0; n < total; n += chunk.length) await w.write(chunk); await w.close(); })();
  let got = 0, bad = 0;
  while (true) { const {value, done} = await r.read(); if (done) break;
    for (let i = 0; i < value.length; i += 4099) if (value[i] !== ((got + i) & 255)) bad++;
    got += value.length; }
  await writer;
  const t2 = performance.now();
  wt.close();
  return {setup_ms: t1 - t0, echo_ms: t2 - t1, got, bad};
}"""

with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run"])
    page = b.new_page()
    page.goto(f"http://127.0.0.1:{http_port}/index.html")
    res = {lbl: [] for lbl, _, _ in targets}
    for r in range(rounds):
        for lbl, port, pid in targets:
            c0 = cpu(pid); b0 = tree_cpu(os.getpid())
            try:
                out = page.evaluate(JS, [f"https://127.0.0.1:{port}" + os.environ.get("WTPATH", "/echo"), h, mib * 1024 * 1024])
            except Exception as e:
                print(lbl, "round", r, "FAILED", str(e)[:300], flush=True); continue
            c1 = cpu(pid); b1 = tree_cpu(os.getpid())
            out['browser_cpu_ms_per_mib'] = (b1 - b0) * 1000 / mib
            out["mib_s"] = mib / (out["echo_ms"] / 1000)
            out["cpu_ms_per_mib"] = (c1 - c0) * 1000 / mib
            out["load"] = os.getloadavg()[0]
            print(lbl, "round", r, json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}), flush=True)
            res[lbl].append(out)
    b.close()
import statistics as st
for lbl, rs in res.items():
    if rs:
        print(f"MEDIAN {lbl}: {st.median(x['mib_s'] for x in rs):.2f} MiB/s, setup {st.median(x['setup_ms'] for x in rs):.0f} ms, server CPU {st.median(x['cpu_ms_per_mib'] for x in rs):.1f} ms/MiB, browser CPU {st.median(x['browser_cpu_ms_per_mib'] for x in rs):.1f} ms/MiB, n={len(rs)}")
