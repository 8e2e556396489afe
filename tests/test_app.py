"""Every page under streamlit.testing's AppTest: no exception, key elements present, and a
live run with the tiny random models."""

from pathlib import Path

import pytest
import torch

from specviz import write_traces
from specviz.trace import traces_to_jsonl
from tests._traces import failing_forward, tiny_runs

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 240


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("traces")
    runs = tiny_runs()
    write_traces(folder / "a-sampled.jsonl", [runs["sampled"], runs["sampled-base"]])
    write_traces(folder / "b-greedy.jsonl", [runs["greedy"], runs["greedy-base"]])
    return folder


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    _no_failure(at)
    return at


def _no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def _html(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


def test_home_shows_the_first_bundled_trace(traces_dir, monkeypatch):
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(traces_dir))
    at = _app()
    assert at.title[0].value.startswith("specviz")
    assert any("a-sampled.jsonl" in c.value for c in at.caption)
    assert "specviz-text" in _html(at)  # the colored text
    assert _charts(at) >= 6  # timeline, acceptance, latency...
    assert [m.label for m in at.metric][:2] == ["α̂", "mean accepted length"]
    # the sidebar is shared: model pair and decoding parameters
    assert {"target", "draft", "drafter"} <= {s.key for s in at.sidebar.selectbox}


def test_home_without_bundled_traces(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(tmp_path))
    at = _app()
    assert any("No bundled example trace" in i.value for i in at.info)


def test_live_run_with_tiny_models_and_baseline(monkeypatch):
    at = _app("app_pages/live.py")
    assert any("Press **Run**" in i.value or "press **Run**" in i.value for i in at.info)
    at.selectbox(key="target").set_value("embedded:tiny-random-target")
    at.slider(key="max_new_tokens").set_value(16)
    at.checkbox(key="with_baseline").check()
    at.selectbox(key="preset").set_value("code")
    at.run()
    assert at.text_area(key="prompt").value.startswith("Write a Python function")
    at.button(key="run").click()
    at.run()
    _no_failure(at)
    assert not at.error, [e.value for e in at.error]
    live = at.session_state["live_store"]["result"]
    spec, base = live["spec"], live["base"]
    assert spec.run.target["source"] == "embedded:tiny-random-target"
    assert spec.summary.n_emitted == 16 and base.summary.n_emitted == 16
    # greedy: the identical-output check
    assert any("Identical output" in s.value for s in at.success)
    assert "specviz-text" in _html(at)
    assert _charts(at) >= 6
    assert any(m.label == "speedup" and m.value.endswith("×") for m in at.metric)
    # which path ran: device and engine
    assert any(c.value.startswith("Ran on cpu") and "CUDA graphs off" in c.value
               for c in at.caption)
    # moving the inspector is a fragment rerun that keeps the run
    at.select_slider(key="live_insp_step").set_value(spec.steps[-1].step).run()
    _no_failure(at)
    assert at.session_state["live_store"]["result"]["spec"] is spec


def test_live_engine_choice_runs_or_says_why_not():
    at = _app("app_pages/live.py")
    at.selectbox(key="target").set_value("embedded:tiny-random-target")
    at.slider(key="max_new_tokens").set_value(8)
    at.selectbox(key="engine").set_value("static")
    at.run()
    at.button(key="run").click()
    at.run()
    _no_failure(at)
    spec = at.session_state["live_store"]["result"]["spec"]
    assert spec.run.hardware["engine"]["path"] == "static"
    assert any("static KV caches, CUDA graphs off" in c.value for c in at.caption)
    if not torch.cuda.is_available():
        at.selectbox(key="engine").set_value("graphs")
        at.run()
        at.button(key="run").click()
        at.run()
        _no_failure(at)
        assert any("CUDA graphs need a CUDA device" in e.value for e in at.error)


