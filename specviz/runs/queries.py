"""The aggregates of many runs, in SQL on a RunsDB: what the Runs page and ``specviz runs``
show.

Speculative runs only (target-only runs serve as baselines). Every filter value goes in as
a parameter, every column name comes from FILTER_COLUMNS / GROUP_COLUMNS. α̂ pools a
group's judged positions (accepted / judged) with a Wilson 95 % interval, which treats
positions as independent: the runs' own spread (α̂'s quartiles over runs) is given beside
it. Speed-up: the geometric mean over runs with a baseline, with a 95 % t-interval on the
log scale, the range and the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from .db import RunsDB

FILTER_COLUMNS = ("pair", "drafter", "shape", "temperature", "device", "engine", "category",
                  "source")
GROUP_COLUMNS = ("pair", "drafter", "shape", "temperature", "device", "engine", "category",
                 "source", "prompt", "policy", "date")
DEFAULT_GROUP = ("pair", "drafter", "shape", "temperature", "device", "engine")
NONE = "(none)"  # how a null value is listed and chosen
ORDERS = {
    "slowest first": "speedup ASC NULLS LAST, tokens_per_s ASC NULLS LAST, run_key",
    "least accepted first": "alpha_hat ASC NULLS LAST, speedup ASC NULLS LAST, run_key",
    "fastest first": "speedup DESC NULLS LAST, tokens_per_s DESC NULLS LAST, run_key",
}
MAX_OPTIONS = 300  # distinct values listed per filter
MAX_GROUPS = 500
RUN_COLUMNS_SHOWN = ("run_key", "label", "pair", "drafter", "shape", "temperature", "device",
                     "engine", "category", "prompt", "alpha_hat", "tokens_per_step",
                     "tokens_per_s", "speedup", "baseline", "n_steps", "complete", "source",
                     "run_index", "trace_file")


@dataclass(frozen=True)
class Filters:
    """Chosen values per column (empty: all) and a piece of prompt text to look for."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prompt_contains: str = ""

    def where(self, alias: str = "") -> tuple[str, list]:
        """An SQL condition and its parameters."""
        a = f"{alias}." if alias else ""
        parts, params = [f"{a}mode = 'speculative'"], []
        for col, chosen in sorted(self.values.items()):
            if col not in FILTER_COLUMNS:
                raise ValueError(f"cannot filter on {col!r}")
            if chosen:
                parts.append(f"coalesce(CAST({a}{col} AS VARCHAR), '{NONE}') "
                             "IN (SELECT unnest(?::VARCHAR[]))")
                params.append([str(v) for v in chosen])
        if self.prompt_contains:
            parts.append(f"contains(lower({a}prompt), lower(?))")
            params.append(self.prompt_contains)
        return " AND ".join(parts), params


def _by(by: tuple[str, ...] | list[str]) -> list[str]:
    cols = [c for c in by if c in GROUP_COLUMNS]
    if len(cols) != len(list(by)):
        raise ValueError(f"cannot group by {', '.join(c for c in by if c not in GROUP_COLUMNS)}")
    return cols


def filter_options(db: RunsDB) -> dict[str, list[tuple[str, int]]]:
    """For each filter column, its values among speculative runs (as text) and their run
    counts, most runs first."""
    union = " UNION ALL ".join(
        f"(SELECT '{c}' AS col, coalesce(CAST({c} AS VARCHAR), '{NONE}') AS value, count(*) AS n "
        f"FROM runs WHERE mode = 'speculative' GROUP BY ALL ORDER BY n DESC, value "
        f"LIMIT {MAX_OPTIONS})" for c in FILTER_COLUMNS)
    df = db.df(union)
    return {c: list(zip(g["value"], g["n"].astype(int))) for c, g in df.groupby("col", sort=False)}


def overview(db: RunsDB, f: Filters) -> dict:
    """Counts of the filtered runs: runs, steps, with a baseline, incomplete; and in all."""
    where, params = f.where()
    row = db.df(f"""
        SELECT count(*) AS runs, coalesce(sum(n_steps), 0) AS steps,
               count(speedup) AS with_baseline, count(*) FILTER (WHERE NOT complete) AS incomplete,
               count(*) FILTER (WHERE is_tree) AS trees,
               (SELECT count(*) FROM runs_base) AS all_runs,
               (SELECT count(*) FROM runs_base WHERE mode = 'target-only') AS target_only
        FROM runs WHERE {where}""", params).iloc[0]
    return {k: int(v) for k, v in row.items()}


def run_table(db: RunsDB, f: Filters, order: str = "slowest first", limit: int = 200
              ) -> pd.DataFrame:
    """The filtered runs, the slowest (or least accepted) first, at most ``limit``."""
    where, params = f.where()
    cols = ", ".join(RUN_COLUMNS_SHOWN)
    return db.df(f"SELECT {cols} FROM runs WHERE {where} ORDER BY {ORDERS[order]} "
                 f"LIMIT {int(limit)}", params)


_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.4 / df


