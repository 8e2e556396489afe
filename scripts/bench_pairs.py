"""Both model pairs side by side on one device: target-only, the draft model, the feature head
(where the pair has one), the best token tree, transformers' assisted generation with the same
draft, transformers' static-cache generate; per prompt category; float32 and bfloat16 (each
half-precision run compared with the float32 target-only output, the exact reference).

    python scripts/bench_pairs.py --device cpu                  # the 135M and Qwen pairs
    python scripts/bench_pairs.py --device cuda --pairs qwen
    python scripts/bench_pairs.py --device cpu --pairs tiny --max-new-tokens 8 --repeats 1

Every measurement is a `python -m specviz bench` run (its command is recorded); the results go
to docs/bench/pairs/<device>-<stamp>.{json,md,log}, with the hardware, the versions and the
machine's load average before and after each run. Speed-ups are taken within one bench run
(methods interleaved prompt by prompt), each against that run's target-only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {
    "smollm2": ("embedded:smollm2-135m-instruct", "default"),
    "qwen": ("embedded:qwen2.5-coder-1.5b-instruct", "embedded:qwen2.5-coder-0.5b-instruct"),
    "tiny": ("embedded:tiny-random-target", "embedded:tiny-random-draft"),
}
TREES = "chain 2-2-1 3-2-1 2-2-2-1 dynamic:16:6 dynamic:24:8"


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", required=True, help="cpu, cuda or cuda:N")
    p.add_argument("--pairs", default="smollm2,qwen",
                   help=f"comma-separated, of {', '.join(PAIRS)} (default smollm2,qwen)")
    p.add_argument("--prompts", default=str(ROOT / "assets/prompts/heldout.jsonl"))
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--engines", default=None,
                   help="specviz engines (default: eager,static on a CPU, graphs on a GPU)")
    p.add_argument("--trees", default=TREES, help=f"trees to try (default {TREES!r})")
    p.add_argument("--no-transformers-static", action="store_true",
                   help="leave out transformers' static-cache generate (it compiles first)")
    p.add_argument("--no-chat", action="store_true", help="no chat template (tiny models)")
    p.add_argument("--out", default=str(ROOT / "docs/bench/pairs"))
    p.add_argument("--stamp", default=datetime.now(timezone.utc).strftime("%Y%m%d-%H%M"))
    a = p.parse_args(argv)
    if bad := [x for x in a.pairs.split(",") if x not in PAIRS]:
        p.error(f"unknown pair {bad[0]!r}; use {', '.join(PAIRS)}")
    return a


class Log:
    """Lines to the terminal and to the .log file."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.f.write(text + "\n")
        self.f.flush()


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench(log: Log, a, name: str, extra: list[str], js: Path) -> dict:
    """One `specviz bench` run writing ``js``; its output streamed into the log; its JSON,
    or the error."""
    cmd = [sys.executable, "-m", "specviz", "bench", "--device", a.device, "--prompts",
           a.prompts, "--max-new-tokens", str(a.max_new_tokens), "--repeats", str(a.repeats),
           "--json", str(js), *(["--no-chat"] if a.no_chat else []), *extra]
    before = _load()
    log(f"\n## {name}\n$ {shlex.join(cmd)}\nload average before: {before}")
    t = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    tail: list[str] = []
    for line in p.stdout:
        log(line.rstrip("\n"))
        tail = (tail + [line.rstrip("\n")])[-3:]
    rc = p.wait()
    run = {"name": name, "command": shlex.join(cmd), "rc": rc, "load_before": before,
           "load_after": _load(), "wall_s": round(time.time() - t, 1)}
    log(f"rc {rc}, {run['wall_s']} s, load average after: {run['load_after']}")
    if rc == 0 and js.exists():
        run["result"] = json.loads(js.read_text())
    else:
        run["error"] = next((x for x in reversed(tail) if x.strip()), f"exit {rc}")
    return run


def pair_runs(log: Log, a, key: str, engines: str, tmp: Path) -> dict:
    """Every bench run of one pair, a dtype at a time (float32 first: its target-only output
    is the reference of the half-precision runs)."""
    from specviz.models.pair import default_head_for
    target, draft = PAIRS[key]
    head = default_head_for(target)
    base = ["--target", target, "--draft", draft]
    notes, runs = [], []
    if not head:
        notes.append(f"no feature head for {target} here: the feature-head rows are skipped")
        log(notes[-1])
    dtypes = sorted(a.dtypes.split(","), key=lambda d: d != "float32")
    ref: list[str] = []
    for d in dtypes:
        js = tmp / f"{key}-{d}-model.json"
        runs.append(bench(log, a, f"{key}, {d}: target-only, draft model, transformers", [
            *base, "--drafter", "model", "--dtype", d, "--engines", engines,
            *([] if a.no_transformers_static else ["--transformers-static"]), *ref], js))
        if d == "float32" and runs[-1]["rc"] == 0:
            ref = ["--float32-reference", str(js)]
        if head:
            runs.append(bench(log, a, f"{key}, {d}: feature head ({head})", [
                *base, "--drafter", "feature-head", "--dtype", d, "--engines", engines,
                "--no-transformers", *ref], tmp / f"{key}-{d}-head.json"))
        runs.append(bench(log, a, f"{key}, {d}: token trees", [
            *base, "--drafter", "feature-head" if head else "model", "--dtype", d,
            "--trees", a.trees, *ref], tmp / f"{key}-{d}-trees.json"))
    return {"target": target, "draft": draft, "head": head, "notes": notes, "runs": runs}


def main(argv=None) -> int:
    a = _args(argv)
    import torch
    device = "cuda" if a.device.startswith("cuda") else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("bench_pairs: --device cuda, but no CUDA device is visible", file=sys.stderr)
        return 2
    engines = a.engines or ("graphs" if device == "cuda" else "eager,static")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{device}-{a.stamp}"
    log = Log(stem.with_suffix(".log"))
    from specviz.models.hardware import hardware_info
    hw = hardware_info(torch.device(a.device))
    log(f"bench_pairs {a.stamp}: {' '.join(sys.argv)}\nhardware and versions: {hw}\n"
        f"load average: {_load()}")
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": shlex.join([sys.executable, *sys.argv]), "hardware": hw,
              "load_start": _load(), "options": vars(a), "engines": engines, "pairs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for key in a.pairs.split(","):
            report["pairs"][key] = pair_runs(log, a, key, engines, Path(tmp))
    report["load_end"] = _load()
    from bench_pairs_report import to_markdown
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    stem.with_suffix(".md").write_text(to_markdown(report), encoding="utf-8")
    log(f"written {stem}.json, .md, .log")
    failed = [r["name"] for p in report["pairs"].values() for r in p["runs"] if r["rc"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
    sys.exit(main())
