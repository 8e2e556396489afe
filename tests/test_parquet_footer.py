"""Corrupt Parquet files that pyarrow itself cannot survive: the trace loader reads the footer
on its own and refuses them with a TraceError, and never ends the process."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from specviz import DecodeConfig, load_pair, speculative_decode
from specviz.traces.parquet import _check_arrays, read_parquet_traces, traces_to_parquet
from specviz.traces.parquet_footer import FooterError, decode_struct, footer_bytes, row_groups
from specviz.traces.records import TraceError


@pytest.fixture(scope="module")
def export() -> bytes:
    pair = load_pair("embedded:tiny-random-target")
    trace = speculative_decode(pair, "abc abc abc", DecodeConfig(
        drafter="model", gamma=3, chat=False, max_new_tokens=6, top_alternatives=2))
    buf = io.BytesIO()
    traces_to_parquet([trace], buf)
    return buf.getvalue()


def _levels(meta: pq.FileMetaData) -> list[tuple[int, int, bool]]:
    cols = [meta.schema.column(j) for j in range(meta.num_columns)]
    return [(c.max_repetition_level, c.max_definition_level, c.physical_type == "BYTE_ARRAY")
            for c in cols]


def test_the_footer_as_decoded_agrees_with_pyarrow(export):
    """Row counts, value counts and sizes of every column chunk, as pyarrow reads them from a
    sound file."""
    meta = pq.ParquetFile(io.BytesIO(export)).metadata
    groups = row_groups(footer_bytes(io.BytesIO(export)), _levels(meta))
    assert len(groups) == meta.num_row_groups
    for i, (rows, chunks) in enumerate(groups):
        assert rows == meta.row_group(i).num_rows
        assert [(c.num_values, c.total_uncompressed_size) for c in chunks] == [
            (meta.row_group(i).column(j).num_values,
             meta.row_group(i).column(j).total_uncompressed_size)
            for j in range(meta.num_columns)]


def _nullable_marked_required(export: bytes) -> list[bytes]:
    """The export with one nullable column's schema entry set to REQUIRED (the i32 field 3
    of a SchemaElement, OPTIONAL = zigzag 2 -> REQUIRED = 0), one file per such entry. Its
    size statistics then hold a definition level histogram one entry too long: pyarrow 26
    aborts the process (an uncaught C++ exception) when such a column chunk is described."""
    footer = footer_bytes(io.BytesIO(export))
    start = len(export) - 8 - len(footer)
    at = [start + k + 1 for k in range(len(footer) - 1) if footer[k:k + 2] == b"\x25\x02"]
    return [export[:i] + b"\x00" + export[i + 1:] for i in at]


def test_a_level_histogram_of_the_wrong_length_is_a_trace_error(export):
    """The loader used to ask pyarrow to describe each column chunk (row_group(i).column(j)),
    which aborted on these files: an upload could stop the app for everyone."""
    files = _nullable_marked_required(export)
    assert len(files) > 20
    refused = 0
    for raw in files:
        with pytest.raises(TraceError) as e:
            read_parquet_traces(raw, source="bad.parquet")
        assert str(e.value).startswith("bad.parquet") and "\n" not in str(e.value)
        refused += "level histogram has 2 entries, expected 1" in str(e.value)
    assert refused > 20  # the others are list columns, refused by the schema check first


def test_a_dictionary_index_beyond_its_dictionary_is_a_trace_error():
    """Parquet pages decode into such arrays without complaint (found by the fuzz test: one
    flipped byte in a dictionary-encoded page); reading them later raised ArrowIndexError."""
    bad = pa.DictionaryArray.from_arrays(pa.array([0, 7], pa.int32()), pa.array(["a", "b"]),
                                         safe=False)
    with pytest.raises(TraceError, match="dictionary index points past its dictionary"):
        _check_arrays(pa.table({"run_json": bad}), "bad.parquet")


@pytest.mark.parametrize("buf, message", [
    (b"\x15", "ends inside a value"),  # field 1 (i32) without its value
    (b"\x1c" * 40, "nests too deeply"),  # structs in structs
    (b"\x19\xf6\xff\xff\xff\x0f", "longer than the footer"),  # a list of 2^32 - 1 i64s
    (b"\x1d\x00", "unknown type"),
    (b"\x16\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00", "too long"),
])
def test_malformed_footers_are_refused(buf, message):
    with pytest.raises(FooterError, match=message):
        decode_struct(buf)


def test_a_footer_without_magic_or_length():
    with pytest.raises(FooterError, match="too short"):
        footer_bytes(io.BytesIO(b"PAR1"))
    with pytest.raises(FooterError, match="no Parquet footer"):
        footer_bytes(io.BytesIO(b"PAR1" + b"\x00" * 8 + b"\xff\xff\x00\x00PAR1"))


def test_reading_the_footer_leaves_a_file_where_it_was(export):
    f = io.BytesIO(export)
    f.seek(5)
    footer_bytes(f)
    assert f.tell() == 5
