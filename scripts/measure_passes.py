"""What one pass of each target over T tokens costs, against the time its weights take to
read: the data of the lesson "a small target and a large one" (specviz/teaching/lessons/).

For each pair (target p, its draft q), on one device: a chat prompt is prefilled into a KV
cache, then passes of the target over T = 1, 2, 3, 5, 9, 17 new tokens after it, and the
draft's one-token pass, are timed; rounds interleave every pass (round 0 warms up), so a
machine that slows down slows them alike. Each pass runs on the engine the pair uses by
default there: CUDA graphs over specviz's static forward on a GPU (each T captured once,
then replayed), transformers' eager forward with a KV cache on a CPU (with the oneDNN
few-row products of specviz.engines.cpu_rows that load_model installs in float32).

Also recorded: the weights' bytes (parameters x bytes per element, tied weights once) and a
memory bandwidth: on a GPU the vendor's figure for its name (NOMINAL_TBS) when known, else
one measured here; on a CPU one measured here, the faster of a 512 MiB copy (bytes read +
written over the median time) and a matrix-vector product over a 512 MiB matrix (as a
one-token pass reads a weight). Weight bytes / bandwidth is the weight-reading floor
of a pass: no pass that reads every weight once can be faster. v(T) = pass(T) / pass(1),
c = draft pass / target pass.

Writes JSON (hardware, versions, load average before and after, the command) to
specviz/teaching/lessons/data/passes-<device>-<date>.json unless --out says otherwise.
Refuses to time on a busy machine (1-minute load average above half the cores) unless
--force; the file then says "loaded": true and the lesson ranks it below idle ones; so it
does when the load after the measurement exceeds half the cores plus the measurement's own
threads (which raise the average by themselves).

``--from-bench`` writes instead a provisional file from benchmarks committed in docs/bench/
(each number's file named under "sources"), marked "provisional": true.

Usage: python scripts/measure_passes.py [--device cpu|cuda] [--rounds 5]
       [--pair TARGET[=DRAFT] ...] [--rows 1,2,3,5,9,17] [--out FILE] [--force]
       python scripts/measure_passes.py --from-bench [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "specviz" / "teaching" / "lessons" / "data"
ROWS = (1, 2, 3, 5, 9, 17)
PAIRS = (("embedded:smollm2-135m-instruct", "embedded:smollm2-draft"),
         ("embedded:qwen2.5-coder-1.5b-instruct", "embedded:qwen2.5-coder-0.5b-instruct"))
PROMPT = "Write a Python function that checks whether a string is a palindrome."
# vendors' peak memory bandwidth (TB/s) by a substring of torch.cuda.get_device_name
NOMINAL_TBS = {"H200": 4.8, "H100 80GB HBM3": 3.35, "H100 PCIe": 2.0, "H100": 3.35,
               "A100-SXM4-80GB": 2.04, "A100 80GB PCIe": 1.94, "A100": 1.56, "L4": 0.3,
               "A10G": 0.6, "T4": 0.32}
DRAFT_KEY = "draft"


class MeasureError(RuntimeError):
    """Why the measurement cannot run (one line)."""


# ---------------------------------------------------------------- the machine


def nominal_bandwidth(gpu_name: str) -> float | None:
    """The vendor's memory bandwidth in GB/s for a GPU name, or None if unknown."""
    for key, tbs in NOMINAL_TBS.items():  # longest, most specific names first
        if key in gpu_name:
            return tbs * 1000.0
    return None


