"""Reading uploaded trace files: size-limited, validated, errors as plain messages.

The limits are specviz.limits': MAX_UPLOAD_MB for a file (the uploaders give it to the
browser, .streamlit/config.toml gives the server the same cap), then MAX_TRACE_MB for what
the files of one upload expand to in memory, together.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import sys
import threading
from collections import OrderedDict

import streamlit as st

from specviz import Trace, TraceError, read_traces
from specviz.errors import one_line
from specviz.limits import MAX_TRACE_MB, MAX_UPLOAD_BYTES, MAX_UPLOAD_MB
from specviz.traces.records import MemoryBudget, OverBudget

UPLOAD_TYPES = ["jsonl", "json", "parquet"]


def upload_label(what: str, each: bool = False) -> str:
    """An uploader's label that states the limit."""
    return f"{what} (JSON Lines or Parquet, up to {MAX_UPLOAD_MB} MB{' each' * each})"


class _ParsedUploads:
    """Parsed uploads shared by every session and rerun, held to MAX_TRACE_MB in all, the
    least recently used dropped first. (st.cache_data would keep a pickle per entry and
    unpickle a new copy at each rerun; st.cache_resource bounds entries, not memory: four
    uploads at the budget would hold 4 x MAX_TRACE_MB for the server's lifetime.) Nothing
    changes a Trace once made, so one copy serves everyone.

    Each uploader (a session's call site) holds the files it showed last; a file no
    uploader holds any more (removed by its user) is dropped at once and its memory handed
    back to the system. Refusals are remembered too (by content, a few hundred): a refused
    file is not read again at every rerun."""

    def __init__(self):
        self._items: OrderedDict[tuple, tuple[list[Trace], int]] = OrderedDict()
        self._holds: dict[tuple, set[tuple]] = {}  # (session, call site) -> keys
        self.refused: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[list[Trace], int] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, traces: list[Trace], used: int) -> None:
        with self._lock:
            self._items[key] = (traces, used)
            while sum(u for _, u in self._items.values()) > MAX_TRACE_MB * 2**20:
                self._items.popitem(last=False)

    def hold(self, holder: tuple, keys: set[tuple]) -> list[tuple[tuple, list[Trace]]]:
        """``holder`` now shows the files ``keys``; drop the files nobody holds any more
        (returned: their keys and traces)."""
        with self._lock:
            self._holds[holder] = keys
            held = set().union(*self._holds.values())
            gone = [(k, self._items.pop(k)[0]) for k in list(self._items) if k not in held]
        return gone

    def refuse(self, key: tuple, message: str) -> None:
        with self._lock:
            self.refused[key] = message
            while len(self.refused) > _REFUSALS_KEPT:
                self.refused.popitem(last=False)

    def used(self) -> int:
        """Bytes the parsed uploads take, estimated."""
        with self._lock:
            return sum(u for _, u in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._holds.clear()
            self.refused.clear()


_REFUSALS_KEPT = 256


def _tune_malloc() -> None:
    """glibc's malloc, set so that a large block goes back to the system when it is freed:
    blocks of 1 MiB and more (an upload's bytes, a file's text, arrays) are mapped on their
    own instead of from the heap (glibc otherwise raises that threshold to 32 MiB after the
    first such block is freed, and later ones fill the heap, which then cannot shrink), and
    at most two heaps (arenas) for the server's threads instead of sixteen on two cores."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 2**20)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's malloc.h


def _give_back_memory() -> None:
    """Collect what dropped uploads held and return the freed heap to the system (glibc's
    malloc_trim; elsewhere only the collection)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _holder() -> tuple:
    """This session and the call site of read_upload(s) in the app's code: an uploader."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        ctx = get_script_run_ctx(suppress_warning=True)
        session = ctx.session_id if ctx is not None else ""
    except Exception:  # noqa: BLE001 - outside a Streamlit run
        session = ""
    caller = sys._getframe(3)  # _holder <- _held <- read_upload(s) <- the app's code
    return session, caller.f_code.co_filename, caller.f_lineno


PARSED = _ParsedUploads()
_tune_malloc()


def parse_trace_bytes(name: str, data: bytes, room: int | None = None
                      ) -> tuple[list[Trace], int]:
    """JSON Lines or Parquet bytes -> (traces, bytes they take, estimated), parsed once while
    the shared cache keeps them; raises TraceError with a plain message (OverBudget past
    ``room`` bytes, by default MAX_TRACE_MB)."""
    key = _key(name, data)
    hit = PARSED.get(key)
    if hit is None:
        try:
            with st.spinner("Reading the trace …"):
                hit = _parse(name, data, MAX_TRACE_MB if room is None else room / 2**20)
        finally:  # what the reading made and dropped (all of it, for a refusal) goes back
            _give_back_memory()
        PARSED.put(key, *hit)
    if room is not None and hit[1] > room:
        raise OverBudget("does not fit the room the upload's other files left", source=name)
    return hit


def _parse(name: str, data: bytes, max_mb: float) -> tuple[list[Trace], int]:
    budget = MemoryBudget(max_mb)
    if name.lower().endswith(".parquet"):
        try:
            from specviz.traces.parquet import read_parquet_traces
        except ImportError:
            raise TraceError("is Parquet, but Parquet support is not available in this "
                             "installation; upload JSON Lines", source=name) from None
        try:
            return read_parquet_traces(data, source=name, budget=budget), budget.used
        except TraceError:
            raise
        except Exception as e:  # pyarrow's own errors, said in one line
            raise TraceError(f"cannot be read as Parquet ({one_line(e, 200)})",
                             source=name) from None
    return read_traces(data, source=name, budget=budget), budget.used


def _key(name: str, data: bytes) -> tuple:
    return name, hashlib.sha256(data).hexdigest()


def _held(keys: set[tuple]) -> None:
    gone = PARSED.hold(_holder(), keys)
    if gone:
        _forget_derived(gone)
        del gone
        _drop_stale_fragments()
        _give_back_memory()


def _forget_derived(gone: list[tuple[tuple, list[Trace]]]) -> None:
    """Drop what the pages cached from the dropped files: the frames of each run (by the
    key the views give it, the file's name as its source) and the Runs page's database of
    uploads (built again from the parsed uploads still held, without reading them again)."""
    try:
        from ui.runs import _uploads_db
        from ui.views import frames_of, trace_key
    except ImportError:
        return
    for (name, _), traces in gone:
        for t in traces:
            frames_of.clear(trace_key(t, name), None)
    _uploads_db.clear()


def _drop_stale_fragments() -> None:
    """Forget the fragments of this session's earlier runs that this run has not drawn (yet).

    Streamlit keeps each st.fragment with its arguments (a trace, its frames, its figures)
    until a full run of the page ends normally; a run that ends in st.stop() (the inspector
    once its last upload is removed) keeps the earlier run's fragments, and the removed
    upload with them, until the session ends. A full run registers again every fragment it
    draws, so dropping the others now is what Streamlit does at the end of the run."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is None or ctx.fragment_ids_this_run:  # outside a run, or a fragment's rerun
            return
        ctx.fragment_storage.clear(new_fragment_ids=ctx.shared.new_fragment_ids.snapshot())
    except Exception:  # noqa: BLE001 - another Streamlit's internals: keep them, no harm
        pass


def read_upload(name: str, data: bytes) -> tuple[list[Trace], str | None]:
    """(traces, error message): never raises for a bad file."""
    traces, error, _ = _read(name, data)
    _held({_key(name, data)})
    return traces, error


def read_uploads(files) -> list[tuple[str, list[Trace], str | None]]:
    """The files of one upload (Streamlit's UploadedFile), held together to MAX_TRACE_MB of
    memory: (name, traces, error message) for each, in order. A file is read with the room
    the files before it left, so one that does not fit stops as soon as it passes."""
    room = MAX_TRACE_MB * 2**20
    out, keys = [], set()
    for f in files:
        data = f.getvalue()
        traces, error, used = _read(f.name, data, room)
        room -= used
        out.append((f.name, traces, error))
        keys.add(_key(f.name, data))
    _held(keys)
    return out


def _read(name: str, data: bytes, room: int | None = None
          ) -> tuple[list[Trace], str | None, int]:
    """(traces, error message, bytes they take in memory, estimated); ``room``: the bytes of
    the budget left by the other files of the upload (None: all of it)."""
    if len(data) > MAX_UPLOAD_BYTES:
        return [], f"{name}: is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_MB} MB", 0
    key = _key(name, data)
    if key in PARSED.refused:  # refused before: not read again
        return [], PARSED.refused[key], 0
    whole = room is None or room >= MAX_TRACE_MB * 2**20
    try:
        traces, used = parse_trace_bytes(name, data, room)
    except OverBudget as e:
        if whole:
            return [], _refused(key, str(e)), 0
        return [], (f"{name}: not opened: with the files before it, this upload would take "
                    f"more than {MAX_TRACE_MB} MB in memory (upload fewer files at once)"), 0
    except TraceError as e:
        return [], _refused(key, str(e)), 0
    except MemoryError:
        return [], f"{name}: does not fit in this server's memory", 0
    except Exception as e:  # anything else, still one plain line
        return [], _refused(key, f"{name}: cannot be read ({one_line(e, 200)})"), 0
    return traces, None, used


def _refused(key: tuple, message: str) -> str:
    PARSED.refuse(key, message)
    return message
