"""Peak memory of reading the worst trace uploads the app accepts, and of refusing bombs.

Usage:  PYTHONPATH=. python scripts/upload_memory.py [--out DIR] [--markdown FILE] [--app]
        [--probe] [--malloc] [--only NAME ...]

Loader: each file is read in a fresh process, as the app reads an upload (read_traces /
read_parquet_traces on the uploaded bytes), followed by the tidy frames the views build from
its first run. The figure is the process's peak resident memory (VmHWM) minus its level
just before the read, with the upload's bytes already in memory.

App (--app): a Streamlit server is started; a headless Chromium first uploads a 3-step trace
as JSON Lines and as Parquet and removes it (the warm start: what a first upload imports and
sets up for good), then uploads each file in turn in the trace inspector of one session
(removing the previous upload first, as a user would), then the three worst JSON Lines files
at once, then removes them (the last first); it waits for the page to show the run or the
refusal each time. The figures are the server's peak resident memory since it started
(VmHWM) and its resident memory then (VmRSS). --probe also writes, at the start and after
the last removal, what holds the server's memory (glibc's and Python's allocators, Streamlit's
caches, live traces and uploaded files and what refers to them) to OUT/probe.txt. Each open
session keeps what its page shows, so sessions add up; a closed one is kept for Streamlit's
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
import signal
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
    jsonl,
    many_row_groups,
    nested_hardware,
    run_record,
    step_record,
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

PROBE = r"""
# installed in the server by upload_memory.py --probe (a sitecustomize): SIGUSR1 writes what
# holds memory to $SPECVIZ_PROBE_OUT
import os, signal

def _probe(*_):
    import collections, ctypes, gc, sys
    out = open(os.environ["SPECVIZ_PROBE_OUT"], "a")
    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    def heap():
        m = libc.mallinfo2()
        return (f"glibc: arenas {m.arena / 2**20:.0f} MB, mmapped {m.hblkhd / 2**20:.0f} MB, "
                f"in use {m.uordblks / 2**20:.0f} MB, free {m.fordblks / 2**20:.0f} MB")
    print(f"== probe: VmRSS {rss():.0f} MB; {heap()}", file=out)
    gc.collect()
    libc.malloc_trim(0)
    print(f"after gc + malloc_trim: VmRSS {rss():.0f} MB; {heap()}; "
          f"Python blocks {sys.getallocatedblocks()}", file=out)
    try:
        from streamlit.runtime import Runtime
        stats = Runtime.instance().stats_mgr.get_stats()
        if isinstance(stats, dict):
            stats = [s for v in stats.values() for s in v]
        sizes = collections.Counter()
        for s in stats:
            if hasattr(s, "byte_length"):
                sizes[(s.category_name, s.cache_name)] += s.byte_length
        for (cat, name), n in sizes.most_common(15):
            print(f"  streamlit {cat} {name}: {n / 2**20:.1f} MB", file=out)
    except Exception as e:
        print(f"  streamlit stats: {e!r}", file=out)
    try:
        from ui import uploads
        print(f"  uploads cache: {len(uploads.PARSED._items)} files, "
              f"{uploads.PARSED.used() / 2**20:.1f} MB; {len(uploads.PARSED.refused)} refusals",
              file=out)
    except Exception as e:
        print(f"  uploads: {e!r}", file=out)
    objs = gc.get_objects()
    count, size = collections.Counter(), collections.Counter()
    for o in objs:
        t = f"{type(o).__module__}.{type(o).__qualname__}"
        count[t] += 1
        try:
            size[t] += sys.getsizeof(o)
        except Exception:
            pass
    print(f"  {len(objs)} tracked objects; the largest types by size:", file=out)
    for t, n in size.most_common(15):
        print(f"    {t}: {count[t]} objects, {n / 2**20:.1f} MB", file=out)
    try:
        from specviz import Trace
        live = [o for o in objs if isinstance(o, Trace)]
        print(f"  live Trace objects: {len(live)}", file=out)
        from streamlit.runtime.uploaded_file_manager import UploadedFile
        files = [o for o in objs if isinstance(o, UploadedFile)]
        print(f"  live UploadedFile objects: {len(files)}", file=out)
        skip = {id(objs), id(live), id(files)}
        for o in live[:3] + files[:3]:
            print(f"    {type(o).__name__} {len(o.steps) if isinstance(o, Trace) else o.name}"
                  " is held by:", file=out)
            _chain(o, skip, out, 1, set())
    except Exception as e:
        print(f"  traces: {e!r}", file=out)
    del objs
    err = os.dup(2)
    os.dup2(out.fileno(), 2)
    out.flush()
    sys._debugmallocstats()
    os.dup2(err, 2)
    os.close(err)
    print("== end", file=out)
    out.close()

def _describe(r):
    import types
    if isinstance(r, types.FrameType):
        return f"frame {r.f_code.co_name} {r.f_code.co_filename}:{r.f_lineno}"
    if isinstance(r, dict):
        keys = [str(k)[:40] for k in list(r)[:8]]
        return f"dict of {len(r)} keys {keys}"
    if isinstance(r, (list, tuple)):
        return f"{type(r).__name__} of {len(r)}"
    if isinstance(r, types.FunctionType):
        return f"function {r.__module__}.{r.__qualname__}"
    return f"{type(r).__module__}.{type(r).__qualname__}"