def test_live_bad_model_source_is_a_message(monkeypatch):
    monkeypatch.setenv("SPECVIZ_ALLOW_CUSTOM_MODELS", "1")
    at = _app("app_pages/live.py")
    at.selectbox(key="target").set_value("custom…")
    at.run()
    at.text_input(key="target_custom").input("/no/such/model/dir")
    at.button(key="run").click()
    at.run()
    _no_failure(at)
    assert any("Cannot load the models" in e.value for e in at.error)


def test_custom_sources_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SPECVIZ_ALLOW_CUSTOM_MODELS", "0")
    at = _app("app_pages/live.py")
    assert "custom…" not in at.selectbox(key="target").options
    assert "custom…" not in at.selectbox(key="draft").options
    assert any("turned off" in c.value for c in at.sidebar.caption)


def test_inspector_bundled_uploads_and_diagnosis(traces_dir, monkeypatch):
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(traces_dir))
    at = _app("app_pages/inspector.py")
    assert len(at.dataframe) >= 1  # the runs table
    assert any("Bottleneck diagnosis" in m.value for m in at.markdown)
    assert _charts(at) >= 8  # comparison + what-if + the run's views
    runs = tiny_runs()
    good = traces_to_jsonl([runs["greedy"], runs["greedy-base"]]).encode()
    at.file_uploader(key="insp_uploads").set_value([
        ("mine.jsonl", good, "application/jsonl"),
        ("broken.jsonl", b'{"record": "run", "mode": 7}\n', "application/jsonl")])
    at.run()
    _no_failure(at)
    errors = [e.value for e in at.error]
    assert any("broken.jsonl" in e and "line 1" in e for e in errors), errors
    assert any("mine.jsonl" in str(v) for v in at.dataframe[0].value["source"].tolist())


def test_inspector_parquet_upload(traces_dir, monkeypatch):
    parquet = pytest.importorskip("specviz.parquet")
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(traces_dir))
    import io
    buf = io.BytesIO()
    runs = tiny_runs()
    parquet.traces_to_parquet([runs["sampled"]], buf)
    at = _app("app_pages/inspector.py")
    at.multiselect(key="insp_bundled").set_value([])
    at.file_uploader(key="insp_uploads").set_value(
        ("runs.parquet", buf.getvalue(), "application/octet-stream"))
    at.run()
    _no_failure(at)
    assert not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value["source"].tolist() == ["runs.parquet"]


def test_theory_page(traces_dir, monkeypatch):
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(traces_dir))
    at = _app("app_pages/theory.py")
    assert _charts(at) == 3
    assert at.metric[0].value == "2.77"  # E at alpha 0.7, gamma 4
    at.slider(key="th_alpha").set_value(0.9).run()
    _no_failure(at)
    assert at.metric[0].value == "4.10"


def test_toy_lab_page():
    at = _app("app_pages/toy_lab.py")
    assert _charts(at) == 2
    labels = [m.label for m in at.metric]
    assert labels[0] == "Σ min(p, q)" and at.metric[0].value == "0.650"
    exact_tv = float(at.metric[3].value)
    at.radio(key="toy_rule").set_value("buggy: also accept whenever q ≥ 0.5").run()
    _no_failure(at)
    assert float(at.metric[3].value) > exact_tv + 0.1


def test_live_failure_mid_run_is_a_message_and_keeps_the_steps(monkeypatch):
    """A decode that breaks part way: one plain error line, no exception, steps kept."""
    import ui.live
    from specviz import decoding

    def failing(pair, prompt, cfg, **kw):
        with failing_forward(pair.target, on_call=4):
            return decoding.speculative_decode(pair, prompt, cfg, **kw)

    monkeypatch.setattr(ui.live, "speculative_decode", failing)
    at = _app("app_pages/live.py")
    at.selectbox(key="target").set_value("embedded:tiny-random-target")
    at.slider(key="max_new_tokens").set_value(16)
    at.run()
    at.button(key="run").click()
    at.run()
    _no_failure(at)
    errors = [e.value for e in at.error]
    assert any("decoding failed after 3 steps" in e and "simulated device failure" in e
               for e in errors), errors
    kept = at.session_state["live_store"]["result"]["spec"]
    assert len(kept.steps) == 3
