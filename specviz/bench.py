"""Speed measurements, in one process, on one pair, prompt set, gamma and dtype.

Compared: specviz speculative decoding with tracing on and off, transformers'
``generate`` with the matching assisted mode (assistant model with a constant number of
assistant tokens, its early exit, or prompt lookup), and target-only decoding by both.
Timings are wall-clock totals over all prompts and repeats, the methods interleaved.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone

import torch

from .decoding import encode_prompt, speculative_decode, target_only_decode
from .models import hardware_info

DEFAULT_PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator keeps food cold.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Summarise: The meeting moved to Tuesday. The meeting room is room 4. The meeting will "
    "discuss the budget. The budget is due on Friday. Summarise the meeting plan.",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _hf_generate(pair, cfg, ids: list[int], assisted: bool) -> tuple[list[int], float]:
    """transformers' generate; returns (new token ids, seconds)."""
    inp = torch.tensor([ids], device=pair.device)
    kw = dict(max_new_tokens=cfg.max_new_tokens, eos_token_id=pair.eos_ids,
              pad_token_id=pair.eos_ids[0] if pair.eos_ids else None,
              attention_mask=torch.ones_like(inp))
    if cfg.sampling.greedy:
        kw["do_sample"] = False
    else:
        kw.update(do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k or None,
                  top_p=cfg.top_p)
    restore = None
    if assisted:
        if cfg.drafter == "model":
            g = pair.draft.generation_config
            restore = (g.num_assistant_tokens, g.num_assistant_tokens_schedule,
                       g.assistant_confidence_threshold)
            g.num_assistant_tokens = cfg.gamma
            g.num_assistant_tokens_schedule = "constant"
            g.assistant_confidence_threshold = 0
            kw["assistant_model"] = pair.draft
        elif cfg.drafter == "early-exit":
            kw["assistant_early_exit"] = cfg.early_exit_layers
            kw["num_assistant_tokens"] = cfg.gamma
            kw["num_assistant_tokens_schedule"] = "constant"
            kw["assistant_confidence_threshold"] = 0
        else:
            kw["prompt_lookup_num_tokens"] = cfg.gamma
    try:
        _sync(pair.device)
        t = time.perf_counter()
        with torch.inference_mode():
            out = pair.target.generate(inp, **kw)
        _sync(pair.device)
        dt = time.perf_counter() - t
    finally:
        if restore is not None:
            g = pair.draft.generation_config
            (g.num_assistant_tokens, g.num_assistant_tokens_schedule,
             g.assistant_confidence_threshold) = restore
    return out[0, len(ids):].tolist(), dt


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def run_bench(pair, cfg, *, prompts: list[str] | None = None, repeats: int = 3,
              command: str = "") -> dict:
    """Measure every method on every prompt ``repeats`` times; returns a result dict with a
    markdown table under "markdown"."""
    prompts = prompts or DEFAULT_PROMPTS
    traced = replace(cfg, trace_detail=True)
    untraced = replace(cfg, trace_detail=False)
    methods = {
        "specviz speculative, tracing on":
            lambda p: _ours(speculative_decode, pair, p, traced),
        "specviz speculative, tracing off":
            lambda p: _ours(speculative_decode, pair, p, untraced),
        "transformers assisted generate":
            lambda p: _hf_generate(pair, cfg, encode_prompt(pair.tokenizer, p, cfg.chat), True),
        "specviz target-only":
            lambda p: _ours(target_only_decode, pair, p, traced),
        "transformers generate (target only)":
            lambda p: _hf_generate(pair, cfg, encode_prompt(pair.tokenizer, p, cfg.chat),
                                   False),
    }
    # warm-up: one short call of each
    warm = replace(cfg, max_new_tokens=min(8, cfg.max_new_tokens))
    for fn in (speculative_decode, target_only_decode):
        fn(pair, prompts[0], warm)
    _hf_generate(pair, warm, encode_prompt(pair.tokenizer, prompts[0], cfg.chat), True)

    tokens = {m: 0 for m in methods}
    seconds = {m: 0.0 for m in methods}
    outputs: dict[str, dict[int, list[int]]] = {m: {} for m in methods}
    traces = []
    for _ in range(repeats):
        for i, prompt in enumerate(prompts):
            for name, fn in methods.items():
                ids, dt, trace = fn(prompt) + (None,) if "transformers" in name else fn(prompt)
                tokens[name] += len(ids)
                seconds[name] += dt
                outputs[name][i] = ids
                if trace is not None and name in ("specviz speculative, tracing on",
                                                  "specviz target-only"):
                    traces.append((name, trace))
    tps = {m: tokens[m] / seconds[m] if seconds[m] else 0.0 for m in methods}

    spec_steps = [s for n, t in traces if n.startswith("specviz spec") for s in t.steps[1:]]
    base_steps = [s for n, t in traces if n == "specviz target-only" for s in t.steps[1:]]
    spec_traces = [t for n, t in traces if n.startswith("specviz spec")]
    n_acc = sum(t.summary.n_accepted for t in spec_traces)
    n_eval = sum(sum(s.n_evaluated for s in t.steps) for t in spec_traces)
    alpha = n_acc / n_eval if n_eval else None
    n_emit = sum(t.summary.n_emitted for t in spec_traces)
    n_steps = sum(t.summary.n_steps for t in spec_traces)
    t_target = _median([s.verify_ms for s in base_steps])
    draft_per_tok = _median([s.draft_ms / s.gamma for s in spec_steps if s.gamma])
    verify = _median([s.verify_ms for s in spec_steps])
    c = draft_per_tok / t_target if (draft_per_tok is not None and t_target) else None
    v = verify / t_target if (verify is not None and t_target) else None
    g = cfg.gamma
    predicted = None
    if alpha is not None and c is not None and v is not None:
        e = (g + 1) if alpha >= 1 else (1 - alpha ** (g + 1)) / (1 - alpha)
        predicted = e / (g * c + v)
    same = None
    if cfg.sampling.greedy:
        ref = outputs["transformers generate (target only)"]
        same = {m: all(outputs[m][i] == ref[i] for i in ref) for m in methods}
    ours, hf = tps["specviz speculative, tracing on"], tps["transformers assisted generate"]
    base = tps["specviz target-only"]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "hardware": hardware_info(pair.device),
        "target": pair.target_info, "draft": pair.draft_info if cfg.drafter == "model" else None,
        "drafter": cfg.drafter, "gamma": g, "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens, "prompts": len(prompts), "repeats": repeats,
        "tokens_per_s": tps, "tokens": tokens, "seconds": seconds,
        "ratio_ours_vs_transformers_assisted": ours / hf if hf else None,
        "tracing_cost": 1 - ours / tps["specviz speculative, tracing off"]
        if tps["specviz speculative, tracing off"] else None,
        "speedup_vs_target_only": ours / base if base else None,
        "alpha_hat": alpha, "mean_accepted_length": n_emit / n_steps if n_steps else None,
        "c": c, "v": v, "predicted_speedup": predicted,
        "greedy_output_equals_target_greedy": same,
    }
    result["markdown"] = to_markdown(result)
    return result


