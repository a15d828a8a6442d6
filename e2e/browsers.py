"""The browsers of the end-to-end suite, how each is launched, and what each can do.

* ``chromium``: Debian Chromium, Playwright (CDP), the historical e2e browser.
* ``firefox``: Debian Firefox ESR, Playwright over WebDriver BiDi (``channel="moz-firefox"``;
  playwright 1.64.1: 1.65 sends a BiDi command Firefox 153 rejects on every new page).
* ``webkit``: Debian WebKitGTK (WebKitWebDriver + MiniBrowser under our own Xvfb), Selenium,
  behind a Playwright-like page adapter (e2e/webkit/).

Select with ``--e2e-browser NAME`` (repeatable) or ``PYWASM_E2E_BROWSERS=chromium,firefox``;
the default is all three. A missing browser fails its tests (with the setup command), never
skips them.

What a browser lacks is found at run time, not written down: ``PROBE_JS`` runs once per
browser in a secure-context page and records which APIs exist (and a few behaviours, e.g.
whether WebCrypto has ChaCha20-Poly1305). A test states the APIs its feature needs
(``@pytest.mark.browser_feature(label, needs=(...))``; modules named test_webtransport* /
test_webrtc* need WebTransport / RTCPeerConnection by default); when the browser has not got
one, the test is recorded as "unsupported: <reason>" (e2e/results_plugin.py) instead of run.
A test whose browser has the API and still fails is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from e2e.harness import CHROMIUM, CHROMIUM_ARGS

BROWSERS: tuple[str, ...] = ("chromium", "firefox", "webkit")
LABELS = {"chromium": "Chromium", "firefox": "Firefox ESR", "webkit": "WebKitGTK"}
ENV_SELECT = "PYWASM_E2E_BROWSERS"

FIREFOX = Path(os.environ.get("PYWASM_FIREFOX", "/usr/bin/firefox-esr"))
FIREFOX_PREFS: dict[str, Any] = {
    # WebRTC to a 127.0.0.1 server (webrtc-direct), as Firefox 153 decides it:
    # * nICEr drops loopback addresses from the host candidates unless ice.loopback is set;
    # * a page with no camera/microphone grant gathers on the "default address" only
    #   (PeerConnectionImpl::GetPrefDefaultAddressOnly ORs in
    #   !MediaManager::IsActivelyCapturingOrHasAPermission), found by connecting a UDP socket
    #   to 8.8.8.8 (a loopback page origin is not used as the target): the eth0 address on a
    #   machine with a default route, and 192.0.2.2 cannot reach 127.0.0.1. The permission
    #   manager answers "camera"/"microphone" from permissions.default.* when no site entry
    #   exists (WebDriver BiDi permissions.setPermission rejects "camera" in 153), so allowing
    #   both by default lifts that, with no network namespace and no page code.
    #   TEST-ONLY profile: no page asks for a device here, and there are none.
    # * host addresses are not hidden behind mDNS names (the grant above also disables it).
    "media.peerconnection.ice.loopback": True,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # nothing in the background reaches for the (unreachable) internet
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
}

SETUP_HINT = {
    "chromium": "run `bash scripts/setup.sh` (installs chromium and playwright)",
    "firefox": "run `bash scripts/setup_browsers.sh` (installs firefox-esr) and `bash scripts/setup.sh` (playwright)",
    "webkit": "run `bash scripts/setup_browsers.sh` (installs webkit2gtk-driver, xvfb and selenium)",
}


class BrowserMissing(AssertionError):
    """A selected browser is not installed: its tests fail with the setup command."""


def selected(names: Iterable[str] | None = None) -> list[str]:
    """Browsers to run: the option's names, else $PYWASM_E2E_BROWSERS, else all."""
    chosen = [n.strip().lower() for n in (names or []) for n in n.split(",") if n.strip()]
    if not chosen:
        chosen = [n.strip().lower() for n in os.environ.get(ENV_SELECT, "").split(",") if n.strip()]
    if not chosen:
        return list(BROWSERS)
    unknown = [n for n in chosen if n not in BROWSERS]
    if unknown:
        raise ValueError(f"unknown browser(s) {unknown}; choose from {', '.join(BROWSERS)}")
    return [n for n in BROWSERS if n in chosen]


# ------------------------------------------------------------------ launching


def launch(name: str, playwright: Callable[[], Any], *, insecure: bool = False) -> Any:
    """Start browser ``name``. ``playwright`` returns the session's sync Playwright (started
    lazily: a WebKit-only run never starts it). ``insecure``: TEST-ONLY, a browser that
    trusts any certificate (for a local TLS front with a throwaway certificate)."""
    if name == "chromium":
        if not CHROMIUM.exists():
            raise BrowserMissing(f"Chromium missing at {CHROMIUM}; {SETUP_HINT[name]}")
        args = [*CHROMIUM_ARGS, *(["--ignore-certificate-errors"] if insecure else [])]
        return playwright().chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    if name == "firefox":
        if not FIREFOX.exists():
            raise BrowserMissing(f"Firefox ESR missing at {FIREFOX}; {SETUP_HINT[name]}")
        return playwright().firefox.launch(
            channel="moz-firefox", executable_path=str(FIREFOX), headless=True, firefox_user_prefs=FIREFOX_PREFS
        )
    if name == "webkit":
        from e2e.webkit import WebKitBrowser

        # insecure is per page here (WebDriver's acceptInsecureCerts), set by new_context
        return WebKitBrowser()
    raise ValueError(f"unknown browser {name!r}")


