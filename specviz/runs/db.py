"""The runs data on DuckDB: three tables, derived in SQL, behind a locked-down connection.

``runs_base`` (a row per run: setup and totals), ``positions`` (a row per run and draft
position of a chain: judged, accepted) and ``steps`` (a row per step). The table ``runs``
adds α̂, tokens per step, tokens/s and the speed-up against the run's target-only baseline.
Whatever comes in (traces read into Arrow tables, or a Parquet dataset on disk), the
connection is then locked: external access off (no other file is read, no extension is
installed or loaded; a dataset's own folder is the one place it reads), the configuration
locked, two threads and a memory limit. User SQL goes through ``sandbox.run_user_sql``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

THREADS = 2
MEMORY_LIMIT = "512MB"

# per-run totals and per-position counts from the steps (a tree's positions are nodes, not
# depths: trees are left out of positions)
TOTALS_SQL = """
SELECT r.*, coalesce(t.n_steps, 0) AS n_steps, coalesce(t.n_drafted, 0) AS n_drafted,
       coalesce(t.n_accepted, 0) AS n_accepted, coalesce(t.n_evaluated, 0) AS n_evaluated,
       coalesce(t.n_emitted, 0) AS n_emitted, coalesce(t.is_tree, false) AS is_tree
FROM {runs} r LEFT JOIN (
    SELECT run_key, count(*) AS n_steps, sum(gamma)::BIGINT AS n_drafted,
           sum(n_accepted)::BIGINT AS n_accepted, sum(n_evaluated)::BIGINT AS n_evaluated,
           sum(n_emitted)::BIGINT AS n_emitted, bool_or(tree) AS is_tree
    FROM {steps} GROUP BY run_key) t USING (run_key)
"""
POSITIONS_SQL = """
SELECT s.run_key, p.position::INTEGER AS position,
       count(*) FILTER (WHERE p.position < s.n_evaluated) AS judged,
       count(*) FILTER (WHERE p.position < s.n_accepted) AS accepted
FROM {steps} s, range(s.gamma) AS p(position)
WHERE NOT s.tree AND s.gamma > 0
GROUP BY ALL
"""
# a speculative run's baseline: the target-only runs that name it (baseline_of, schema 5),
# else the one target-only run of the same file and set-up (none if there are several);
# computed once, when the data are opened (a table: every query reads it)
RUNS_VIEW_SQL = """
CREATE OR REPLACE TABLE runs AS
WITH base AS (
    SELECT *, n_emitted / nullif(wall_s, 0) AS tps FROM runs_base WHERE mode = 'target-only'),
linked AS (
    SELECT s.run_key, avg(b.tps) AS base_tps, count(*) AS n_baselines, 'linked' AS baseline
    FROM runs_base s JOIN base b ON b.baseline_of = s.run_id
    WHERE s.mode = 'speculative' GROUP BY s.run_key),
same AS (
    SELECT s.run_key, any_value(b.tps) AS base_tps, count(*) AS n_baselines,
           'same set-up' AS baseline
    FROM runs_base s JOIN base b
      ON b.source IS NOT DISTINCT FROM s.source AND b.target = s.target
     AND b.prompt IS NOT DISTINCT FROM s.prompt AND b.device IS NOT DISTINCT FROM s.device
     AND b.temperature IS NOT DISTINCT FROM s.temperature
     AND b.top_k IS NOT DISTINCT FROM s.top_k AND b.top_p IS NOT DISTINCT FROM s.top_p
     AND b.max_new_tokens IS NOT DISTINCT FROM s.max_new_tokens
     AND b.chat IS NOT DISTINCT FROM s.chat AND b.baseline_of IS NULL
    WHERE s.mode = 'speculative' AND s.run_key NOT IN (SELECT run_key FROM linked)
    GROUP BY s.run_key HAVING count(*) = 1),