def copy_bandwidth(device: torch.device, mib: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s from copying a ``mib`` MiB float32 tensor: bytes read plus
    bytes written over the median of ``repeats`` copies."""
    n = mib * (1 << 20) // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n * 4 / statistics.median(times[1:]) / 1e9


def read_bandwidth(device: torch.device, mib: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s of reading a ``mib`` MiB float32 matrix in a matrix-vector
    product (how a one-token pass reads a weight): its bytes over the median time."""
    w = torch.ones(mib * (1 << 20) // 4 // 1024, 1024, device=device)
    x = torch.ones(1024, device=device)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.mv(w, x)
        _sync(device)
        times.append(time.perf_counter() - start)
    return w.numel() * 4 / statistics.median(times[1:]) / 1e9


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's parameters (a tied weight counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- one pass over T tokens


def engine_for(model: torch.nn.Module, device: torch.device) -> str:
    """The engine a pair uses by default here: CUDA graphs on a GPU where the static
    forward supports the model, else eager (as specviz.decoding.engine_parts resolves it)."""
    if device.type != "cuda":
        return "eager"
    from specviz.engines.static import Unsupported, check_supported
    try:
        check_supported(model)
    except Unsupported:
        return "eager"
    return "graphs"


class Passes:
    """Passes of one model over T new tokens after a prefilled prompt, each one a callable
    that runs the pass (graphs: captured once per T, then replayed)."""

    def __init__(self, model: torch.nn.Module, prompt: torch.Tensor, engine: str,
                 max_new: int):
        from specviz.engines.eager import CachedLM
        self.device = prompt.device
        self.n = int(prompt.shape[0])
        self.engine = engine
        self.vocab = int(model.config.vocab_size)
        max_len = self.n + max_new + 1
        if engine == "eager":
            self.lm = CachedLM(model, max_len)
        else:
            from specviz.engines.static import (
                StaticLlama,
                bucket,
                check_against,
                stacked_layers,
            )
            self.lm = StaticLlama(model, stacked_layers(model), bucket(max_len))
            check_against(model, self.lm)
        with torch.inference_mode():
            self.lm.forward(prompt, torch.arange(self.n, device=self.device), logits="last")
        self._runs: dict[int, Callable[[], object]] = {}

    def run(self, rows: int) -> Callable[[], object]:
        """The pass over ``rows`` tokens at positions n .. n + rows - 1 (logits of every row,
        as a verify pass needs)."""
        if rows not in self._runs:
            ids = (torch.arange(rows, device=self.device) * 7 + 3) % self.vocab  # (T,)
            pos = torch.arange(self.n, self.n + rows, device=self.device)  # (T,)

            def one() -> object:
                with torch.inference_mode():
                    return self.lm.forward(ids, pos, logits="all")

            if self.engine == "graphs":
                from specviz.engines.phases import capture
                with torch.inference_mode():
                    graph, _ = capture(one)
                self._runs[rows] = graph.replay
            else:
                self._runs[rows] = one
        return self._runs[rows]


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call, the device finished before and after."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def interleaved(passes: dict, order: list, rounds: int, device: torch.device) -> dict:
    """Times of each (name, rows) in ``order``, every round running all of them in turn;
    round 0 warms up (and captures graphs) and is left out. -> {(name, rows): [ms, ...]}"""
    times: dict = {k: [] for k in order}
    for r in range(rounds + 1):
        for name, rows in order:
            took = timed(passes[name].run(rows), device)
            if r:
                times[name, rows].append(took)
    return times


def summary(xs: list[float]) -> dict:
    return {"median_ms": statistics.median(xs), "min_ms": min(xs), "max_ms": max(xs),
            "n": len(xs), "ms": [round(x, 4) for x in xs]}


def prompt_ids(tok, device: torch.device) -> torch.Tensor:
    """The chat prompt's ids (n,); the plain text's where the tokenizer has no template."""
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}],
                                      add_generation_prompt=True, return_tensors="pt")
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    else:
        ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    return ids[0].to(device)


