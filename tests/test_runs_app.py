"""The Runs page under streamlit.testing: every action done twice (two runs, two visits)."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from specviz.paths import ROOT, TRACES
from specviz.runs.dataset import write_traces_dataset
from specviz.traces.records import read_traces
from tests.test_vllm_metrics import MODEL, scrape

APP = str(ROOT / "app.py")
PAGE = "app_pages/runs.py"
FILES = ("cpu-smollm2-draft-greedy.jsonl", "cpu-smollm2-draft-t0.7.jsonl")


@pytest.fixture
def traces_dir(tmp_path, monkeypatch):
    folder = tmp_path / "traces"
    folder.mkdir()
    for name in FILES:
        shutil.copy(TRACES / name, folder / name)
    (folder / "notes.txt").write_text("not a trace")
    (folder / "broken.jsonl").write_text('{"record": "run"\n')
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(folder))
    monkeypatch.delenv("SPECVIZ_RUNS_DIR", raising=False)
    return folder


def _runs_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page(PAGE)  # straight to the page (the Overview's bundled runs not read)
    at.run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_runs_page_filters_groups_and_sql_twice(traces_dir):
    at = _runs_page()
    assert _metric(at, "speculative runs") == "8"
    assert any("broken.jsonl" in c.value for c in at.caption)  # a file left out, in a line
    for _ in range(2):  # a filter, twice
        at.multiselect(key="runs_f_temperature").set_value(["0.7"]).run()
        _ok(at)
        assert _metric(at, "speculative runs") == "4"
        at.multiselect(key="runs_f_temperature").set_value([]).run()
        assert _metric(at, "speculative runs") == "8"
    at.multiselect(key="runs_by").set_value(["drafter"]).run()
    at.radio(key="runs_order").set_value("least accepted first").run()
    _ok(at)
    assert len(at.get("plotly_chart")) >= 3
    for _ in range(2):  # a query, a refused one, twice
        at.text_area(key="runs_sql").set_value("SELECT count(*) AS n FROM runs")
        at.button[[b.label for b in at.button].index("Run query")].click().run()
        _ok(at)
        assert at.dataframe[-1].value["n"][0] == 16
        at.text_area(key="runs_sql").set_value("COPY runs TO '/tmp/runs-copy.csv'")
        at.button[[b.label for b in at.button].index("Run query")].click().run()
        assert any("only a SELECT runs here" in e.value for e in at.error)
    # a second visit (another session, the runs already read and shared)
    again = _runs_page()
    assert _metric(again, "speculative runs") == "8"


def test_the_page_says_which_tree_runs_acceptance_by_position_leaves_out(traces_dir):
    """With a tree file beside the chains: the positions' caption counts the tree runs left
    out; filtered to the tree file alone, an info line says so (it was silent). Twice, and
    on a second visit."""
    tree = "cpu-smollm2-draft-tree-greedy.jsonl"
    shutil.copy(TRACES / tree, traces_dir / tree)
    n_tree = sum(1 for t in read_traces(TRACES / tree) if t.run.mode == "speculative")
    for at in (_runs_page(), _runs_page()):
        for _ in range(2):
            said = [c.value for c in at.caption if "drafted token trees" in c.value]
            assert said and said[0].count(f"{n_tree:,} of {8 + n_tree:,} runs here") == 1
            at.multiselect(key="runs_f_source").set_value([tree]).run()
            _ok(at)
            assert any(i.value.startswith("Acceptance by position: none to show.")
                       and "No chain run is left" in i.value for i in at.info)
            at.multiselect(key="runs_f_source").set_value([]).run()
            _ok(at)


def test_a_run_opens_in_the_trace_inspector_twice(traces_dir):
    at = _runs_page()
    for order in ("slowest first", "least accepted first"):
        at.switch_page(PAGE).run()
        at.radio(key="runs_order").set_value(order).run()
        key = at.selectbox(key="runs_pick").value
        at.button(key="runs_open").click().run()
        _ok(at)
        assert at.title[0].value == "Trace inspector"
        pick = at.selectbox(key="insp_pick").value
        source, index = key.split("#")
        label = read_traces(traces_dir / source)[int(index)].run.label
        assert label in pick and pick.startswith("1. ")


def test_a_dataset_from_the_server_and_a_run_without_a_trace(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_traces_dataset(root, [(FILES[0], read_traces(TRACES / FILES[0]))])
    monkeypatch.setenv("SPECVIZ_RUNS_DIR", str(root))
    at = _runs_page()
    assert at.radio(key="runs_source").value.startswith("Logged runs")
    assert _metric(at, "speculative runs") == "4"
    # runs added to the dataset appear when it is read again
    write_traces_dataset(root, [(FILES[1], read_traces(TRACES / FILES[1]))])
    at.button(key="runs_reload").click().run()
    _ok(at)
    assert _metric(at, "speculative runs") == "8"
    # a synthetic dataset: rows only, no traces to open
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_runs_dataset import make

    from specviz.runs.dataset import write_tables
    runs, steps = make(20, 400, 0)
    write_tables(tmp_path / "syn", runs, steps)
    monkeypatch.setenv("SPECVIZ_RUNS_DIR", str(tmp_path / "syn"))
    at = _runs_page()
    assert _metric(at, "speculative runs") == "12"
    for _ in range(2):
        at.button(key="runs_open").click().run()
        _ok(at)
        assert any("has no trace file to open" in e.value for e in at.error)


def test_vllm_scrapes_are_read_placed_on_theory_and_the_what_if(traces_dir):
    at = _runs_page()
    first = scrape(100, 400, 250, [80, 65, 55, 50])
    second = scrape(300, 1200, 650, [230, 180, 130, 110],
                    extra=f'vllm:spec_decode_num_drafts_total{{model_name="{MODEL}",engine="1"}} '
                          "NaN\n")
    at.text_area(key="runs_vllm_a_text").set_value(first).run()
    _ok(at)
    assert _metric(at, "drafts") == "100"  # totals of one scrape
    at.text_area(key="runs_vllm_b_text").set_value(second)
    at.number_input(key="runs_vllm_s").set_value(20.0).run()
    _ok(at)
    assert _metric(at, "drafts / s") == "10.0"
    assert any("is NaN; left out" in w.value for w in at.warning)
    assert any("Give c and v" in i.value for i in at.info)
    at.number_input(key="runs_vllm_c").set_value(0.05)
    at.number_input(key="runs_vllm_v").set_value(1.0).run()
    _ok(at)
    assert not any("Give c and v" in i.value for i in at.info)  # the what-if is drawn
    for _ in range(2):
        at.button(key=f"runs_vllm_place_{MODEL}").click().run()
        _ok(at)
    at.switch_page("app_pages/theory.py").run()
    _ok(at)
    assert f"vLLM: {MODEL}" in at.selectbox(key="th_run").options
