"""Lesson 4, how the target judges the drafts: every judged decision of a run recomputed from
the recorded p, q and u (sampling) or the target's top token (greedy)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ...traces import frames as F
from ...traces.records import Trace
from .runs import GREEDY, TAU, Files, speculative

FILES = (TAU[0.7], GREEDY)

RECOMPUTED_PROB = "recomputed_accept_prob"
RECOMPUTED = "recomputed_accepted"
RECORDED = "recorded_accepted"
AGREES = "agrees"


def decisions_frame(trace: Trace) -> pd.DataFrame:
    """Every judged drafted position, with the decision recomputed from the recorded values.

    Sampling: accept iff u < min(1, p/q) (q = 1 for drafters without q). Greedy: accept iff
    the drafted token is the first of p's recorded top-k (the target's argmax).
    """
    greedy = trace.run.config.get("temperature", 0) == 0
    rows = []
    for s in trace.steps:
        for i in range(s.n_evaluated):
            q = 1.0 if s.q is None else s.q[i]
            if greedy:
                prob = 1.0 if s.p_top_ids[i][0] == s.drafted_ids[i] else 0.0
                decided = prob == 1.0
                u = F.NAN
            else:
                prob = min(1.0, s.p[i] / q) if q > 0 else 1.0
                u = s.u[i]
                decided = u < prob
            rows.append((s.step, i, s.drafted_text[i], s.p[i], q, u, prob, decided,
                         s.accepted[i], decided == s.accepted[i]))
    return pd.DataFrame(rows, columns=[F.STEP, F.POS, F.TEXT, F.P, F.Q, F.U, RECOMPUTED_PROB,
                                       RECOMPUTED, RECORDED, AGREES])


def agreement(traces: Sequence[Trace]) -> tuple[int, int]:
    """(decisions the recomputation agrees with, judged decisions) over the runs."""
    frames = [decisions_frame(t) for t in speculative(traces)]
    return sum(int(d[AGREES].sum()) for d in frames), sum(len(d) for d in frames)


def numbers(files: Files) -> dict:
    ok_s, n_s = agreement(files[TAU[0.7]])
    ok_g, n_g = agreement(files[GREEDY])
    over = [(s.p[i], s.accepted[i]) for t in speculative(files[TAU[0.7]]) for s in t.steps
            for i in range(s.n_evaluated) if s.q is not None and s.q[i] > s.p[i]]
    return {"agree_sampled": ok_s, "judged_sampled": n_s, "agree_greedy": ok_g,
            "judged_greedy": n_g, "over_n": len(over),
            "over_kept": sum(a for _, a in over),
            "over_refused": len(over) - sum(a for _, a in over)}


def checks(n: dict) -> dict[str, bool]:
    return {
        "every_sampled_decision_recomputed": n["agree_sampled"] == n["judged_sampled"] > 0,
        "every_greedy_decision_recomputed": n["agree_greedy"] == n["judged_greedy"] > 0,
        "over_confident_sometimes_refused": 0 < n["over_kept"] < n["over_n"],
    }
