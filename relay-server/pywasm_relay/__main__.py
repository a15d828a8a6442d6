"""``python -m pywasm_relay`` (the same as the ``pywasm-relay`` console script)."""

from __future__ import annotations

import sys

from .app import main

sys.exit(main())
