"""Where a token-tree step's time goes on the GPU (H200 notes in docs/benchmarks.md).

1. The target's verify pass replayed as a CUDA graph, by number of rows (a tree's root and
   nodes), with a tree's slots and bias: ms per pass.
2. Traced runs of the feature head on held-out prompts, greedy: per step, the median draft
   phase and verify phase (the target pass, acceptance, commit) from the records' CUDA-event
   marks, and the whole step, for target-only, the chain and trees.
Usage: python scripts/gpu/tree_probe.py [N_PROMPTS]
"""

import json
import statistics
import sys

import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines.phases import capture
from specviz.engines.static import StaticLlama, stacked_layers


def pass_ms(lm: StaticLlama, rows: int, reps: int = 200) -> float:
    dev = lm.embed.device
    ids = torch.arange(rows, device=dev) + 100
    start = 300
    pos = start + torch.arange(rows, device=dev) // 4  # positions by depth, as in a tree
    slots = start + torch.arange(rows, device=dev)
    bias = torch.where(lm.key_pos[None] <= slots[:, None], 0.0, float("-inf")).repeat(
        lm.shape.group, 1)
    graph, _ = capture(lambda: lm.forward(ids, pos, "all", slots=slots, bias=bias))
    for _ in range(20):
        graph.replay()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        graph.replay()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / reps


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    pair = load_pair("embedded:smollm2-135m-instruct", device="cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32")
    lm = StaticLlama(pair.target, stacked_layers(pair.target), 1024)
    print("verify pass by rows (CUDA graph, ms):")
    with torch.inference_mode():
        for rows in (1, 2, 4, 8, 16, 17, 33, 49, 65):
            print(f"  {rows:3d} rows: {pass_ms(lm, rows):.3f}")
    prompts = [json.loads(x)["prompt"] for x in open("assets/prompts/heldout.jsonl")]
    prompts = prompts[::max(1, len(prompts) // n)][:n]
    base = dict(max_new_tokens=128, engine="graphs", drafter="feature-head")
    methods = {"target-only": None, "chain of 3": DecodeConfig(gamma=3, **base)}
    for t in ("3,2,1", "dynamic:32:6", "dynamic:64:7:8"):
        methods[t] = DecodeConfig(tree=t, **base)
    print("per step, median ms (draft | verify+accept+commit | whole step, host included):")
    for name, cfg in methods.items():
        for p in prompts[:1]:  # warm-up: graphs captured
            (target_only_decode(pair, p, DecodeConfig(**base)) if cfg is None
             else speculative_decode(pair, p, cfg))
        d, v, t, tok = [], [], [], []
        for p in prompts:
            tr = (target_only_decode(pair, p, DecodeConfig(**base)) if cfg is None
                  else speculative_decode(pair, p, cfg))
            for s in tr.steps[1:]:
                d.append(s.draft_ms)
                v.append(s.verify_ms)
                t.append(s.total_ms)
                tok.append(len(s.emitted_ids))
        med = statistics.median
        print(f"  {name:16s} draft {med(d):.3f} | verify {med(v):.3f} | step {med(t):.3f} "
              f"| tokens per step {sum(tok) / len(tok):.2f}")


if __name__ == "__main__":
    main()