def start_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissing("python playwright missing in .venv; run `bash scripts/setup.sh`") from exc
    return sync_playwright().start()


def version_of(name: str, browser: Any) -> str:
    try:
        return str(browser.version)
    except Exception:  # a BiDi/WebDriver quirk must not fail a test run
        return "unknown"


# ------------------------------------------------------------------ capabilities

# Run once per browser in a secure-context page (http://127.0.0.1). Every entry is what the
# browser really does, so a gap in the matrix carries the reason measured in that browser.
PROBE_JS = """
async () => {
  const has = (n) => typeof globalThis[n] === 'function' || typeof globalThis[n] === 'object';
  const caps = {
    userAgent: navigator.userAgent,
    isSecureContext: globalThis.isSecureContext === true,
    WebAssembly: typeof WebAssembly === 'object',
    WebSocket: typeof WebSocket === 'function',
    WebTransport: typeof WebTransport === 'function',
    RTCPeerConnection: typeof RTCPeerConnection === 'function',
    subtle: !!(globalThis.crypto && crypto.subtle),
  };
  const subtle = caps.subtle ? crypto.subtle : null;
  const tryAlg = async (f) => { try { await f(); return true } catch (e) { return `${e.name}: ${e.message}` } };
  if (subtle) {
    // the RFC 8439 2.8.2 tag: a partial implementation must not count as support
    caps.webcryptoChaCha20Poly1305 = await tryAlg(async () => {
      const hex = (s) => Uint8Array.from(s.match(/../g), (h) => parseInt(h, 16));
      const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
      const k = await subtle.importKey('raw-secret', key, { name: 'ChaCha20-Poly1305' }, false, ['encrypt']);
      const pt = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
      const ct = new Uint8Array(await subtle.encrypt(
        { name: 'ChaCha20-Poly1305', iv: hex('070000004041424344454647'), additionalData: hex('50515253c0c1c2c3c4c5c6c7') }, k, pt));
      const tag = Array.from(ct.subarray(ct.length - 16), (x) => x.toString(16).padStart(2, '0')).join('');
      if (tag !== '1ae10b594f09e26a7e902ecbd0600691') throw new Error('wrong RFC 8439 tag ' + tag);
    });
    caps.webcryptoEd25519 = await tryAlg(() => subtle.generateKey({ name: 'Ed25519' }, false, ['sign']));
    caps.webcryptoX25519 = await tryAlg(() => subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']));
    caps.webcryptoRSA = await tryAlg(() => subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 1024, publicExponent: Uint8Array.of(1, 0, 1) }, false, ['sign']));
  }
  if (caps.RTCPeerConnection) {
    // two peer connections in this page over loopback: does a data channel open at all here?
    const t0 = performance.now();
    caps.webrtcLoopback = await Promise.race([
      (async () => {
        const a = new RTCPeerConnection({ iceServers: [] }), b = new RTCPeerConnection({ iceServers: [] });
        try {
          a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate).catch(() => {});
          b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate).catch(() => {});
          const opened = new Promise((res) => { b.ondatachannel = (e) => { e.channel.onopen = () => res(true) } });
          a.createDataChannel('probe');
          await a.setLocalDescription(await a.createOffer());
          await b.setRemoteDescription(a.localDescription);
          await b.setLocalDescription(await b.createAnswer());
          await a.setRemoteDescription(b.localDescription);
          await opened;
          return true;
        } catch (e) { return `${e.name}: ${e.message}` } finally { a.close(); b.close() }
      })(),
      new Promise((res) => setTimeout(() => res('no data channel within 5 s'), 5000)),
    ]);
    caps.webrtcLoopbackMs = Math.round(performance.now() - t0);
  }
  return caps;
}
"""

# Browser APIs a feature may need, and how their absence is explained.
API_TESTS = {
    "WebAssembly": "typeof WebAssembly === 'undefined'",
    "WebSocket": "typeof WebSocket === 'undefined'",
    "WebTransport": "typeof WebTransport === 'undefined'",
    "RTCPeerConnection": "typeof RTCPeerConnection === 'undefined'",
    "subtle": "crypto.subtle is undefined",
}

# Feature labels (lower-cased) that imply an API, for modules that declare none.
IMPLIED_NEEDS = (("webtransport", "WebTransport"), ("webrtc", "RTCPeerConnection"))


def probe(page: Any) -> dict[str, Any]:
    return page.evaluate(PROBE_JS)


def needs_for(feature: str, declared: Iterable[str] = ()) -> tuple[str, ...]:
    out = list(declared)
    low = feature.lower()
    for word, api in IMPLIED_NEEDS:
        if word in low and api not in out:
            out.append(api)
    return tuple(out)


def unsupported_reason(name: str, version: str, caps: dict[str, Any], needs: Iterable[str]) -> str | None:
    """None when the browser has every API in ``needs``; else why not, as measured."""
    missing = [api for api in needs if caps.get(api) is not True]
    if not missing:
        return None
    why = "; ".join(f"{API_TESTS.get(api, api + ' missing')}" for api in missing)
    return f"{LABELS.get(name, name)} {version}: {why}"


def feature_from_module(stem: str) -> str:
    """A default feature label for a test module without a browser_feature marker."""
    s = stem.removeprefix("test_")
    if s.startswith("webtransport"):
        return "WebTransport"
    if s.startswith("webrtc"):
        return "WebRTC"
    return s.replace("_", " ")