def pair_record(target: str, draft: str, t_model, d_model, times: dict, rows: tuple,
                engine: str, device: torch.device, bandwidth: float, hw: str) -> dict:
    """One pair's entry of the data file from its timings."""
    passes = {str(t): summary(times["target", t]) for t in rows}
    one = passes["1"]["median_ms"]
    wb = weight_bytes(t_model)
    draft_pass = summary(times[DRAFT_KEY, 1])
    return {
        "target": target, "draft": draft, "engine": engine, "hardware": hw,
        "dtype": str(next(t_model.parameters()).dtype).replace("torch.", ""),
        "target_layers": int(t_model.config.num_hidden_layers),
        "draft_layers": int(d_model.config.num_hidden_layers),
        "target_params": sum(p.numel() for p in t_model.parameters()),
        "draft_params": sum(p.numel() for p in d_model.parameters()),
        "weight_bytes": wb, "draft_weight_bytes": weight_bytes(d_model),
        "bandwidth_gbs": bandwidth, "floor_ms": wb / (bandwidth * 1e9) * 1e3,
        "passes": passes, "draft_pass": draft_pass,
        "v": {t: p["median_ms"] / one for t, p in passes.items()},
        "c": draft_pass["median_ms"] / one,
    }


def measure_pair(target: str, draft: str, device: torch.device, rows: tuple, rounds: int,
                 bandwidth: float, hw: str, dtype: torch.dtype = torch.float32) -> dict:
    """Load the pair, time its passes (interleaved rounds) and return its entry."""
    from specviz.models import load_model
    t = load_model(target, device=device, dtype=dtype)
    d = load_model(draft, device=device, dtype=dtype)
    engine = engine_for(t.model, device)
    ids = prompt_ids(t.tokenizer, device)
    passes = {"target": Passes(t.model, ids, engine, max(rows)),
              DRAFT_KEY: Passes(d.model, ids, engine_for(d.model, device), 1)}
    order = [("target", r) for r in rows] + [(DRAFT_KEY, 1)]
    times = interleaved(passes, order, rounds, device)
    return pair_record(target, draft, t.model, d.model, times, rows, engine, device,
                       bandwidth, hw)


# ---------------------------------------------------------------- the file


def machine(device: torch.device) -> tuple[dict, str, float, str]:
    """(hardware and versions, its name, bandwidth GB/s, where the bandwidth comes from)."""
    from specviz.models.hardware import hardware_info
    info = hardware_info(device)
    info["copy_bandwidth_gbs"] = copy_bandwidth(device)
    info["read_bandwidth_gbs"] = read_bandwidth(device)
    # the floor must bound a pass from below: the faster of the two ways of moving memory
    measured = max(info["copy_bandwidth_gbs"], info["read_bandwidth_gbs"])
    if device.type == "cuda":
        name = info["gpu"]
        nominal = nominal_bandwidth(name)
        if nominal:
            return info, name, nominal, (
                f"vendor's figure for {name} (measured here: a copy "
                f"{info['copy_bandwidth_gbs']:.0f} GB/s, a matrix-vector read "
                f"{info['read_bandwidth_gbs']:.0f} GB/s)")
        return info, name, measured, "measured here (GPU not in the table): the faster of a " \
                                     "512 MiB copy and a 512 MiB matrix-vector product"
    return info, info["cpu"], measured, "measured here: the faster of a 512 MiB copy (bytes " \
                                        "read + written) and a 512 MiB matrix-vector product"


def measure(device: torch.device, pairs, rows: tuple, rounds: int, command: str,
            force: bool = False) -> dict:
    """The whole data file's content."""
    cores = os.cpu_count() or 1
    before = os.getloadavg()
    loaded = before[0] > cores / 2
    if loaded and not force:
        raise MeasureError(f"the machine is busy (load average {before[0]:.1f} on {cores} "
                           "cores): timings would be wrong; rerun when idle or pass --force")
    info, hw, bandwidth, bw_from = machine(device)
    out = {"schema": 1, "provisional": False, "loaded": loaded, "device": device.type,
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "command": command, "hardware": info, "rounds": rounds, "rows": list(rows),
           "bandwidth_from": bw_from, "load_before": list(before), "pairs": []}
    for target, draft in pairs:
        print(f"{target} with {draft} ...", file=sys.stderr, flush=True)
        out["pairs"].append(measure_pair(target, draft, device, rows, rounds, bandwidth, hw))
    out["load_after"] = list(os.getloadavg())
    # the average after counts the measurement's own threads (on 2 cores it always passes
    # 1 by itself): busy afterwards means beyond them
    out["loaded"] = loaded or out["load_after"][0] > cores / 2 + torch.get_num_threads()
    return out


