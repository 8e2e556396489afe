"""Every limit specviz enforces, in one place: the CLI, the app, the loaders and the theory
views read them from here, and the messages that refuse a value quote them.

The decoder's own limits come first; the app and the trace loader bound what a user (or a
crafted file) can make the server do.
"""

from __future__ import annotations

# ---------------------------------------------------------------- the decoder
GAMMA_MIN = 1
GAMMA_MAX = 32  # drafted tokens per step (static buffers on the device are this long)
MAX_NEW_TOKENS_MAX = 4096  # tokens one run may emit
TOP_ALTERNATIVES_MAX = 50  # top-k of p and q recorded per drafted position
TOP_K_MAX = 1000

# ---------------------------------------------------------------- the app
APP_MAX_NEW_TOKENS = 512  # the sidebar's slider stops here (a live run stays interactive)