def _ours(fn, pair, prompt: str, cfg):
    _sync(pair.device)
    t = time.perf_counter()
    trace = fn(pair, prompt, cfg)
    _sync(pair.device)
    return trace.summary.output_token_ids, time.perf_counter() - t, trace


def _fmt(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def to_markdown(r: dict) -> str:
    hw = r["hardware"]
    dev = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('torch_threads')} threads)"
    lines = [
        f"Measured {r['date']} on {dev}; torch {hw['torch']}, transformers "
        f"{hw['transformers']}, {r['target']['dtype']}.",
        f"Command: `{r['command']}`",
        f"Target {r['target']['source']}; drafter {r['drafter']}"
        + (f" ({r['draft']['source']})" if r.get("draft") else "")
        + f"; gamma {r['gamma']}; temperature {r['temperature']}; {r['prompts']} prompts x "
        f"{r['repeats']} repeats, up to {r['max_new_tokens']} new tokens each.",
        "",
        "| method | tokens | seconds | tokens/s | same output as target greedy |",
        "|---|---:|---:|---:|---|",
    ]
    same = r.get("greedy_output_equals_target_greedy") or {}
    for m, tps in r["tokens_per_s"].items():
        s = same.get(m)
        lines.append(f"| {m} | {r['tokens'][m]} | {r['seconds'][m]:.2f} | {tps:.2f} | "
                     f"{'-' if s is None else ('yes' if s else 'NO')} |")
    lines += [
        "",
        f"- ours / transformers assisted: {_fmt(r['ratio_ours_vs_transformers_assisted'])}",
        f"- tracing cost (1 - on/off): {_fmt(r['tracing_cost'], '.1%')}",
        f"- speedup over specviz target-only: {_fmt(r['speedup_vs_target_only'])}",
        f"- alpha_hat {_fmt(r['alpha_hat'])}, mean accepted length "
        f"{_fmt(r['mean_accepted_length'], '.2f')}, c {_fmt(r['c'])}, v {_fmt(r['v'])}, "
        f"predicted speedup E/(gamma c + v) {_fmt(r['predicted_speedup'])}",
    ]
    return "\n".join(lines)