def group_table(db: RunsDB, f: Filters, by=DEFAULT_GROUP) -> pd.DataFrame:
    """One row per group of the filtered runs: runs, steps, α̂ pooled with its Wilson
    interval and the runs' quartiles, tokens per step pooled and its spread over runs,
    speed-up (geometric mean, 95 % interval, min, max, runs with a baseline); the slowest
    groups first, then the least accepted."""
    cols = _by(by)
    where, params = f.where()
    keys = ", ".join(cols) if cols else "'all' AS all_runs"
    df = db.df(f"""
        SELECT {keys}, count(*) AS runs, sum(n_steps) AS steps,
               sum(n_accepted) AS accepted, sum(n_evaluated) AS judged,
               sum(n_accepted) / nullif(sum(n_evaluated), 0) AS alpha_hat,
               wilson_lo(sum(n_accepted), sum(n_evaluated)) AS alpha_lo,
               wilson_hi(sum(n_accepted), sum(n_evaluated)) AS alpha_hi,
               quantile_cont(alpha_hat, 0.25) AS alpha_q1,
               quantile_cont(alpha_hat, 0.75) AS alpha_q3,
               sum(n_emitted) / nullif(sum(n_steps), 0) AS tokens_per_step,
               stddev_samp(tokens_per_step) AS tokens_per_step_sd,
               count(speedup) AS with_baseline,
               exp(avg(ln(speedup))) AS speedup,
               stddev_samp(ln(speedup)) AS _sd_log,
               min(speedup) AS speedup_min, max(speedup) AS speedup_max
        FROM runs WHERE {where} {'GROUP BY ALL' if cols else ''}
        ORDER BY speedup ASC NULLS LAST, alpha_hat ASC NULLS LAST
        LIMIT {MAX_GROUPS}""", params)
    half = [t95(int(n) - 1) * s / math.sqrt(n) if n > 1 and pd.notna(s) else math.nan
            for n, s in zip(df["with_baseline"], df["_sd_log"])]
    df["speedup_lo"] = df["speedup"] * pd.Series([math.exp(-h) for h in half], dtype=float)
    df["speedup_hi"] = df["speedup"] * pd.Series([math.exp(h) for h in half], dtype=float)
    return df.drop(columns=["_sd_log"])


def position_table(db: RunsDB, f: Filters, by=DEFAULT_GROUP) -> pd.DataFrame:
    """Acceptance by draft position (from 1) per group: judged, accepted, α̂ and its Wilson
    interval, runs. Chains only (a tree's positions are nodes)."""
    cols = _by(by)
    where, params = f.where("r")
    keys = ", ".join(f"r.{c}" for c in cols) if cols else "'all' AS all_runs"
    return db.df(f"""
        SELECT {keys}, p.position + 1 AS position, sum(p.judged) AS judged,
               sum(p.accepted) AS accepted,
               sum(p.accepted) / nullif(sum(p.judged), 0) AS alpha_hat,
               wilson_lo(sum(p.accepted), sum(p.judged)) AS alpha_lo,
               wilson_hi(sum(p.accepted), sum(p.judged)) AS alpha_hi,
               count(DISTINCT p.run_key) AS runs
        FROM positions p JOIN runs r USING (run_key)
        WHERE {where} GROUP BY ALL ORDER BY ALL LIMIT {MAX_GROUPS * 64}""", params)


def positions_left_out(o: dict) -> str:
    """What acceptance by position leaves out, in one line, from ``overview``'s counts: the
    token-tree runs (a tree's drafted tokens are nodes on several branches, so "the k-th
    drafted token" names no single position); "" when there are none."""
    trees, runs = o.get("trees", 0), o.get("runs", 0)
    if not trees:
        return ""
    chains = runs - trees
    return (f"{trees:,} of {runs:,} runs here drafted token trees and are left out of "
            "acceptance by position: a tree's drafted tokens are nodes on several branches, "
            "not the 1st, 2nd, … token of one draft. "
            + (f"The positions show the other {chains:,} (chains)." if chains else
               "No chain run is left to show by position.")
            + " A tree run's accepted depth per step is in its Token tree tab (Trace "
            "inspector).")


_LONG = ("pair", "prompt", "source")  # named last in a label: the short parts read first


def group_label(df: pd.DataFrame, by) -> pd.Series:
    """One readable name per row from its group columns, the short ones first (τ as 'τ=0.7');
    'all runs' without groups."""
    cols = sorted(_by(by), key=lambda c: c in _LONG)
    if not cols or df.empty:  # (an empty frame's row-wise join would give a frame)
        return pd.Series(["all runs"] * len(df), index=df.index, dtype=object)
    parts = df[cols].astype(str).replace({"None": NONE, "nan": NONE, "<NA>": NONE})
    if "temperature" in parts:
        parts["temperature"] = "τ=" + parts["temperature"]
    return parts.agg(" · ".join, axis=1)


def run_row(db: RunsDB, run_key: str) -> dict | None:
    """One run's row of the runs view (with its source and trace_file), or None."""
    df = db.df("SELECT * FROM runs WHERE run_key = ?", [run_key])
    return None if df.empty else df.iloc[0].to_dict()


def baseline_keys(db: RunsDB, run_key: str) -> list[str]:
    """The run_keys of the target-only runs matched to a run, as the runs view matched them
    (named by baseline_of, else the one of the same file and set-up)."""
    df = db.df("""
        SELECT b.run_key FROM runs s JOIN runs_base b
          ON (s.baseline = 'linked' AND b.baseline_of = s.run_id)
          OR (s.baseline = 'same set-up' AND b.mode = 'target-only' AND b.baseline_of IS NULL
              AND b.source IS NOT DISTINCT FROM s.source AND b.target = s.target
              AND b.prompt IS NOT DISTINCT FROM s.prompt AND b.device IS NOT DISTINCT FROM s.device
              AND b.temperature IS NOT DISTINCT FROM s.temperature
              AND b.top_k IS NOT DISTINCT FROM s.top_k AND b.top_p IS NOT DISTINCT FROM s.top_p
              AND b.max_new_tokens IS NOT DISTINCT FROM s.max_new_tokens
              AND b.chat IS NOT DISTINCT FROM s.chat)
        WHERE s.run_key = ? AND b.mode = 'target-only'""", [run_key])
    return df["run_key"].tolist()
