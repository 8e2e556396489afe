"""Many runs on DuckDB: the tables, the aggregates against the traces' own numbers, the
read-only SQL sandbox, the Hive-partitioned dataset, bad input, and ``specviz runs``."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from specviz.paths import PROMPTS, TRACES
from specviz.runs import queries as Q
from specviz.runs import scan
from specviz.runs.dataset import (
    MARKER,
    escape,
    is_dataset,
    resolve_trace,
    write_tables,
    write_traces_dataset,
)
from specviz.runs.db import RunsDB
from specviz.runs.sandbox import SqlRefused, run_user_sql
from specviz.traces import frames as F
from specviz.traces.records import TraceError, read_traces, summarize, write_traces
from tests._traces import handmade_trace

GREEDY = TRACES / "cpu-smollm2-draft-greedy.jsonl"
SAMPLED = TRACES / "cpu-smollm2-draft-t0.7.jsonl"


def _baseline_of(trace, run_id="", wall_s=0.084):
    """A target-only run of the same set-up as ``trace`` (twice its wall time)."""
    run = dataclasses.replace(trace.run, mode="target-only", drafter=None, draft=None,
                              run_id=f"base-{trace.run.run_id}-{run_id}", baseline_of=run_id)
    summary = summarize(run, trace.steps, wall_s=wall_s, output_text="",
                        stop_reason="max_new_tokens")
    return dataclasses.replace(trace, run=run, summary=summary)


@pytest.fixture(scope="module")
def bundled_db():
    loaded = scan.load_paths([GREEDY, SAMPLED], categories=scan.read_categories(
        PROMPTS / "examples.jsonl"))
    assert loaded.problems == [] and loaded.files_read == 2
    return RunsDB.from_tables(loaded.runs, loaded.steps), \
        read_traces(GREEDY) + read_traces(SAMPLED)


def test_runs_match_the_traces_own_numbers(bundled_db):
    db, traces = bundled_db
    runs = db.df("SELECT * FROM runs ORDER BY source, run_index")
    assert len(runs) == len(traces)
    for (_, r), t in zip(runs.iterrows(), traces):
        assert r["mode"] == t.run.mode and r["n_steps"] == len(t.steps)
        assert r["tokens_per_step"] == pytest.approx(t.summary.mean_accepted_length)
        if t.summary.alpha_hat is not None:
            assert r["alpha_hat"] == pytest.approx(t.summary.alpha_hat)
        assert r["category"] in ("story", "explanation", "code", "summary")
    # speed-up against the baseline the inspector would pick (one per prompt in these files)
    for source, path in (("cpu-smollm2-draft-greedy.jsonl", GREEDY),):
        ts = read_traces(path)
        for i, t in enumerate(ts):
            base = F.baseline_for(t, ts)
            row = runs[(runs["source"] == source) & (runs["run_index"] == i)].iloc[0]
            if base is not None:
                assert row["baseline"] == "same set-up"
                assert row["speedup"] == pytest.approx(
                    t.summary.tokens_per_s / base.summary.tokens_per_s, rel=1e-3)


def test_acceptance_by_position_counts_judged_positions(bundled_db):
    db, traces = bundled_db
    pos = Q.position_table(db, Q.Filters(), by=("source",))
    greedy = read_traces(GREEDY)
    judged = [0] * 8
    accepted = [0] * 8
    for t in greedy:
        for s in t.steps:
            for i in range(s.gamma):
                judged[i] += i < s.n_evaluated
                accepted[i] += i < s.n_accepted
    mine = pos[pos["source"] == GREEDY.name].set_index("position")
    for i in range(4):
        assert mine.loc[i + 1, "judged"] == judged[i]
        assert mine.loc[i + 1, "accepted"] == accepted[i]
        k, n = accepted[i], judged[i]
        p, z = k / n, 1.96
        lo = (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) \
            / (1 + z * z / n)
        assert mine.loc[i + 1, "alpha_lo"] == pytest.approx(lo)


def test_groups_filters_and_orders(bundled_db):
    db, _ = bundled_db
    g = Q.group_table(db, Q.Filters(), by=("temperature",))
    assert list(g["temperature"]) == sorted(g["temperature"], key=lambda t: g.set_index(
        "temperature").loc[t, "speedup"])  # slowest first
    for _, r in g.iterrows():
        assert r["alpha_lo"] <= r["alpha_hat"] <= r["alpha_hi"]
        assert r["speedup_lo"] <= r["speedup"] <= r["speedup_hi"]
        assert r["speedup_min"] <= r["speedup"] <= r["speedup_max"]
    f = Q.Filters({"temperature": ("0.7",)}, prompt_contains="REFRIGERATOR")
    runs = Q.run_table(db, f)
    assert len(runs) == 1 and runs["temperature"].iloc[0] == 0.7
    least = Q.run_table(db, Q.Filters(), "least accepted first")["alpha_hat"].tolist()
    assert least == sorted(least)
    slow = Q.run_table(db, Q.Filters(), "slowest first")["speedup"].dropna().tolist()
    assert slow == sorted(slow)
    assert Q.overview(db, Q.Filters({"drafter": ("no such",)}))["runs"] == 0
    with pytest.raises(ValueError):
        Q.Filters({"run_json": ("x",)}).where()
    with pytest.raises(ValueError):
        Q.group_table(db, Q.Filters(), by=("1; DROP TABLE runs",))


def test_baseline_of_links_first_and_an_ambiguous_set_up_gets_none():
    spec = handmade_trace()  # wall 0.042 s
    linked = _baseline_of(spec, run_id="hand", wall_s=0.126)  # 3x slower: speed-up 3
    other = _baseline_of(spec, wall_s=0.042)
    loaded = scan.load_traces([("a.jsonl", [spec, linked, other])])
    db = RunsDB.from_tables(loaded.runs, loaded.steps)
    row = db.df("SELECT * FROM runs WHERE mode = 'speculative'").iloc[0]
    assert row["baseline"] == "linked" and row["speedup"] == pytest.approx(3.0)
    assert Q.baseline_keys(db, "a.jsonl#0") == ["a.jsonl#1"]
    # no link, two target-only runs of the same set-up: ambiguous, no speed-up
    loaded = scan.load_traces([("b.jsonl", [spec, _baseline_of(spec, "", 0.1),
                                            _baseline_of(spec, "", 0.2)])])
    db = RunsDB.from_tables(loaded.runs, loaded.steps)
    row = db.df("SELECT * FROM runs WHERE mode = 'speculative'").iloc[0]
    assert pd.isna(row["baseline"]) and math.isnan(row["speedup"])


# ---------------------------------------------------------------- read-only SQL

@pytest.mark.parametrize("sql, words", [
    ("SELECT * FROM read_csv('/etc/passwd')", "files, extensions and settings are off"),
    ("SELECT * FROM read_text('/etc/hostname')", "files, extensions and settings are off"),
    ("COPY runs TO '/tmp/specviz-copy.csv'", "this statement is COPY"),
    ("ATTACH '/tmp/specviz-attach.db' AS x", "this statement is ATTACH"),
    ("INSTALL httpfs", "only a SELECT"),
    ("LOAD httpfs", "only a SELECT"),
    ("INSERT INTO steps SELECT * FROM steps", "this statement is INSERT"),
    ("CREATE TABLE t AS SELECT 1", "this statement is CREATE"),
    ("DELETE FROM runs_base", "this statement is DELETE"),
    ("SET enable_external_access = true", "this statement is SET"),
    ("SELECT 1; DROP TABLE steps", "one statement at a time"),
    ("SELEC 1", "cannot be parsed"),
    ("", "empty"),
])
def test_user_sql_is_read_only_and_says_why_in_one_line(bundled_db, sql, words):
    db, _ = bundled_db
    with pytest.raises(SqlRefused) as e:
        run_user_sql(db, sql)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not Path("/tmp/specviz-copy.csv").exists()
    assert db.df("SELECT count(*) AS n FROM steps")["n"][0] > 0  # nothing written


def test_user_sql_rows_are_capped_and_time_bounded(bundled_db):
    db, _ = bundled_db
    df, more = run_user_sql(db, "SELECT * FROM steps", max_rows=5)
    assert len(df) == 5 and more
    df, more = run_user_sql(db, "WITH x AS (SELECT drafter FROM runs) SELECT count(*) AS n "
                                "FROM x;")
    assert not more and df["n"][0] > 0
    with pytest.raises(SqlRefused, match="stopped after 0.5 s"):
        run_user_sql(db, "SELECT count(*) FROM range(1000000000000) a, range(1000) b",
                     timeout_s=0.5)
    settings = db.df("SELECT current_setting('enable_external_access') AS ext, "
                     "current_setting('lock_configuration') AS locked").iloc[0]
    assert not settings["ext"] and settings["locked"]


# ---------------------------------------------------------------- the dataset

def test_dataset_is_hive_partitioned_and_gives_the_same_answers(tmp_path):
    traces = read_traces(GREEDY)
    root = tmp_path / "ds"
    written = write_traces_dataset(root, [(GREEDY.name, traces)])
    assert written["runs"] == len(traces) and is_dataset(root)
    folders = {p.relative_to(root).parts[:4] for p in root.glob("runs/*/*/*")}
    assert ("runs", f"pair={escape('embedded:smollm2-135m-instruct ← embedded:smollm2-draft')}",
            "drafter=model", "date=2026-11-29") in folders
    assert ("runs", "pair=embedded%3Asmollm2-135m-instruct",
            "drafter=__HIVE_DEFAULT_PARTITION__", "date=2026-11-29") in folders
    # plain DuckDB reads it with Hive partitioning, as Spark or Trino would
    got = duckdb.sql(f"SELECT drafter, count(*) AS n FROM read_parquet('{root}/runs/**/*.parquet',"
                     " hive_partitioning = true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert got == [("model", 4), (None, 4)] or sorted(got, key=str) == sorted(
        [("model", 4), (None, 4)], key=str)
    from_ds = RunsDB.from_dataset(root)
    loaded = scan.load_paths([GREEDY])
    from_tables = RunsDB.from_tables(loaded.runs, loaded.steps)
    for db in (from_ds, from_tables):
        g = Q.group_table(db, Q.Filters(), by=("drafter",))
        assert g["alpha_hat"].iloc[0] == pytest.approx(
            Q.group_table(from_tables, Q.Filters(), by=("drafter",))["alpha_hat"].iloc[0])
    # every run opens again from its trace file; a path outside the dataset does not
    row = Q.run_row(from_ds, f"{GREEDY.name}#2")
    path, index = resolve_trace(root, row["trace_file"])
    assert scan.read_trace_file(path)[index] == traces[2]
    with pytest.raises(TraceError):
        resolve_trace(root, "../../etc/passwd#0")
    # a second write adds part files; a folder that is no dataset is refused
    write_traces_dataset(root, [(GREEDY.name, traces)])
    assert RunsDB.from_dataset(root).df("SELECT count(*) AS n FROM runs")["n"][0] == 16
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(TraceError, match="not a runs dataset"):
        write_tables(tmp_path / "other", loaded.runs, loaded.steps)
    (root / MARKER).write_text('{"format": "specviz-runs-dataset", "version": 99}')
    with pytest.raises(TraceError, match="newer version"):
        RunsDB.from_dataset(root)


def test_a_dataset_of_target_only_runs_opens(tmp_path):
    base = [t for t in read_traces(GREEDY) if t.run.mode == "target-only"]
    write_traces_dataset(tmp_path / "ds", [(GREEDY.name, base)])  # no positions at all
    db = RunsDB.from_dataset(tmp_path / "ds")
    assert Q.overview(db, Q.Filters())["target_only"] == len(base)
    assert Q.position_table(db, Q.Filters()).empty


def test_the_sandbox_reads_no_file_outside_the_dataset(tmp_path):
    root = tmp_path / "ds"
    write_traces_dataset(root, [(GREEDY.name, read_traces(GREEDY))])
    db = RunsDB.from_dataset(root)
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(SqlRefused, match="files, extensions and settings are off"):
        run_user_sql(db, f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')")
    assert run_user_sql(db, "SELECT count(*) AS n FROM steps")[0]["n"][0] > 0


# ---------------------------------------------------------------- bad input

def test_a_folder_of_100000_files_is_bounded_and_the_rest_still_read(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    write_traces(folder / "0000-good.jsonl", [handmade_trace(), handmade_trace()])
    (folder / "0001-not-a-trace.jsonl").write_text("this is not JSON\n")
    big = folder / "0002-big.jsonl"
    write_traces(big, read_traces(SAMPLED))
    # 100,000 more entries, listed as the file system would list them (making them on disk
    # takes from seconds to a minute on a busy machine; the listing is what is bounded)
    real_scandir = os.scandir

    class Entry:
        def __init__(self, name):
            self.name, self.path = name, str(folder / name)

        def is_dir(self, follow_symlinks=True):
            return False

        def is_file(self, follow_symlinks=True):
            return True

    class Listing:
        def __init__(self, path):
            self.inner = real_scandir(path)
            self.extra = [Entry(f"f{i:06d}.txt") for i in range(100_000)] \
                if Path(path) == folder else []

        def __enter__(self):
            return iter([*self.extra[:50_000], *self.inner, *self.extra[50_000:]])

        def __exit__(self, *exc):
            self.inner.close()

    monkeypatch.setattr(scan.os, "scandir", Listing)
    monkeypatch.setattr(scan, "MAX_TRACE_MB", 0.05)  # the big file is over this budget
    loaded = scan.load_paths([folder, tmp_path / "missing"])
    lines = loaded.problems
    assert loaded.runs.num_rows == 2, lines  # the good file read
    assert all("\n" not in line for line in lines)
    text = " | ".join(lines)
    assert "0001-not-a-trace.jsonl, line 1" in text
    assert "0002-big.jsonl" in text and "MB in memory" in text
    assert "missing: no such file or folder" in text
    assert "100,000 files that are not .jsonl, .json or .parquet were skipped" in text
    assert len(lines) == 4
    # listing and reading are bounded too, and say so in one line each
    small = tmp_path / "small"
    small.mkdir()
    for i in range(30):
        write_traces(small / f"{i:02d}.jsonl", [handmade_trace()])
    monkeypatch.setattr(scan, "MAX_FILES_READ", 3)
    loaded = scan.load_paths([small])
    assert loaded.runs.num_rows == 3 and loaded.problems == [
        "27 more trace files were not read: at most 3 are read at once (write a runs dataset "
        "for more: specviz runs PATH --write-dataset DIR)"]
    monkeypatch.setattr(scan, "MAX_ENTRIES_LISTED", 10)
    loaded = scan.load_paths([small])
    assert loaded.runs.num_rows == 3
    assert "stopped listing after 10 entries" in loaded.problems[0]


def test_cli_summary_sql_and_dataset(tmp_path, capsys):
    from specviz.cli import CliError
    from specviz.cli.parser import build_parser

    def cli(argv):
        args = build_parser().parse_args(argv)
        return args.func(args)

    (tmp_path / "junk.jsonl").write_text("{}\n")
    assert cli(["runs", str(GREEDY), str(tmp_path / "junk.jsonl"), "--by", "drafter",
                "--top", "2"]) == 0
    out, err = capsys.readouterr()
    assert "4 speculative runs" in out and "slowest first" in out
    assert "junk.jsonl" in err and err.count("\n") == 1
    assert cli(["runs", str(GREEDY), "--sql", "SELECT count(*) AS n FROM runs"]) == 0
    assert capsys.readouterr().out == "n\n8\n"
    with pytest.raises(CliError, match="query not run: only a SELECT"):
        cli(["runs", str(GREEDY), "--sql", "COPY runs TO 'x.csv'"])
    with pytest.raises(CliError, match="--where takes"):
        cli(["runs", str(GREEDY), "--where", "nope"])
    ds = tmp_path / "ds"
    assert cli(["runs", str(GREEDY), "--write-dataset", str(ds)]) == 0
    assert "added 8 runs" in capsys.readouterr().out
    assert cli(["runs", str(ds), "--where", "drafter=model"]) == 0
    assert "4 speculative runs" in capsys.readouterr().out


def test_figures_have_their_traces_and_escape_names(bundled_db):
    from specviz.figures import runs_views as RV
    db, _ = bundled_db
    by = ("drafter", "temperature")
    groups = Q.group_table(db, Q.Filters(), by)
    groups[RV.GROUP] = Q.group_label(groups, by).str.replace("model", "<b>model</b>")
    fig = RV.fig_group_speedup(groups)
    assert len(fig.data) == 1 and all("<b>" not in y for y in fig.data[0].y)
    assert "τ=" in fig.data[0].y[0]  # the short parts first
    pos = Q.position_table(db, Q.Filters(), by)
    pos[RV.GROUP] = Q.group_label(pos, by)
    fig = RV.fig_position_acceptance(pos)
    assert 1 <= len(fig.data) <= RV.MAX_LINES
    runs = Q.run_table(db, Q.Filters())
    assert len(RV.fig_runs_scatter(runs).data[0].x) == runs["speedup"].notna().sum()
    vpos = pd.DataFrame({"position": [1, 2], "alpha": [0.8, 0.7], "rate": [0.8, 0.56]})
    assert [t.type for t in RV.fig_vllm_positions(vpos).data] == ["bar", "scatter"]


def test_a_tiny_synthetic_dataset_gives_back_what_it_was_made_with(tmp_path):
    """The benchmark's generator, small (CI's version of the 10,000-run set)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_runs_dataset import DRAFTERS, make
    runs, steps = make(400, 40_000, 1)
    write_tables(tmp_path / "syn", runs, steps)
    db = RunsDB.from_dataset(tmp_path / "syn")
    o = Q.overview(db, Q.Filters())
    assert (o["all_runs"], o["steps"] + db.df("SELECT sum(n_steps) AS n FROM runs WHERE "
                                              "mode = 'target-only'")["n"][0]) == (400, 40_000)
    assert o["with_baseline"] == 160  # every target-only run names one speculative run
    g = Q.group_table(db, Q.Filters(), by=("drafter",)).set_index("drafter")
    order = sorted(DRAFTERS, key=DRAFTERS.get)
    assert list(g.loc[order, "alpha_hat"]) == sorted(g["alpha_hat"])


