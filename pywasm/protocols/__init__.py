"""Sans-IO protocol cores (no sockets, no clocks of their own)."""
