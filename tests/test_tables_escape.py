"""Trace strings in the app's tables and lines of text: a run label or prompt holding HTML,
markdown and a bidirectional override shows as text, the override as an escape (``\\u202e``),
on the Runs page and in a lesson's table, twice (two runs of the page)."""

from __future__ import annotations

import json

import pytest

from specviz.paths import ROOT, TRACES
from specviz.teaching import lessons as L
from specviz.teaching.lessons import runs as R

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(ROOT / "app.py")
LABEL = "<a href=x>l</a>\u202e12345 **bold**"
PROMPT = "[p](http://127.0.0.1:9/x) \u202e54321 <img src=x>"


def _hostile_copy(src, dst) -> None:
    """``src`` with every run record's label and prompt text replaced by hostile strings."""
    out = []
    for line in src.read_text(encoding="utf-8").splitlines():
        d = json.loads(line) if line.strip() else None
        if isinstance(d, dict) and d.get("record") == "run":
            d["label"], d["prompt_text"] = LABEL, PROMPT
            line = json.dumps(d, ensure_ascii=False)
        out.append(line)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _no_raw(at: AppTest) -> None:
    """No element shows the override itself, and no markdown element holds the raw HTML or
    unescaped emphasis of a label."""
    texts = [e.value for kind in ("markdown", "caption", "error", "warning", "info")
             for e in getattr(at, kind)]
    for text in texts:
        assert "\u202e" not in text, text
        assert "<a href=x>" not in text and "<img src=x>" not in text, text
        assert "**bold**" not in text, text
    for d in at.dataframe:
        csv = d.value.to_csv()
        assert "\u202e" not in csv


def _table(at: AppTest, *columns: str):
    """The first table shown that has ``columns``."""
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def test_runs_page_shows_hostile_labels_as_text(tmp_path, monkeypatch):
    folder = tmp_path / "traces"
    _hostile_copy(TRACES / "cpu-smollm2-draft-greedy.jsonl",
                  folder / "cpu-smollm2-draft-greedy.jsonl")
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(folder))
    monkeypatch.delenv("SPECVIZ_RUNS_DIR", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("app_pages/runs.py")
    for _ in range(2):  # two runs of the page
        at.run()
        _ok(at)
        _no_raw(at)
        table = _table(at, "run_key")
        assert (table["label"] == "<a href=x>l</a>\\u202e12345 **bold**").all()
        assert table["prompt"].str.contains("\\u202e54321", regex=False).all()
        picks = at.selectbox(key="runs_pick")
        assert all("\u202e" not in o for o in picks.options)
    at.multiselect(key="runs_by").set_value(["prompt"]).run()  # the prompt in a group's label
    _ok(at)
    _no_raw(at)
    assert _table(at, "runs", "prompt")["prompt"].str.contains(
        "\\u202e", regex=False).all()


def test_a_lesson_table_shows_hostile_labels_as_text(tmp_path, monkeypatch):
    lesson = L.lesson(1)
    for name in L.files_of(lesson):
        _hostile_copy(TRACES / name, tmp_path / name)
    monkeypatch.setattr(L, "TRACES_ROOT", tmp_path)
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("app_pages/lessons.py")
    for _ in range(2):
        at.run()
        _ok(at)
        _no_raw(at)
        shown = [d.value for d in at.dataframe if R.LABEL in d.value.columns]
        assert shown, "the lesson's table of runs"
        assert all((df[R.LABEL] == "<a href=x>l</a>\\u202e12345 **bold**").all()
                   for df in shown)
        assert all(df[R.PROMPT].str.contains("\\u202e54321", regex=False).all()
                   for df in shown)
