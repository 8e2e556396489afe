"""The walkthrough page under streamlit.testing's AppTest: stepping, jumping, presenter mode,
autoplay, the live run, uploads and the states with nothing to walk through."""

import html
import json
import time
from pathlib import Path

import pytest

from specviz import write_traces
from specviz.teaching import walkthrough as W
from specviz.traces.records import traces_to_jsonl
from tests._traces import tiny_runs

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui.walkthrough import LIVE, PRESENTER_CSS, PRESENTER_HEIGHT, UPLOAD  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "app_pages/walkthrough.py"
TIMEOUT = 120


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wt_traces")
    runs = tiny_runs()
    write_traces(folder / "a-sampled.jsonl", [runs["sampled-base"], runs["sampled"]])
    write_traces(folder / "b-greedy.jsonl", [runs["greedy"]])
    write_traces(folder / "c-baseline-only.jsonl", [runs["greedy-base"]])
    return folder


def _app(monkeypatch, folder, session: dict | None = None) -> AppTest:
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(folder))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.switch_page(PAGE)
    at.run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _html(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


def _shows(at: AppTest, trace, step: int, index: int) -> bool:
    """Whether the page shows the narration of (step, micro-step index) of ``trace``."""
    m = W.walk_step(trace, step).micro[index]
    return html.escape(m.narration) in _html(at) and html.escape(m.title) in _html(at)


def test_steps_through_a_bundled_trace(traces_dir, monkeypatch):
    at = _app(monkeypatch, traces_dir)
    sampled = tiny_runs()["sampled"]
    assert at.title[0].value == "Walkthrough"
    assert at.selectbox(key="wt_source").value == "a-sampled.jsonl"
    assert at.selectbox(key="wt_run").value.startswith("1. sampled")  # the baseline is left out
    assert any("1 target-only run" in c.value for c in at.caption)
    assert _shows(at, sampled, 0, 0)
    assert "wt-on" in _html(at) and "1 · draft" in _html(at)  # the phase bar
    assert len(at.get("plotly_chart")) == 2
    assert at.button(key="wt_prev").disabled
    at.button(key="wt_next").click().run()
    _ok(at)
    assert _shows(at, sampled, 0, 1) and not _shows(at, sampled, 0, 0)
    at.button(key="wt_prev").click().run()
    assert _shows(at, sampled, 0, 0)
    assert not at.dataframe
    # the verify pass: p and its top-k for every drafted position, in a table
    verify = W.walk_step(sampled, 0).phase_start("verify")
    at.session_state["wt_micro"] = verify
    at.run()
    assert _shows(at, sampled, 0, verify)
    table = at.dataframe[0].value
    assert len(table) == sampled.steps[0].gamma
    assert table["p(draft)"].tolist() == [W.num(p) for p in sampled.steps[0].p]
    # jump to a step: its first micro-step (the field is empty before, not "0" on step 1)
    assert at.number_input(key="wt_jump").value is None
    at.number_input(key="wt_jump").set_value(2).run()
    _ok(at)
    assert (at.session_state["wt_step"], at.session_state["wt_micro"]) == (2, 0)
    assert _shows(at, sampled, 2, 0)
    # "next" at the last micro-step of a step opens the next step
    last = len(W.walk_step(sampled, 2).micro) - 1
    at.session_state["wt_micro"] = last
    at.run()
    assert _shows(at, sampled, 2, last)
    assert any(s in _html(at) for s in ("wt-resampled", "wt-bonus"))  # the added token
    at.button(key="wt_next").click().run()
    assert (at.session_state["wt_step"], at.session_state["wt_micro"]) == (3, 0)
    assert _shows(at, sampled, 3, 0)
    # the field is emptied once it has jumped: it never shows a step the player is not on
    assert at.number_input(key="wt_jump").value is None
    # "Go" jumps to the step in the field
    at.number_input(key="wt_jump").set_value(2)
    at.button(key="wt_go").click().run()
    assert (at.session_state["wt_step"], at.session_state["wt_micro"]) == (2, 0)
    assert at.number_input(key="wt_jump").value is None
    # another run of another file starts again at step 0
    at.selectbox(key="wt_source").set_value("b-greedy.jsonl").run()
    _ok(at)
    assert _shows(at, tiny_runs()["greedy"], 0, 0)


def test_presenter_mode_toggles(traces_dir, monkeypatch):
    at = _app(monkeypatch, traces_dir)
    assert PRESENTER_CSS not in _html(at)
    assert any("Step with ◀ / ▶" in c.value for c in at.caption)
    at.toggle(key="wt_presenter").set_value(True).run()
    _ok(at)
    assert PRESENTER_CSS in _html(at) and 'data-testid="stSidebar"' in PRESENTER_CSS
    assert not any("Step with ◀ / ▶" in c.value for c in at.caption)
    assert _shows(at, tiny_runs()["sampled"], 0, 0)  # the player stays
    # 1024×768: a chain step's figures beside the narration, no taller than a projector's
    # screen leaves them, their legends under the plots (never over the titles)
    for _ in range(2):
        figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        assert figs and figs[0]["layout"]["height"] <= PRESENTER_HEIGHT
        assert all(f["layout"]["legend"]["yref"] == "container"
                   and f["layout"]["legend"]["y"] == 0 for f in figs)
        assert 'h1 { font-size: 1.8rem' in PRESENTER_CSS
        at.button(key="wt_next").click().run()
        _ok(at)
    at.toggle(key="wt_presenter").set_value(False).run()
    assert PRESENTER_CSS not in _html(at)


def test_autoplay_advances_on_its_timer_and_stops(traces_dir, monkeypatch):
    at = _app(monkeypatch, traces_dir)
    sampled = tiny_runs()["sampled"]
    at.select_slider(key="wt_speed").set_value("very fast (0.5 s)").run()
    at.button(key="wt_play").click().run()
    _ok(at)
    assert at.session_state["wt_playing"]
    assert at.button(key="wt_play").label == "⏸ Pause"
    assert any("autoplay on" in c.value for c in at.caption)
    assert at.session_state["wt_micro"] == 0  # starting is not a step
    time.sleep(0.5)
    at.run()  # what the timer does: rerun after the interval
    assert at.session_state["wt_micro"] == 1 and _shows(at, sampled, 0, 1)
    at.button(key="wt_play").click().run()  # pause
    assert not at.session_state["wt_playing"]
    assert at.button(key="wt_play").label == "▶ Autoplay"
    time.sleep(0.5)
    at.run()
    assert at.session_state["wt_micro"] == 1
    # at the very end, autoplay switches itself off
    last_step = len(sampled.steps) - 1
    at.session_state["wt_step"] = last_step
    at.session_state["wt_micro"] = len(W.walk_step(sampled, last_step).micro) - 1
    at.button(key="wt_play").click().run()
    assert at.session_state["wt_playing"]
    time.sleep(0.5)
    at.run()
    _ok(at)
    assert not at.session_state["wt_playing"]
    assert at.button(key="wt_play").label == "▶ Autoplay"


def test_the_last_live_run_comes_first(traces_dir, monkeypatch):
    greedy = tiny_runs()["greedy"]
    live = {"run": None, "history": [],
            "result": {"spec": greedy, "base": None, "error": None, "settings": ""}}
    at = _app(monkeypatch, traces_dir, {"live_store": live})
    assert at.selectbox(key="wt_source").options[0] == LIVE
    assert at.selectbox(key="wt_source").value == LIVE
    assert _shows(at, greedy, 0, 0)


def test_no_trace_uploads_and_target_only_files(tmp_path, monkeypatch):
    at = _app(monkeypatch, tmp_path)  # no bundled traces, no live run
    assert at.selectbox(key="wt_source").options == [UPLOAD]
    assert any("Upload a trace" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    runs = tiny_runs()
    at.file_uploader(key="wt_upload").set_value(
        ("broken.jsonl", b'{"record": "run", "mode": 7}\n', "application/jsonl"))
    at.run()
    _ok(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken.jsonl" in errors[0] and "line 1" in errors[0]
    only_base = traces_to_jsonl([runs["greedy-base"]]).encode()
    at.file_uploader(key="wt_upload").set_value(
        ("base.jsonl", only_base, "application/jsonl"))
    at.run()
    _ok(at)
    assert not at.error
    assert any("base.jsonl holds no speculative run" in i.value and "target-only" in i.value
               for i in at.info)
    good = traces_to_jsonl([runs["sampled"]]).encode()
    at.file_uploader(key="wt_upload").set_value(("mine.jsonl", good, "application/jsonl"))
    at.run()
    _ok(at)
    assert _shows(at, runs["sampled"], 0, 0)


def test_a_bundled_file_of_target_only_runs(traces_dir, monkeypatch):
    at = _app(monkeypatch, traces_dir)
    at.selectbox(key="wt_source").set_value("c-baseline-only.jsonl").run()
    _ok(at)
    infos = [i.value for i in at.info]
    assert any("no speculative run" in i and "target-only" in i for i in infos), infos
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_tree_step_is_walked_depth_by_depth_with_its_tree(traces_dir, monkeypatch,
                                                            temperature):
    """A tree run (the last live run): every micro-step of two steps shows its narration and
    the tree as known at that moment (nodes appear as drafted, then take their verdicts)."""
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-target")
    tree = speculative_decode(pair, "the cat sat on the mat", DecodeConfig(
        max_new_tokens=16, chat=False, tree="2,2,1", temperature=temperature, seed=1))
    live = {"run": None, "history": [],
            "result": {"spec": tree, "base": None, "error": None, "settings": ""}}
    at = _app(monkeypatch, traces_dir, {"live_store": live})
    for step in (0, 1):
        walk = W.walk_step(tree, step)
        assert walk.parents is not None and walk.micro[0].title.startswith("Depth 1")
        assert [m.phase for m in walk.micro][-2:] == ["add", "commit"]
        for index in range(len(walk.micro)):
            assert _shows(at, tree, step, index), (step, index)
            fig = json.loads(at.get("plotly_chart")[0].proto.spec)
            names = {t.get("name") for t in fig["data"]}
            assert "x₀: the last committed token" in names
            if walk.micro[index].phase == "draft":
                assert "drafted, not judged yet" in names
            at.button(key="wt_next").click()
            at.run()
            _ok(at)
    at.toggle(key="wt_presenter").set_value(True).run()  # for a projector: larger, taller
    _ok(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["font"]["size"] == 20 and fig["layout"]["height"] > 400
    assert {a["font"]["size"] for a in fig["layout"]["annotations"]} == {20}
