"""Plain against fused graphed steps on the GPU, side by side in one process: per mode, the
target alone and the feature head's chain and trees on held-out prompts (greedy, 128 new
tokens): untraced tokens/s, the ratio to that mode's target-only and to the plain one, the
traced steps' median phases, and whether greedy output equals target-only's. "fused":
``specviz.engines.static.fuse_layers`` (each decoder layer compiled by torch.compile, and a
tree's draft phase compiled before its capture).
Usage: python scripts/gpu/compile_probe.py [N_PROMPTS] [MODES] [METHODS]
  MODES: plain,fused   METHODS: chain:3,3-2-1,dynamic:48:6:6,...
"""

import json
import statistics
import sys
import time
from dataclasses import replace

import torch
from tree_probe import measure  # same folder

import specviz.decoding as decoding
from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines.static import fuse_layers


def decode(pair, name, cfg, prompt, traced):
    c = replace(cfg, trace_detail=traced)
    torch.cuda.synchronize()
    t = time.perf_counter()
    run = target_only_decode if name == "target-only" else speculative_decode
    tr = run(pair, prompt, c)
    torch.cuda.synchronize()
    return tr, time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    modes = (sys.argv[2] if len(sys.argv) > 2 else "plain,fused").split(",")
    methods = (sys.argv[3] if len(sys.argv) > 3 else
               "chain:3,3-2-1,dynamic:32:6,dynamic:48:6:6").split(",")
    pair = load_pair("embedded:smollm2-135m-instruct", device="cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32, greedy, "
          f"{n} held-out prompts, 128 new tokens", flush=True)
    prompts = [json.loads(x)["prompt"] for x in open("assets/prompts/heldout.jsonl")]
    prompts = prompts[::max(1, len(prompts) // n)][:n]
    base = dict(max_new_tokens=128, engine="graphs", drafter="feature-head", gamma=3)
    cfgs = {"target-only": DecodeConfig(**base)}
    for m in methods:
        cfgs[m] = (DecodeConfig(**{**base, "gamma": int(m[6:])}) if m.startswith("chain:")
                   else DecodeConfig(tree=m, **base))
    reference, plain0 = None, None
    for mode in modes:
        fuse_layers(mode == "fused")
        decoding._WORKSPACES.clear()
        print(f"\n== {mode} ==", flush=True)
        tps0 = None
        for name, cfg in cfgs.items():
            t = time.perf_counter()
            for p in prompts:  # warm-up: every pass shape compiled (fused) and captured
                decode(pair, name, cfg, p, True)
                decode(pair, name, cfg, p, False)
            warm = time.perf_counter() - t
            m = measure(lambda p, traced, name=name, cfg=cfg: decode(pair, name, cfg, p, traced),
                        prompts)
            d, v, s, tok, tps, outputs = (m[k] for k in ("draft", "verify", "step", "tokens",
                                                         "tps", "outputs"))
            tps0 = tps0 or tps
            plain0 = plain0 or tps
            reference = reference or outputs
            same = sum(a == b for a, b in zip(outputs, reference))
            med = statistics.median
            print(f"  {name:16s} draft {med(d):.3f} | verify {med(v):.3f} | step {med(s):.3f} ms"
                  f" | tokens/step {sum(tok) / len(tok):.2f} | {tps:.1f} tok/s untraced | "
                  f"{tps / tps0:.2f}x its target-only, {tps / plain0:.2f}x the plain one | "
                  f"greedy = plain target-only {same}/{len(prompts)} | warm-up {warm:.1f} s",
                  flush=True)


if __name__ == "__main__":
    main()
