"""Speed measurements, in one process, on one pair, prompt set, gamma and dtype.

Compared: specviz speculative decoding with tracing on and off, transformers'
``generate`` with the matching assisted mode (assistant model with a constant number of
assistant tokens, its early exit, or prompt lookup), and target-only decoding by both;
or (``run_tree_bench``) the chain against token trees.
Timings are wall-clock totals over all prompts and repeats, the methods interleaved.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone

import torch

from ..core.tree_decoder import parse_tree
from ..decoding import encode_prompt, speculative_decode, target_only_decode
from ..engines.static import fuse_layers
from ..measure import Round, Speedup
from ..models import hardware_info
from .bench_categories import Sample, categories_markdown, category_figures

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


def _hf_generate(pair, cfg, ids: list[int], assisted: bool,
                 static: bool = False) -> tuple[list[int], float]:
    """transformers' generate (``static``: with its static cache, which it compiles on the
    first call); returns (new token ids, seconds)."""
    inp = torch.tensor([ids], device=pair.device)
    kw = dict(max_new_tokens=cfg.max_new_tokens, eos_token_id=pair.eos_ids,
              pad_token_id=pair.eos_ids[0] if pair.eos_ids else None,
              attention_mask=torch.ones_like(inp))
    if static:
        kw["cache_implementation"] = "static"
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


def default_engines(device: torch.device) -> list[str]:
    """The engines a bench compares: eager and CUDA graphs on a GPU, eager on a CPU."""
    return ["eager", "graphs"] if device.type == "cuda" else ["eager"]


FUSED = "+fused"  # an engine name's suffix: its layers compiled by torch.compile
UNTRACED = " (untraced)"  # a tree-bench method's name suffix: the run without records


def _with_fusion(engine: str, fn):
    """fn, run with the static engine's layers fused when the engine name asks for it."""
    if not engine.endswith(FUSED):
        return fn

    def fused(*args):
        fuse_layers(True)
        try:
            return fn(*args)
        finally:
            fuse_layers(False)
    return fused


def _spec(engine: str, traced: bool) -> str:
    return f"specviz speculative, {engine}, tracing {'on' if traced else 'off'}"


def _base(engine: str) -> str:
    return f"specviz target-only, {engine}"


HF_ASSISTED = "transformers assisted generate"
HF_TARGET = "transformers generate (target only)"
HF_STATIC = "transformers generate, static cache, compiled (target only)"


def _warm_up(methods: dict, prompts: list[str], progress, every_prompt) -> dict:
    """Every method once on the first prompt at full length (CUDA graphs are captured here:
    that time is reported, not counted in the measurements), or on every prompt where
    ``every_prompt(name)``: a fused engine compiles each new pass shape on first use
    (seconds each), and the shapes of a run's last steps depend on the prompt."""
    warm_s = {}
    for name, fn in methods.items():
        progress(f"warm-up: {name}")
        t = time.perf_counter()
        for p in prompts if every_prompt(name) else prompts[:1]:
            fn(p)
        warm_s[name] = time.perf_counter() - t
    return warm_s


def _measure(methods: dict, prompts: list[str], repeats: int, progress,
             per_repeat: dict | None = None, samples: list | None = None):
    """Every method (name -> fn(prompt) -> (ids, seconds, trace or None)) on every prompt,
    ``repeats`` times, interleaved prompt by prompt: tokens and seconds per method, each
    prompt's output ids, and the traces with steps in the order they ran. ``per_repeat``
    (if given) receives each method's tokens/s in each repeat; ``samples`` (if given) one
    Sample per method, repeat and prompt (for the per-category figures)."""
    tokens = {m: 0 for m in methods}
    seconds = {m: 0.0 for m in methods}
    outputs: dict[str, dict[int, list[int]]] = {m: {} for m in methods}
    traces: dict[str, list] = {m: [] for m in methods}
    for r in range(repeats):
        before = (dict(tokens), dict(seconds))
        for i, prompt in enumerate(prompts):
            progress(f"repeat {r + 1}/{repeats}, prompt {i + 1}/{len(prompts)}")
            for name, fn in methods.items():
                ids, dt, trace = fn(prompt)
                tokens[name] += len(ids)
                seconds[name] += dt
                outputs[name][i] = ids
                if samples is not None:
                    samples.append(Sample(name, r, i, len(ids), dt, trace))
                if trace is not None and trace.steps:
                    traces[name].append(trace)
        if per_repeat is not None:
            for m in methods:
                dt = seconds[m] - before[1][m]
                per_repeat.setdefault(m, []).append((tokens[m] - before[0][m]) / dt if dt
                                                    else 0.0)
    return tokens, seconds, outputs, traces