def _chain(o, skip, out, depth, seen):
    import gc, sys
    if depth > 9:
        return
    me = sys._getframe()
    refs = [r for r in gc.get_referrers(o) if id(r) not in skip and r is not me
            and id(r) not in seen and not (hasattr(r, "f_code")
            and r.f_code.co_name in ("_chain", "_probe"))]
    skip.add(id(refs))
    for r in refs[:3]:
        if type(r).__name__ == "list_iterator":
            continue
        seen.add(id(r))
        print("      " + "  " * depth + _describe(r), file=out)
        if hasattr(r, "__dict__") and type(r).__module__ == "types":
            continue
        _chain(r, skip, out, depth + 1, seen)


def _safe_probe(*_):
    try:
        _probe()
    except Exception as e:
        with open(os.environ["SPECVIZ_PROBE_OUT"], "a") as out:
            print(f"probe failed: {e!r}\n== end", file=out)

signal.signal(signal.SIGUSR1, _safe_probe)
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


def _probe(server: subprocess.Popen, out: Path, when: str) -> None:
    """What holds the server's memory now (--probe), appended to out/probe.txt."""
    report = out / "probe.txt"
    with report.open("a") as f:
        print(f"\n#### {when}", file=f)
    ends = report.read_text().count("== end")
    os.kill(server.pid, signal.SIGUSR1)
    for _ in range(600):
        time.sleep(0.5)
        if report.read_text().count("== end") > ends:
            return


def _upload(page, paths: list[Path], out: Path) -> None:
    """Upload these files in the inspector and wait for the page to show them."""
    page.locator(".st-key-insp_uploads input[type='file']").set_input_files(
        [str(p) for p in paths])
    shown = page.get_by_text("One run in detail").or_(page.get_by_text("Cannot open this file"))
    try:
        shown.first.wait_for()
    except Exception:
        page.screenshot(path=str(out / "stuck.png"))
        raise
    page.wait_for_timeout(3000)  # the page's charts, drawn after the text


def _remove_all(page, settle_ms: int = 5000) -> None:
    """Remove the inspector's uploads, the last first (removing the first of several would
    open the next, which the budget had kept closed), then let the page settle."""
    remove = page.locator(".st-key-insp_uploads [data-testid='stFileChipDeleteBtn']")
    if not remove.count():
        return
    while remove.count():
        remove.last.click()
        page.wait_for_timeout(500)
    page.get_by_text("Choose a bundled trace or upload one").wait_for()
    page.wait_for_timeout(settle_ms)


def measure_app(paths: list[Path], out: Path, malloc: bool = False,
                probe: bool = False) -> list[str]:
    from playwright.sync_api import sync_playwright

    from tests._browser import ARGS, CHROMIUM
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPECVIZ_TRACES_DIR=str(ROOT / "no-traces"))
    if malloc:  # every allocation through glibc, whose freed pages malloc_trim hands back
        env["PYTHONMALLOC"] = "malloc"
    if probe:
        (out / "probe").mkdir(exist_ok=True)
        (out / "probe" / "sitecustomize.py").write_text(PROBE)
        (out / "probe.txt").write_text("")
        env.update(PYTHONPATH=f"{out / 'probe'}{os.pathsep}{ROOT}",
                   SPECVIZ_PROBE_OUT=str(out / "probe.txt"))
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
            if probe:
                _probe(server, out, "inspector open, nothing uploaded")
            # a warm start: what the first upload of each kind imports and sets up for good
            # (pyarrow's Parquet reader, Plotly's validators, the views' code) is not an
            # upload's memory
            small = jsonl([run_record(run_id="warm-up")] + [step_record(i, k=5)
                                                            for i in range(3)])
            (out / "warm-up.jsonl").write_bytes(small)
            (out / "warm-up.parquet").write_bytes(to_parquet(small))
            _upload(page, [out / "warm-up.jsonl", out / "warm-up.parquet"], out)
            _remove_all(page)
            rows.append(f"| (a 3-step trace uploaded as JSON Lines and as Parquet, then removed: "
                        f"the warm start) | {_vm(server.pid, 'VmHWM'):.0f} | "
                        f"{_vm(server.pid, 'VmRSS'):.0f} | |")
            print(rows[-1], flush=True)
            together = [p for p in paths if p.name.startswith("worst-")][:3]
            for path in [*paths, together]:
                # one session, as one user: the files of the previous upload removed first
                _remove_all(page, 1000)
                _upload(page, path if isinstance(path, list) else [path], out)
                what = "the run" if page.get_by_text("One run in detail").count() else \
                    "the refusal"
                refused = page.get_by_text("Cannot open this file").count()
                if isinstance(path, list):
                    what = f"the first file's run; {refused} of {len(path)} files not opened"
                name = " + ".join(p.name for p in path) if isinstance(path, list) else path.name
                rows.append(f"| {name} | {_vm(server.pid, 'VmHWM'):.0f} | "
                            f"{_vm(server.pid, 'VmRSS'):.0f} | {what} |")
                print(rows[-1], flush=True)
            _remove_all(page)
            rows.append(f"| (every upload removed) | {_vm(server.pid, 'VmHWM'):.0f} | "
                        f"{_vm(server.pid, 'VmRSS'):.0f} | |")
            print(rows[-1], flush=True)
            if probe:
                _probe(server, out, "every upload removed")
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
    ap.add_argument("--probe", action="store_true",
                    help="write what holds the server's memory, at start and after every "
                         "upload is removed, to OUT/probe.txt")
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
        tables += [""] + measure_app(paths, out, args.malloc, args.probe)
    note = (f"Limits: upload {MAX_UPLOAD_MB} MB, memory budget {MAX_TRACE_MB} MB. "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; load average "
            f"{os.getloadavg()[0]:.1f} at the end.")
    print(note)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(tables) + "\n\n" + note + "\n")


if __name__ == "__main__":
    main()
