"""Peak memory of reading the worst trace uploads the app accepts, and of refusing bombs.

Usage:  PYTHONPATH=. python scripts/upload_memory.py [--out DIR] [--markdown FILE] [--app]

Loader: each file is read in a fresh process, as the app reads an upload (read_traces /
read_parquet_traces on the uploaded bytes), followed by the tidy frames the views build from
its first run. The figure is the process's peak resident memory (VmHWM) minus its level
just before the read, with the upload's bytes already in memory.

App (--app): a Streamlit server is started; a headless Chromium uploads each file in turn in
the trace inspector of one session (removing the previous upload first, as a user would) and
waits for the page to show the run or the refusal; the figures are the server's peak resident
memory since it started (VmHWM) and its resident memory then (VmRSS). Each open session keeps
what its page shows, so sessions add up; a closed one is kept for Streamlit's
server.disconnectedSessionTTL (2 minutes) before its memory is freed.

The worst accepted files fill the memory budget (specviz.limits.MAX_TRACE_MB) with the most
expensive values: steps of gamma 32 with top-50 lists of 2-character texts, or of 1-character
emoji texts, or with 1000-character texts; the first two as Parquet too. The bombs are
Parquet files that expand: rows that repeat, one text repeated on every row, one row holding
10^8 list entries (tests/data/bad-input); a page that decompresses to 110 MB while the footer
says 1 KB (each codec), 1000 row groups; and JSON Lines of run records whose hardware holds
millions of empty objects, or 49 MB of blank lines.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specviz.limits import MAX_TRACE_MB, MAX_UPLOAD_MB  # noqa: E402
from tests._bad_files import (  # noqa: E402
    CORPUS,
    blank_lines,
    many_row_groups,
    nested_hardware,
    to_parquet,
    understated_parquet,
    worst_jsonl,
)

CHILD = r"""
import gc, sys, time
sys.path.insert(0, sys.argv[2])
from specviz.traces import frames as F
from specviz.traces.records import read_traces, TraceError
data = open(sys.argv[1], "rb").read()
def rss():  # the peak since this program started (ru_maxrss would count the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
gc.collect(); r0 = rss(); t0 = time.perf_counter()
try:
    if sys.argv[1].endswith(".parquet"):
        from specviz.traces.parquet import read_parquet_traces
        traces = read_parquet_traces(data, source="upload")
    else:
        traces = read_traces(data, source="upload")
    t = traces[0]
    frames = [F.steps_frame(t), F.drafts_frame(t), F.tokens_frame(t), F.position_frame(t)]
    what = f"loaded: {sum(len(x.steps) for x in traces)} steps"
except TraceError as e:
    what = "refused: " + str(e).split(": ", 1)[1][:70]
