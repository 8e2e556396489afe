"""Kernels of a tree step on the GPU, by name: how many a step launches and where their time
goes (the static engine without graphs, under torch.profiler; a graph replays the same
kernels with shorter gaps). H200 notes in docs/benchmarks.md.
Usage: python scripts/gpu/step_profile.py [TREE ...]
"""

import json
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode


def main() -> None:
    trees = sys.argv[1:] or ["4,2,1,1", "dynamic:32:6"]
    pair = load_pair("embedded:smollm2-135m-instruct", device="cuda")
    prompt = json.loads(open("assets/prompts/heldout.jsonl").readline())["prompt"]
    runs = {"target-only": None, "chain of 3": DecodeConfig(gamma=3, max_new_tokens=64,
                                                             engine="static",
                                                             drafter="feature-head")}
    for t in trees:
        runs[t] = DecodeConfig(tree=t, max_new_tokens=64, engine="static",
                               drafter="feature-head")
    def go(cfg):
        if cfg is None:
            return target_only_decode(pair, prompt, DecodeConfig(max_new_tokens=64,
                                                                 engine="static"))
        return speculative_decode(pair, prompt, cfg)

    for name, cfg in runs.items():
        go(cfg)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            tr = go(cfg)
            torch.cuda.synchronize()
        steps = len(tr.steps)
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        total = sum(e.device_time for e in kernels)
        print(f"\n== {name}: {steps} steps, {len(kernels) / steps:.0f} kernels and "
              f"{total / steps / 1000:.3f} ms of kernel time per step ==")
        by = {}
        for e in kernels:
            n, t = by.get(e.name, (0, 0.0))
            by[e.name] = (n + 1, t + e.device_time)
        for k, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:18]:
            print(f"  {t / steps:8.1f} us {n / steps:6.1f}x  {k[:110]}")


if __name__ == "__main__":
    main()
