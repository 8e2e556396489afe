"""Every limit specviz enforces, in one place: the CLI, the app, the loaders and the theory
views read them from here, and the messages that refuse a value quote them.

The decoder's own limits come first; the trace loaders hold a file to what the decoder can
write, and the app bounds what a user (or a crafted file) can make the server do.
docs/limits.md lists them with the memory they allow.
"""

from __future__ import annotations

# ---------------------------------------------------------------- the decoder
GAMMA_MIN = 1
GAMMA_MAX = 32  # drafted tokens per step (static buffers on the device are this long)
TREE_NODES_MAX = 64  # nodes a token tree drafts per step
TREE_DEPTH_MAX = 16  # a token tree is at most this deep
TREE_HELP = ("a token tree instead of a chain: branching per depth, e.g. 3,2,1 (3 + 6 + 6 "
             "nodes), or dynamic:BUDGET[:DEPTH[:TOP_K]] (EAGLE-2: the most probable nodes, e.g. "
             f"dynamic:16:6:4); at most {TREE_NODES_MAX} nodes and depth {TREE_DEPTH_MAX}")
MAX_NEW_TOKENS_MAX = 4096  # tokens one run may emit
TOP_ALTERNATIVES_MAX = 50  # top-k of p and q recorded per drafted position
TOP_K_MAX = 1000
# The smallest top-p: below it float32 rounds p's cut to 0 and sampling turns p and q into NaN;
# any top-p this small keeps only the most probable token anyway (no vocabulary reaches 10^6).
TOP_P_MIN = 1e-6
# Sampling temperature: 0 is greedy; a positive one must lie in [MIN, MAX]. Below MIN,
# logits / temperature overflow float32 for ordinary logits and the probabilities turn NaN;
# above MAX every distribution is practically uniform.
TEMPERATURE_MIN = 0.01
TEMPERATURE_MAX = 100.0
# Prompt size. A prompt longer than this many characters is refused before it is tokenized
# (tokenizing 1 M characters takes about 1 s and 120 MB); a shorter one is refused without
# tokenizing when it cannot fit the context (see models.check_prompt_size).
MAX_PROMPT_CHARS = 1_000_000
MAX_PROMPTS_FILE_MB = 64  # a --prompts file (JSON Lines); read no further than this
MAX_CONTEXT_TOKENS = 131_072  # prompt tokens a trace may record (the largest contexts)

# ---------------------------------------------------------------- trace files
# One trace file uploaded to the app (JSON Lines or Parquet), in MB of 10^6 bytes as the
# browser counts them on Linux and macOS (the server's cap, config.toml, is in MiB: 5% more).
MAX_UPLOAD_MB = 50
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1_000_000
MAX_LINE_CHARS = 8_000_000  # one JSON Lines record (a run record holds the prompt)
MAX_RUNS_PER_FILE = 2000
MAX_STEPS_PER_RUN = MAX_NEW_TOKENS_MAX  # every step emits at least one token
MAX_TOKEN_CHARS = 1000  # the text of one token (decoded on its own)
# What the values of one file (token ids, texts, probabilities, top-k entries) take in
# memory, estimated from their count and length (trace._cost), whatever the file's size on
# disk or its compression.
MAX_TRACE_MB = 120  # one file; the app holds all the files of one upload, and its cache, to it
# Parquet exports, checked from the file's footer before any page is read: rows (one per
# drafted position) and what the columns read decode to (pages, and 12 bytes a value).
MAX_PARQUET_ROWS = 200_000
MAX_PARQUET_DECODED_MB = 100

# ---------------------------------------------------------------- the app
APP_MAX_NEW_TOKENS = 512  # the sidebar's slider stops here (a live run stays interactive)
