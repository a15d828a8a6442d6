"""Applications built on the pywasm API (pure Python: they run in Pyodide and natively)."""
