"""Trace files built to cost the reader as much as the limits allow, or more: the worst
uploads the app accepts, Parquet files made to expand, and the kept corpus of malformed files
(tests/data/bad-input). Shared by tests/test_bad_input.py and scripts/upload_memory.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

from specviz.limits import MAX_TRACE_MB, MAX_UPLOAD_BYTES
from specviz.traces.records import MemoryBudget, dumps, parse_records

CORPUS = Path(__file__).resolve().parent / "data" / "bad-input"


def run_record(**changes) -> dict:
    rec = {"record": "run", "schema_version": 2, "run_id": "worst", "mode": "speculative",
           "target": {"source": "t"}, "draft": {"source": "d"}, "drafter": "model",
           "config": {"gamma": 32, "temperature": 1.0}, "prompt_text": "hi",
           "prompt_token_ids": [1, 2], "hardware": {}}
    return {**rec, **changes}


def step_record(i: int, text: str = "ab", g: int = 32, k: int = 50) -> dict:
    """A step of gamma g, every draft accepted, top-k lists of k entries at each position."""
    tid, prob = 300 + i % 1000, 0.1 + (i % 7) / 100
    return {"record": "step", "step": i, "gamma": g, "drafted_ids": [tid] * g,
            "drafted_text": [text] * g, "q": [prob] * g, "p": [prob] * g,
            "accept_prob": [1.0] * g, "u": [prob] * g, "accepted": [True] * g,
            "emitted_ids": [tid] * (g + 1), "emitted_text": [text] * (g + 1),
            "emitted_kinds": ["accepted"] * g + ["bonus"],
            "p_top_ids": [[tid] * k] * g, "p_top_texts": [[text] * k] * g,
            "p_top_probs": [[prob] * k] * g, "q_top_ids": [[tid] * k] * g,
            "q_top_texts": [[text] * k] * g, "q_top_probs": [[prob] * k] * g,
            "beta": [prob] * g}


def jsonl(records: list[dict]) -> bytes:
    return "".join(dumps(r) + "\n" for r in records).encode("utf-8")


def worst_steps(text: str = "ab", k: int = 50, extra: int = 0) -> int:
    """How many such steps one file holds within the memory budget and the upload limit
    (``extra`` more)."""
    with_one, with_two = MemoryBudget(None), MemoryBudget(None)
    parse_records([(1, run_record()), (2, step_record(0, text, k=k))], budget=with_one)
    parse_records([(1, run_record()), (2, step_record(0, text, k=k)),
                   (3, step_record(1, text, k=k))], budget=with_two)
    per_step = with_two.used - with_one.used
    room = MAX_TRACE_MB * 2**20 - (with_one.used - per_step)
    line = len(jsonl([step_record(0, text, k=k)]))
    room_on_disk = MAX_UPLOAD_BYTES - len(jsonl([run_record()]))
    return min(room // per_step, room_on_disk // line) + extra


def worst_jsonl(text: str = "ab", k: int = 50, extra: int = 0) -> bytes:
    """The most expensive file the loader accepts (``extra`` > 0: just past the budget)."""
    n = worst_steps(text, k, extra)
    return jsonl([run_record()] + [step_record(i, text, k=k) for i in range(n)])


def to_parquet(data: bytes) -> bytes:
    from specviz import read_traces
    from specviz.traces.parquet import traces_to_parquet
    buf = io.BytesIO()
    traces_to_parquet(read_traces(data), buf)
    return buf.getvalue()


def parquet_bomb(rows: int, text: str = "x", list_entries: int | None = None,
                 sort: bool = True) -> bytes:
    """A valid-looking export whose rows all repeat one real position row: it compresses to
    a few kilobytes and expands to whatever ``rows`` says."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from specviz import read_traces
    from specviz.traces.parquet import (
        METADATA_KEY,
        PARQUET_FORMAT,
        PARQUET_VERSION,
        SCHEMA,
        traces_to_rows,
    )
    one_step = read_traces(jsonl([run_record(), step_record(0, k=5)]))
    row = dict(traces_to_rows(one_step)[0], drafted_text=text)
    if list_entries:
        row["p_top_ids"] = [1] * list_entries
    one = pa.table({n: pa.array([row.get(n)], SCHEMA.field(n).type) for n in SCHEMA.names})
    table = one.take(pa.array([0] * rows)).replace_schema_metadata(
        {METADATA_KEY: json.dumps({"format": PARQUET_FORMAT, "version": PARQUET_VERSION})})
    if not sort:  # rows out of order: the reader must sort them
        table = table.take(pa.array(list(range(rows))[::-1]))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _export_table(rows: int = 1):
    """A valid export of one small run as an Arrow table (``rows`` copies of its row)."""
    import pyarrow as pa

    from specviz import read_traces
    from specviz.traces.parquet import (
        METADATA_KEY,
        PARQUET_FORMAT,
        PARQUET_VERSION,
        SCHEMA,
        traces_to_rows,
    )
    one_step = read_traces(jsonl([run_record(), step_record(0, k=5)]))
    row = traces_to_rows(one_step)[0]
    one = pa.table({n: pa.array([row.get(n)], SCHEMA.field(n).type) for n in SCHEMA.names})
    return one.take(pa.array([0] * rows)).replace_schema_metadata(
        {METADATA_KEY: json.dumps({"format": PARQUET_FORMAT, "version": PARQUET_VERSION})})


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def _overlong(n: int, length: int) -> bytes:
    """``n`` as a varint of exactly ``length`` bytes (continuation bytes of zeros: Thrift's
    readers take them)."""
    short = _varint(n)
    if len(short) == length:
        return short
    return bytes(b | 0x80 for b in short) + b"\x80" * (length - len(short) - 1) + b"\x00"


