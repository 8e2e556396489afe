"""Lesson 10, a fast but wrong verifier: the exact rule replayed on runs made with a wrong
rule, the identical-output check (greedy), and a distribution check (the real verifier on p
and q taken from a recorded position) that catches what greedy checks cannot."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ...core.verify import verify_greedy
from ...traces import frames as F
from ...traces.records import Trace
from .. import toy
from .acceptance_rule import AGREES, RECOMPUTED, RECORDED, decisions_frame
from .runs import (
    GREEDY,
    PROMPT,
    TAU,
    WRONG_GREEDY,
    WRONG_SAMPLED,
    Files,
    file_costs,
    pairs,
    short,
    speculative,
)
from .stats import Z95, relative_spread, two_proportion_z

FILES = (GREEDY, WRONG_GREEDY, TAU[0.7], WRONG_SAMPLED)
TOY_GAMMA, TOY_STEPS, TOY_SEED = 3, 3000, 0  # the distribution check's simulation

DISAGREE = "disagree"
KEPT_AGAINST_RULE = "kept_against_rule"  # accepted, but the exact rule rejects


def rule_check_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """The exact acceptance rule replayed on every speculative run: one row per run with its
    judged decisions, how many the recomputation disagrees with, and how many of those are
    drafts the verifier kept although the exact rule rejects them."""
    rows = []
    for t in speculative(traces):
        d = decisions_frame(t)
        bad = d[~d[AGREES]]
        rows.append((short(t.run.prompt_text, 50), t.run.config.get("verifier", "exact"),
                     len(d), len(bad), int((bad[RECORDED] & ~bad[RECOMPUTED]).sum())))
    return pd.DataFrame(rows, columns=[PROMPT, "verifier", "judged", DISAGREE,
                                       KEPT_AGAINST_RULE])


def output_check(spec: Trace, base: Trace) -> dict:
    """Identical-output check of a speculative run against its target-only baseline:
    compared tokens, first divergence (None if identical), greedy or not."""
    a, b = spec.summary.output_token_ids, base.summary.output_token_ids
    n = min(len(a), len(b))
    return {"compared": n, "first_divergence": F.first_divergence(a[:n], b[:n]),
            "greedy": spec.run.config.get("temperature", 0) == 0}


def toy_from_position(trace: Trace, step: int, pos: int) -> tuple[list[str], np.ndarray,
                                                                   np.ndarray]:
    """Token texts, p and q over the recorded top-k tokens (union of both lists) at one
    drafted position, p and q each renormalised over those tokens (missing: 0)."""
    topk = F.topk_frame(trace, step, pos)
    p = np.nan_to_num(topk[F.P].to_numpy(dtype=float))
    q = np.nan_to_num(topk[F.Q].to_numpy(dtype=float))
    return list(topk[F.TEXT]), toy.normalise(p), toy.normalise(q)


def toy_positions(trace: Trace, min_tv: float = 0.2) -> list[tuple[int, int]]:
    """(step, pos) of drafted positions whose recorded p and q differ enough to make a
    clear distribution check (total variation ≥ min_tv over the shown tokens)."""
    out = []
    for s in trace.steps:
        if not s.q_top_ids:
            continue
        for i in range(s.n_evaluated):
            _, p, q = toy_from_position(trace, s.step, i)
            if toy.tv_distance(p, q) >= min_tv:
                out.append((s.step, i))
    return out


def distribution_check(p: np.ndarray, q: np.ndarray, rule: str,
                       tokens: list[str] | None = None) -> toy.ToyResult:
    """The real verifier run on fixed p and q (the lesson's simulation settings)."""
    return toy.simulate(p, q, gamma=TOY_GAMMA, n_steps=TOY_STEPS, rule=rule, seed=TOY_SEED,
                        tokens=tokens)


def greedy_rules_agree(n_cases: int = 200, vocab: int = 50, gamma: int = 4) -> bool:
    """Under greedy verification, is "correction-from-p" the exact rule? Random p and q,
    fixed seed: same accepted prefix and same next token in every case."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(n_cases):
        p = torch.softmax(3 * torch.randn(gamma + 1, vocab, generator=gen), -1)
        q = torch.softmax(3 * torch.randn(gamma, vocab, generator=gen), -1)
        drafted = torch.argmax(q, -1)
        a, b = (verify_greedy(drafted, p, q, rule=r) for r in ("exact", "correction-from-p"))
        if int(a.n_accepted) != int(b.n_accepted) or int(a.next_token) != int(b.next_token):
            return False
    return True


def numbers(files: Files) -> dict:
    eg, wg, es, ws = (file_costs(files[f]) for f in FILES)
    wrong_g, wrong_s = rule_check_frame(files[WRONG_GREEDY]), rule_check_frame(
        files[WRONG_SAMPLED])
    exact_g = rule_check_frame(files[GREEDY])
    checks_exact = [output_check(s, b) for s, b in pairs(files[GREEDY])]
    checks_wrong = [output_check(s, b) for s, b in pairs(files[WRONG_GREEDY])]
    sampled = speculative(files[TAU[0.7]])[0]
    step, pos = toy_positions(sampled)[0]
    _, p, q = toy_from_position(sampled, step, pos)
    tv = {r: distribution_check(p, q, r).tv_distance
          for r in ("exact", "accept-high-q", "correction-from-p")}
    counts = {key: judged_counts(files[f]) for key, f in
              (("eg", GREEDY), ("wg", WRONG_GREEDY), ("es", TAU[0.7]), ("ws", WRONG_SAMPLED))}
    base_ms = [c.target_step_ms for c in (eg, wg, es, ws) if c.target_step_from == "baseline"]
    return {
        **{f"{k}_kept": v[0] for k, v in counts.items()},
        **{f"{k}_judged": v[1] for k, v in counts.items()},
        "z_greedy": two_proportion_z(*counts["eg"], *counts["wg"]),
        "z_sampled": two_proportion_z(*counts["ws"], *counts["es"]),
        "base_ms_min": min(base_ms), "base_ms_max": max(base_ms),
        "base_spread": relative_spread(base_ms),
        "speed_gap": abs(wg.speedup_measured / eg.speedup_measured - 1),
        "sampled_wrong_timed": ws.speedup_measured is not None,
        "a_exact_g": eg.alpha, "a_wrong_g": wg.alpha,
        "e_exact_g": eg.mean_accepted_length, "e_wrong_g": wg.mean_accepted_length,
        "s_exact_g": eg.speedup_measured, "s_wrong_g": wg.speedup_measured,
        "kept_against_g": int(wrong_g[KEPT_AGAINST_RULE].sum()),
        "disagree_wrong": int(wrong_g[DISAGREE].sum() + wrong_s[DISAGREE].sum()),
        "kept_against_wrong": int(wrong_g[KEPT_AGAINST_RULE].sum()
                                  + wrong_s[KEPT_AGAINST_RULE].sum()),
        "judged_wrong_g": int(wrong_g["judged"].sum()),
        "disagree_exact_g": int(exact_g[DISAGREE].sum()),
        "a_exact_s": es.alpha, "a_wrong_s": ws.alpha,
        "kept_against_s": int(wrong_s[KEPT_AGAINST_RULE].sum()),
        "judged_wrong_s": int(wrong_s["judged"].sum()),
        "n_prompts": len(checks_exact),
        "identical_exact": sum(c["first_divergence"] is None for c in checks_exact),
        "diverged_wrong": sum(c["first_divergence"] is not None for c in checks_wrong),
        "toy_step": step, "toy_pos": pos + 1, "toy_steps": TOY_STEPS,
        "tv_exact": tv["exact"], "tv_high_q": tv["accept-high-q"],
        "tv_from_p": tv["correction-from-p"],
        "greedy_rules_agree": greedy_rules_agree(),
    }


def judged_counts(traces: Sequence[Trace]) -> tuple[int, int]:
    """(kept, judged) drafts over every speculative run of ``traces``."""
    steps = [s for t in speculative(traces) for s in t.steps]
    return sum(s.n_accepted for s in steps), sum(s.n_evaluated for s in steps)


def checks(n: dict) -> dict[str, bool]:
    return {
        "greedy_wrong_not_faster": (n["a_wrong_g"] < n["a_exact_g"]
                                    and n["e_wrong_g"] < n["e_exact_g"]
                                    and not (n["s_wrong_g"] > n["s_exact_g"]
                                             and n["speed_gap"] > n["base_spread"])),
        "greedy_alpha_gap_within_chance": abs(n["z_greedy"]) < Z95,
        "speed_within_spread": n["speed_gap"] < n["base_spread"],
        "sampled_wrong_untimed": not n["sampled_wrong_timed"],
        "few_kept_against_rule": 0 < n["kept_against_g"] < 0.15 * n["judged_wrong_g"],
        "exact_never_disagrees": n["disagree_exact_g"] == 0,
        "wrong_rule_only_keeps_more": n["disagree_wrong"] == n["kept_against_wrong"] > 0,
        "sampled_wrong_accepts_more": n["a_wrong_s"] > n["a_exact_s"] and n["z_sampled"] > 0,
        "identical_check_catches_greedy": (n["identical_exact"] == n["n_prompts"]
                                           and n["diverged_wrong"] > 0),
        "distribution_check_catches": (n["tv_exact"] < 0.03
                                       and min(n["tv_high_q"], n["tv_from_p"])
                                       > 2 * n["tv_exact"]),
        "greedy_correction_from_p_is_exact": n["greedy_rules_agree"],
    }
