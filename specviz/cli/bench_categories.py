"""A bench's figures per prompt category (the 'category' field of a prompts file), and over
all prompts: tokens/s per method, the speed-up against the method's target-only baseline
with its range over repeats, alpha_hat and tokens per verification.

Prompts without a category form one group, "all"; where some prompts have a category and
others not, the others are grouped as "(no category)".
"""

from __future__ import annotations

from typing import NamedTuple

ALL = "all"
NONE = "(no category)"


class Sample(NamedTuple):
    """One method's decode of one prompt in one repeat."""

    method: str
    repeat: int
    prompt: int
    tokens: int
    seconds: float
    trace: object | None = None  # a specviz Trace (its steps give alpha_hat), or None


def groups(categories: list[str | None] | None, n: int) -> dict[str, list[int]]:
    """Category -> indices of its prompts, in the order categories first appear, then
    "all" (the only group when no prompt has a category)."""
    cats = list(categories or [None] * n)
    if not any(cats):
        return {ALL: list(range(n))}
    out: dict[str, list[int]] = {}
    for i, c in enumerate(cats):
        out.setdefault(c or NONE, []).append(i)
    out[ALL] = list(range(n))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _speed(samples: list[Sample]) -> tuple[float | None, list[float]]:
    """Tokens/s over the samples, and in each repeat."""
    tok = sum(s.tokens for s in samples)
    sec = sum(s.seconds for s in samples)
    per: dict[int, list[float]] = {}
    for s in samples:
        acc = per.setdefault(s.repeat, [0, 0.0])
        acc[0] += s.tokens
        acc[1] += s.seconds
    return (tok / sec if sec else None), [t / d if d else 0.0 for t, d in
                                          (per[r] for r in sorted(per))]


def _drafting(samples: list[Sample]) -> tuple[float | None, float | None]:
    """alpha_hat (accepted / judged drafted tokens) and tokens per verification, from the
    traces' steps (None for a method that drafts nothing or keeps no steps)."""
    steps = [st for s in samples if s.trace is not None for st in (s.trace.steps or ())]
    judged = sum(st.n_evaluated for st in steps)
    if not steps or not judged:
        return None, None
    accepted = sum(s.trace.summary.n_accepted for s in samples if s.trace is not None)
    emitted = sum(s.trace.summary.n_emitted for s in samples if s.trace is not None)
    n_steps = sum(s.trace.summary.n_steps for s in samples if s.trace is not None)
    return accepted / judged, (emitted / n_steps if n_steps else None)


def method_figures(own: list[Sample], base: list[Sample] | None) -> dict:
    """One method in one group: its speed, its speed-up against ``base`` (per repeat: the
    methods ran interleaved, so a repeat's ratio is one paired sample), alpha_hat and
    tokens per verification."""
    tps, per = _speed(own)
    out = {"tokens_per_s": tps, "tokens_per_s_per_repeat": per, "speedup": None,
           "speedup_per_repeat": [], "speedup_min": None, "speedup_max": None}
    if base is not None:
        btps, bper = _speed(base)
        ratios = [a / b for a, b in zip(per, bper) if b]
        out.update(speedup=_ratio(tps, btps), speedup_per_repeat=ratios,
                   speedup_min=min(ratios, default=None), speedup_max=max(ratios, default=None))
    out["alpha_hat"], out["tokens_per_verification"] = _drafting(own)
    return out


def category_figures(samples: list[Sample], categories: list[str | None] | None, n: int,
                     baselines: dict[str, str | None]) -> dict:
    """Group -> {"prompts": count, "methods": method -> figures}; ``baselines``: method ->
    the target-only method its speed-up is taken against (None: no speed-up)."""
    by: dict[str, list[Sample]] = {}
    for s in samples:
        by.setdefault(s.method, []).append(s)
    result = {}
    for g, idx in groups(categories, n).items():
        keep = set(idx)
        pick = {m: [s for s in ss if s.prompt in keep] for m, ss in by.items()}
        result[g] = {"prompts": len(idx), "methods": {
            m: {**method_figures(pick[m], pick.get(b) if b else None), "baseline": b}
            for m, b in baselines.items() if m in pick}}
    return result


def md_cell(text: str) -> str:
    """Text from a prompts file or a model, safe in a markdown table cell."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
            .replace("<", "&lt;").replace("\r", " ").replace("\n", " "))


def _f(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _speedup_cell(f: dict) -> str:
    if f.get("speedup") is None:
        return "-"
    rng = ""
    if len(f.get("speedup_per_repeat") or []) > 1:
        rng = f" ({f['speedup_min']:.2f}–{f['speedup_max']:.2f})"
    return f"{f['speedup']:.2f}x{rng}"


def categories_markdown(per_category: dict, repeats: int) -> str:
    """The per-category table: one row per group and method."""
    lines = [f"Per category (speed-up against the method's target-only baseline; range over "
             f"{repeats} repeat{'s' if repeats != 1 else ''}):", "",
             "| category | prompts | method | tokens/s | speed-up (range) | against | "
             "alpha_hat | tokens per verification |",
             "|---|---:|---|---:|---:|---|---:|---:|"]
    for g, block in per_category.items():
        for m, f in block["methods"].items():
            lines.append(f"| {md_cell(g)} | {block['prompts']} | {m} | {_f(f['tokens_per_s'])} | "
                         f"{_speedup_cell(f)} | {f['baseline'] or '-'} | "
                         f"{_f(f['alpha_hat'], '.3f')} | "
                         f"{_f(f['tokens_per_verification'])} |")
    return "\n".join(lines)
