"""A removed upload leaves the server: out of the shared cache of parsed uploads and out of
the session's st.fragment storage, which Streamlit empties only when a run ends normally
(a page that ends in st.stop() once its last upload is removed, as the inspector does,
kept the fragments' trace, frames and figures for the session's lifetime). A file still
shown keeps working; a refusal is still remembered by content. Measured in a real server by
scripts/upload_memory.py --app (docs/limits.md)."""

from __future__ import annotations

import gc
import weakref

from streamlit.testing.v1 import AppTest

from specviz import Trace
from tests._bad_files import jsonl, run_record, step_record
from ui import uploads

# a page shaped like the inspector: the uploads read first, st.stop() when there is nothing
# to show, a fragment drawing each run (it holds its trace as an argument)
PAGE = '''
import streamlit as st
from ui.uploads import read_uploads

class Upload:
    def __init__(self, name, data):
        self.name, self._data = name, data
    def getvalue(self):
        return self._data

files = [Upload(n, d) for n, d in st.session_state.get("files", [])]
shown = []
for n, ts, e in read_uploads(files):
    if e:
        st.error(e)
    shown += [(n, t) for t in ts]
if not shown:
    st.info("nothing uploaded")
    st.stop()

@st.fragment
def run_view(name, trace):
    st.write(f"{name}: {len(trace.steps)} steps")
    st.button("step", key=f"step_{name}")

for name, trace in shown:
    run_view(name, trace)
'''


def _file(run_id: str, steps: int = 4) -> bytes:
    return jsonl([run_record(run_id=run_id)] + [step_record(i, k=5) for i in range(steps)])


def _traces() -> list[Trace]:
    return [o for o in gc.get_objects() if type(o) is Trace]


def _app() -> AppTest:
    return AppTest.from_string(PAGE, default_timeout=20)


def test_a_removed_upload_is_released_by_the_server(monkeypatch):
    uploads.PARSED.clear()
    calls = []
    monkeypatch.setattr(uploads, "_give_back_memory", lambda: calls.append(1))
    a, b = _file("run-a", 4), _file("run-b", 6)
    at = _app()
    for _ in range(2):  # two visits: the second starts from a cache the first emptied
        at.session_state["files"] = [("a.jsonl", a), ("b.jsonl", b)]
        at.run()
        assert not at.exception
        assert [m.value for m in at.markdown] == ["a.jsonl: 4 steps", "b.jsonl: 6 steps"]
        assert uploads.PARSED.used() > 0
        held = {t.run.run_id: weakref.ref(t) for t in _traces()}
        assert set(held) >= {"run-a", "run-b"}

        at.session_state["files"] = [("b.jsonl", b)]  # a.jsonl removed, b.jsonl still shown
        at.run()
        assert [m.value for m in at.markdown] == ["b.jsonl: 6 steps"]
        at.button(key="step_b.jsonl").click().run()  # its fragment still works
        assert not at.exception and [m.value for m in at.markdown] == ["b.jsonl: 6 steps"]
        gc.collect()
        assert held["run-a"]() is None, "the removed file's trace is still referenced"
        assert held["run-b"]() is not None

        at.session_state["files"] = []  # every upload removed: the page ends in st.stop()
        at.run()
        assert [m.value for m in at.info] == ["nothing uploaded"]
        gc.collect()
        assert uploads.PARSED.used() == 0
        assert held["run-b"]() is None, "a fragment of an earlier run still holds the trace"
    assert len(calls) >= 4  # memory handed back at each removal (and after each read)


def test_a_refusal_stays_remembered_across_removals(monkeypatch):
    uploads.PARSED.clear()
    reads = []
    parse = uploads._parse
    monkeypatch.setattr(uploads, "_parse", lambda *a: reads.append(a[0]) or parse(*a))
    bad = jsonl([run_record(config={"gamma": 99})])
    at = _app()
    for _ in range(2):
        at.session_state["files"] = [("bad.jsonl", bad), ("a.jsonl", _file("run-a"))]
        at.run()
        assert any("'gamma' must be an integer" in e.value for e in at.error)
        at.session_state["files"] = []
        at.run()
    assert reads.count("bad.jsonl") == 1  # refused once, by content, not read again
    assert reads.count("a.jsonl") == 2  # a removed file is read again when uploaded again


class Upload:
    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def test_a_removed_upload_leaves_the_views_caches(monkeypatch):
    """The frames the views cached for a removed file's runs are dropped (those of a file
    still shown are kept), and the Runs page's database of uploads is built again."""
    from specviz.traces import frames as F
    from ui import runs, views
    uploads.PARSED.clear()
    views.frames_of.clear()
    runs._uploads_db.clear()
    made, dbs = [], []
    steps, load = F.steps_frame, runs.load_traces
    monkeypatch.setattr(F, "steps_frame", lambda t: made.append(t.run.run_id) or steps(t))
    monkeypatch.setattr(runs, "load_traces", lambda *a, **k: dbs.append(1) or load(*a, **k))
    a, b = Upload("a.jsonl", _file("run-a")), Upload("b.jsonl", _file("run-b"))

    def page(files):  # one uploader; the views of every run shown, the Runs page's database
        named = [(name, ts) for name, ts, _ in uploads.read_uploads(files)]
        for name, ts in named:
            for t in ts:
                views.frames_of(views.trace_key(t, name), t)
        runs._uploads_db("uploads", named)
    for _ in range(2):
        page([a, b])
    assert made == ["run-a", "run-b"] and len(dbs) == 1
    page([b])  # a.jsonl removed
    page([a, b])  # and uploaded again: its frames made again, b's kept
    assert made == ["run-a", "run-b", "run-a"]
    assert len(dbs) == 2
