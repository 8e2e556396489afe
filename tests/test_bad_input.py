"""Bad input, bounded: what a careless user or a crafted file can make specviz do.

The kept corpus of malformed files (tests/data/bad-input, JSON Lines and Parquet) is refused
file by file in one line; files as large as the limits allow load within a memory cap, and
Parquet files built to expand are refused under it; the upload limit is one number; prompts
are sized before they are tokenized; temperatures that cannot give finite probabilities,
devices that are not devices and Hub ids that are paths are refused.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specviz import DecodeConfig, load_pair, read_traces, speculative_decode
from specviz.limits import (
    MAX_PROMPT_CHARS,
    MAX_RUNS_PER_FILE,
    MAX_STEPS_PER_RUN,
    MAX_TRACE_MB,
    MAX_UPLOAD_MB,
)
from specviz.models import ModelSourceError, check_prompt_size, parse_source, pick_device
from specviz.traces.parquet import read_parquet_traces
from specviz.traces.records import MemoryBudget, TraceError, parse_records
from tests._bad_files import (
    CORPUS,
    jsonl,
    run_record,
    step_record,
    to_parquet,
    worst_jsonl,
)

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def _read(name: str, data: bytes):
    return (read_parquet_traces if name.endswith(".parquet") else read_traces)(data, name)


# ---------------------------------------------------------------- the kept corpus

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_malformed_file_is_refused_in_one_line(name):
    data = (CORPUS / name).read_bytes()
    with pytest.raises(TraceError) as info:
        _read(name, data)
    msg = str(info.value)
    assert msg.startswith(name) and re.search(EXPECTED[name], msg), msg
    assert "\n" not in msg and "\u2028" not in msg and len(msg) < 300


def test_the_app_reads_the_corpus_without_raising():
    from ui.uploads import read_upload
    for name in sorted(EXPECTED):
        traces, error = read_upload(name, (CORPUS / name).read_bytes())
        assert traces == [] and error.startswith(name), (name, error)


def test_the_corpus_is_all_there():
    files = {p.name for p in CORPUS.iterdir()} - {"expected.json"}
    assert files == set(EXPECTED)
    assert {n.rsplit(".", 1)[1] for n in files} == {"jsonl", "parquet"}


# ---------------------------------------------------------------- what one file may hold

def _target_only_steps(n: int) -> list[dict]:
    return [{"record": "step", "step": i, "gamma": 0, "drafted_ids": [], "drafted_text": [],
             "q": None, "p": [], "accept_prob": [], "u": None, "accepted": [],
             "emitted_ids": [5], "emitted_text": ["x"], "emitted_kinds": ["bonus"]}
            for i in range(n)]


def test_steps_per_run_are_bounded():
    run = run_record(mode="target-only", drafter=None, draft=None, config={})
    assert len(read_traces(jsonl([run] + _target_only_steps(MAX_STEPS_PER_RUN)))[0].steps) \
        == MAX_STEPS_PER_RUN
    with pytest.raises(TraceError, match=r"line 4098: field 'record' is step 4,096 of its "
                                         r"run; a run has at most 4,096 steps"):
        read_traces(jsonl([run] + _target_only_steps(MAX_STEPS_PER_RUN + 1)))


def test_runs_per_file_are_bounded():
    run = run_record()
    assert len(read_traces(jsonl([run] * MAX_RUNS_PER_FILE))) == MAX_RUNS_PER_FILE
    with pytest.raises(TraceError, match=r"line 2001: field 'record' starts run 2,001; one "
                                         r"file may hold at most 2,000 runs"):
        read_traces(jsonl([run] * (MAX_RUNS_PER_FILE + 1)))


def test_the_memory_budget_covers_the_whole_file():
    """Two runs that each fit the budget do not fit it together; the budget is a parameter
    (None lifts it), and the Parquet reader keeps the same one."""
    one = [run_record()] + [step_record(i, k=5) for i in range(40)]
    used = MemoryBudget(None)
    parse_records(enumerate(one, start=1), budget=used)
    mb = used.used / 2**20
    assert len(read_traces(jsonl(one), max_mb=1.5 * mb)) == 1
    with pytest.raises(TraceError, match=r"brings the file past \d+ MB in memory \(estimated"):
        read_traces(jsonl(one + one), max_mb=1.5 * mb)
    assert len(read_traces(jsonl(one + one), max_mb=None)) == 2
    both = to_parquet(jsonl(one + one))
    with pytest.raises(TraceError, match=r"would take more than \d+ MB in memory"):
        read_parquet_traces(both, max_mb=1.5 * mb)
    assert len(read_parquet_traces(both, max_mb=3 * mb)) == 2


def test_a_line_longer_than_the_limit_is_refused_before_it_is_decoded():
    data = jsonl([run_record()]) + b'{"record": "step", "x": "' + b"\xc3\xa9" * 17_000_000
    t = time.perf_counter()
    with pytest.raises(TraceError, match=r"line 2: is longer than 8,000,000 characters"):
        read_traces(data)
    assert time.perf_counter() - t < 5


# ---------------------------------------------------------------- memory, measured

CAPPED = r"""
import resource, sys, time
cap = int(sys.argv[3]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.path.insert(0, sys.argv[2])
from specviz.traces.records import TraceError, read_traces
def rss():  # the peak since this program started (ru_maxrss would count the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from specviz.traces.parquet import read_parquet_traces
data = open(sys.argv[1], "rb").read()
r0 = rss()
try:
    if sys.argv[1].endswith(".parquet"):
        traces = read_parquet_traces(data, source="f")
    else:
        traces = read_traces(data, source="f")
    outcome = f"loaded {len(traces)}"
except TraceError as e:
    outcome = "TraceError " + str(e)
except MemoryError:
    outcome = "MemoryError"
print(f"{rss() - r0:.0f}\t{outcome}")
"""
CAP_MB = 1024


def _capped(path: Path) -> tuple[float, str]:
    """(peak resident MB above the level before the read, outcome), in a process that may
    take at most CAP_MB of address space."""
    out = subprocess.run([sys.executable, "-c", CAPPED, str(path), str(ROOT), str(CAP_MB)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peak, outcome = out.stdout.strip().split("\t", 1)
    return float(peak), outcome


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.startswith("bomb-")])
def test_parquet_bombs_are_refused_under_a_memory_cap(name):
    """Files of a few kilobytes that expand to gigabytes as Python objects: refused with the
    limit they break, by a process that may not take more than 1 GiB."""
    peak, outcome = _capped(CORPUS / name)
    assert outcome.startswith("TraceError") and re.search(EXPECTED[name], outcome), outcome
    assert peak < 400, (peak, outcome)


@pytest.fixture(scope="module")
def worst_files(tmp_path_factory) -> dict[str, Path]:
    """The most expensive JSON Lines file the loader accepts (steps of gamma 32, top-50 lists
    of two-character texts), the same one step past the budget, and both as Parquet."""
    folder = tmp_path_factory.mktemp("worst")
    files = {}
    for name, data in (("worst.jsonl", worst_jsonl()), ("over.jsonl", worst_jsonl(extra=1))):
        files[name] = folder / name
        files[name].write_bytes(data)
    files["worst.parquet"] = folder / "worst.parquet"
    files["worst.parquet"].write_bytes(to_parquet(files["worst.jsonl"].read_bytes()))
    return files


def test_the_worst_accepted_files_load_under_a_memory_cap(worst_files):
    """What the limits allow costs at most the budget and the file's own bytes: well under
    1 GB (docs/limits.md has the measured figures)."""
    assert worst_files["worst.jsonl"].stat().st_size < MAX_UPLOAD_MB * 2**20
    for name in ("worst.jsonl", "worst.parquet"):
        peak, outcome = _capped(worst_files[name])
        assert outcome == "loaded 1", (name, outcome)
        assert peak < MAX_TRACE_MB * 1.6, (name, peak)


def test_one_step_past_the_budget_is_refused(worst_files):
    peak, outcome = _capped(worst_files["over.jsonl"])
    assert outcome.startswith(f"TraceError f, line {4 + _steps(worst_files['worst.jsonl'])}")
    assert f"past {MAX_TRACE_MB} MB in memory" in outcome, outcome


def _steps(path: Path) -> int:
    return path.read_bytes().count(b'"record":"step"') - 2


# ---------------------------------------------------------------- the upload limit

def test_the_upload_limit_is_one_number():
    """The server's cap (config.toml) is specviz.limits'; the uploaders and their labels use
    the same one."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB
    from ui import uploads
    assert uploads.MAX_UPLOAD_MB is MAX_UPLOAD_MB
    assert f"up to {MAX_UPLOAD_MB} MB" in uploads.upload_label("Trace file")
    for page in ("app_pages/inspector.py", "ui/walkthrough.py"):
        source = (ROOT / page).read_text()
        assert "max_upload_size=MAX_UPLOAD_MB" in source and "upload_label(" in source, page


def test_an_upload_over_the_limit_is_refused_in_plain_words():
    from ui.uploads import read_upload
    traces, error = read_upload("big.jsonl", b" " * (MAX_UPLOAD_MB * 10**6 + 1))
    assert traces == [] and error == f"big.jsonl: is 50.0 MB; the limit is {MAX_UPLOAD_MB} MB"


# ---------------------------------------------------------------- prompts

@pytest.fixture(scope="module")
def real_pair():
    return load_pair()


def test_a_huge_prompt_is_refused_at_once_on_the_real_pair(real_pair):
    """The issue's 10 MB prompt took 4 GB and 25 s before 'context holds'; now it is refused
    by its length, and a 700 000-character one by the bound on its tokens, in milliseconds."""
    import tracemalloc
    cfg = DecodeConfig(max_new_tokens=4)
    for prompt, message in (("x" * 10_000_000, "has 10,000,000 characters; at most 1,000,000"),
                            ("hello " * 116_667, "so at least 8,642 tokens")):
        tracemalloc.start()
        t = time.perf_counter()
        with pytest.raises(ValueError, match=message):
            speculative_decode(real_pair, prompt, cfg)
        took = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert took < 1 and peak < 50 * 2**20, (took, peak)


def test_a_prompt_that_fits_still_runs_on_the_real_pair(real_pair):
    trace = speculative_decode(real_pair, "Say hi.", DecodeConfig(max_new_tokens=4))
    assert trace.summary.n_emitted == 4


PROMPT_TEXT = st.lists(st.sampled_from(list("ab ") + ["#" * 80, " " * 40, "-" * 64, "é", "😀",
                                                      "\n", "Ġ", "<|im_start|>", "漢"]),
                       min_size=1, max_size=60).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(PROMPT_TEXT)
def test_the_prompt_bound_never_refuses_a_prompt_that_fits(text):
    """Sound: a prompt of n characters (ends stripped) has at least n / L tokens, L being the
    longest vocabulary entry, with and without the chat template. Checked on the real
    tokenizer with texts rich in its longest tokens."""
    from specviz.decoding import encode_prompt
    from specviz.models import max_chars_per_token
    tok = _real_tokenizer()
    per_token = max_chars_per_token(tok)
    assert per_token == 81
    for chat in (False, True):
        n_tokens = len(encode_prompt(tok, text, chat))
        assert n_tokens >= math.ceil(len(text.strip()) / per_token)
        context = n_tokens + 1  # the smallest context this prompt fits
        check_prompt_size(tok, text, context)  # never refused


def _real_tokenizer():
    from transformers import AutoTokenizer

    from specviz.models import smollm2_dir
    if not hasattr(_real_tokenizer, "tok"):
        _real_tokenizer.tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
    return _real_tokenizer.tok


def test_the_prompt_bound_is_off_for_tokenizers_that_drop_text():
    """A normalizer that strips or a pre-tokenizer that removes whitespace could make a long
    prompt short: no bound then, only MAX_PROMPT_CHARS."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from specviz.models import max_chars_per_token
    core = Tokenizer(models.WordLevel(vocab={"a": 0, "<unk>": 1}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    assert max_chars_per_token(tok) is None
    check_prompt_size(tok, " " * 100_000 + "a", 2)  # one token: fits
    core.pre_tokenizer = None
    core.normalizer = normalizers.Strip()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    assert max_chars_per_token(tok) is None
    with pytest.raises(ValueError, match="at most 1,000,000"):
        check_prompt_size(tok, "a" * (MAX_PROMPT_CHARS + 1), 2)


# ---------------------------------------------------------------- temperatures

@pytest.mark.parametrize("temperature, message", [
    (1e-45, "too small"), (1e-3, "too small"), (float("inf"), "at most 100"),
    (1e9, "at most 100"), (float("nan"), ">= 0"),
])
def test_temperatures_that_cannot_give_finite_probabilities_are_refused(temperature,
                                                                        message):
    pair = load_pair("embedded:tiny-random-target")
    with pytest.raises(ValueError, match=message):
        speculative_decode(pair, "abc", DecodeConfig(temperature=temperature, chat=False))


def test_the_smallest_temperature_gives_finite_probabilities():
    pair = load_pair("embedded:tiny-random-target")
    trace = speculative_decode(pair, "abc abc", DecodeConfig(temperature=0.01, chat=False,
                                                            max_new_tokens=12))
    values = [x for s in trace.steps for x in s.p + (s.q or []) + s.accept_prob]
    assert values and all(math.isfinite(x) for x in values)


# ---------------------------------------------------------------- model sources

@pytest.mark.parametrize("device", ["meta", "cpu:0", "cuda:x", "mps", "", "cpu "])
def test_only_real_devices(device):
    with pytest.raises(ModelSourceError, match="unknown device"):
        pick_device(device)


@pytest.mark.parametrize("spec", ["hf:../dir", "hf:a/b/c", "hf:-a/b", "hf:a/b-", "hf:a..b/c",
                                  "hf:a/", "hf:/b", "hf:a--b/c", "hf:" + "a" * 60 + "/" +
                                  "b" * 60, "hf:a b/c"])
def test_hub_ids_must_be_org_slash_name(spec):
    with pytest.raises(ModelSourceError, match="is not a Hub id"):
        parse_source(spec)


def test_a_hub_id_that_names_a_local_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    with pytest.raises(ModelSourceError, match="names a local path"):
        parse_source("hf:org/model")
    assert parse_source("hf:org/other") == ("hf", "org/other")


@pytest.mark.parametrize("value, allowed", [
    (None, True), ("1", True), ("true", True), (" YES ", True), ("on", True),
    ("0", False), ("off", False), ("00", False), ("n", False), ("disabled", False),
    ("", False), ("2", False),
])
def test_the_custom_source_switch_fails_closed(monkeypatch, value, allowed):
    from specviz.models import custom_sources_allowed, custom_sources_switch
    if value is None:
        monkeypatch.delenv("SPECVIZ_ALLOW_CUSTOM_MODELS", raising=False)
    else:
        monkeypatch.setenv("SPECVIZ_ALLOW_CUSTOM_MODELS", value)
    assert custom_sources_allowed() is allowed
    unclear = value is not None and value.strip().lower() not in (
        "1", "true", "yes", "on", "0", "false", "no", "off")
    assert (custom_sources_switch() is not None) is unclear


def test_the_files_of_one_upload_share_the_memory_budget(monkeypatch):
    """The inspector takes several files at once: together they are held to the budget, and
    the file that would pass it is not opened (in plain words); the files before it are."""
    from ui import uploads

    class Upload:
        def __init__(self, name: str, data: bytes):
            self.name, self._data = name, data

        def getvalue(self) -> bytes:
            return self._data
    one = jsonl([run_record(run_id="shared-budget")] + [step_record(i, k=5) for i in range(60)])
    used = MemoryBudget(None)
    read_traces(one, budget=used)
    monkeypatch.setattr(uploads, "MAX_TRACE_MB", 2.5 * used.used / 2**20)
    results = uploads.read_uploads([Upload(f"budget-{i}.jsonl", one) for i in range(3)])
    assert [len(traces) for _, traces, _ in results] == [1, 1, 0]
    assert results[2][2].startswith("budget-2.jsonl: not opened: with the files before it")
