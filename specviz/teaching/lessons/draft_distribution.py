"""Lesson 2, how the draft predicts: q at each drafted position, which token is proposed
(greedy: q's top token; sampled: a draw from q), and how the draft's confidence relates to
what the target keeps."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...traces import frames as F
from ...traces.records import Trace
from .runs import GREEDY, TAU, Files, speculative
from .stats import higher, two_proportion_z

FILES = (GREEDY, TAU[0.7], TAU[1.0])

RANK = "rank"
IS_DRAFTED = "is_drafted"
Q_BINS = (0.0, 0.5, 0.8, 1.0)  # edges of the confidence bins of the drafted token's q
BIN = "q of the drafted token"
JUDGED = "judged"
KEPT = "kept"
RATE = "kept_rate"
QUIZ_Q = (0.97, 0.93, 0.31, 0.90)  # the quiz's four drafts' q


def q_topk_frame(trace: Trace, step: int) -> pd.DataFrame:
    """q's recorded top-k at every drafted position of one step: pos, rank, token id, text,
    q, and whether it is the drafted token. Empty for drafters without q."""
    s = trace.steps[step]
    rows = []
    if s.q_top_ids:
        for i in range(s.gamma):
            for rank, (tok, text, prob) in enumerate(zip(s.q_top_ids[i], s.q_top_texts[i],
                                                         s.q_top_probs[i])):
                rows.append((i, rank, tok, text, prob, tok == s.drafted_ids[i]))
    return pd.DataFrame(rows, columns=[F.POS, RANK, F.TOKEN_ID, F.TEXT, F.Q, IS_DRAFTED])


def draft_choice_stats(traces: Sequence[Trace]) -> dict[str, float]:
    """Over every drafted position of the runs: how often the draft proposed q's own top
    token, the mean q of the drafted token and the mean top probability of q."""
    top = n = 0
    q_drafted: list[float] = []
    q_top: list[float] = []
    for t in traces:
        for s in t.steps:
            if not s.q_top_ids:
                continue
            for i in range(s.gamma):
                n += 1
                top += s.q_top_ids[i][0] == s.drafted_ids[i]
                q_drafted.append(s.q[i])
                q_top.append(s.q_top_probs[i][0])
    return {"positions": n, "drafted_is_top": top,
            "mean_q_drafted": float(np.mean(q_drafted)) if q_drafted else F.NAN,
            "mean_q_top": float(np.mean(q_top)) if q_top else F.NAN}


def acceptance_by_q(traces: Sequence[Trace]) -> pd.DataFrame:
    """Judged drafts binned by their q (edges ``Q_BINS``): judged, kept, kept / judged."""
    d = pd.concat([F.drafts_frame(t) for t in traces], ignore_index=True)
    d = d[d[F.STATUS] != "unjudged"]
    labels = [f"{a:g} ≤ q < {b:g}" if b < 1 else f"q ≥ {a:g}"
              for a, b in zip(Q_BINS, Q_BINS[1:])]
    bins = pd.cut(d[F.Q], [Q_BINS[0], *Q_BINS[1:-1], np.inf], right=False, labels=labels)
    out = d.groupby(bins, observed=False)[F.STATUS].agg(
        **{JUDGED: "size", KEPT: lambda s: int((s == "accepted").sum())}).reset_index()
    out = out.rename(columns={F.Q: BIN})
    out[RATE] = out[KEPT] / out[JUDGED].where(out[JUDGED] > 0)
    return out


def exercise_step(traces: Sequence[Trace], by_q: pd.DataFrame) -> dict:
    """The numeric exercise: the first step of the runs that drafted four tokens with an
    unsure one (q < the middle bin's lower edge) among the first three; the chance its fourth
    draft is judged, from the measured keep rates of the bins of drafts 1–3."""
    rates = by_q[RATE].to_numpy()

    def rate(q: float) -> float:
        return float(rates[np.searchsorted(Q_BINS[1:-1], q, side="right")])

    for t in traces:
        for s in t.steps:
            if s.gamma == 4 and s.q is not None and min(s.q[:3]) < Q_BINS[1]:
                r = [rate(q) for q in s.q]
                return {"ex_step": s.step, "ex_prompt": t.run.prompt_text[:40],
                        **{f"ex_q{i + 1}": float(q) for i, q in enumerate(s.q)},
                        **{f"ex_r{i + 1}": x for i, x in enumerate(r)},
                        "ex_judged4": r[0] * r[1] * r[2],
                        "ex_q_product": float(np.prod(s.q[:3])), "ex_own_bin": r[3],
                        "ex_kept_real": s.n_accepted,
                        "ex_judged_real": s.n_evaluated}
    raise ValueError("no greedy step with four drafts and an unsure one among the first three")


def numbers(files: Files) -> dict:
    greedy = speculative(files[GREEDY])
    by_q = acceptance_by_q(greedy)
    lo, hi = by_q.iloc[0], by_q.iloc[-1]
    g, s1 = draft_choice_stats(greedy), draft_choice_stats(speculative(files[TAU[1.0]]))
    s07 = draft_choice_stats(speculative(files[TAU[0.7]]))
    return {"greedy_positions": g["positions"], "greedy_top": g["drafted_is_top"],
            "t1_positions": s1["positions"], "t1_top": s1["drafted_is_top"],
            "t1_top_share": s1["drafted_is_top"] / s1["positions"],
            "t07_top_share": s07["drafted_is_top"] / s07["positions"],
            "lo_n": int(lo[JUDGED]), "lo_rate": float(lo[RATE]), "lo_k": int(lo[KEPT]),
            "hi_n": int(hi[JUDGED]), "hi_rate": float(hi[RATE]), "hi_k": int(hi[KEPT]),
            "z_conf": two_proportion_z(int(hi[KEPT]), int(hi[JUDGED]), int(lo[KEPT]),
                                       int(lo[JUDGED])),
            "lo_edge": Q_BINS[1], "hi_edge": Q_BINS[2], "mid_rate": float(by_q.iloc[1][RATE]),
            # the quiz: drafts 1, 2 and 4 in the confident bin, draft 3 in the unsure one
            "judged4": float(hi[RATE]) ** 2 * float(lo[RATE]),
            "q_product": float(np.prod(QUIZ_Q)), "cut3": 1 - float(lo[RATE]),
            **exercise_step(greedy, by_q)}


def checks(n: dict) -> dict[str, bool]:
    return {
        "greedy_takes_top": n["greedy_top"] == n["greedy_positions"] > 0,
        "sampled_not_always_top": n["t1_top"] < n["t1_positions"],
        "confident_kept_more": (higher(n["hi_k"], n["hi_n"], n["lo_k"], n["lo_n"])
                                and n["hi_rate"] > n["lo_rate"] + 0.2),
        # the quiz's key: draft 4 is judged only if drafts 1–3 are kept, with the bins' rates
        "quiz_key": (abs(n["judged4"] - n["hi_rate"] ** 2 * n["lo_rate"]) < 1e-12
                     and abs(n["judged4"] - n["hi_rate"]) > 0.2
                     and abs(n["judged4"] - n["q_product"]) > 0.1),
    }