def test_the_runs_library_leaves_streamlit_out():
    import subprocess
    import sys
    code = ("import sys, specviz.runs.db, specviz.runs.queries, specviz.runs.sandbox, "
            "specviz.runs.dataset, specviz.runs.scan, specviz.runs.vllm, specviz.cli.runs, "
            "specviz.figures.runs_views; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    assert out.stdout.strip() == "False"


def test_tree_runs_left_out_of_positions_are_counted_and_said():
    """A tree's drafted tokens are nodes, not positions: acceptance by position leaves tree
    runs out and says how many (it did so silently); chains alone: nothing to say."""
    tree = TRACES / "cpu-smollm2-draft-tree-greedy.jsonl"
    loaded = scan.load_paths([GREEDY, tree])
    db = RunsDB.from_tables(loaded.runs, loaded.steps)
    f = Q.Filters({})
    o = Q.overview(db, f)
    n_tree = sum(1 for t in read_traces(tree) if t.run.mode == "speculative")
    assert o["trees"] == n_tree > 0 and o["runs"] > n_tree
    said = Q.positions_left_out(o)
    assert said.startswith(f"{n_tree:,} of {o['runs']:,} runs here drafted token trees")
    assert f"the other {o['runs'] - n_tree:,} (chains)" in said
    pos_runs = db.df("SELECT count(DISTINCT run_key) AS n FROM positions")["n"][0]
    assert pos_runs == o["runs"] - n_tree  # exactly the chains are in the positions
    only_trees = Q.overview(db, Q.Filters({"source": (tree.name,)}))
    assert "No chain run is left" in Q.positions_left_out(only_trees)
    assert Q.positions_left_out(Q.overview(db, Q.Filters({"source": (GREEDY.name,)}))) == ""
