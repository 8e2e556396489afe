"""The race: a speculative run and its target-only baseline replayed side by side at their
measured speeds, from the trace's timestamps (each step's tokens appear at its t_end_s).

``race_data`` makes the plain, JSON-ready data a player needs: per side its name, tokens/s,
wall time and each step's (time, tokens), every token text with control and bidirectional
characters written as escapes (a token is always shown as text); and one headline that says
what the class should see, never more than the measurement carries.
"""

from __future__ import annotations

import math

from ..measure import NO_DIFFERENCE, Speedup
from ..traces.records import Trace
from ..traces.visible import visible

SPEEDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # replay speeds offered (1: real time)
MIN_REPLAY_S = 4.0  # a race shorter than this is slowed down by default
MAX_REPLAY_S = 30.0  # a race longer than this is sped up by default


def _text(s: str) -> str:
    return visible(s.replace("\n", "↵\n"))


def _side(trace: Trace, name: str, target_only: bool) -> dict:
    steps = [[round(s.t_end_s, 6), [[_text(t), "target" if target_only else k]
                                    for t, k in zip(s.emitted_text, s.emitted_kinds)]]
             for s in trace.steps if s.emitted_text]
    sm = trace.with_summary().summary
    wall = sm.wall_s if trace.complete else (steps[-1][0] if steps else 0.0)
    return {"name": name, "tokens": sm.n_emitted, "wall_s": round(wall, 6),
            "tokens_per_s": round(sm.tokens_per_s, 3) if trace.complete else None,
            "steps": steps}


def default_speed(longest_s: float) -> float:
    """The replay speed that makes a race last between MIN_REPLAY_S and MAX_REPLAY_S when it
    can: real time if it already does."""
    if longest_s <= 0:
        return 1.0
    if longest_s < MIN_REPLAY_S:
        slow = [s for s in SPEEDS if s <= 1.0 and longest_s / s >= MIN_REPLAY_S]
        return max(slow) if slow else SPEEDS[0]
    if longest_s > MAX_REPLAY_S:
        fast = [s for s in SPEEDS if s >= 1.0 and longest_s / s <= MAX_REPLAY_S]
        return min(fast) if fast else SPEEDS[-1]
    return 1.0


def headline(speedup: Speedup | None) -> str:
    """What the race shows, in a few words a class can read from the back."""
    if speedup is None or speedup.median is None:
        return "No speed-up measured for this run."
    m = speedup.median
    if not speedup.repeated:
        return f"{m:.2f}× in one unrepeated sample: no verdict."
    spread = f"{speedup.low:.2f}–{speedup.high:.2f}× over {speedup.n} rounds"
    if speedup.verdict == NO_DIFFERENCE:
        return f"No measurable difference on this machine ({m:.2f}×, {spread})."
    if speedup.verdict == "faster":
        return f"Speculative decoding is {m:.2f}× as fast ({spread})."
    return f"Speculative decoding is slower here: {m:.2f}× ({spread})."


def why_line(speedup: Speedup | None, tokens_per_pass: float | None, alpha: float | None,
             limiter: str = "", tree: bool = False) -> str:
    """One line under the headline: what the rounds say about the reason, in few words.
    ``limiter``: the bottleneck diagnosis' headline (chains, when the run is slower)."""
    if speedup is None or speedup.median is None or not speedup.repeated:
        return ""
    if speedup.verdict == NO_DIFFERENCE:
        return "The rounds vary more than the two speeds differ: here the difference is noise."
    per = (f"{tokens_per_pass:.2f} tokens per target pass"
           + (f" (α̂ = {alpha:.2f})" if alpha is not None else "")) if tokens_per_pass else ""
    if speedup.verdict == "faster":
        return (f"Why: {per}, and a step (its drafts and one verify pass) costs less "
                "than that many tokens of the target alone.") if per else ""
    if tree:
        return (f"Why: {per}, but each tree step costs more than that many steps of the "
                "target alone.") if per else ""
    return f"Why: {limiter}" if limiter else ""


def replayed_round(spec: Trace, base: Trace, speedup: Speedup | None) -> int | None:
    """Which of the measurement's rounds the two traces are (from 0): the round whose
    tokens/s both sides recorded; None without repeated rounds or a match."""
    if speedup is None or not speedup.repeated or spec.summary is None or base.summary is None:
        return None
    a, b = spec.summary.tokens_per_s, base.summary.tokens_per_s
    for i, r in enumerate(speedup.rounds):
        if math.isclose(r.spec_tokens_per_s, a, rel_tol=1e-6) and \
                math.isclose(r.base_tokens_per_s, b, rel_tol=1e-6):
            return i
    return None


def _rates_said(left: dict, right: dict, spec: Trace, base: Trace,
                speedup: Speedup | None) -> str:
    """Label the rates unambiguously: the lanes replay one round (their tokens/s are that
    round's); over repeated rounds each side also gets its median over the rounds (the
    numbers the page's last-run line gives). Returns the line that says which round plays."""
    if speedup is None or not speedup.repeated:
        return ""
    n = len(speedup.rounds)
    for side, median in ((left, speedup.spec_tokens_per_s), (right, speedup.base_tokens_per_s)):
        side["median_tokens_per_s"] = round(median, 3)
        side["median_label"] = f"{n}-round median: {median:.1f} tokens/s"
    i = replayed_round(spec, base, speedup)
    which = f"round {i + 1} of {n}" if i is not None else f"one of the {n} rounds"
    median = "the median speed-up" if n % 2 else "nearest the median speed-up"
    return f"Replaying {which} ({median}); under each rate, its {n}-round median."


def race_data(spec: Trace, base: Trace, speedup: Speedup | None, why: str = "") -> dict:
    """Both sides of the race, the replay speeds, the default one, the headline and ``why``
    (one line under it: what made the difference, or why there is none). A side's
    ``tokens_per_s`` is its replayed run's; over repeated rounds ``replay`` says which round
    plays and each side's ``median_label`` gives its median over the rounds (what the
    page's last-run line reports)."""
    left = _side(spec, "speculative", target_only=False)
    right = _side(base, "target alone", target_only=True)
    replay = _rates_said(left, right, spec, base, speedup)
    if right["tokens"] < left["tokens"]:
        right["note"] = f"a measured sample of {right['tokens']} of {left['tokens']} tokens"
    longest = max(left["wall_s"], right["wall_s"])
    return {"sides": [left, right], "speeds": list(SPEEDS),
            "speed": default_speed(longest), "headline": headline(speedup), "why": why,
            "replay": replay}
