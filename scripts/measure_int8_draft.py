"""What an int8 draft costs and what it keeps, on the CPU: the 0.5B draft's one-token pass in
float32, with int8 weights (``--draft-int8``: specviz.engines.int8_draft) and, for
comparison, torch's dynamic int8 (activations quantised too), each against the 1.5B target's
one-token pass (c), and each draft's teacher-forced argmax agreement with the target on the
target's own greedy text (2 held-out prompts a category).

Usage: PYTHONPATH=. python scripts/measure_int8_draft.py [--tokens 24] [--per-category 2]
Prints JSON with the hardware, versions, load average before and after, and the command.
Needs the converted Qwen pair (python -m specviz fetch --pair qwen2.5-coder) and ~12 GB.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import time

import torch

from specviz.engines import int8_draft
from specviz.models import load_model

TARGET = "embedded:qwen2.5-coder-1.5b-instruct"
DRAFT = "embedded:qwen2.5-coder-0.5b-instruct"


def one_token_ms(model, ids: torch.Tensor, n: int = 12) -> float:
    """Median time of a one-token pass after ``ids`` were prefilled (first two left out)."""
    with torch.inference_mode():
        out = model(ids, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            out = model(nxt, past_key_values=cache, use_cache=True)
            times.append(time.perf_counter() - t)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    return 1000 * statistics.median(times[2:])


def target_texts(target, tok, per_category: int, tokens: int) -> list[tuple]:
    """(category, ids, prompt length, the target's argmax at each answer position)."""
    seen, out = collections.Counter(), []
    with open("assets/prompts/heldout.jsonl") as f:
        rows = [json.loads(line) for line in f]
    with torch.inference_mode():
        for r in rows:
            if seen[r["category"]] >= per_category:
                continue
            seen[r["category"]] += 1
            text = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}],
                                           tokenize=False, add_generation_prompt=True)
            x = tok(text, return_tensors="pt").input_ids
            ids = target.generate(x, max_new_tokens=tokens, do_sample=False)
            n0 = x.shape[1]
            out.append((r["category"], ids, n0, target(ids).logits[0, n0 - 1:-1].argmax(-1)))
    return out


def agreement(draft, texts: list[tuple]) -> dict:
    per = collections.defaultdict(lambda: [0, 0])
    with torch.inference_mode():
        for cat, ids, n0, want in texts:
            got = draft(ids).logits[0, n0 - 1:-1].argmax(-1)
            per[cat][0] += int((got == want).sum())
            per[cat][1] += want.numel()
    return {k: round(a / b, 3) for k, (a, b) in per.items()}


def _int8(model):
    int8_draft.quantize(model)
    return model


def _dynamic(model):
    """torch's dynamic int8 (weights per channel, activations per tensor at run time)."""
    for m in model.modules():  # load_model's oneDNN row layers back to plain nn.Linear,
        if isinstance(m, torch.nn.Linear):  # which is what quantize_dynamic looks for
            m.__class__ = torch.nn.Linear
    return torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
        dtype=torch.qint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--per-category", type=int, default=2)
    args = ap.parse_args()
    res = {"command": " ".join(["python"] + sys.argv), "load_before": os.getloadavg(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    t = load_model(TARGET, device=torch.device("cpu"), dtype=torch.float32)
    tok, target = t.tokenizer, t.model
    ids = tok("def fibonacci(n):\n    " * 8, return_tensors="pt").input_ids
    res["target_ms"] = one_token_ms(target, ids)
    texts = target_texts(target, tok, args.per_category, args.tokens)
    variants = {
        "float32": lambda m: m,
        "int8 weights (--draft-int8)": _int8,
        "dynamic int8 (torch.ao, per channel)": _dynamic,
    }
    res["drafts"] = {}
    for name, make in variants.items():
        d = make(load_model(DRAFT, device=torch.device("cpu"), dtype=torch.float32).model)
        ms = one_token_ms(d, ids)
        res["drafts"][name] = {"ms": round(ms, 2), "c": round(ms / res["target_ms"], 3),
                               "agreement": agreement(d, texts)}
        print(name, res["drafts"][name], file=sys.stderr, flush=True)
        del d
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