def default_out(device: str, when: dt.date | None = None) -> Path:
    when = when or dt.datetime.now(dt.timezone.utc).date()
    return DATA / f"passes-{device}-{when.strftime('%Y%m%d')}.json"


def _bench_pair(path: Path, engine: str, rows_ms: dict, gpu_bw: float) -> dict:
    """A pair's entry from a committed ``specviz bench`` JSON (its graphs engine)."""
    b = json.loads(path.read_text(encoding="utf-8"))
    e = b["per_engine"][engine] if "per_engine" in b else b
    wb = int(b["target"]["n_params"]) * 4  # float32
    one = float(e["target_forward_ms"])
    passes = {"1": {"median_ms": one, "min_ms": None, "max_ms": None, "n": None},
              "5": {"median_ms": float(e["verify_ms"]), "min_ms": None, "max_ms": None,
                    "n": None}}
    passes.update(rows_ms)
    draft = float(e["draft_ms_per_token"])
    return {"target": b["target"]["source"], "draft": b["draft"]["source"], "engine": engine,
            "hardware": b["hardware"].get("gpu") or b["hardware"].get("cpu"),
            "dtype": b["target"]["dtype"], "target_params": int(b["target"]["n_params"]),
            "target_layers": int(b["target"]["n_layers"]),
            "draft_layers": int(b["draft"]["n_layers"]),
            "draft_params": int(b["draft"]["n_params"]), "weight_bytes": wb,
            "draft_weight_bytes": int(b["draft"]["n_params"]) * 4, "bandwidth_gbs": gpu_bw,
            "floor_ms": wb / (gpu_bw * 1e9) * 1e3, "passes": passes,
            "draft_pass": {"median_ms": draft, "min_ms": None, "max_ms": None, "n": None},
            "v": {t: p["median_ms"] / one for t, p in passes.items()}, "c": draft / one,
            "bench": {"prompts": b.get("prompts"), "repeats": b.get("repeats"),
                      "max_new_tokens": b.get("max_new_tokens"), "gamma": b.get("gamma"),
                      "date": b.get("date"), "command": b.get("command")}}


def provisional(command: str) -> dict:
    """A provisional data file from benchmarks committed in docs/bench/ (GPU, CUDA graphs,
    float32): the 135M pair's on an H200, the 1.5B pair's on an H100. A pass over 1 token is
    the bench's mean target-only step, over 5 tokens its mean γ = 4 verify pass, the draft's
    its mean drafting time per token: means over whole runs, not medians of single passes."""
    small = "docs/bench/h200-graphs-draft-g4.json"
    large = "docs/bench/qwen/h100-20261207/bench-draft.json"
    pairs = [_bench_pair(ROOT / small, "graphs", {}, nominal_bandwidth("H200")),
             _bench_pair(ROOT / large, "graphs", {}, nominal_bandwidth("H100 80GB HBM3"))]
    src = {}
    for p, f in zip(pairs, (small, large)):
        src[p["target"]] = {
            "passes.1, passes.5, draft_pass": f"{f}: per_engine.graphs target_forward_ms, "
                                              "verify_ms (gamma 4: 5 tokens), "
                                              "draft_ms_per_token",
            "target_params, draft_params": f"{f}: target.n_params, draft.n_params",
            "bandwidth_gbs": f"vendor's figure for {p['hardware']} (as in docs/qwen.md and "
                             "docs/benchmarks.md: H100 ~3.35 TB/s, H200 4.8 TB/s)"}
    return {"schema": 1, "provisional": True, "loaded": False, "device": "cuda",
            "date": "2026-12-07T00:00:00+00:00", "command": command,
            "note": "gathered from committed benchmarks, not measured by this script, each "
                    "pair on its own machine and day (see each pair's hardware); only T = 1 "
                    "and T = 5 exist there, each a mean over a whole bench run rather than a "
                    "median of passes.",
            "hardware": {"device": "cuda", "gpu": "NVIDIA H200 / NVIDIA H100 80GB HBM3"},
            "rounds": None, "rows": [1, 5], "bandwidth_from": "vendor's figures",
            "load_before": None, "load_after": None, "pairs": pairs, "sources": src}


