"""Reading uploaded trace files: size-limited, validated, errors as plain messages.

The limits are specviz.limits': MAX_UPLOAD_MB for the file (the uploaders pass it to the
browser, and .streamlit/config.toml gives the server the same cap), then the loaders' own
bounds on what a file may expand to in memory.
"""

from __future__ import annotations

import streamlit as st

from specviz import Trace, TraceError, read_traces
from specviz.errors import one_line
from specviz.limits import MAX_UPLOAD_MB

UPLOAD_TYPES = ["jsonl", "json", "parquet"]


def upload_label(what: str, each: bool = False) -> str:
    """An uploader's label that states the limit."""
    return f"{what} (JSON Lines or Parquet, up to {MAX_UPLOAD_MB} MB{' each' * each})"


# A few entries only: each holds a parsed upload (pickled) for every session of the server.
@st.cache_data(show_spinner="Reading the trace …", max_entries=4)
def parse_trace_bytes(name: str, data: bytes) -> list[Trace]:
    """JSON Lines or Parquet bytes -> traces; raises TraceError with a plain message."""
    if name.lower().endswith(".parquet"):
        try:
            from specviz.parquet import read_parquet_traces
        except ImportError:
            raise TraceError("is Parquet, but Parquet support is not available in this "
                             "installation; upload JSON Lines", source=name) from None
        try:
            return read_parquet_traces(data, source=name)
        except TraceError:
            raise
        except Exception as e:  # pyarrow's own errors, said in one line
            raise TraceError(f"cannot be read as Parquet ({one_line(e, 200)})",
                             source=name) from None
    return read_traces(data, source=name)


def read_upload(name: str, data: bytes) -> tuple[list[Trace], str | None]:
    """(traces, error message): never raises for a bad file."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        return [], (f"{name}: is {len(data) / 2**20:.1f} MB; the limit is "
                    f"{MAX_UPLOAD_MB} MB")
    try:
        return parse_trace_bytes(name, data), None
    except TraceError as e:
        return [], str(e)
    except MemoryError:
        return [], f"{name}: does not fit in this server's memory"
    except Exception as e:  # anything else, still one plain line
        return [], f"{name}: cannot be read ({one_line(e, 200)})"
