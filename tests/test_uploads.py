"""Uploads: what a record becomes is counted in full (its run record's objects too), a
refused file is remembered by its content and not read again at every rerun, a removed
upload is dropped from the shared cache, and blank lines, many row groups and pages that
decompress to more than their footer says cost little."""

from __future__ import annotations

import time

import pytest

from specviz.traces.parquet import read_parquet_traces
from specviz.traces.records import TraceError, read_traces
from tests._bad_files import (
    blank_lines,
    jsonl,
    many_row_groups,
    nested_hardware,
    run_record,
    step_record,
    understated_parquet,
)
from ui import uploads


class Upload:
    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


@pytest.fixture(autouse=True)
def fresh_cache():
    uploads.PARSED.clear()
    yield
    uploads.PARSED.clear()


def test_a_refusal_is_remembered_by_content(monkeypatch):
    calls = []
    parse = uploads._parse
    monkeypatch.setattr(uploads, "_parse", lambda *a: calls.append(a) or parse(*a))
    bad = jsonl([run_record(config={"gamma": 99})])
    for _ in range(3):  # three reruns
        traces, error = uploads.read_upload("bad.jsonl", bad)
        assert traces == [] and "'gamma' must be an integer" in error
    assert len(calls) == 1
    uploads.read_upload("bad.jsonl", bad + b"\n")  # other content: read again
    assert len(calls) == 2


def test_a_removed_upload_is_dropped_from_the_cache():
    one = jsonl([run_record(run_id="a")] + [step_record(i, k=5) for i in range(3)])
    two = jsonl([run_record(run_id="b")] + [step_record(i, k=5) for i in range(3)])
    files = [Upload("a.jsonl", one), Upload("b.jsonl", two)]

    def page(shown):  # one uploader: one call site, rerun with what it holds
        return uploads.read_uploads(shown)
    assert [e for _, _, e in page(files)] == [None, None]
    both = uploads.PARSED.used()
    page(files[:1])  # the user removed b.jsonl
    assert 0 < uploads.PARSED.used() < both
    page([])
    assert uploads.PARSED.used() == 0


def test_a_removed_upload_hands_its_memory_back(monkeypatch):
    """Removing an upload (and reading one, kept or refused) runs the release: a collection
    and glibc's malloc_trim; a rerun that removes nothing does not."""
    calls = []
    monkeypatch.setattr(uploads, "_give_back_memory", lambda: calls.append(1))
    one = Upload("a.jsonl", jsonl([run_record()] + [step_record(i, k=5) for i in range(3)]))
    bad = Upload("bad.jsonl", jsonl([run_record(config={"gamma": 99})]))

    def page(shown):
        return uploads.read_uploads(shown)
    page([one, bad])
    assert len(calls) == 2  # after each read, the refusal too
    page([one, bad])  # a rerun: nothing read, nothing dropped
    assert len(calls) == 2
    page([bad])  # a.jsonl removed
    assert len(calls) == 3 and uploads.PARSED.used() == 0


def test_the_release_runs_where_there_is_no_glibc(monkeypatch):
    def no_libc(name):
        raise OSError(name)
    monkeypatch.setattr(uploads.ctypes, "CDLL", no_libc)
    uploads._give_back_memory()  # the collection alone, no error


def test_reading_leaves_nothing_that_pins_the_memory_of_a_parse():
    """A line's parse must not leave small objects behind among the memory it used (a
    decoder made per line, a field name built per call and kept by the type attribute
    cache): each would keep a 1 MiB arena of Python's allocator from going back to the
    system after the trace is dropped. Counted in allocated blocks, not in bytes."""
    import gc
    import sys
    data = jsonl([run_record()] + [step_record(i, k=5) for i in range(200)])
    read_traces(data)  # caches of a first read (imports, regexes) made outside the count
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(3):
        read_traces(data)
    gc.collect()
    assert sys.getallocatedblocks() - before < 100


def test_a_run_records_objects_count_in_the_budget():
    """hardware, target, draft and config are what a record becomes too: a few MB of
    [{}, {}, ...] used to count as nothing while taking a gigabyte."""
    with pytest.raises(TraceError, match=r"field 'hardware' holds more than 10,000 values"):
        read_traces(jsonl([run_record(hardware={"x": [{}] * 10_001})]))
    with pytest.raises(TraceError, match=r"field 'hardware' is nested more than 16 deep"):
        read_traces(jsonl([run_record(hardware={"x": [[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]})]))
    big = {"x": [{"k": "v" * 9000} for _ in range(50)]}
    with pytest.raises(TraceError, match=r"brings the file past 1 MB in memory"):
        read_traces(jsonl([run_record(hardware=big)] * 3), max_mb=1)


def test_a_line_of_many_objects_is_refused_before_it_is_parsed():
    """Counted in the text (outside strings) before json.loads makes them: a 7.5 MB line of
    [{}, {}, ...] took 530 MB; a prompt made of braces is text and still loads."""
    t = time.process_time()
    with pytest.raises(TraceError, match=r"line 1: holds more than 50,000 objects and lists"):
        read_traces(nested_hardware(lines=2, mb=1.0))
    assert time.process_time() - t < 2
    braces = run_record(prompt_text="{[" * 200_000)
    assert read_traces(jsonl([braces]))[0].run.prompt_text == "{[" * 200_000


def test_blank_lines_cost_little():
    t = time.process_time()
    with pytest.raises(TraceError, match="holds no run record"):
        read_traces(blank_lines(20))
    assert time.process_time() - t < 3  # was 12 s a rerun on this machine


@pytest.mark.parametrize("codec", ["zstd", "brotli", "gzip", "lz4", "snappy"])
def test_pages_that_decompress_past_the_limit_are_refused_before_reading(codec, monkeypatch):
    """The limit lowered to 2 MB for speed (scripts/upload_memory.py measures 110 MB pages
    at the real limit: refused, 9 MB peak)."""
    from specviz.traces import parquet
    monkeypatch.setattr(parquet, "MAX_PARQUET_DECODED_MB", 2)
    data = understated_parquet(codec, mb=3)
    t = time.process_time()
    with pytest.raises(TraceError, match=r"decodes to 3 MB or more; at most 2 MB"):
        read_parquet_traces(data)
    assert time.process_time() - t < 1


def test_many_row_groups_are_refused_before_their_footer_is_decoded():
    with pytest.raises(TraceError, match=r"has 65 row groups; at most 64 are read"):
        read_parquet_traces(many_row_groups(65))