matched AS (SELECT * FROM linked UNION ALL SELECT * FROM same)
SELECT r.*,
       r.n_accepted / nullif(r.n_evaluated, 0) AS alpha_hat,
       r.n_emitted / nullif(r.n_steps, 0) AS tokens_per_step,
       r.n_emitted / nullif(r.wall_s, 0) AS tokens_per_s,
       m.base_tps AS baseline_tokens_per_s, m.baseline,
       (r.n_emitted / nullif(r.wall_s, 0)) / nullif(m.base_tps, 0) AS speedup
FROM runs_base r LEFT JOIN matched m USING (run_key)
"""


# Wilson score interval (95 %, z = 1.96) of k successes in n trials, as SQL macros (users'
# SQL may call them too)
MACROS_SQL = """
CREATE MACRO wilson_lo(k, n) AS CASE WHEN n > 0 THEN
    (k + 1.9208) / (n + 3.8416) - 1.96 * sqrt(n) / (n + 3.8416)
    * sqrt((k / n) * (1 - k / n) + 3.8416 / (4 * n)) END;
CREATE MACRO wilson_hi(k, n) AS CASE WHEN n > 0 THEN
    (k + 1.9208) / (n + 3.8416) + 1.96 * sqrt(n) / (n + 3.8416)
    * sqrt((k / n) * (1 - k / n) + 3.8416 / (4 * n)) END;
"""


class RunsDB:
    """A DuckDB database holding ``runs_base``, ``positions``, ``steps`` and ``runs``,
    locked after they exist. Queries go through ``query`` (a cursor each, so that
    threads may share one RunsDB)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, description: str):
        self.con = con
        self.description = description
        self.token = uuid.uuid4().hex  # names this database's data in caches


    @classmethod
    def from_tables(cls, runs: pa.Table, steps: pa.Table, description: str = "traces"
                    ) -> "RunsDB":
        """Runs and steps tables (specviz.runs.tables) -> a locked database in memory."""
        con = _connect()
        con.register("_runs_in", runs)
        con.register("_steps_in", steps)
        con.execute("CREATE TABLE steps AS SELECT * FROM _steps_in")
        con.execute("CREATE TABLE runs_base AS "
                    + TOTALS_SQL.format(runs="_runs_in", steps="steps"))
        con.execute("CREATE TABLE positions AS " + POSITIONS_SQL.format(steps="steps"))
        con.unregister("_runs_in")
        con.unregister("_steps_in")
        con.execute(RUNS_VIEW_SQL)
        con.execute(MACROS_SQL)
        lock_down(con)
        return cls(con, description)

    @classmethod
    def from_dataset(cls, root: str | Path) -> "RunsDB":
        """Views over a runs dataset's Parquet files (specviz.runs.dataset), read in place."""
        from .dataset import dataset_views
        root = Path(root).resolve()
        con = _connect()
        con.execute(f"SET threads = {2 * THREADS}")  # many small files: reads overlap
        for sql in dataset_views(root):
            con.execute(sql)
        con.execute(f"SET threads = {THREADS}")
        con.execute(RUNS_VIEW_SQL)
        con.execute(MACROS_SQL)
        lock_down(con, allowed=[str(root) + "/"])
        return cls(con, str(root))

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        """One of specviz's own queries (fixed SQL, values as parameters) -> Arrow."""
        cur = self.con.cursor()
        try:
            return cur.sql(sql, params=params or None).to_arrow_table()
        finally:
            cur.close()

    def df(self, sql: str, params: list | None = None):
        return self.query(sql, params).to_pandas()


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={
        "threads": THREADS, "memory_limit": MEMORY_LIMIT,
        "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "allow_community_extensions": False})


def lock_down(con: duckdb.DuckDBPyConnection, allowed: list[str] | None = None) -> None:
    """No file outside ``allowed`` folders read or written, no extension installed or
    loaded, the configuration locked (so no later SET undoes it)."""
    if allowed:
        con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
