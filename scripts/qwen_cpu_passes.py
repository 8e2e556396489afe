"""What a pass of the 1.5B target over T tokens costs on this CPU in float32, with few-row
products on F.linear (MKL) and through oneDNN (specviz.engines.cpu_rows), side by side.

After a chat prompt's prefill (transformers' eager forward with a KV cache, as the eager
engine runs it), passes over T = 1, 2, 3, 5, 9 tokens are timed in turn, both kernels
interleaved round by round in this one process, so a loaded machine slows them alike; the
cache is cut back after each pass. Prints torch, threads and the load average before and
after, the median and range per T, and v(T) = pass(T) / pass(1) for each kernel.
Usage: python scripts/qwen_cpu_passes.py [--rounds N] [--target SOURCE] [--json FILE]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specviz.engines import cpu_rows  # noqa: E402
from specviz.engines.eager import crop_cache  # noqa: E402
from specviz.models import cpu_name, load_model, pick_device  # noqa: E402

ROWS = (1, 2, 3, 5, 9)
PROMPT = "Write a Python function that checks whether a string is a palindrome."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--target", default="embedded:qwen2.5-coder-1.5b-instruct")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    before = os.getloadavg()
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, float32; load average {before}", flush=True)
    lm = load_model(args.target, device=pick_device("cpu"), dtype=torch.float32)
    model, tok = lm.model, lm.tokenizer
    from transformers import DynamicCache
    ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}],
                                  add_generation_prompt=True, return_tensors="pt")
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    n = ids.shape[1]
    cache = DynamicCache(config=model.config)
    times = {(k, t): [] for k in ("F.linear", "oneDNN") for t in ROWS}
    with torch.inference_mode():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
        extra = torch.arange(100, 100 + max(ROWS))[None]
        for r in range(args.rounds + 1):  # round 0 warms up
            for t in ROWS:
                for kernel in ("F.linear", "oneDNN"):
                    cpu_rows.enable(kernel == "oneDNN")
                    pos = torch.arange(n, n + t)[None]
                    start = time.perf_counter()
                    model(input_ids=extra[:, :t], position_ids=pos, past_key_values=cache,
                          use_cache=True)
                    took = (time.perf_counter() - start) * 1e3
                    crop_cache(cache, n)
                    if r:
                        times[kernel, t].append(took)
    cpu_rows.enable(True)
    after = os.getloadavg()
    print("kernel | tokens | median ms | min-max ms | v = pass / 1-token pass (same kernel)")
    out = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_before": before, "load_after": after, "rounds": args.rounds,
           "target": args.target, "ms": {}}
    for kernel in ("F.linear", "oneDNN"):
        one = statistics.median(times[kernel, 1])
        for t in ROWS:
            xs = times[kernel, t]
            med = statistics.median(xs)
            print(f"{kernel} | {t} | {med:.0f} | {min(xs):.0f}-{max(xs):.0f} | {med / one:.2f}")
            out["ms"][f"{kernel}/{t}"] = xs
    print(f"load average after: {after}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
