"""The walkthrough on the Qwen2.5-Coder pair (issue 26: "the walkthrough works on either
pair"): a run of the tiny random qwen2 pair through the chat template, every step walked,
and the page on the bundled run of the real pair (a trace file, not a model: no model is
loaded for it), whose tokens come from a 151,936-token byte-level BPE vocabulary."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest

from specviz import read_traces, write_traces
from specviz.teaching import walkthrough as W

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "app_pages/walkthrough.py"
QWEN = "embedded:qwen2.5-coder-1.5b-instruct"
# the real pair's bundled run (the idle machine's file, else the provisional recording)
BUNDLED = sorted((ROOT / "assets" / "traces").glob("cpu-pairs-code*.jsonl"))
BPE_MARKS = ("Ġ", "Ċ", "ĉ")  # byte-level BPE's space, newline and tab pieces, never shown


def _walk_all(trace) -> list[str]:
    """Every micro-step's title and narration of every step (each must build)."""
    told = []
    for s in trace.steps:
        walk = W.walk_step(trace, s.step)
        assert walk.micro, s.step
        told += [m.title + " " + m.narration for m in walk.micro]
        counts = W.cache_counts(trace, s.step)
        assert counts.target_dropped >= 0
    return told


@pytest.fixture(scope="module")
def tiny_qwen_run():
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-qwen2-target", device="cpu")
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=16, chat=True)
    return speculative_decode(pair, "Write a Python function.", cfg, label="tiny qwen2")


def test_the_walkthrough_walks_a_tiny_qwen2_run(tiny_qwen_run, tmp_path, monkeypatch):
    t = tiny_qwen_run
    assert t.run.target["architecture"] == "Qwen2ForCausalLM" and W.is_walkable(t)
    assert len(_walk_all(t)) > len(t.steps)
    write_traces(tmp_path / "tiny-qwen2.jsonl", [t])
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(tmp_path))
    at = _visit()
    assert html.escape(W.walk_step(t, 0).micro[0].narration) in _html(at)


def _visit() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _html(at: AppTest) -> str:
    return "".join(h.proto.body for h in at.get("html"))


@pytest.mark.skipif(not BUNDLED, reason="no bundled run of the two pairs")
def test_the_walkthrough_page_on_the_real_qwen_pair(tmp_path, monkeypatch):
    path = BUNDLED[0]
    runs = [t for t in read_traces(path) if W.is_walkable(t)]
    qwen = next(t for t in runs if t.run.target.get("source") == QWEN)
    # the trace holds decoded text (a piece per token), never the BPE's raw marks
    texts = [x for s in qwen.steps for x in s.drafted_text + s.emitted_text]
    assert not any(m in x for x in texts for m in BPE_MARKS), texts
    assert any(i > 49_152 for s in qwen.steps for i in s.emitted_ids)  # beyond SmolLM2's
    told = " ".join(_walk_all(qwen))
    assert "↵" in told or "\n" not in "".join(texts)  # a newline reads as ↵
    shutil.copy(path, tmp_path / path.name)
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(tmp_path))
    label = next(i for i, t in enumerate(runs) if t is qwen)
    for _ in range(2):  # two sessions
        at = _visit()
        box = at.selectbox(key="wt_run")
        box.set_value(box.options[label]).run()
        assert not at.exception, [e.value for e in at.exception]
        for step, micro in ((0, 0), (0, 1)):
            assert html.escape(W.walk_step(qwen, step).micro[micro].narration) in _html(at)
            at.button(key="wt_next").click().run()
            assert not at.exception
        page = _html(at)
        assert not any(m in page for m in BPE_MARKS)
