"""Lesson 13, a draft that reads the target: the feature head beside the separate draft
model, on the same prompts with real runs — what each keeps at every draft position, what
each costs per drafted token, and the speedup each reaches."""

from __future__ import annotations

import pandas as pd

from ...traces import frames as F
from .runs import LESSON_DIR, Files, file_costs, predicted_speedup, speculative
from .stats import Z95, two_proportion_z, wilson

HEAD = f"{LESSON_DIR}/feature-head.jsonl"
DRAFT = f"{LESSON_DIR}/draft-beside-head.jsonl"
FILES = (HEAD, DRAFT)
DRAFTER = "drafter"
RATE = "kept / judged"
LOW, HIGH = "95% low", "95% high"  # Wilson interval of the rate


def by_position(files: Files) -> pd.DataFrame:
    """Acceptance by draft position for each drafter, pooled over the prompts: drafter,
    position (1-based), judged, kept, kept / judged, and its Wilson 95 % interval."""
    rows = []
    for name, who in ((HEAD, "feature head"), (DRAFT, "draft model")):
        pos = pd.concat([F.position_frame(t) for t in speculative(files[name])])
        g = pos.groupby(F.POS)[[F.N_JUDGED, F.N_ACCEPTED_AT]].sum()
        for p, r in g.iterrows():
            judged, kept = int(r[F.N_JUDGED]), int(r[F.N_ACCEPTED_AT])
            lo, hi = wilson(kept, judged)
            rows.append((who, int(p) + 1, judged, kept, kept / judged if judged else F.NAN,
                         lo, hi))
    return pd.DataFrame(rows, columns=[DRAFTER, F.POS, F.N_JUDGED, F.N_ACCEPTED_AT, RATE,
                                       LOW, HIGH])


def numbers(files: Files) -> dict:
    h, d = file_costs(files[HEAD]), file_costs(files[DRAFT])
    info_h = speculative(files[HEAD])[0].run.draft or {}
    info_d = speculative(files[DRAFT])[0].run.draft or {}
    pos = by_position(files)
    rate = {(r[DRAFTER], r[F.POS]): r[RATE] for _, r in pos.iterrows()}
    count = {(r[DRAFTER], r[F.POS]): (int(r[F.N_ACCEPTED_AT]), int(r[F.N_JUDGED]))
             for _, r in pos.iterrows()}
    last = int(pos[F.POS].max())
    out = {}
    for key, who in (("h", "feature head"), ("d", "draft model")):
        for p in range(1, last + 1):
            out[f"{key}_pos{p}_k"], out[f"{key}_pos{p}_n"] = count.get((who, p), (0, 0))
        later = [count.get((who, p), (0, 0)) for p in range(2, last + 1)]
        out[f"{key}_later_k"] = sum(k for k, _ in later)
        out[f"{key}_later_n"] = sum(n for _, n in later)
        out[f"{key}_later"] = out[f"{key}_later_k"] / out[f"{key}_later_n"]
        # the largest |z| of any later position against position 1
        out[f"{key}_pos_zmax"] = max(abs(two_proportion_z(*count[(who, p)], *count[(who, 1)]))
                                     for p in range(2, last + 1) if (who, p) in count)
    out["z_first"] = two_proportion_z(out["h_pos1_k"], out["h_pos1_n"], out["d_pos1_k"],
                                      out["d_pos1_n"])
    out["z_h_later"] = two_proportion_z(out["h_pos1_k"], out["h_pos1_n"], out["h_later_k"],
                                        out["h_later_n"])
    return out | {
        "h_alpha": h.alpha, "d_alpha": d.alpha,
        "h_tps": h.mean_accepted_length, "d_tps": d.mean_accepted_length,
        "h_c": h.c, "d_c": d.c, "h_v": h.v, "d_v": d.v, "h_o": h.overhead, "d_o": d.overhead,
        "h_gamma": h.gamma, "d_gamma": d.gamma,
        "h_pred": predicted_speedup(h), "d_pred": predicted_speedup(d),
        "h_meas": h.speedup_measured, "d_meas": d.speedup_measured,
        "h_cost": h.gamma * h.c + h.v + h.overhead,
        "h_params_m": info_h.get("n_params", 0) / 1e6,
        "d_params_m": info_d.get("n_params", 0) / 1e6,
        "h_vocab": info_h.get("vocab", 0),
        "h_pos1": rate[("feature head", 1)], "d_pos1": rate[("draft model", 1)],
        "h_pos3": rate[("feature head", 3)], "d_pos3": rate[("draft model", 3)],
        "last_pos": last,
    }


def checks(n: dict) -> dict[str, bool]:
    return {
        "head_smaller": n["h_params_m"] < n["d_params_m"],
        "head_first_unresolved": 0 < n["z_first"] < Z95,
        "head_fall_unresolved": abs(n["z_h_later"]) < Z95 and n["h_pos_zmax"] < Z95,
        "draft_flat_unresolved": n["d_pos_zmax"] < Z95,
        "head_cheaper": n["h_c"] < 0.75 * n["d_c"],
        "head_overhead_higher": n["h_o"] > n["d_o"],
        "similar_alpha": abs(n["h_alpha"] - n["d_alpha"]) < 0.1,
        "formula_reproduces": abs(n["h_pred"] - n["h_meas"]) < 0.15
        and abs(n["d_pred"] - n["d_meas"]) < 0.15,
        "both_above_one": n["h_meas"] > 1 and n["d_meas"] > 1,
        "verify_dominates": n["h_v"] > n["h_gamma"] * n["h_c"] + n["h_o"],
    }
