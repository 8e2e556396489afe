"""Lesson 15, a small target and a large one: what a pass over T tokens costs against the
time the target's weights take to read (its floor), v(T) and c of each pair, and the
speed-up each pair can reach from them.

Its numbers come from a data file in ``data/`` (``passes-<device>-<date>.json``, written by
``scripts/measure_passes.py``): the newest valid one, an idle measurement before a
provisional one gathered from committed benchmarks, and either before a measurement taken
on a busy machine. The small pair's acceptance comes from a bundled trace (``FILES``), the
large pair's from ``data/acceptance.json`` (its sources named there).

Notation: p = target, q = draft; v(T) = pass(T) / pass(1); c = draft pass / target pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .. import theory
from .runs import CPU_DRAFT, Files, file_costs, speculative

FILES = (CPU_DRAFT,)
DATA_DIR = Path(__file__).resolve().parent / "data"
ACCEPTANCE = "acceptance.json"
SMALL = "embedded:smollm2-135m-instruct"
LARGE = "embedded:qwen2.5-coder-1.5b-instruct"
NAMES = {SMALL: "SmolLM2-135M", LARGE: "Qwen2.5-Coder-1.5B"}
GAMMA = 4  # the draft length the lesson's speed-ups are computed at (a pass over 5 tokens)
NEAR_FLOOR = 3.0  # a pass within this many floors is called near its floor
FLAT = 0.10  # v within this of 1 counts as "about one token's pass"

TARGET, TOKENS, MS, LOW, HIGH, FLOOR, V = ("target", "tokens per pass", "ms per pass",
                                           "min ms", "max ms", "floor ms", "v")


class PassDataError(ValueError):
    """A data file of pass times cannot be used (the message names the file)."""


def read_data(path: Path) -> dict:
    """A data file's content, checked: both pairs, each with its one-token pass, a pass over
    GAMMA + 1 tokens, the draft's pass and the floor; PassDataError otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PassDataError(f"{Path(path).name}: cannot be read as JSON ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise PassDataError(f"{Path(path).name}: not a pass-times file (schema 1)")
    pairs = {p.get("target"): p for p in data.get("pairs") or [] if isinstance(p, dict)}
    for target in (SMALL, LARGE):
        p = pairs.get(target)
        if p is None:
            raise PassDataError(f"{Path(path).name}: no pair with target {target}")
        try:
            ok = all(float(p["passes"][t]["median_ms"]) > 0 for t in ("1", str(GAMMA + 1)))
            ok = ok and float(p["draft_pass"]["median_ms"]) > 0 and float(p["floor_ms"]) > 0
            ok = ok and min(int(p[k]) for k in ("target_layers", "draft_layers",
                                                "weight_bytes", "draft_weight_bytes")) > 0
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise PassDataError(f"{Path(path).name}: {target} lacks a pass over 1 or "
                                f"{GAMMA + 1} tokens, the draft's pass or the floor")
    return data


def _rank(data: dict) -> int:
    """Idle measurements first, then provisional files, then measurements on a busy machine."""
    if data.get("loaded"):
        return 0
    return 1 if data.get("provisional") else 2


def newest(data_dir: Path | None = None) -> tuple[Path, dict]:
    """The data file the lesson reads: of the valid ``passes-*.json`` files, the best ranked,
    then the newest (by its date, then its name); PassDataError if there is none."""
    folder = Path(data_dir or DATA_DIR)
    found = []
    for path in sorted(folder.glob("passes-*.json")):
        try:
            data = read_data(path)
        except PassDataError:
            continue
        found.append(((_rank(data), str(data.get("date", "")), path.name), path, data))
    if not found:
        raise PassDataError(f"no valid passes-*.json in {folder} (write one with "
                            "scripts/measure_passes.py)")
    _, path, data = max(found, key=lambda x: x[0])
    return path, data


def acceptance(data_dir: Path | None = None) -> dict:
    """The large pair's measured acceptance (α̂, tokens per step, where from)."""
    path = Path(data_dir or DATA_DIR) / ACCEPTANCE
    try:
        return json.loads(path.read_text(encoding="utf-8"))[LARGE]
    except (OSError, ValueError, KeyError) as e:
        raise PassDataError(f"{path.name}: no acceptance for {LARGE} ({e})") from None


def _pairs(data: dict) -> dict[str, dict]:
    return {p["target"]: p for p in data["pairs"]}


