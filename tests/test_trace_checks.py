"""A trace that loads must never break a page, and must write back: every field's type and
its relation to the others are checked at load (specviz/traces/records/relations.py). The
cases of issue 29 (a list where a string goes, top-k lists that do not go together, a
summary that contradicts its steps, timings no clock gives, numbers JSON cannot write back,
objects nested hundreds deep) and their neighbours."""

from __future__ import annotations

import io
import json
import re

import pytest

from specviz.traces.parquet import read_parquet_traces, traces_to_parquet
from specviz.traces.records import TraceError, read_traces, traces_to_jsonl
from tests._traces import handmade_trace


def _records() -> list[dict]:
    return [json.loads(line) for line in traces_to_jsonl([handmade_trace()]).splitlines()]


def _load(records: list[dict], raw: dict[str, str] | None = None):
    """Load ``records`` as a JSON Lines file; ``raw`` replaces a placeholder string by raw
    JSON text (numbers JSON can hold but Python's json would not write, deep nesting)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    for k, v in (raw or {}).items():
        text = text.replace(json.dumps(k), v)
    return read_traces(text.encode(), source="case.jsonl")


def _set(path: str, value):
    """A change to the records: 'run.hardware.engine.path', 'step1.p_top_texts', 'summary.x'."""
    def change(recs):
        head, *keys = path.split(".")
        i = {"run": 0, "summary": len(recs) - 1}.get(head)
        rec = recs[i if i is not None else 1 + int(head[4:])]
        for k in keys[:-1]:
            rec = rec[k]
        rec[keys[-1]] = value
    return change


DEEP = "[" * 600 + "]" * 600
CASES = {  # name: (change, raw JSON for a placeholder, the message expected)
    "engine path a list": (_set("run.hardware.engine", {"path": ["eager"]}), None,
                           r"field 'hardware' 'path' must be string"),
    "device an object": (_set("run.hardware.device", {"a": 1}), None,
                         r"'device' must be string"),
    "engine a list": (_set("run.hardware.engine", [1]), None, r"'engine' must be object"),
    "hardware 600 deep": (_set("run.hardware.deep", "@DEEP"), {"@DEEP": DEEP},
                          r"nested more than 16 deep"),
    "config 20 deep": (_set("run.config.x", "@D"), {"@D": "[" * 20 + "]" * 20},
                       r"field 'config' is nested more than 16 deep"),
    "top_p 1e999": (_set("run.config.top_p", "@INF"), {"@INF": "1e999"},
                    r"field 'config' holds a number that is not finite"),
    "top_p 3": (_set("run.config.top_p", 3.0), None, r"'top_p' must lie in \[0, 1\]"),
    "seed 10^30": (_set("run.config.seed", 10**30), None, r"beyond 64 bits"),
    "top_k a string": (_set("run.config.top_k", "5"), None, r"'top_k' must be integer"),
    "target n_params a float": (_set("run.target.n_params", 1.5), None,
                                r"field 'target' 'n_params' must be integer"),
    "a string of 20 000 in target": (_set("run.target.note", "x" * 20_000), None,
                                     r"string of 20,000 characters"),
    "p_top_texts empty": (_set("step0.p_top_texts", []), None,
                          r"p_top_ids, p_top_texts and p_top_probs must have the same"),
    "q_top_texts null": (_set("step0.q_top_texts", None), None,
                         r"'q_top_texts' is null while the other"),
    "a top-k row shorter": (_set("step0.p_top_probs", [[0.5], [0.3, 0.2], [0.1, 0.2]]), None,
                            r"row 0 has 2 ids, 2 texts and 1 probabilities"),
    "first kind bonus": (_set("step0.emitted_kinds", ["bonus", "accepted", "resampled"]), None,
                         r"entry 0 is 'bonus'"),
    "bonus after a rejection": (_set("step0.emitted_kinds", ["accepted", "accepted", "bonus"]),
                                None, r"expected resampled"),
    "token id 2^40": (_set("step0.p_top_ids", [[2**40, 9]] * 3), None, r"invalid value"),
    "drafted id 2^40": (_set("step0.drafted_ids", [2**40, 2, 3]), None, r"must be <= 2,147"),
    "a step of 1e-300 ms": (_set("step1.verify_ms", 1e-300), None, r"a step's time is 0 or"),
    "a step of 1e300 ms": (_set("step1.total_ms", 1e300), None, r"a step's time is 0 or"),
    "steps end out of order": (_set("step2.t_end_s", 0.001), None,
                               r"before the previous step's end"),
    "n_emitted 10^400": (_set("summary.n_emitted", "@BIG"), {"@BIG": "1" + "0" * 400},
                         r"field 'n_emitted' must be <= 9,223"),
    "n_emitted 10": (_set("summary.n_emitted", 10), None,
                     r"'n_emitted' says 10 but the run's steps give 8"),
    "alpha_hat 1": (_set("summary.alpha_hat", 1.0), None,
                    r"'alpha_hat' says 1.0 but the run's steps give 0.714"),
    "mean length 3.33": (_set("summary.mean_accepted_length", 10 / 3), None,
                         r"'mean_accepted_length' says"),
    "n_accepted": (_set("summary.n_accepted", 9), None, r"'n_accepted' says 9"),
    "output ids": (_set("summary.output_token_ids", [1, 2]), None, r"'output_token_ids' says"),
    "tokens/s 1e300": (_set("summary.tokens_per_s", 1e300), None, r"no decoder emits more"),
    "tokens/s wrong": (_set("summary.tokens_per_s", 5.0), None,
                       r"'tokens_per_s' says 5 but 8 tokens in 0.042 s make 190"),
    "wall 1e-300": (_set("summary.wall_s", 1e-300), None, r"shorter than the steps'"),
    "target passes": (_set("summary.target_forward_passes", 1), None,
                      r"'target_forward_passes' says 1"),
    "rounds 1e300": (_set("summary.round_tokens_per_s", [1e300]), None,
                     r"no decoder emits more"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_trace_that_would_break_a_page_is_refused_naming_the_field(name):
    change, raw, pattern = CASES[name]
    recs = _records()
    change(recs)
    with pytest.raises(TraceError) as info:
        _load(recs, raw)
    msg = str(info.value)
    assert re.search(pattern, msg), msg
    assert "\n" not in msg and len(msg) < 300


def test_the_unchanged_trace_loads_and_round_trips():
    trace = _load(_records())
    assert trace == [handmade_trace()]
    again = read_traces(traces_to_jsonl(trace).encode())
    assert again == trace
    buf = io.BytesIO()
    traces_to_parquet(trace, buf)
    assert read_parquet_traces(buf.getvalue()) == trace


def test_odd_but_valid_values_load_and_write_back():
    """Neighbours that are fine: unknown keys of any JSON type, an engine of null, nesting
    at the limit, the largest int64 seed, a run whose steps took 0 ms."""
    recs = _records()
    recs[0]["hardware"]["engine"] = None
    recs[0]["hardware"]["extra"] = {"a": [1, 2.5, None, True, "x"]}
    recs[0]["config"]["seed"] = 2**63 - 1
    recs[0]["target"]["deep"] = json.loads("[" * 14 + "]" * 14)
    for r in recs[1:-1]:
        r.update(draft_ms=0.0, verify_ms=0.0, accept_ms=0.0, total_ms=0.0)
    traces = _load(recs)
    again = read_traces(traces_to_jsonl(traces).encode())
    assert again == traces
    buf = io.BytesIO()
    traces_to_parquet(traces, buf)
    assert read_parquet_traces(buf.getvalue()) == traces


def test_steps_of_zero_ms_give_no_speedup():
    """Speculative steps of 0 ms beside a baseline with real times: the diagnosis says it
    cannot predict a speed-up (it divided by zero), and no measured one is made up."""
    import dataclasses

    from specviz.measure import speedup_of
    from specviz.teaching.diagnosis import diagnose, measure
    spec = handmade_trace()
    zero = [dataclasses.replace(s, draft_ms=0.0, verify_ms=0.0, accept_ms=0.0, total_ms=0.0,
                                t_end_s=0.0) for s in spec.steps]
    spec = spec.__class__(spec.run, tuple(zero), dataclasses.replace(
        spec.summary, wall_s=0.0, tokens_per_s=0.0))
    base = handmade_trace()
    dg = diagnose(measure(spec, base))
    assert dg.limiter == "unknown" and "0 ms" in dg.headline
    assert speedup_of(spec, base).median is None
