"""Where a token-tree step's time goes on the GPU (H200 notes in docs/benchmarks.md).

1. The target's verify pass replayed as a CUDA graph, by number of rows (a tree's root and
   nodes), with a tree's slots and bias: ms per pass, for each way of running the small
   linear layers (one batched matrix-vector product per row up to N rows, cuBLAS GEMMs above).
2. Traced and untraced runs of the feature head on held-out prompts, greedy, for the same
   settings side by side: per step, the median draft phase and verify phase (the target pass,
   acceptance, commit) from the records' CUDA-event marks, the whole step, and tokens/s.
Usage: python scripts/gpu/tree_probe.py [N_PROMPTS] [GEMV_MAX_ROWS,...]
"""

import json
import statistics
import sys
import time

import torch

import specviz.decoding as decoding
import specviz.engines.static as static
from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines.phases import capture
from specviz.engines.static import StaticLlama, stacked_layers


def pass_ms(lm: StaticLlama, rows: int, reps: int = 200) -> float:
    dev = lm.embed.device
    ids = torch.arange(rows, device=dev) + 100
    start = 100
    pos = start + torch.arange(rows, device=dev) // 4  # positions by depth, as in a tree
    slots = start + torch.arange(rows, device=dev)
    bias = torch.where(lm.key_pos[None] <= slots[:, None], 0.0, float("-inf")).repeat(
        lm.shape.group, 1)
    return graph_ms(lambda: lm.forward(ids, pos, "all", slots=slots, bias=bias), reps)


def graph_ms(fn, reps: int = 200, warm: int = 20) -> float:
    """fn captured once as a CUDA graph (after a warm-up run); ms per replay, the mean of
    ``reps`` replays after ``warm``."""
    graph, _ = capture(fn)
    for _ in range(warm):
        graph.replay()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        graph.replay()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / reps


def run(pair, cfg, prompt, traced):
    from dataclasses import replace
    c = replace(cfg or DecodeConfig(max_new_tokens=128, engine="graphs"), trace_detail=traced)
    torch.cuda.synchronize()
    t = time.perf_counter()
    tr = target_only_decode(pair, prompt, c) if cfg is None else speculative_decode(pair,
                                                                                   prompt, c)
    torch.cuda.synchronize()
    return tr, time.perf_counter() - t


def measure(decode, prompts: list[str]) -> dict:
    """Per prompt a traced run (its steps' phases, the first step left out) and an untraced
    one (its speed and output); ``decode(prompt, traced)`` -> (trace, seconds)."""
    out = {"draft": [], "verify": [], "step": [], "tokens": [], "outputs": []}
    secs, emitted = 0.0, 0
    for p in prompts:
        tr, _ = decode(p, True)
        for s in tr.steps[1:]:
            out["draft"].append(s.draft_ms)
            out["verify"].append(s.verify_ms)
            out["step"].append(s.total_ms)
            out["tokens"].append(len(s.emitted_ids))
        tr, dt = decode(p, False)
        secs += dt
        emitted += tr.summary.n_emitted
        out["outputs"].append(tr.summary.output_token_ids)
    out["tps"] = emitted / secs
    return out


def passes() -> None:
    """The target's pass as a CUDA graph, by rows."""
    lm = StaticLlama(_pair().target, stacked_layers(_pair().target), 256)
    with torch.inference_mode():
        print("verify pass by rows (CUDA graph, 256-slot cache, ms): " + ", ".join(
            f"{r}: {pass_ms(lm, r):.3f}" for r in (1, 4, 16, 17, 33, 49, 65)), flush=True)


def probe(n: int, check: bool = False) -> None:
    """Pass times by rows, then each method's steps on ``n`` held-out prompts (with
    ``check``: whether each method's greedy output equals target-only's on every prompt)."""
    pair = _pair()
    prompts = [json.loads(x)["prompt"] for x in open("assets/prompts/heldout.jsonl")]
    prompts = prompts[::max(1, len(prompts) // n)][:n]
    base = dict(max_new_tokens=128, engine="graphs", drafter="feature-head")
    methods = {"target-only": None, "chain of 3": DecodeConfig(gamma=3, **base)}
    for t in ("3,2,1", "4,2,1,1", "dynamic:16:5:4", "dynamic:32:6", "dynamic:64:7:8"):
        methods[t] = DecodeConfig(tree=t, **base)
    passes()
    print("per step, median ms: draft | verify+accept+commit | whole step; tokens/s "
          "untraced (and vs target-only)")
    tps0, reference = None, None
    for name, cfg in methods.items():
        run(pair, cfg, prompts[0], True)  # warm-up: graphs captured
        m = measure(lambda p, traced, cfg=cfg: run(pair, cfg, p, traced), prompts)
        d, v, t, tok, tps, outputs = (m[k] for k in ("draft", "verify", "step", "tokens",
                                                     "tps", "outputs"))
        tps0 = tps0 or tps
        reference = reference or outputs
        same = sum(a == b for a, b in zip(outputs, reference))
        med = statistics.median
        print(f"  {name:16s} draft {med(d):.3f} | verify {med(v):.3f} | step {med(t):.3f} "
              f"| tokens per step {sum(tok) / len(tok):.2f} | {tps:.1f} tok/s "
              f"({tps / tps0:.2f}x)" + (f" | equal to target-only {same}/{len(prompts)}"
                                        if check else ""), flush=True)


_PAIR = []


def _pair():
    if not _PAIR:
        _PAIR.append(load_pair("embedded:smollm2-135m-instruct", device="cuda"))
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32")
    return _PAIR[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    settings = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "16").split(",")]
    for rows_max in settings:
        static._BATCHED_GEMV_MAX_ROWS = rows_max
        decoding._WORKSPACES.clear()  # graphs captured anew under this setting
        print(f"\n== batched matrix-vector products up to {rows_max} rows ==")
        probe(n)


if __name__ == "__main__":
    main()
