"""Lesson 14, token trees: the chain of four drafts beside a static tree (3-2-1) and a dynamic
tree (16 nodes, EAGLE-2) on the same prompts, greedy, recorded back to back on the static
engine — tokens per verification, nodes per pass, the useful share, and what they cost."""

from __future__ import annotations

import pandas as pd

from ...traces import frames as F
from .runs import LESSON_DIR, Files, file_costs, predicted_speedup, speculative
from .stats import higher, relative_spread

CHAIN = f"{LESSON_DIR}/tree-chain.jsonl"
STATIC = f"{LESSON_DIR}/tree-static.jsonl"
DYNAMIC = f"{LESSON_DIR}/tree-dynamic.jsonl"
FILES = (CHAIN, STATIC, DYNAMIC)
NAMES = {CHAIN: "chain of 4", STATIC: "static tree 3-2-1", DYNAMIC: "dynamic tree, 16 nodes"}
METHOD = "method"
PER_PASS = "tokens per verification"
NODES = "nodes per pass"
USEFUL = "useful share"
SPEEDUP = "speedup"


def per_method(files: Files) -> pd.DataFrame:
    """One row per method: tokens per verification, nodes drafted per pass, the share of
    drafted nodes that ended in the output, and the measured speedup."""
    rows = []
    for name in FILES:
        runs = speculative(files[name])
        steps = [s for t in runs for s in t.steps]
        drafted = sum(s.gamma for s in steps)
        costs = file_costs(files[name])
        rows.append((NAMES[name], sum(len(s.emitted_ids) for s in steps) / len(steps),
                     drafted / len(steps), sum(s.n_accepted for s in steps) / drafted,
                     costs.speedup_measured))
    return pd.DataFrame(rows, columns=[METHOD, PER_PASS, NODES, USEFUL, SPEEDUP])


def tree_runs(files: Files, name: str = DYNAMIC) -> list:
    return speculative(files[name])


def numbers(files: Files) -> dict:
    table = per_method(files).set_index(METHOD)
    out: dict = {}
    for key, name in (("ch", CHAIN), ("st", STATIC), ("dy", DYNAMIC)):
        row = table.loc[NAMES[name]]
        costs = file_costs(files[name])
        out.update({f"{key}_e": row[PER_PASS], f"{key}_nodes": row[NODES],
                    f"{key}_useful": row[USEFUL], f"{key}_meas": costs.speedup_measured,
                    f"{key}_alpha": costs.alpha, f"{key}_v": costs.v, f"{key}_c": costs.c,
                    f"{key}_o": costs.overhead, f"{key}_gamma": costs.gamma,
                    f"{key}_pred": predicted_speedup(costs)})
    for key, name in (("ch", CHAIN), ("st", STATIC), ("dy", DYNAMIC)):
        steps = [s for t in speculative(files[name]) for s in t.steps]
        out[f"{key}_kept"] = sum(s.n_accepted for s in steps)
        out[f"{key}_judged"] = sum(s.n_evaluated for s in steps)
    out["base_spread"] = relative_spread([file_costs(files[f]).target_step_ms for f in FILES])
    out["dy_cost"] = out["dy_gamma"] * out["dy_c"] + out["dy_v"] + out["dy_o"]
    out["e_gain"] = out["dy_e"] / out["ch_e"]
    out["speed_gain"] = out["dy_meas"] / out["ch_meas"]
    tree = speculative(files[DYNAMIC])
    out["lossless"] = all(t.summary.output_token_ids == b.summary.output_token_ids
                          for t, b in zip(tree, [r for r in files[DYNAMIC]
                                                 if F.is_target_only(r)]))
    return out


def checks(n: dict) -> dict[str, bool]:
    return {
        "trees_longer": n["st_e"] > n["ch_e"] + 0.3 and n["dy_e"] > n["st_e"],
        "trees_wider": n["st_nodes"] > 3 * n["ch_nodes"] and n["dy_nodes"] > 3 * n["ch_nodes"],
        "useful_lower": n["dy_useful"] < n["ch_useful"] / 2 and
        n["st_useful"] < n["ch_useful"] / 2,
        "alpha_lower": all(higher(n["ch_kept"], n["ch_judged"], n[f"{k}_kept"],
                                  n[f"{k}_judged"]) for k in ("st", "dy")),
        "verify_grows": n["dy_v"] > n["ch_v"] * (1 + n["base_spread"]),
        "gain_shrinks": n["speed_gain"] < n["e_gain"] - 0.2,
        "all_faster": min(n["ch_meas"], n["st_meas"], n["dy_meas"]) > 1 + n["base_spread"],
        "formula_reproduces": abs(n["dy_pred"] - n["dy_meas"]) < 0.15,
        "lossless": n["lossless"],
    }