def understated_parquet(codec: str, mb: int = 110) -> bytes:
    """An export whose drafted_text page decompresses to ``mb`` MB (one text of that size,
    compressed by ``codec``) while the footer says its chunk is 1 KB: the size a decoder
    allocates is in the page header, not in the footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = _export_table()
    i = table.schema.get_field_index("drafted_text")
    table = table.set_column(i, "drafted_text", pa.array(["a" * (mb * 2**20)], pa.string()))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=codec, use_dictionary=False,
                   write_statistics=False, store_schema=True)
    data = buf.getvalue()
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    col = meta.row_group(0).column(i)
    big = _varint(2 * col.total_uncompressed_size)  # zigzag of an i64
    from specviz.traces.parquet_footer import footer_bytes
    footer = footer_bytes(io.BytesIO(data))
    start = len(data) - 8 - len(footer)
    fixed = footer.replace(b"\x16" + big, b"\x16" + _overlong(2 * 1024, len(big)))
    assert fixed != footer, "the chunk's size was not found in the footer"
    return data[:start] + fixed + data[start + len(footer):]


def many_row_groups(n: int) -> bytes:
    """A valid export of one run split into ``n`` row groups of one row each."""
    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(_export_table(n), buf, row_group_size=1, compression="zstd")
    return buf.getvalue()


def nested_hardware(lines: int = 6, depth: int = 800, mb: float = 7.5) -> bytes:
    """Run records whose hardware is a list of empty objects (``mb`` MB each) or nested
    ``depth`` deep: small on disk, many Python objects."""
    n = int(mb * 1e6 / 3)
    records = [dumps(run_record(run_id=f"r{i}")).replace(
        '"hardware":{}', '"hardware":{"x":[' + ",".join(["{}"] * n) + "]}")
        for i in range(lines - 1)]
    deep = dumps(run_record(run_id="deep")).replace(
        '"hardware":{}', '"hardware":{"x":' + "[" * depth + "]" * depth + "}")
    return ("\n".join([*records, deep]) + "\n").encode()


def blank_lines(mb: float = 49) -> bytes:
    """A file of blank lines only (``mb`` MB)."""
    return b"\n" * int(mb * 1e6)


# ---------------------------------------------------------------- the kept corpus

def _valid_records() -> list[dict]:
    """A small valid run: one drafted step (gamma 2, top-2 lists), one summary."""
    step = step_record(0, "ab", g=2, k=2)
    summary = {"record": "summary", "output_token_ids": step["emitted_ids"],
               "output_text": "ababab", "n_steps": 1, "n_drafted": 2, "n_accepted": 2,
               "n_emitted": 3, "target_forward_passes": 1, "alpha_hat": 1.0,
               "mean_accepted_length": 3.0, "wall_s": 0.01, "tokens_per_s": 300.0,
               "stop_reason": "max_new_tokens"}
    return [run_record(config={"gamma": 2, "temperature": 1.0}), step, summary]


def _jsonl_cases() -> dict[str, tuple[bytes, str]]:
    run, step, summary = _valid_records()
    text = jsonl([run, step, summary]).decode()
    big = 20_000
    huge_step = dict(step, gamma=big, drafted_ids=[1] * big, accepted=[True] * big)
    return {
        "gamma-20000.jsonl": (jsonl([run, huge_step, summary]),
                              r"line 2: field 'gamma' must be <= 32, got 20,?000"),
        "config-gamma-1000000.jsonl": (jsonl([dict(run, config={"gamma": 10**6}), step]),
                                       r"line 1: field 'config' 'gamma' must be an integer "
                                       r"from 0 to 32"),
        "duplicate-key.jsonl": (text.replace('"gamma":2,', '"gamma":2,"gamma":3,', 1).encode(),
                                r"line 1: field 'gamma' is given twice in one object"),
        "top-k-51.jsonl": (jsonl([run, dict(step, p_top_ids=[list(range(51))] * 2)]),
                           r"line 2: field 'p_top_ids' entry 0 has 51 alternatives"),
        "token-text-5000.jsonl": (jsonl([run, dict(step, drafted_text=["x" * 5000, "y"])]),
                                  r"line 2: field 'drafted_text' entry 0 has 5,000 characters"),
        "stop-reason-markdown.jsonl": (
            jsonl([run, step, dict(summary, stop_reason="![b](https://e.example/b.png)")]),
            r"line 3: field 'stop_reason' must be one of"),
        "drafter-markdown.jsonl": (jsonl([dict(run, drafter="[x](https://e.example)"), step]),
                                   r"line 1: field 'drafter' must be one of"),
        "line-break-in-a-key.jsonl": (jsonl([run, dict(step, **{"a\nb\u2028c": 1})]),
                                      r"line 2: field 'a b c' is not a known field"),
        "prompt-token-ids-nested.jsonl": (
            (text.split("\n")[0].replace('"prompt_token_ids":[1,2]',
                                         '"prompt_token_ids":' + "[" * 3000 + "]" * 3000)
             + "\n").encode(), r"line 1: is not valid JSON \(nesting too deep\)"),
    }


def _parquet_cases() -> dict[str, tuple[bytes, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rewrite(data: bytes, change) -> bytes:
        table = pq.read_table(io.BytesIO(data))
        buf = io.BytesIO()
        pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), buf)
        return buf.getvalue()

    good = to_parquet(jsonl(_valid_records()))

    def no_run_index(t):
        i = t.schema.get_field_index("run_index")
        return t.set_column(i, "run_index", pa.array([None] * t.num_rows, pa.int64()))

    def two_run_jsons(t):
        i = t.schema.get_field_index("run_json")
        values = t.column("run_json").to_pylist()
        values[-1] = values[-1].replace('"hi"', '"ho"')
        return t.set_column(i, "run_json", pa.array(values, pa.string()))

    return {
        "bomb-rows.parquet": (parquet_bomb(100_000),
                              r"decodes to \d+ MB( or more)?; at most 100 MB"),
        "bomb-rows-unsorted.parquet": (parquet_bomb(40_000, sort=False),
                                       r"run 0: field 'position' step 0 has positions 0, 0"),
        "bomb-text.parquet": (parquet_bomb(20_000, text="y" * 20_000),
                              r"would take more than \d+ MB in memory"),
        "bomb-list.parquet": (parquet_bomb(2000, list_entries=100_000),
                              r"field 'p_top_ids' holds 200,000,000 values in the 2,000 rows"),
        "extra-column.parquet": (rewrite(good, lambda t: t.append_column(
            "extra", pa.array([1] * t.num_rows))), r"has 48 columns; an export has exactly 47"),
        "row-without-run-index.parquet": (rewrite(good, no_run_index),
                                          r"field 'run_index' has a row without run_index"),
        "run-json-differs.parquet": (rewrite(good, two_run_jsons),
                                     r"run 0: field 'run_json' differs between rows"),
        "histogram-too-long.parquet": (_nullable_marked_required(good),
                                       r"has a corrupt footer \(row group 0, column 0's "
                                       r"definition level histogram has 2 entries, expected 1\)"),
        "dictionary-index-beyond.parquet": (_dictionary_index_beyond(good),
                                            r"field 'run_json' is corrupt: a row's dictionary "
                                            r"index points past its dictionary"),
    }


def _nullable_marked_required(data: bytes) -> bytes:
    """The first nullable column's schema entry set to REQUIRED in the footer (SchemaElement
    field 3, OPTIONAL = zigzag 2 -> REQUIRED = 0): its size statistics' definition level
    histogram is then one entry too long, on which pyarrow 26 ends the process when asked to
    describe the column chunk."""
    from specviz.traces.parquet_footer import footer_bytes
    footer = footer_bytes(io.BytesIO(data))
    at = len(data) - 8 - len(footer) + footer.index(b"\x25\x02") + 1
    return data[:at] + b"\x00" + data[at + 1:]


def _dictionary_index_beyond(data: bytes) -> bytes:
    """One byte of the file changed so that a run_json row's dictionary index points past its
    dictionary (the first such change from the start of the file): pages decode into that
    array without complaint."""
    import pyarrow.parquet as pq
    for at in range(4, len(data)):
        for value in (7, 255):
            bad = data[:at] + bytes([value]) + data[at + 1:]
            try:
                table = pq.read_table(io.BytesIO(bad), columns=["run_json"],
                                      read_dictionary=["run_json"])
                table.column("run_json").validate(full=True)
            except Exception as e:  # noqa: BLE001 - looking for one kind of failure
                if "Dictionary indices invalid" in str(e):
                    return bad
    raise AssertionError("no byte change gives a dictionary index beyond its dictionary")


def make_corpus(folder: Path = CORPUS) -> None:
    """Write the corpus and its expected messages (run: python -m tests._bad_files)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (data, pattern) in {**_jsonl_cases(), **_parquet_cases()}.items():
        (folder / name).write_bytes(data)
        expected[name] = pattern
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    make_corpus()
