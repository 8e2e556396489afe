"""Two model pairs on one prompt: which one the Overview leads with, and why the other does
not speed up, from the runs' own measurements (``diagnosis.measure``: α̂, c, v, overhead and
the tokens per verification; the speed-up is the median of the rounds measured against each
run's target-only baseline).

A comparison needs draft-model chain runs of two different targets on the same prompt with
the same settings (device, dtype, sampling, γ, new tokens), each linked to its baseline. Runs
of one file (recorded together by ``scripts/make_pair_traces.sh``) are preferred to runs
matched across files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..measure import NO_DIFFERENCE
from ..traces import frames as F
from ..traces.records import Trace
from ..traces.visible import visible
from .diagnosis import Costs, diagnose, measure


@dataclass(frozen=True)
class PairRun:
    """One speculative run of a pair, with what the comparison reads from it."""

    file: str
    index: int  # in its file
    target: str  # the target's source
    draft: str  # the draft's source, " (int8 weights)" added for an int8 draft
    target_params: int | None
    prompt: str
    setting: tuple  # what must match between the two pairs' runs
    costs: Costs

    @property
    def speedup(self) -> float | None:
        return self.costs.speedup_measured


@dataclass(frozen=True)
class Comparison:
    """The pair that leads (the larger measured speed-up) and the other pair's run of the
    same prompt."""

    lead: PairRun
    other: PairRun


def setting_of(trace: Trace) -> tuple:
    """Device, hardware, dtype, sampling, γ and new tokens: runs differing in any are not
    compared."""
    r, cfg = trace.run, trace.run.config
    hw = r.hardware or {}
    return (r.target.get("device") or hw.get("device"), hw.get("gpu") or hw.get("cpu"),
            r.target.get("dtype"), cfg.get("temperature", 0.0), cfg.get("top_k", 0),
            cfg.get("top_p", 1.0), cfg.get("gamma"), cfg.get("max_new_tokens"),
            cfg.get("chat", True))


def pair_run(file: str, index: int, trace: Trace, traces: list[Trace]) -> PairRun | None:
    """``trace`` as one side of a comparison: a draft model's chain run with a measured
    speed-up against its own baseline among ``traces``; else None."""
    if F.is_target_only(trace) or trace.run.drafter != "model" or F.is_tree(trace) \
            or not trace.run.draft:
        return None
    base = F.baseline_for(trace, traces)
    if base is None:
        return None
    costs = measure(trace, base)
    if not costs.speedup_measured:
        return None
    n = trace.run.target.get("n_params")
    draft = str(trace.run.draft.get("source", "?"))
    if str(trace.run.draft.get("dtype", "")).startswith("int8"):
        draft += " (int8 weights)"  # --draft-int8: its cost is not the float draft's
    return PairRun(file, index, str(trace.run.target.get("source", "?")), draft,
                   int(n) if isinstance(n, (int, float)) else None,
                   trace.run.prompt_text, setting_of(trace), costs)


def _best_group(groups: dict[tuple, list[PairRun]]) -> Comparison | None:
    best = None
    for runs in groups.values():
        first: dict[str, PairRun] = {}
        for r in runs:
            first.setdefault(r.target, r)  # one run per target: the first in file order
        if len(first) < 2:
            continue
        ranked = sorted(first.values(), key=lambda r: -r.speedup)
        cmp = Comparison(ranked[0], ranked[-1])
        if best is None or cmp.lead.speedup > best.lead.speedup:
            best = cmp
    return best


def compare(runs: list[PairRun]) -> Comparison | None:
    """The comparison the Overview leads with: among groups of runs on one prompt with one
    setting holding two targets or more (runs of one file first; across files only when no
    file holds such a group), the group whose fastest pair is fastest; it leads, the slowest
    other target's run is the comparison. None without such a group."""
    for key in (lambda r: (r.file, r.prompt, r.setting), lambda r: (r.prompt, r.setting)):
        groups: dict[tuple, list[PairRun]] = {}
        for r in runs:
            groups.setdefault(key(r), []).append(r)
        cmp = _best_group(groups)
        if cmp is not None:
            return cmp
    return None


def model_name(source: str) -> str:
    """The model's name in a source string: 'embedded:qwen2.5-coder-1.5b-instruct' ->
    'qwen2.5-coder-1.5b-instruct', a path -> its last part."""
    return source.split(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1] or source


def pair_name(r: PairRun) -> str:
    """'qwen2.5-coder-1.5b-instruct (1,777 M) with qwen2.5-coder-0.5b-instruct'."""
    size = f" ({r.target_params / 1e6:,.0f} M)" if r.target_params else ""
    return f"{model_name(r.target)}{size} with {model_name(r.draft)}"


def speed_text(r: PairRun) -> str:
    """The measured speed-up with its count and range: '1.42× (range 1.38–1.47 over 3
    rounds)', or '… (one round: no spread)'."""
    sp = r.costs.speedup
    if sp is None or sp.n < 2:
        return f"{r.speedup:.2f}× (one round: no spread)"
    same = ", no measurable difference" if sp.verdict == NO_DIFFERENCE else ""
    return f"{sp.median:.2f}× (range {sp.low:.2f}–{sp.high:.2f} over {sp.n} rounds{same})"


