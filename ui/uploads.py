"""Reading uploaded trace files: size-limited, validated, errors as plain messages.

The limits are specviz.limits': MAX_UPLOAD_MB for a file (the uploaders give it to the
browser, .streamlit/config.toml gives the server the same cap), then MAX_TRACE_MB for what
the files of one upload expand to in memory, together.
"""

from __future__ import annotations

import hashlib
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
    changes a Trace once made, so one copy serves everyone."""

    def __init__(self):
        self._items: OrderedDict[tuple, tuple[list[Trace], int]] = OrderedDict()
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

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


PARSED = _ParsedUploads()


def parse_trace_bytes(name: str, data: bytes, room: int | None = None
                      ) -> tuple[list[Trace], int]:
    """JSON Lines or Parquet bytes -> (traces, bytes they take, estimated), parsed once while
    the shared cache keeps them; raises TraceError with a plain message (OverBudget past
    ``room`` bytes, by default MAX_TRACE_MB)."""
    key = (name, hashlib.sha256(data).hexdigest())
    hit = PARSED.get(key)
    if hit is None:
        with st.spinner("Reading the trace …"):
            hit = _parse(name, data, MAX_TRACE_MB if room is None else room / 2**20)
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


def read_upload(name: str, data: bytes) -> tuple[list[Trace], str | None]:
    """(traces, error message): never raises for a bad file."""
    traces, error, _ = _read(name, data)
    return traces, error


def read_uploads(files) -> list[tuple[str, list[Trace], str | None]]:
    """The files of one upload (Streamlit's UploadedFile), held together to MAX_TRACE_MB of
    memory: (name, traces, error message) for each, in order. A file is read with the room
    the files before it left, so one that does not fit stops as soon as it passes."""
    room = MAX_TRACE_MB * 2**20
    out = []
    for f in files:
        traces, error, used = _read(f.name, f.getvalue(), room)
        room -= used
        out.append((f.name, traces, error))
    return out


def _read(name: str, data: bytes, room: int | None = None
          ) -> tuple[list[Trace], str | None, int]:
    """(traces, error message, bytes they take in memory, estimated); ``room``: the bytes of
    the budget left by the other files of the upload (None: all of it)."""
    if len(data) > MAX_UPLOAD_BYTES:
        return [], f"{name}: is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_MB} MB", 0
    try:
        traces, used = parse_trace_bytes(name, data, room)
    except OverBudget as e:
        if room is None or room >= MAX_TRACE_MB * 2**20:
            return [], str(e), 0
        return [], (f"{name}: not opened: with the files before it, this upload would take "
                    f"more than {MAX_TRACE_MB} MB in memory (upload fewer files at once)"), 0
    except TraceError as e:
        return [], str(e), 0
    except MemoryError:
        return [], f"{name}: does not fit in this server's memory", 0
    except Exception as e:  # anything else, still one plain line
        return [], f"{name}: cannot be read ({one_line(e, 200)})", 0
    return traces, None, used
