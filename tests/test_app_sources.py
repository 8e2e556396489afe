"""The app fails closed on custom model sources (issue 29, item 15): off unless the deployment
turns them on, and when on, a failed custom source says nothing of which server folders
exist. And the trace downloads as Parquet as well as JSON Lines (issue 27)."""

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests._traces import tiny_runs  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
ENV = "SPECVIZ_ALLOW_CUSTOM_MODELS"


def _live() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("app_pages/live.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("value", [None, "", "maybe"])
def test_custom_sources_are_off_in_the_app_unless_turned_on(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    at = _live()
    for _ in range(2):  # and after a rerun
        assert "custom…" not in at.selectbox(key="target").options
        assert "custom…" not in at.selectbox(key="draft").options
        assert any("turned off" in c.value for c in at.caption)
        at.run()


def _load_script(target: str, draft) -> None:
    from specviz import DecodeConfig
    from ui.common import Settings, load_pair_ui
    load_pair_ui(Settings(target=target, draft=draft, decode=DecodeConfig()))


@pytest.mark.parametrize("value", [None, "0"])
def test_a_custom_source_in_the_session_is_refused_when_off(monkeypatch, value):
    """Whatever reaches the loader (a crafted session state): refused, never opened."""
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    for target, draft in (("/etc", None), ("embedded:tiny-random-target", "/etc"),
                          ("hf:org/model", None)):
        at = AppTest.from_function(_load_script, args=(target, draft), default_timeout=120)
        at.run()
        assert not at.exception
        assert [e.value for e in at.error] == [
            "Custom model sources are turned off on this deployment; choose an embedded model."]


def test_custom_source_errors_do_not_tell_which_server_folders_exist(monkeypatch, tmp_path):
    from ui.plain import as_text
    monkeypatch.setenv(ENV, "1")
    (tmp_path / "empty").mkdir()
    messages = {}
    for source in ("/etc", "/no/such/folder", str(tmp_path / "empty"), "/etc/passwd",
                   "hf:etc/x"):
        at = AppTest.from_function(_load_script, args=(source, None), default_timeout=120)
        for _ in range(2):
            at.run()
            assert not at.exception
            (error,) = at.error
            messages[source] = error.value.replace(as_text(source), "SOURCE")
    assert len(set(messages.values())) == 1, messages
    assert "config.json" in next(iter(messages.values()))  # says what a model folder holds
    assert not any("holds no" in m or "local path" in m for m in messages.values())


def test_the_trace_downloads_as_parquet_too():
    from specviz.traces.parquet import read_parquet_traces
    from ui.views import _parquet_bytes
    runs = tiny_runs()
    traces = [runs["greedy"], runs["greedy-base"]]
    data = _parquet_bytes(traces)
    assert data[:4] == b"PAR1"
    back = read_parquet_traces(data)
    assert [t.run.run_id for t in back] == [t.run.run_id for t in traces]
    assert [len(t.steps) for t in back] == [len(t.steps) for t in traces]
