"""pywasm-relay: the native node browsers reach first (docs/browser-plan.md)."""