def _bench_methods(pair, cfg, engines: list[str], transformers: bool,
                   transformers_static: bool) -> dict:
    """run_bench's methods: name -> fn(prompt) -> (output ids, seconds, trace or None)."""
    methods = {}
    for e in engines:
        traced = replace(cfg, trace_detail=True, engine=e.removesuffix(FUSED))
        untraced = replace(traced, trace_detail=False)
        base = _with_fusion(e, lambda p, c=traced: _ours(target_only_decode, pair, p, c))
        on = _with_fusion(e, lambda p, c=traced: _ours(speculative_decode, pair, p, c))
        off = _with_fusion(e, lambda p, c=untraced: _ours(speculative_decode, pair, p, c))
        methods[_base(e)], methods[_spec(e, True)], methods[_spec(e, False)] = base, on, off
    if transformers and cfg.drafter != "feature-head":  # it has no feature-level heads
        methods[HF_ASSISTED] = lambda p: _hf_generate(
            pair, cfg, encode_prompt(pair.tokenizer, p, cfg.chat), True) + (None,)
    if transformers:
        methods[HF_TARGET] = lambda p: _hf_generate(
            pair, cfg, encode_prompt(pair.tokenizer, p, cfg.chat), False) + (None,)
    if transformers_static:
        methods[HF_STATIC] = lambda p: _hf_generate(
            pair, cfg, encode_prompt(pair.tokenizer, p, cfg.chat), False, static=True) + (None,)
    return methods


def run_bench(pair, cfg, *, prompts: list[str] | None = None, repeats: int = 3,
              engines: list[str] | None = None, command: str = "",
              progress=lambda msg: None, transformers: bool = True,
              transformers_static: bool = False,
              categories: list[str | None] | None = None) -> dict:
    """Measure every method on every prompt ``repeats`` times, methods interleaved prompt by
    prompt; returns a result dict with a markdown table under "markdown".

    For each engine (eager: transformers' forward with dynamic caches; static: the static
    engine without graphs; graphs: the static engine replayed as CUDA graphs) it runs
    target-only decoding and speculative decoding with tracing on and off; transformers'
    generate runs with and without the assistant. An engine named with the suffix "+fused"
    is that engine with its layers compiled by torch.compile. ``transformers_static`` adds
    transformers' generate with its static cache (compiled on its first call: the warm-up).
    ``categories``: each prompt's category (None for none), for the per-category figures.
    """
    prompts = prompts or DEFAULT_PROMPTS
    engines = engines or default_engines(pair.device)
    methods = _bench_methods(pair, cfg, engines, transformers, transformers_static)
    warm_s = _warm_up(methods, prompts, progress, lambda name: FUSED in name)
    per_repeat: dict[str, list[float]] = {}
    samples: list[Sample] = []
    tokens, seconds, outputs, traces = _measure(methods, prompts, repeats, progress,
                                                per_repeat, samples)
    tps = {m: tokens[m] / seconds[m] if seconds[m] else 0.0 for m in methods}
    same, identical = _greedy_agreement(
        cfg, outputs, HF_TARGET if transformers else _base(engines[0]), methods)

    per_engine = _per_engine(engines, tps, traces, cfg.gamma, per_repeat)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "hardware": hardware_info(pair.device),
        "target": pair.target_info,
        "draft": {"model": pair.draft_info, "feature-head": pair.head_info}.get(cfg.drafter),
        "drafter": cfg.drafter, "gamma": cfg.gamma, "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens, "prompts": len(prompts), "repeats": repeats,
        "engines": engines, "tokens_per_s": tps, "tokens": tokens, "seconds": seconds,
        "warmup_s": warm_s, "per_engine": per_engine,
        "graphs_target_only_vs_transformers_static": _ratio(
            max((tps[_base(e)] for e in engines if e.startswith("graphs")), default=None),
            tps.get(HF_STATIC)),
        "greedy_output_equals_target_greedy": same,
        "prompts_identical_to_target_greedy": identical,
        "outputs": {m: [outputs[m][i] for i in range(len(prompts))] for m in methods},
        "categories": list(categories) if categories else None,
        "per_category": category_figures(samples, categories, len(prompts),
                                         _baselines(methods, engines)),
    }
    result.update(_fast_engine(engines, tps))
    result["markdown"] = to_markdown(result)
    return result


