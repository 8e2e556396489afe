"""Peak memory of reading the worst trace uploads the app accepts (and of refusing bombs).

Usage:  PYTHONPATH=. python scripts/upload_memory.py [--out DIR] [--markdown FILE]

Each file is read in a fresh process, as the app reads an upload (specviz.read_traces /
read_parquet_traces on the uploaded bytes), followed by the tidy frames the views build
from the first run. The figure is the process's peak resident memory (ru_maxrss) minus its
level just before the read, with the upload's bytes already in memory. The worst accepted
files fill the memory budget (specviz.limits.MAX_TRACE_MB) with the most expensive values:
steps of gamma 32 with top-50 lists of 2-character texts, of 1-character emoji texts, or of
1000-character texts; the same as Parquet; and Parquet files built to expand (rows that
repeat, one text repeated on every row, one row holding 10^8 list entries).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specviz.limits import MAX_TRACE_MB, MAX_UPLOAD_MB  # noqa: E402
from specviz.trace import TraceError, dumps, read_traces  # noqa: E402

CHILD = r"""
import gc, resource, sys, time
sys.path.insert(0, sys.argv[2])
from specviz import frames as F
from specviz.trace import read_traces, TraceError
data = open(sys.argv[1], "rb").read()
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
gc.collect(); r0 = rss(); t0 = time.perf_counter()
try:
    if sys.argv[1].endswith(".parquet"):
        from specviz.parquet import read_parquet_traces
        traces = read_parquet_traces(data, source="upload")
    else:
        traces = read_traces(data, source="upload")
    t = traces[0]
    frames = [F.steps_frame(t), F.drafts_frame(t), F.tokens_frame(t), F.position_frame(t)]
    what = f"loaded: {len(traces)} run(s), {sum(len(x.steps) for x in traces)} steps"
except TraceError as e:
    what = "refused: " + str(e).split(": ", 1)[1][:90]
print(f"{rss() - r0:.0f}\t{time.perf_counter() - t0:.1f}\t{r0:.0f}\t{what}")
"""


def run_record() -> dict:
    return {"record": "run", "schema_version": 2, "run_id": "worst", "mode": "speculative",
            "target": {"source": "t"}, "draft": {"source": "d"}, "drafter": "model",
            "config": {"gamma": 32, "temperature": 1.0}, "prompt_text": "hi",
            "prompt_token_ids": [1, 2], "hardware": {}}


def step_record(i: int, text: str, g: int = 32, k: int = 50) -> dict:
    """A step of gamma g, every draft accepted, top-k lists of k entries at each position."""
    tid, prob = 300 + i % 1000, 0.1 + (i % 7) / 100
    return {"record": "step", "step": i, "gamma": g, "drafted_ids": [tid] * g,
            "drafted_text": [text] * g, "q": [prob] * g, "p": [prob] * g,
            "accept_prob": [1.0] * g, "u": [prob] * g, "accepted": [True] * g,
            "emitted_ids": [tid] * (g + 1), "emitted_text": [text] * (g + 1),
            "emitted_kinds": ["accepted"] * g + ["bonus"],
            "p_top_ids": [[tid] * k] * g, "p_top_texts": [[text] * k] * g,
            "p_top_probs": [[prob] * k] * g, "q_top_ids": [[tid] * k] * g,
            "q_top_texts": [[text] * k] * g, "q_top_probs": [[prob] * k] * g,
            "beta": [prob] * g}


def jsonl(text: str, n_steps: int, k: int = 50) -> bytes:
    lines = [dumps(run_record())] + [dumps(step_record(i, text, k=k)) for i in range(n_steps)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def worst_jsonl(text: str, k: int = 50) -> bytes:
    """The most steps of this kind that the loader still accepts (binary search)."""
    lo, hi = 1, 4096
    while lo < hi:
        mid = (lo + hi + 1) // 2
        data = jsonl(text, mid, k)
        try:
            if len(data) > MAX_UPLOAD_MB * 2**20:
                raise TraceError("too large")
            read_traces(data)
            lo = mid
        except TraceError:
            hi = mid - 1
    return jsonl(text, lo, k)


def parquet_bomb(rows: int, text: str = "x", list_entries: int | None = None) -> bytes:
    """A valid-looking export whose rows repeat one real position row (compress to little)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from specviz.parquet import (
        METADATA_KEY,
        PARQUET_FORMAT,
        PARQUET_VERSION,
        SCHEMA,
        traces_to_rows,
    )
    trace = read_traces(jsonl("ab", 1, k=5))
    row = dict(traces_to_rows(trace)[0], drafted_text=text)
    if list_entries:
        row["p_top_ids"] = [1] * list_entries
    one = pa.table({n: pa.array([row.get(n)], SCHEMA.field(n).type) for n in SCHEMA.names})
    table = one.take(pa.array([0] * rows)).replace_schema_metadata(
        {METADATA_KEY: json.dumps({"format": PARQUET_FORMAT, "version": PARQUET_VERSION})})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def to_parquet(data: bytes) -> bytes:
    from specviz.parquet import traces_to_parquet
    buf = io.BytesIO()
    traces_to_parquet(read_traces(data), buf)
    return buf.getvalue()


def measure(path: Path) -> tuple[float, float, float, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(ROOT)],
                         capture_output=True, text=True, check=True).stdout.strip()
    peak, secs, base, what = out.split("\t")
    return float(peak), float(secs), float(base), what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="artifacts/upload-memory", help="where the files go")
    ap.add_argument("--markdown", default=None, help="also write the table here")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = {
        "worst-ascii.jsonl": lambda: worst_jsonl("ab"),
        "worst-emoji.jsonl": lambda: worst_jsonl("\U0001F600"),
        "worst-long-text.jsonl": lambda: worst_jsonl("x" * 1000, k=5),
        "worst-ascii.parquet": lambda: to_parquet(worst_jsonl("ab")),
        "worst-emoji.parquet": lambda: to_parquet(worst_jsonl("\U0001F600")),
        "bomb-rows.parquet": lambda: parquet_bomb(100_000),
        "bomb-text.parquet": lambda: parquet_bomb(20_000, text="y" * 20_000),
        "bomb-list.parquet": lambda: parquet_bomb(2000, list_entries=100_000),
    }
    rows = ["| file | size | peak memory above the level before | seconds | outcome |",
            "|---|---|---|---|---|"]
    for name, make in cases.items():
        path = out / name
        path.write_bytes(make())
        peak, secs, base, what = measure(path)
        size = path.stat().st_size
        shown = f"{size / 2**20:.1f} MB" if size > 2**20 else f"{size / 1024:.0f} KB"
        rows.append(f"| {name} | {shown} | {peak:.0f} MB | {secs:.1f} | {what} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    note = (f"\nLimits: upload {MAX_UPLOAD_MB} MB, memory budget {MAX_TRACE_MB} MB; "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}.")
    print(note)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n" + note + "\n")


if __name__ == "__main__":
    main()