def passes_frame(data: dict) -> pd.DataFrame:
    """One row per target and tokens per pass: the pass's median, min and max ms (NaN where
    the file has no spread), the target's floor and v."""
    rows = []
    for target in (SMALL, LARGE):
        p = _pairs(data)[target]
        one = float(p["passes"]["1"]["median_ms"])
        for t, rec in sorted(p["passes"].items(), key=lambda kv: int(kv[0])):
            med = float(rec["median_ms"])
            lo, hi = rec.get("min_ms"), rec.get("max_ms")
            rows.append((NAMES[target], int(t), med, float("nan") if lo is None else lo,
                         float("nan") if hi is None else hi, float(p["floor_ms"]), med / one))
    return pd.DataFrame(rows, columns=[TARGET, TOKENS, MS, LOW, HIGH, FLOOR, V])


def speedup(e: float, c: float, v: float, gamma: int = GAMMA) -> float:
    """The course's formula with no other overhead: E / (γ c + v)."""
    return e / (gamma * c + v)


def _pair_numbers(key: str, p: dict, alpha: float) -> dict[str, Any]:
    one = float(p["passes"]["1"]["median_ms"])
    five = float(p["passes"][str(GAMMA + 1)]["median_ms"])
    rows = sorted(int(t) for t in p["passes"])
    v = five / one
    c = float(p["draft_pass"]["median_ms"]) / one
    e = float(theory.expected_tokens(alpha, GAMMA))
    n = {"name": NAMES[p["target"]], "draft": str(p["draft"]).split(":", 1)[-1],
         "hw": str(p.get("hardware", "")), "engine": str(p.get("engine", "")),
         "params_m": int(p["target_params"]) / 1e6, "gb": int(p["weight_bytes"]) / 1e9,
         "bw": float(p["bandwidth_gbs"]), "floor": float(p["floor_ms"]), "t1": one,
         "t5": five, "ratio": one / float(p["floor_ms"]), "v5": v, "c": c,
         "draft_ms": float(p["draft_pass"]["median_ms"]), "alpha": alpha, "e4": e,
         "speed4": speedup(e, c, v), "free4": e / v, "tmax": rows[-1],
         "vmax": float(p["passes"][str(rows[-1])]["median_ms"]) / one,
         "n_rows": len(rows), "n_rounds": p["passes"]["1"].get("n") or 0}
    n["floor_share"] = n["floor"] / one
    n["size_ratio"] = int(p["draft_weight_bytes"]) / int(p["weight_bytes"])
    n["layer_ratio"] = int(p["draft_layers"]) / int(p["target_layers"])
    n["draft_floor"] = int(p["draft_weight_bytes"]) / (n["bw"] * 1e9) * 1e3
    n["draft_ratio"] = n["draft_ms"] / n["draft_floor"]
    n["cost4"] = GAMMA * c + v
    n["draft_share"] = GAMMA * c / n["cost4"]
    return {f"{key}_{k}": val for k, val in n.items()}


def regime(name: str, ratio: float, share: float) -> str:
    """What limits a target's one-token pass, from its time over its floor (one sentence)."""
    if ratio < 1:
        return (f"The {name} target's pass took less than its computed floor "
                f"({ratio:.2f} times): the pass read faster than the bandwidth measured for "
                "the floor, so here the floor is no bound.")
    if ratio <= NEAR_FLOOR:
        return (f"The {name} target's pass is within {NEAR_FLOOR:.0f} times its floor "
                f"({ratio:.1f} times): reading the weights takes {share:.0%} of it.")
    return (f"The {name} target's pass is far above its floor ({ratio:.1f} times): reading "
            f"the weights takes {share:.0%} of it, the rest goes to kernel launches and "
            "small products.")


def v_curve(name: str, v: dict[int, float]) -> str:
    """How v grew over the passes the file holds (one sentence)."""
    rows = sorted(v)
    if len(rows) <= 2:
        return (f"For the {name} the file holds passes over "
                f"{' and '.join(map(str, rows))} tokens only.")
    flat = rows[0]
    for t in rows:
        if v[t] > 1 + FLAT:
            break
        flat = t
    top = max(rows, key=lambda t: v[t])
    if flat > rows[0]:
        said = f"v stayed within {FLAT:.0%} of one token's pass up to T = {flat}"
    else:
        said = f"v was {v[rows[1]]:.2f} already at T = {rows[1]}"
    return (f"For the {name}, {said}; over T = {rows[0]}–{rows[-1]} it reached "
            f"{v[top]:.2f} (at T = {top}).")


def _source_note(path: Path, data: dict, s: dict, l_: dict) -> str:
    if data.get("provisional"):
        return (f"These numbers are provisional ({path.name}): {data.get('note', '')}")
    rounds = data.get("rounds")
    load = data.get("load_before") or [float("nan")]
    after = data.get("load_after") or [float("nan")]
    busy = (" The machine was busy while they ran, so the times are slower than idle and "
            "their ratios less sure.") if data.get("loaded") else ""
    return (f"Measured by scripts/measure_passes.py ({path.name}) on {s['s_hw']}: medians of "
            f"{rounds} interleaved rounds, load average {load[0]:.1f} before and "
            f"{after[0]:.1f} after.{busy}")