def _greedy_agreement(cfg, outputs: dict, reference: str, methods) -> tuple:
    """Greedy runs: ({method: every prompt's output equals the reference's},
    {method: how many prompts do}); (None, None) for sampled runs."""
    if not cfg.sampling.greedy:
        return None, None
    ref = outputs[reference]
    identical = {m: sum(outputs[m][i] == ref[i] for i in ref) for m in methods}
    return {m: identical[m] == len(ref) for m in methods}, identical


def _fast_engine(engines: list[str], tps: dict) -> dict:
    """With eager and a faster engine compared: the last engine against eager."""
    if "eager" not in engines or len(engines) < 2:
        return {}
    fast = engines[-1]
    return {"fast_engine": fast,
            "fast_target_only_vs_eager_target_only": _ratio(tps[_base(fast)],
                                                             tps[_base("eager")]),
            "fast_speculative_vs_eager_speculative": _ratio(tps[_spec(fast, True)],
                                                            tps[_spec("eager", True)])}


def _per_engine(engines: list[str], tps: dict, traces: dict, gamma: int,
                per_repeat: dict) -> dict:
    """Each engine's figures, with the speed-up in each repeat (methods interleaved): its
    spread and verdict."""
    per_engine = {e: _engine_figures(e, tps, traces, gamma) for e in engines}
    for e in engines:
        sp = Speedup(tuple(Round(a, b) for a, b in zip(per_repeat[_spec(e, True)],
                                                        per_repeat[_base(e)])))
        per_engine[e]["speedup_per_repeat"] = sp.ratios
        per_engine[e]["speedup_verdict"] = sp.verdict
    return per_engine


def _baselines(methods: dict, engines: list[str]) -> dict[str, str | None]:
    """Method -> the target-only method its per-category speed-up is taken against: a
    specviz method's engine's target-only, transformers' methods transformers' generate."""
    out = {}
    for m in methods:
        out[m] = None
        for e in engines:
            if m in (_spec(e, True), _spec(e, False)):
                out[m] = _base(e)
        if m in (HF_ASSISTED, HF_STATIC) and HF_TARGET in methods:
            out[m] = HF_TARGET
    return out


