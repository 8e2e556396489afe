"""The Overview with two model pairs on one prompt (issue 26): the pair with the larger
measured speed-up leads, the other pair's run of the same prompt is the comparison, with why
it does not speed up, all from the traces; with one pair the page is as before."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pytest

from specviz import write_traces
from specviz.measure import Round, Speedup
from specviz.teaching import pairs as P
from specviz.teaching.diagnosis import Costs
from specviz.traces.records import Trace

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PROMPT = "def add(a, b):"
SETTING = ("cpu", "AMD EPYC", "float32", 0.0, 0, 1.0, 4, 16, False)


def _costs(speed: float, c: float, v: float, alpha: float = 0.8, e: float = 3.4,
           rounds: tuple[float, ...] = (0.97, 1.0, 1.03)) -> Costs:
    sp = Speedup(tuple(Round(speed * f * 10, 10.0) for f in rounds))
    return Costs(alpha=alpha, gamma=4.0, mean_accepted_length=e, tokens_per_target_pass=e,
                 tokens_per_s=speed * 10, c=c, v=v, overhead=0.05, target_step_ms=10.0,
                 target_step_from="baseline", speedup_measured=sp.median, mean_beta=None,
                 gamma_config=4, speedup=sp)


def _run(file: str, target: str, speed: float, c: float = 0.1, v: float = 1.1, *,
         prompt: str = PROMPT, setting: tuple = SETTING, index: int = 0) -> P.PairRun:
    return P.PairRun(file, index, f"embedded:{target}", f"embedded:{target}-draft", 10**8,
                     prompt, setting, _costs(speed, c, v))


def test_the_faster_pair_leads_and_the_other_is_the_comparison():
    slow, fast = _run("a", "small", 0.95, 0.4, 1.6), _run("a", "large", 1.6, 0.1, 1.05, index=2)
    cmp = P.compare([slow, fast])
    assert cmp.lead is fast and cmp.other is slow
    assert P.compare([fast, slow]) == cmp  # file order does not choose


def test_no_comparison_without_two_targets_on_one_prompt_and_setting():
    one = _run("a", "small", 0.95)
    assert P.compare([]) is None and P.compare([one]) is None
    assert P.compare([one, _run("a", "small", 1.2, index=2)]) is None  # one target twice
    assert P.compare([one, _run("a", "large", 1.6, prompt="other")]) is None
    other_setting = SETTING[:6] + (8,) + SETTING[7:]  # γ = 8: not the same setting
    assert P.compare([one, _run("a", "large", 1.6, setting=other_setting)]) is None


def test_runs_of_one_file_are_preferred_to_runs_matched_across_files():
    pairs_file = [_run("pairs", "small", 0.9), _run("pairs", "large", 1.4, index=2)]
    elsewhere = _run("old", "small", 0.5)  # would make a larger gap, but another file
    cmp = P.compare([elsewhere, *pairs_file])
    assert (cmp.lead.file, cmp.other.file) == ("pairs", "pairs")
    across = P.compare([elsewhere, _run("new", "large", 1.4)])
    assert (across.lead.file, across.other.file) == ("new", "old")


def test_why_text_is_computed_from_the_run():
    slow = _run("a", "small", 0.95, c=0.4, v=1.6)
    told = P.why_text(slow)
    # a step: 4 × 0.40 + 1.60 + 0.05 = 3.25 target passes for 3.40 tokens: 1.05× predicted
    assert "over γ + 1 = 5 tokens costs v = 1.60" in told and "c = 0.40" in told
    assert "4.00 drafted × 0.40 + 1.60 (verify) + 0.05 (overhead) = 3.25 target passes" in told
    assert "α̂ 0.80" in told
    assert "3.40 / 3.25 = 1.05× predicted, 0.95× measured" in told
    # the range (0.06) is wider than the distance from 1× (0.05): no verdict
    assert P.speed_text(slow) == "0.95× (range 0.92–0.98 over 3 rounds, no measurable difference)"
    assert P.speed_text(_run("a", "large", 1.6)) == "1.60× (range 1.55–1.65 over 3 rounds)"
    rows = {r[""]: r for r in P.table_rows(P.Comparison(_run("a", "large", 1.6, 0.1, 1.05),
                                                         slow))}
    assert rows["c: a drafted token / target pass"] == {
        "": "c: a drafted token / target pass", "large": "0.10", "small": "0.40"}
    assert rows["predicted speed-up"]["small"] == "1.05×" and rows["rounds"]["large"] == "3"
    same = P.table_rows(P.Comparison(slow, replace(slow, target="/other/embedded:small")))
    assert list(same[0]) == ["", "1. small", "2. small"]  # two columns, never one
    assert P.settings_text(slow) == "cpu, float32, greedy, γ = 4, 16 new tokens"
    assert P.model_name("embedded:qwen2.5-coder-1.5b-instruct") == "qwen2.5-coder-1.5b-instruct"
    assert P.model_name("/models/my-model/") == "my-model"
    assert P.why_titles(P.Comparison(_run("a", "l", 1.6), slow)) == (
        "Why the leading pair speeds up.", "Why the other pair does not speed up.")
    lead, other = P.why_titles(P.Comparison(_run("a", "l", 0.9), _run("a", "s", 0.8)))
    assert "no faster than its target alone" in lead and "does not speed up" in other
    noisy = replace(slow, costs=_costs(1.2, 0.1, 1.0, rounds=(0.5, 1.0, 1.02)))
    lead, other = P.why_titles(P.Comparison(noisy, _run("a", "s", 1.1)))
    assert "not measurably" in lead and "ranges overlap" in other  # 0.60-1.22 and 1.07-1.13
    apart = P.why_titles(P.Comparison(_run("a", "l", 1.6), _run("a", "s", 1.2)))
    assert apart[1] == "Why the other pair speeds up less."  # 1.55-1.65 and 1.16-1.24
    close = P.why_titles(P.Comparison(_run("a", "l", 1.74), _run("a", "s", 1.64)))
    assert "these rounds do not say which pair is faster" in close[1]  # 1.69-1.79, 1.59-1.69
    wide = replace(slow, costs=_costs(1.02, 0.4, 1.6, rounds=(0.8, 1.0, 1.3)))
    assert P.speed_text(wide).endswith("over 3 rounds, no measurable difference)")
    one = replace(slow, costs=_costs(0.95, 0.4, 1.6, rounds=(1.0,)))
    assert P.speed_text(one) == "0.95× (one round: no spread)"


# ----------------------------------------------------------------- the page, with real runs


def _retime(t: Trace, draft_ms: float, verify_ms: float, total_ms: float,
            rounds: tuple[float, ...] = (0.96, 1.0, 1.04)) -> Trace:
    """The run with every step taking the given times (a step that drafts nothing: no draft
    time), its summary agreeing, and three rounds of tokens/s around its own."""
    steps, clock = [], 0.0
    for s in t.steps:
        d = draft_ms if s.gamma else 0.0
        total = total_ms if s.gamma or not draft_ms else total_ms - draft_ms
        clock += total / 1000
        steps.append(replace(s, draft_ms=d, verify_ms=verify_ms, total_ms=total,
                             t_end_s=clock))
    tps = t.summary.n_emitted / clock
    return Trace(t.run, tuple(steps), replace(t.summary, wall_s=clock, tokens_per_s=tps,
                                              round_tokens_per_s=[tps * f for f in rounds]))


@lru_cache(maxsize=None)
def _pair_runs(target: str, c: float, v: float) -> tuple[Trace, Trace]:
    """A greedy draft-model run of ``target``'s tiny pair on PROMPT and its linked baseline
    (10 ms a step), retimed so that the draft costs c and a verify pass v target steps."""
    from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
    pair = load_pair(target, device="cpu")
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=16, chat=False)
    spec = speculative_decode(pair, PROMPT, cfg, label=f"{target} pair")
    base = target_only_decode(pair, PROMPT, cfg, label=f"{target} alone",
                              baseline_of=spec.run.run_id)
    spec = _retime(spec, 4 * c * 10, v * 10, 4 * c * 10 + v * 10 + 0.5)
    return spec, _retime(base, 0.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def two_pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    small = _pair_runs("embedded:tiny-random-target", 0.4, 1.6)  # the slow pair
    large = _pair_runs("embedded:tiny-random-qwen2-target", 0.02, 1.0)  # the fast one
    write_traces(folder / "cpu-pairs-test.jsonl", [*small, *large])
    write_traces(folder / "one-pair.jsonl", list(small))  # the same run again, elsewhere
    return folder, small[0], large[0]


def _visit() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _check_page(at: AppTest, small: Trace, large: Trace) -> None:
    from specviz.teaching.diagnosis import measure
    assert any(s.value == "Two pairs, one prompt" for s in at.subheader)
    box = at.selectbox(key="home_run")
    assert "the run with the larger median speed-up first" in box.label
    assert "tiny-random-qwen2-target pair" in box.options[0]  # the faster pair leads
    assert "tiny-random-target pair" in box.options[1]  # the other pair's run next
    text = " ".join(m.value for m in at.markdown)
    assert "Why the other pair does not speed up" in text or "speeds up less" in text
    k = measure(small, None)  # the slow pair's v, from its trace
    assert "tiny-random-target: a verify pass over γ + 1 = 5 tokens" in text.replace("\\", "")
    assert k.alpha is not None and "α̂" in text
    caps = " ".join(c.value for c in at.caption)
    assert "Not a typical run" in caps and "middle half" in caps and "range" in caps
    assert "One prompt, the same settings" in caps and "rounds" in caps
    assert at.dataframe  # the compact table


def test_overview_leads_with_the_faster_pair(two_pairs, monkeypatch):
    folder, small, large = two_pairs
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(folder))
    at = _visit()
    _check_page(at, small, large)
    speed = float(next(m.value for m in at.metric if m.label == "speedup").rstrip("×"))
    at.selectbox(key="home_run").select_index(1).run()  # the other pair's run
    assert not at.exception
    assert any("The other pair's run of the same prompt" in c.value for c in at.caption)
    other = float(next(m.value for m in at.metric if m.label == "speedup").rstrip("×"))
    assert speed > other
    at.run()
    assert not at.exception
    _check_page(_visit(), small, large)  # a second session: the same lead


def test_overview_with_one_pair_has_no_comparison(two_pairs, monkeypatch, tmp_path):
    folder, small, _ = two_pairs
    write_traces(tmp_path / "one.jsonl", list(_pair_runs("embedded:tiny-random-target",
                                                         0.4, 1.6)))
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(tmp_path))
    for _ in range(2):
        at = _visit()
        assert not any(s.value == "Two pairs, one prompt" for s in at.subheader)
        assert "a typical one first" in at.selectbox(key="home_run").label


def test_names_from_a_trace_reach_the_page_as_text():
    """A crafted target name cannot draw markup: the page shows the texts through as_text
    and the table through visible_frame."""
    from ui.plain import as_text, visible_frame
    evil = _run("a", "<img src=x onerror=alert(1)>\u202e", 1.6)
    cmp = P.Comparison(evil, _run("a", "small", 0.9))
    shown = as_text(P.headline(cmp)) + as_text(P.why_text(evil))
    assert shown.count("<img") == shown.count("\\<img") == 3 and "\u202e" not in shown
    import pandas as pd
    table = visible_frame(pd.DataFrame(P.table_rows(cmp)))
    assert not any("\u202e" in str(c) for c in table.columns)  # the pairs' names
    assert all("\u202e" not in v for col in table for v in table[col].astype(str))