def numbers(files: Files, data_dir: Path | None = None) -> dict:
    path, data = newest(data_dir)
    pairs = _pairs(data)
    small_runs = speculative(files[CPU_DRAFT])
    steps = [st for t in small_runs for st in t.steps]
    kept, judged = sum(st.n_accepted for st in steps), sum(st.n_evaluated for st in steps)
    s_alpha = kept / judged
    acc = acceptance(data_dir)
    out: dict[str, Any] = {}
    out.update(_pair_numbers("s", pairs[SMALL], s_alpha))
    out.update(_pair_numbers("l", pairs[LARGE], float(acc["alpha"])))
    out.update({"s_kept": kept, "s_judged": judged, "s_runs": len(small_runs),
                "s_tps": file_costs(files[CPU_DRAFT]).mean_accepted_length,
                "l_tps": float(acc["tokens_per_step"]),
                "l_alpha_prompts": int(acc.get("prompts") or 0),
                "data_file": path.name, "provisional": bool(data.get("provisional")),
                "gamma": GAMMA, "rows": GAMMA + 1, "near_floor": NEAR_FLOOR})
    out["source_note"] = _source_note(path, data, out, out)
    for k, target in (("s", SMALL), ("l", LARGE)):
        one = float(pairs[target]["passes"]["1"]["median_ms"])
        out[f"{k}_v_curve"] = v_curve(out[f"{k}_name"], {
            int(t): float(r["median_ms"]) / one for t, r in pairs[target]["passes"].items()})
        out[f"{k}_regime"] = regime(out[f"{k}_name"], out[f"{k}_ratio"], out[f"{k}_floor_share"])
        out[f"{k}_c_over_size"] = out[f"{k}_c"] / out[f"{k}_size_ratio"]
    same = out["s_hw"] == out["l_hw"]
    out["same_machine"] = same
    out["machines_note"] = (
        f"Both pairs ran on the same machine ({out['s_hw']}), so their times compare "
        "directly." if same else
        f"The two pairs ran on different machines ({out['s_name']} on {out['s_hw']}, "
        f"{out['l_name']} on {out['l_hw']}): compare each target with its own floor and "
        "its own one-token pass, not the two targets' times with each other.")
    out["spread_note"] = (
        f"each pass time is the median of {out['s_n_rounds']} rounds, and the chart shows "
        "their range" if out["s_n_rounds"] else
        "this file holds no spread per pass (each time is a bench run's mean), so "
        "differences of a few percent between its numbers carry nothing")
    out["faster"] = out["s_name"] if out["s_speed4"] >= out["l_speed4"] else out["l_name"]
    ls, ss = out["l_v5"], out["s_v5"]
    how = ("about as much" if abs(ls - ss) < 0.02 else "less" if ls < ss else "more")
    out["v_compare"] = (f"A pass over {GAMMA + 1} tokens cost {how} on the large target "
                        f"(v = {ls:.2f}) {'as' if how == 'about as much' else 'than'} on the "
                        f"small one (v = {ss:.2f}).")
    shares = f"{out['s_c_over_size']:.1f} and {out['l_c_over_size']:.1f}"
    out["c_share_note"] = (
        f"Neither draft costs just its share of the weights: c is {shares} times that share, "
        "for a draft model pays for its own launches and layers, however few its weights."
        if min(out["s_c_over_size"], out["l_c_over_size"]) > 1 + FLAT else
        f"Each draft's c is {shares} times its share of its target's weights.")
    # what the large target could reach with a draft as cheap, relative to it, as the small
    # pair's; and the numeric exercise's usual mistakes
    out["l_with_s_c"] = speedup(out["l_e4"], out["s_c"], out["l_v5"])
    out["s_with_l_c"] = speedup(out["s_e4"], out["l_c"], out["s_v5"])
    out["ex_once"] = out["l_e4"] / (out["l_c"] + out["l_v5"])  # c counted once per step
    out["ex_all_kept"] = (GAMMA + 1) / (GAMMA * out["l_c"] + out["l_v5"])  # E taken as γ + 1
    return out


def checks(n: dict) -> dict[str, bool]:
    return {
        "small_further_from_floor": n["s_ratio"] > n["l_ratio"],
        "small_draft_cheaper": n["s_c"] < n["l_c"],
        "large_free_draft_higher": n["l_free4"] > n["s_free4"],
        "cheap_draft_lifts_large": n["l_with_s_c"] > n["l_speed4"] and n["l_with_s_c"] > 1,
        "large_draft_far_above_floor": n["l_draft_ratio"] > n["l_ratio"],
    }