def by_dtype(results: list[dict]) -> str:
    """Runs of the same bench in several dtypes (one process, one after the other) side by
    side: per engine, target-only and speculative tokens/s, the speedup, and how many prompts
    each greedy output shares token for token with its own dtype's target-only output and
    with the first dtype's."""
    first = results[0]
    lines = ["| dtype | engine | target-only tokens/s | speculative tokens/s | speedup | "
             "tracing cost | alpha_hat | prompts equal to its own target-only | "
             f"prompts equal to {first['target']['dtype']} target-only |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    n = first["prompts"]
    for r in results:
        for e, f in r["per_engine"].items():
            spec, base = r["outputs"][_spec(e, True)], r["outputs"][_base(e)]
            ref = first["outputs"].get(_base(e)) or first["outputs"][_base(first["engines"][0])]
            own = sum(a == b for a, b in zip(spec, base)) if r["temperature"] == 0 else None
            cross = sum(a == b for a, b in zip(base, ref)) if r["temperature"] == 0 else None
            lines.append(
                f"| {r['target']['dtype']} | {e} | {_fmt(f['tokens_per_s_target_only'], '.1f')} | "
                f"{_fmt(f['tokens_per_s_speculative'], '.1f')} | "
                f"{_fmt(f['speedup_vs_target_only'])} | {_fmt(f['tracing_cost'], '.1%')} | "
                f"{_fmt(f['alpha_hat'])} | {'-' if own is None else f'{own}/{n}'} | "
                f"{'-' if cross is None else f'{cross}/{n}'} |")
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _engine_figures(engine: str, tps: dict, traces: dict, gamma: int) -> dict:
    """Speedups, tracing cost, alpha_hat, c, v and the prediction for one engine.

    c = draft time per drafted token / target-only forward time; v = verify pass time /
    target-only forward time (medians over steps after each run's first); the prediction is
    E / (gamma c + v) with E = (1 - alpha^(gamma+1)) / (1 - alpha). Host work per step
    (verifying, packing, trace records) is outside c and v: overhead = 1 - (draft + verify
    time) / step time, medians over speculative steps.
    """
    spec_traces = traces[_spec(engine, True)]
    spec_steps = [s for t in spec_traces for s in t.steps[1:]]
    base_steps = [s for t in traces[_base(engine)] for s in t.steps[1:]]
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
    predicted = None
    if alpha is not None and c is not None and v is not None:
        e = (gamma + 1) if alpha >= 1 else (1 - alpha ** (gamma + 1)) / (1 - alpha)
        predicted = e / (gamma * c + v)
    overhead = _median([1 - (s.draft_ms + s.verify_ms) / s.total_ms for s in spec_steps
                        if s.total_ms > 0])
    on, off = tps[_spec(engine, True)], tps[_spec(engine, False)]
    speedup = _ratio(on, tps[_base(engine)])
    return {
        "tokens_per_s_speculative": on,
        "tokens_per_s_target_only": tps[_base(engine)],
        "speedup_vs_target_only": speedup,
        "ratio_vs_transformers_assisted": _ratio(on, tps.get(HF_ASSISTED)),
        "tracing_cost": 1 - on / off if off else None,
        "alpha_hat": alpha, "mean_accepted_length": n_emit / n_steps if n_steps else None,
        "target_forward_ms": t_target, "draft_ms_per_token": draft_per_tok,
        "verify_ms": verify, "c": c, "v": v, "predicted_speedup": predicted,
        "measured_over_predicted": _ratio(speedup, predicted),
        "step_overhead": overhead,
    }


def _ours(fn, pair, prompt: str, cfg):
    _sync(pair.device)
    t = time.perf_counter()
    trace = fn(pair, prompt, cfg)
    _sync(pair.device)
    return trace.summary.output_token_ids, time.perf_counter() - t, trace


def _fmt(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _spread(f: dict) -> str:
    """' (range 1.20–1.41 over 3 repeats: faster)' after an engine's speed-up, if repeated."""
    ratios = f.get("speedup_per_repeat") or []
    if len(ratios) < 2:
        return ""
    return (f" (range {min(ratios):.2f}–{max(ratios):.2f} over {len(ratios)} repeats: "
            f"{f['speedup_verdict']})")


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
        "| method | tokens | seconds | tokens/s | prompts with the target's greedy output | "
        "warm-up s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    same = r.get("prompts_identical_to_target_greedy") or {}
    n = r["prompts"]
    for m, tps in r["tokens_per_s"].items():
        k = same.get(m)
        lines.append(f"| {m} | {r['tokens'][m]} | {r['seconds'][m]:.2f} | {tps:.2f} | "
                     f"{'-' if k is None else f'{k}/{n}'} | {r['warmup_s'][m]:.2f} |")
    lines += ["", "| engine | speedup vs its target-only | vs transformers assisted | "
              "tracing cost | alpha_hat | mean accepted length | target pass ms | c | v | "
              "predicted | measured / predicted | host overhead per step |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e, f in r["per_engine"].items():
        lines.append(
            f"| {e} | {_fmt(f['speedup_vs_target_only'])}{_spread(f)} | "
            f"{_fmt(f['ratio_vs_transformers_assisted'])} | {_fmt(f['tracing_cost'], '.1%')} | "
            f"{_fmt(f['alpha_hat'])} | {_fmt(f['mean_accepted_length'], '.2f')} | "
            f"{_fmt(f['target_forward_ms'], '.2f')} | {_fmt(f['c'])} | {_fmt(f['v'])} | "
            f"{_fmt(f['predicted_speedup'])} | {_fmt(f['measured_over_predicted'])} | "
            f"{_fmt(f['step_overhead'], '.1%')} |")
    if r.get("fast_engine"):
        fast = r["fast_engine"]
        lines += ["", f"- {fast} target-only / eager target-only: "
                  f"{_fmt(r['fast_target_only_vs_eager_target_only'], '.2f')}x",
                  f"- {fast} speculative / eager speculative: "
                  f"{_fmt(r['fast_speculative_vs_eager_speculative'], '.2f')}x"]
    if r.get("graphs_target_only_vs_transformers_static"):
        lines.append("- graphed target-only (the faster graphed engine) / transformers' "
                     "static-cache generate: "
                     f"{_fmt(r['graphs_target_only_vs_transformers_static'], '.2f')}x")
    if r.get("per_category"):
        lines += ["", categories_markdown(r["per_category"], r["repeats"])]
    return "\n".join(lines)


def run_tree_bench(pair, cfg, trees: list[str], *, prompts: list[str] | None = None,
                   repeats: int = 3, command: str = "", progress=lambda msg: None,
                   fused: bool = False, categories: list[str | None] | None = None) -> dict:
    """Chain against token trees on the same prompts, interleaved prompt by prompt, in one
    process, all on one engine: CUDA graphs on a GPU (each phase of a step graphed), the
    static engine elsewhere; the baseline is target-only on that engine. ``trees``: tree
    texts of DecodeConfig.tree ('chain' for the run's γ). ``fused``: every method (the
    baseline too) with the static engine's layers fused (warmed up on every prompt: each new
    pass shape compiles)."""
    prompts = prompts or DEFAULT_PROMPTS
    path = "graphs" if pair.device.type == "cuda" else "static"
    engine = path + (FUSED if fused else "")  # its name in the table
    base_cfg = replace(cfg, engine=path, tree="")
    baseline = f"target-only, {engine}"
    configs = {baseline: (target_only_decode, base_cfg)}
    for t in trees:
        shape = parse_tree(t)
        name = f"chain of {cfg.gamma}" if shape is None else shape.label
        configs[f"{name}, {engine}"] = (speculative_decode,
                                        replace(base_cfg, tree="" if shape is None else t))
    # each method traced (its figures come from the records) and untraced (the speed of
    # decoding alone)
    methods = {}
    for name, (fn, c) in configs.items():
        for on in (True, False):
            methods[name + ("" if on else UNTRACED)] = _with_fusion(
                engine, lambda p, fn=fn, c=replace(c, trace_detail=on): _ours(fn, pair, p, c))
    warm = _warm_up(methods, prompts, progress, lambda name: fused)
    samples: list[Sample] = []
    tokens, seconds, outputs, traces = _measure(methods, prompts, repeats, progress,
                                                samples=samples)
    tps = {m: tokens[m] / seconds[m] if seconds[m] else 0.0 for m in methods}
    n = len(prompts)  # the figures come from the first repeat's traced runs
    rows = {name: _tree_row(traces[name][:n], tps, name, baseline, traces[baseline][:n],
                            cfg.sampling.greedy) for name in configs}
    warm_s = {name: warm[name] + warm[name + UNTRACED] for name in configs}
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command, "hardware": hardware_info(pair.device), "target": pair.target_info,
        "draft": pair.head_info if cfg.drafter == "feature-head" else pair.draft_info,
        "drafter": cfg.drafter, "gamma": cfg.gamma,
        "temperature": cfg.temperature, "max_new_tokens": cfg.max_new_tokens,
        "prompts": len(prompts), "repeats": repeats, "trees": trees, "engine": engine,
        "warmup_s": warm_s,
        "rows": rows,
        "outputs": {m: [outputs[m][i] for i in range(n)] for m in methods},
        "categories": list(categories) if categories else None,
        "per_category": category_figures(
            samples, categories, n, {m: None if m.removesuffix(UNTRACED) == baseline else
                                     baseline + (UNTRACED if m.endswith(UNTRACED) else "")
                                     for m in methods}),
    }
    result["markdown"] = trees_markdown(result)
    return result


def _tree_row(ts: list, tps: dict, name: str, baseline: str, base_traces: list,
              greedy: bool) -> dict:
    """One method's line of the tree bench, from its traces and the measured speeds."""
    steps = sum(t.summary.n_steps for t in ts)
    nodes = sum(s.gamma for t in ts for s in t.steps)
    judged = sum(s.n_evaluated for t in ts for s in t.steps)
    base = [t.summary.output_token_ids for t in base_traces]
    return {
        "tokens_per_s": tps[name],
        "tokens_per_s_untraced": tps[name + UNTRACED],
        "tokens_per_verification": sum(t.summary.n_emitted for t in ts) / steps
        if steps else None,
        "drafted_per_verification": nodes / steps if steps else None,
        "alpha_hat": sum(t.summary.n_accepted for t in ts) / judged if judged else None,
        "vs_target_only": _ratio(tps[name], tps[baseline]),
        "vs_target_only_untraced": _ratio(tps[name + UNTRACED], tps[baseline + UNTRACED]),
        "prompts_equal_to_target_only": sum(t.summary.output_token_ids == b
                                            for t, b in zip(ts, base)) if greedy else None,
    }


def trees_markdown(r: dict) -> str:
    hw = r["hardware"]
    dev = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('torch_threads')} threads)"
    n = r["prompts"]
    lines = [
        f"Measured {r['date']} on {dev}; torch {hw['torch']}, transformers "
        f"{hw['transformers']}, {r['target']['dtype']}.",
        f"Command: `{r['command']}`",
        f"Target {r['target']['source']}; drafter {r['drafter']}, "
        f"{r['draft']['source'] if r['draft'] else '-'};"
        f" temperature {r['temperature']}; {n} prompts x {r['repeats']} repeats, up to "
        f"{r['max_new_tokens']} new tokens each.",
        "",
        "| method | tokens/s, tracing on | tracing off | tokens per verification | "
        f"drafted per verification | alpha_hat | vs target-only ({r['engine']}), tracing on "
        "| tracing off | prompts with the target's greedy output | warm-up s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, f in r["rows"].items():
        same = f["prompts_equal_to_target_only"]
        lines.append(
            f"| {name} | {f['tokens_per_s']:.1f} | {f['tokens_per_s_untraced']:.1f} | "
            f"{_fmt(f['tokens_per_verification'], '.2f')} "
            f"| {_fmt(f['drafted_per_verification'], '.1f')} | {_fmt(f['alpha_hat'])} | "
            f"{_fmt(f['vs_target_only'], '.2f')} | {_fmt(f['vs_target_only_untraced'], '.2f')} | "
            f"{'-' if same is None else f'{same}/{n}'} | {r['warmup_s'][name]:.1f} |")
    if r.get("per_category"):
        lines += ["", categories_markdown(r["per_category"], r["repeats"])]
    return "\n".join(lines)
