"""Evaluation of a draft against the target on the held-out prompts.

Per category and temperature: alpha_hat (accepted / evaluated draft positions, pooled over
the prompts), mean accepted length (emitted tokens per verification step), speedup in
tokens/s over target-only decoding of the same prompts; plus c, the draft's single-token
forward time over the target's (medians, same process, interleaved), and whether greedy
speculative output equals the target-only output token for token.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from transformers import DynamicCache

from ..decoding import DecodeConfig, encode_prompt, speculative_decode, target_only_decode
from .prompts import CATEGORIES


@torch.inference_mode()
def measure_c(pair, prompt: str = "Explain why the sky is blue.", n: int = 30) -> dict:
    """Median single-token forward times (ms) of draft and target with KV caches holding a
    chat prompt, measured alternately in this process; c = draft / target."""
    ids = torch.tensor([encode_prompt(pair.tokenizer, prompt, True)], device=pair.device)
    times = {"draft": [], "target": []}
    models = {"draft": pair.draft, "target": pair.target}
    caches = {}
    for name, m in models.items():
        caches[name] = DynamicCache(config=m.config)
        m(input_ids=ids, past_key_values=caches[name], use_cache=True, logits_to_keep=1)
    tok = ids[:, -1:]
    for i in range(n + 3):
        for name, m in models.items():
            _sync(pair.device)
            t0 = time.perf_counter()
            m(input_ids=tok, past_key_values=caches[name], use_cache=True, logits_to_keep=1)
            _sync(pair.device)
            if i >= 3:  # warm-up
                times[name].append(time.perf_counter() - t0)
    d, t = statistics.median(times["draft"]), statistics.median(times["target"])
    return {"draft_ms": round(d * 1e3, 3), "target_ms": round(t * 1e3, 3),
            "c": round(d / t, 4), "n": n}


def measure_c_traced(pair, config: DecodeConfig, prompt: str) -> dict:
    """c and v of any drafter from traced runs of the running engine: draft time per drafted
    token and verify time per step, over the mean target-only step (specviz.teaching.diagnosis)."""
    from ..teaching.diagnosis import measure
    cfg = replace(config, trace_detail=True, temperature=0.0)
    spec = speculative_decode(pair, prompt, cfg)
    base = target_only_decode(pair, prompt, cfg)
    m = measure(spec, base)
    return {"c": round(m.c, 4) if m.c is not None else None,
            "v": round(m.v, 4) if m.v is not None else None,
            "target_ms": round(m.target_step_ms, 4) if m.target_step_ms else None,
            "from": "traced runs (draft ms per drafted token / target-only ms per step)"}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _n_evaluated(summary) -> int:
    if summary.alpha_hat:
        return round(summary.n_accepted / summary.alpha_hat)
    return summary.n_steps  # nothing accepted: each step judged one position


def run_eval(pair, prompts: list[dict], *, temperatures=(0.0, 0.7, 1.0), gamma: int = 4,
             max_new_tokens: int = 64, seed: int = 0, log=print, drafter: str = "model"
             ) -> dict:
    """Decode every prompt target-only (greedy) and speculatively at each temperature.

    Returns {"c": ..., "rows": [per (category, temperature)], "runs": [per run]}."""
    base = DecodeConfig(drafter=drafter, gamma=gamma, max_new_tokens=max_new_tokens,
                        chat=True, seed=seed, trace_detail=False)
    # warm-up (first calls allocate, and capture CUDA graphs)
    for temp in temperatures:
        speculative_decode(pair, prompts[0]["prompt"], replace(base, temperature=temp))
    target_only_decode(pair, prompts[0]["prompt"], base)
    c = measure_c(pair) if drafter == "model" else measure_c_traced(pair, base,
                                                                    prompts[0]["prompt"])
    log(f"c: {c}")
    runs = []
    greedy_ref = {}
    for i, p in enumerate(prompts):
        cfg = replace(base, temperature=0.0)
        tr = target_only_decode(pair, p["prompt"], cfg).summary
        greedy_ref[i] = tr.output_token_ids
        runs.append({"i": i, "category": p["category"], "mode": "target-only",
                     "temperature": 0.0, "tokens": tr.n_emitted, "wall_s": tr.wall_s})
        for temp in temperatures:
            cfg = replace(base, temperature=temp)
            s = speculative_decode(pair, p["prompt"], cfg).summary
            runs.append({"i": i, "category": p["category"], "mode": "speculative",
                         "temperature": temp, "tokens": s.n_emitted, "wall_s": s.wall_s,
                         "steps": s.n_steps, "accepted": s.n_accepted,
                         "evaluated": _n_evaluated(s),
                         "identical": (s.output_token_ids == greedy_ref[i]) if temp == 0
                         else None})
            log(f"[{i + 1}/{len(prompts)}] {p['category']:<11} T={temp}: "
                f"alpha {s.alpha_hat or 0:.2f}, L {s.mean_accepted_length or 0:.2f}, "
                f"{s.tokens_per_s:.1f} tok/s (target-only {tr.tokens_per_s:.1f})")
    rows = []
    for temp in temperatures:
        for cat in list(CATEGORIES) + ["all"]:
            sel = [r for r in runs if r["mode"] == "speculative" and r["temperature"] == temp
                   and (cat == "all" or r["category"] == cat)]
            ref = [r for r in runs if r["mode"] == "target-only"
                   and (cat == "all" or r["category"] == cat)]
            if not sel:
                continue
            tps = sum(r["tokens"] for r in sel) / sum(r["wall_s"] for r in sel)
            tps_ref = sum(r["tokens"] for r in ref) / sum(r["wall_s"] for r in ref)
            row = {"temperature": temp, "category": cat, "prompts": len(sel),
                   "alpha_hat": sum(r["accepted"] for r in sel) / max(
                       1, sum(r["evaluated"] for r in sel)),
                   "mean_accepted_length": sum(r["tokens"] for r in sel) / max(
                       1, sum(r["steps"] for r in sel)),
                   "tokens_per_s": tps, "target_only_tokens_per_s": tps_ref,
                   "speedup": tps / tps_ref}
            if temp == 0:
                row["greedy_identical"] = f"{sum(r['identical'] for r in sel)}/{len(sel)}"
            rows.append(row)
    return {"c": c, "rows": rows, "runs": runs,
            "settings": {"gamma": gamma, "max_new_tokens": max_new_tokens, "seed": seed,
                         "temperatures": list(temperatures), "n_prompts": len(prompts)}}


def markdown_table(result: dict) -> str:
    """The per-(temperature, category) rows as a Markdown table."""
    lines = ["| τ | category | prompts | α̂ | mean accepted length | tokens/s | "
             "target-only tokens/s | speedup | greedy identical |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['temperature']:g} | {r['category']} | {r['prompts']} | "
                     f"{r['alpha_hat']:.3f} | {r['mean_accepted_length']:.2f} | "
                     f"{r['tokens_per_s']:.2f} | {r['target_only_tokens_per_s']:.2f} | "
                     f"{r['speedup']:.2f}× | {r.get('greedy_identical', '–')} |")
    return "\n".join(lines)


def measure_speedup(pair, prompts: list[dict], *, temperature: float = 0.0, gamma: int = 4,
                    max_new_tokens: int = 64, repeats: int = 3, seed: int = 0,
                    log=print, drafter: str = "model") -> dict:
    """Speedup measured in interleaved pairs (target-only run, then speculative run, same
    prompt, back to back), so that load from other processes hits both sides alike.

    Per prompt: the median over ``repeats`` pairs of (speculative tokens/s) / (target-only
    tokens/s); overall: the median of the per-prompt medians, and each pair's c measured
    alongside."""
    base = DecodeConfig(drafter=drafter, gamma=gamma, max_new_tokens=max_new_tokens,
                        chat=True, seed=seed, trace_detail=False, temperature=temperature)
    speculative_decode(pair, prompts[0]["prompt"], replace(base, max_new_tokens=8))
    per_prompt, cs = [], []
    for i, p in enumerate(prompts):
        ratios = []
        for r in range(repeats):
            t = target_only_decode(pair, p["prompt"], base).summary
            s = speculative_decode(pair, p["prompt"], base).summary
            ratios.append(s.tokens_per_s / t.tokens_per_s)
            cs.append(measure_c(pair, n=10)["c"] if drafter == "model" else
                      measure_c_traced(pair, base, p["prompt"])["c"])
            log(f"[{i + 1}/{len(prompts)}] {p['category']:<11} pair {r + 1}: target-only "
                f"{t.tokens_per_s:.2f} tok/s, speculative {s.tokens_per_s:.2f} tok/s, "
                f"ratio {ratios[-1]:.2f}")
        per_prompt.append({"category": p["category"], "prompt": p["prompt"],
                           "ratios": ratios, "median": statistics.median(ratios)})
    return {"temperature": temperature, "gamma": gamma, "max_new_tokens": max_new_tokens,
            "repeats": repeats, "per_prompt": per_prompt,
            "speedup_median": statistics.median(x["median"] for x in per_prompt),
            "c_median": statistics.median(cs)}
