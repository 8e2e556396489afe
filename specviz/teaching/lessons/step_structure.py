"""Lesson 5, what one step appends: the accepted prefix plus exactly one target token
(a correction or a bonus), checked on every step of the runs; and the events of one recorded
draft–verify cycle, in order, for the ordering exercise."""

from __future__ import annotations

import pandas as pd

from ...traces import frames as F
from ...traces.records import StepRecord, Trace
from .runs import GREEDY, TAU, Files, speculative, visible

FILES = (GREEDY, TAU[0.7])

ENDING = "ending"


def step_endings_frame(trace: Trace) -> pd.DataFrame:
    """Steps that drafted something, counted by (accepted drafts, how the step ended:
    "resampled" correction or "bonus"); columns length, ending, count."""
    rows = [(s.n_accepted, s.emitted_kinds[s.n_accepted])
            for s in trace.steps if s.gamma > 0 and len(s.emitted_kinds) > s.n_accepted]
    df = pd.DataFrame(rows, columns=[F.LENGTH, ENDING])
    return df.groupby([F.LENGTH, ENDING]).size().rename(F.COUNT).reset_index()


def steps_follow_rule(trace: Trace) -> tuple[int, int]:
    """(steps that emitted exactly n_accepted + 1 tokens ending in one target token, steps
    checked); steps cut short by an end-of-sequence token are left out."""
    ok = n = 0
    for s in trace.steps:
        if len(s.emitted_ids) < s.n_accepted + 1:
            continue  # ended by end-of-sequence inside the step
        n += 1
        kinds = s.emitted_kinds
        ok += (len(kinds) == s.n_accepted + 1 and all(k == "accepted" for k in kinds[:-1])
               and kinds[-1] == ("bonus" if s.n_accepted == s.gamma else "resampled"))
    return ok, n


def cycle_step(trace: Trace) -> StepRecord:
    """The step the ordering exercise replays: the first of γ = 4 that kept exactly one
    draft and rejected the second (so two drafts go unjudged)."""
    for s in trace.steps:
        if s.gamma == 4 and s.n_accepted == 1 and len(s.emitted_ids) == 2:
            return s
    raise ValueError("no step of γ = 4 kept exactly one draft")


def numbers(files: Files) -> dict:
    out: dict = {}
    for name, tag in ((GREEDY, "greedy"), (TAU[0.7], "sampled")):
        runs = speculative(files[name])
        ok = [steps_follow_rule(t) for t in runs]
        out[f"{tag}_ok"] = sum(a for a, _ in ok)
        out[f"{tag}_checked"] = sum(b for _, b in ok)
        emitted = [len(s.emitted_ids) for t in runs for s in t.steps]
        out[f"{tag}_min"], out[f"{tag}_max"] = min(emitted), max(emitted)
        out[f"{tag}_gamma"] = int(runs[0].run.config["gamma"])
    trace = speculative(files[GREEDY])[0]
    s = cycle_step(trace)
    d = [visible(x) for x in s.drafted_text]
    out.update({"cycle_step": s.step, "d1": d[0], "d2": d[1], "d3": d[2], "d4": d[3],
                "q1": s.q[0], "q2": s.q[1], "verify_ms": s.verify_ms,
                "corr": visible(s.emitted_text[1]), "cycle_emitted": len(s.emitted_ids),
                "cycle_prompt": " ".join(trace.run.prompt_text.split())[:60]})
    return out


def checks(n: dict) -> dict[str, bool]:
    return {
        "every_greedy_step_follows_rule": n["greedy_ok"] == n["greedy_checked"] > 0,
        "every_sampled_step_follows_rule": n["sampled_ok"] == n["sampled_checked"] > 0,
        "between_one_and_gamma_plus_one": all(
            1 <= n[f"{k}_min"] and n[f"{k}_max"] <= n[f"{k}_gamma"] + 1
            for k in ("greedy", "sampled")),
        "cycle_is_a_rejection": n["cycle_emitted"] == 2 and n["corr"] != n["d2"],
    }