def acceptance_from_bench() -> dict:
    """The large pair's measured acceptance (data/acceptance.json), from its committed bench:
    greedy α̂ does not depend on the machine, so one file serves every passes file."""
    large = "docs/bench/qwen/h100-20261207/bench-draft.json"
    b = json.loads((ROOT / large).read_text(encoding="utf-8"))
    e = b["per_engine"]["graphs"]
    return {b["target"]["source"]: {
        "draft": b["draft"]["source"], "alpha": e["alpha_hat"],
        "tokens_per_step": e["mean_accepted_length"], "gamma": b["gamma"],
        "prompts": b["prompts"], "repeats": b["repeats"],
        "max_new_tokens": b["max_new_tokens"], "temperature": b["temperature"],
        "source": f"{large}: per_engine.graphs.alpha_hat and mean_accepted_length (held-out "
                  "prompts, one per category, greedy)", "command": b["command"]}}


def parse_pairs(items: list[str] | None) -> list[tuple[str, str]]:
    if not items:
        return list(PAIRS)
    from specviz.models.pair import default_draft_for
    out = []
    for item in items:
        target, _, draft = item.partition("=")
        draft = draft or default_draft_for(target)
        if not draft:
            raise MeasureError(f"{target} has no default draft: write TARGET=DRAFT")
        out.append((target, draft))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rows", default=",".join(map(str, ROWS)))
    p.add_argument("--pair", action="append", help="TARGET[=DRAFT]; both pairs by default")
    p.add_argument("--out", default=None)
    p.add_argument("--force", action="store_true", help="time even on a busy machine")
    p.add_argument("--from-bench", action="store_true",
                   help="write the provisional file from committed benchmarks")
    args = p.parse_args(argv)
    command = "python scripts/measure_passes.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        if args.from_bench:
            data = provisional(command.strip())
            out = Path(args.out or DATA / "passes-cuda-provisional-20261207.json")
            acc = out.parent / "acceptance.json"
            acc.parent.mkdir(parents=True, exist_ok=True)
            acc.write_text(json.dumps(acceptance_from_bench(), indent=1) + "\n",
                           encoding="utf-8")
        else:
            from specviz.models import pick_device
            device = pick_device(args.device)
            rows = tuple(sorted({int(x) for x in args.rows.split(",")} | {1}))
            if args.rounds < 1:
                raise MeasureError("--rounds must be at least 1")
            data = measure(device, parse_pairs(args.pair), rows, args.rounds,
                           command.strip(), args.force)
            out = Path(args.out) if args.out else default_out(device.type)
    except (MeasureError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    for pair in data["pairs"]:
        v = ", ".join(f"v({t}) = {x:.2f}" for t, x in pair["v"].items())
        print(f"{pair['target']} on {pair['hardware']}: pass(1) "
              f"{pair['passes']['1']['median_ms']:.2f} ms, floor {pair['floor_ms']:.3f} ms; "
              f"{v}; c = {pair['c']:.3f}")
    print(f"load average before {data.get('load_before')}, after {data.get('load_after')}; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