def why_titles(cmp: Comparison) -> tuple[str, str]:
    """The headings of the two explanations (lead, other), true to the measured speed-ups:
    a pair at or below 1× is never said to speed up, and the other pair is said to gain
    less only where its range of rounds lies below the leading pair's."""
    def verdict(r: PairRun) -> str:
        sp = r.costs.speedup
        return sp.verdict if sp is not None else "one sample"

    if cmp.lead.speedup <= 1.0:
        lead = "The leading pair (no faster than its target alone either)."
    elif verdict(cmp.lead) == "faster":
        lead = "Why the leading pair speeds up."
    else:
        lead = "The leading pair (faster by its median, not measurably: see its range)."
    if cmp.other.speedup <= 1.0:
        other = "Why the other pair does not speed up."
    elif _span(cmp.other)[1] >= _span(cmp.lead)[0]:
        other = ("Why the other pair speeds up about as much (the two ranges overlap: these "
                 "rounds do not say which pair is faster).")
    else:
        other = "Why the other pair speeds up less."
    return lead, other


def _span(r: PairRun) -> tuple[float, float]:
    """The run's range of speed-ups over its rounds (one round: its one value twice)."""
    sp = r.costs.speedup
    return (sp.low, sp.high) if sp is not None and sp.n >= 2 else (r.speedup, r.speedup)


def step_cost(r: PairRun) -> tuple[float, float, float] | None:
    """(target steps a speculative step costs, tokens it yields, their ratio: the predicted
    speed-up), from the run's c, v and overhead; None where the run lacks one."""
    k = r.costs
    if None in (k.c, k.v, k.overhead, k.mean_accepted_length):
        return None
    cost = k.gamma * k.c + k.v + k.overhead
    if not cost > 0:
        return None
    return cost, k.mean_accepted_length, k.mean_accepted_length / cost


def why_text(r: PairRun) -> str:
    """Why this pair's speed-up is what it is, in one sentence of measured numbers: the cost
    of a verify pass over γ + 1 tokens (v) and of a drafted token (c), each in one-token
    target passes, the tokens a verification yields at this α̂, and the predicted speed-up
    E / (γ c + v + overhead) beside the measured one."""
    k = r.costs
    g = k.gamma_config or max(int(round(k.gamma)), 1)
    parts = step_cost(r)
    alpha = f"α̂ {k.alpha:.2f}" if k.alpha is not None else "its α̂"
    if parts is None:
        return (f"{model_name(r.target)}: the run records no phase times, so its costs cannot "
                f"be split; measured {r.speedup:.2f}× at {alpha}.")
    cost, tokens, predicted = parts
    return (f"{model_name(r.target)}: a verify pass over γ + 1 = {g + 1} tokens costs "
            f"v = {k.v:.2f} one-token target passes and each drafted token c = {k.c:.2f} of "
            f"one, so a step costs {k.gamma:.2f} drafted × {k.c:.2f} + {k.v:.2f} (verify) + "
            f"{k.overhead:.2f} (overhead) = {cost:.2f} target passes; at {alpha} it yields "
            f"{tokens:.2f} tokens: {tokens:.2f} / {cost:.2f} = {predicted:.2f}× predicted, "
            f"{r.speedup:.2f}× measured.")


def limiter_text(r: PairRun) -> str:
    """The diagnosis's headline for this run (what limits it), or empty."""
    d = diagnose(r.costs)
    return d.headline if d.limiter != "unknown" else ""


def headline(cmp: Comparison) -> str:
    """One sentence: both pairs' measured speed-ups on the one prompt."""
    return (f"On the same prompt, the pair {pair_name(cmp.lead)} runs at "
            f"{speed_text(cmp.lead)} the speed of its target alone; the pair "
            f"{pair_name(cmp.other)} at {speed_text(cmp.other)}.")


def table_rows(cmp: Comparison) -> list[dict]:
    """The compact comparison table, one row per measure and one column per pair (named by
    its target: narrow enough for a 1024-px screen): speed-up, rounds, α̂, tokens per
    verification, c, v and the predicted speed-up."""
    names = [visible(model_name(cmp.lead.target)), visible(model_name(cmp.other.target))]
    if names[0] == names[1]:
        names = [f"1. {names[0]}", f"2. {names[1]}"]

    def fmt(x, spec="{:.2f}"):
        return "–" if x is None else spec.format(x)

    cols = []
    for r in (cmp.lead, cmp.other):
        k = r.costs
        parts = step_cost(r)
        cols.append([f"{r.speedup:.2f}×", str(k.speedup.n if k.speedup else 1), fmt(k.alpha),
                     fmt(k.mean_accepted_length), fmt(k.c), fmt(k.v),
                     "–" if parts is None else f"{parts[2]:.2f}×"])
    measures = ["speed-up (median of rounds)", "rounds", "α̂", "tokens per verification",
                "c: a drafted token / target pass", "v: verify pass / target pass",
                "predicted speed-up"]
    return [{"": m, names[0]: a, names[1]: b} for m, a, b in zip(measures, *cols)]


def settings_text(r: PairRun) -> str:
    """The shared setting in words: 'cpu, float32, greedy, γ = 4, 64 new tokens'."""
    device, _, dtype, temperature, _, _, gamma, tokens, _ = r.setting
    sampling = "greedy" if not temperature else f"τ = {temperature:g}"
    return ", ".join(str(x) for x in (device, dtype, sampling, f"γ = {gamma}",
                                      f"{tokens} new tokens") if x is not None)