print(f"{rss() - r0:.0f}\t{time.perf_counter() - t0:.1f}\t{what}")
"""


def make_files(out: Path) -> list[Path]:
    cases = {
        "worst-ascii.jsonl": lambda: worst_jsonl("ab"),
        "worst-emoji.jsonl": lambda: worst_jsonl("\U0001F600"),
        "worst-long-text.jsonl": lambda: worst_jsonl("x" * 1000, k=5),
        "worst-ascii.parquet": lambda: to_parquet(worst_jsonl("ab")),
        "worst-emoji.parquet": lambda: to_parquet(worst_jsonl("\U0001F600")),
        # refused: objects in run records, blank lines, pages that decompress to more than
        # their footer says, many row groups
        "hardware-objects.jsonl": lambda: nested_hardware(lines=6, mb=7.5),
        "blank-lines.jsonl": lambda: blank_lines(49),
        **{f"understated-{codec}.parquet": (lambda c=codec: understated_parquet(c))
           for codec in ("brotli", "zstd", "gzip", "lz4", "snappy")},
        "row-groups-1000.parquet": lambda: many_row_groups(1000),
    }
    paths = []
    for name, make in cases.items():
        (out / name).write_bytes(make())
        paths.append(out / name)
    return paths + sorted(CORPUS.glob("bomb-*.parquet"))


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MB" if size > 2**20 else f"{size / 1024:.0f} KB"


def measure_loader(paths: list[Path]) -> list[str]:
    rows = ["| file | size | loader peak (MB above the level before) | s | outcome |",
            "|---|---|---|---|---|"]
    for path in paths:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(ROOT)],
                             capture_output=True, text=True, check=True).stdout.strip()
        peak, secs, what = out.split("\t")
        rows.append(f"| {path.name} | {_size(path)} | {peak} | {secs} | {what} |")
        print(rows[-1], flush=True)
    return rows


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def measure_app(paths: list[Path], out: Path, malloc: bool = False) -> list[str]:
    from playwright.sync_api import sync_playwright

    from tests._browser import ARGS, CHROMIUM
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPECVIZ_TRACES_DIR=str(ROOT / "no-traces"))
    if malloc:  # every allocation through glibc, whose freed pages malloc_trim hands back
        env["PYTHONMALLOC"] = "malloc"
    log = open(out / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = ["| file | server peak after it (VmHWM, MB) | server now (VmRSS, MB) | page shows |",
            "|---|---|---|---|"]
    try:
        time.sleep(8)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            page.goto(f"http://127.0.0.1:{port}/inspector")
            page.get_by_role("heading", name="Trace inspector").wait_for()
            page.wait_for_timeout(3000)
            rows.append(f"| (inspector open, nothing uploaded) | {_vm(server.pid, 'VmHWM'):.0f} "
                        f"| {_vm(server.pid, 'VmRSS'):.0f} | |")
            print(rows[-1], flush=True)
            together = [p for p in paths if p.name.startswith("worst-")][:3]
            for path in [*paths, together]:
                # one session, as one user: the files of the previous upload removed first
                remove = page.locator(".st-key-insp_uploads [data-testid='stFileChipDeleteBtn']")
                while remove.count():
                    remove.first.click()
                    page.wait_for_timeout(500)
                page.get_by_text("Choose a bundled trace or upload one").wait_for()
                page.locator(".st-key-insp_uploads input[type='file']").set_input_files(
                    [str(p) for p in path] if isinstance(path, list) else str(path))
                shown = page.get_by_text("One run in detail").or_(
                    page.get_by_text("Cannot open this file"))
                try:
                    shown.first.wait_for()
                except Exception:
                    page.screenshot(path=str(out / "stuck.png"))
                    raise
                page.wait_for_timeout(3000)  # the page's charts, drawn after the text
                what = "the run" if page.get_by_text("One run in detail").count() else \
                    "the refusal"
                refused = page.get_by_text("Cannot open this file").count()
                if isinstance(path, list):
                    what = f"the first file's run; {refused} of {len(path)} files not opened"
                name = " + ".join(p.name for p in path) if isinstance(path, list) else path.name
                rows.append(f"| {name} | {_vm(server.pid, 'VmHWM'):.0f} | "
                            f"{_vm(server.pid, 'VmRSS'):.0f} | {what} |")
                print(rows[-1], flush=True)
            remove = page.locator(".st-key-insp_uploads [data-testid='stFileChipDeleteBtn']")
            while remove.count():
                remove.first.click()
                page.wait_for_timeout(500)
            page.get_by_text("Choose a bundled trace or upload one").wait_for()
            page.wait_for_timeout(5000)
            rows.append(f"| (every upload removed) | {_vm(server.pid, 'VmHWM'):.0f} | "
                        f"{_vm(server.pid, 'VmRSS'):.0f} | |")
            print(rows[-1], flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="artifacts/upload-memory", help="where the files go")
    ap.add_argument("--markdown", default=None, help="also write the tables here")
    ap.add_argument("--app", action="store_true", help="also measure a Streamlit server")
    ap.add_argument("--malloc", action="store_true",
                    help="run the server with PYTHONMALLOC=malloc (memory of removed uploads "
                         "goes back to the system)")
    ap.add_argument("--only", nargs="*", default=None,
                    help="measure only the files whose names start with these")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = make_files(out)
    if args.only:
        paths = [p for p in paths if p.name.startswith(tuple(args.only))]
    tables = measure_loader(paths)
    if args.app:
        tables += [""] + measure_app(paths, out, args.malloc)
    note = (f"Limits: upload {MAX_UPLOAD_MB} MB, memory budget {MAX_TRACE_MB} MB. "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; load average "
            f"{os.getloadavg()[0]:.1f} at the end.")
    print(note)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(tables) + "\n\n" + note + "\n")


if __name__ == "__main__":
    main()
