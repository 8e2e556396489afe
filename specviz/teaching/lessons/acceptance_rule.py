"""Lesson 4, how the target judges the drafts: every judged decision of a run recomputed from
the recorded p, q and u (sampling) or the target's top token (greedy), and the two-line proof
that acceptance with min(1, p/q) and the correction from norm(max(0, p − q)) together emit p,
with the numbers of one real rejected step."""

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


def proof_spot(trace: Trace) -> dict | None:
    """The first rejected draft of a sampled run that the draft over-weighted (q(x) > p(x))
    with another token y in both recorded top-k lists that p weights more than q: the
    numbers of the two-line proof at that position (β = Σ min(p, q) over the vocabulary, as
    recorded). None if no such position was recorded."""
    for s in trace.steps:
        if not s.beta or s.q is None:
            continue
        for i in range(s.n_evaluated):
            if s.accepted[i] or not s.q[i] > s.p[i]:
                continue
            p_of = dict(zip(s.p_top_ids[i], s.p_top_probs[i]))
            q_of = dict(zip(s.q_top_ids[i], s.q_top_probs[i]))
            both = [t for t in s.p_top_ids[i] if t in q_of and p_of[t] > q_of[t]
                    and t != s.drafted_ids[i]]
            if not both:
                continue
            y = max(both, key=lambda t: p_of[t] - q_of[t])
            beta = float(s.beta[i])
            py, qy = float(p_of[y]), float(q_of[y])
            text = dict(zip(s.p_top_ids[i], s.p_top_texts[i]))
            resid = (py - qy) / (1 - beta)
            return {"step": s.step, "pos": i + 1, "x": s.drafted_text[i], "px": s.p[i],
                    "qx": s.q[i], "accept_x": s.p[i] / s.q[i], "u": s.u[i],
                    "y": text[y], "py": py, "qy": qy, "min_y": min(py, qy), "beta": beta,
                    "one_minus_beta": 1 - beta, "resid_y": resid,
                    "emit_y": min(py, qy) + (1 - beta) * resid,
                    "excess_y": py - qy, "unnormalised": py - qy}
    return None


def numbers(files: Files) -> dict:
    ok_s, n_s = agreement(files[TAU[0.7]])
    ok_g, n_g = agreement(files[GREEDY])
    over = [(s.p[i], s.accepted[i]) for t in speculative(files[TAU[0.7]]) for s in t.steps
            for i in range(s.n_evaluated) if s.q is not None and s.q[i] > s.p[i]]
    out = {"agree_sampled": ok_s, "judged_sampled": n_s, "agree_greedy": ok_g,
            "judged_greedy": n_g, "over_n": len(over),
            "over_kept": sum(a for _, a in over),
            "over_refused": len(over) - sum(a for _, a in over),
            **{f"proof_{k}": v for k, v in
               (proof_spot(speculative(files[TAU[0.7]])[0]) or {}).items()}}
    if "proof_qx" in out:  # the numeric exercises' usual mistakes
        out["accept_inverted"] = out["proof_qx"] / out["proof_px"]
        out["refuse_x"] = 1 - out["proof_accept_x"]
    return out


def checks(n: dict) -> dict[str, bool]:
    return {
        "every_sampled_decision_recomputed": n["agree_sampled"] == n["judged_sampled"] > 0,
        "every_greedy_decision_recomputed": n["agree_greedy"] == n["judged_greedy"] > 0,
        "over_confident_sometimes_refused": 0 < n["over_kept"] < n["over_n"],
        "proof_gives_p": "proof_py" in n and abs(n["proof_emit_y"] - n["proof_py"]) < 1e-6
        and n["proof_px"] < n["proof_qx"] and n["proof_u"] >= n["proof_accept_x"],
    }
