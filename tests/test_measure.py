"""The speed-up measured over rounds: median and range, the verdict withheld when the rounds
disagree (a fake clock), the kept pair linked and listing its rounds, baselines paired only
with their own run."""

import dataclasses
import io

import pytest

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.measure import NO_DIFFERENCE, Round, Speedup, measure_speedup, speedup_of
from specviz.traces import frames as F
from specviz.traces.records import read_traces, traces_to_jsonl

PROMPT = "the cat sat on the mat and the cat sat"
CFG = DecodeConfig(max_new_tokens=12, chat=False, gamma=3)


@pytest.fixture(scope="module")
def pair():
    return load_pair("embedded:tiny-random-target")


def _speedup(*pairs) -> Speedup:
    return Speedup(tuple(Round(a, b) for a, b in pairs))


def test_median_and_range_over_rounds():
    s = _speedup((30, 10), (20, 10), (25, 10))  # 3.0, 2.0, 2.5
    assert s.ratios == [3.0, 2.0, 2.5]
    assert (s.median, s.low, s.high, s.n) == (2.5, 2.0, 3.0, 3)
    assert s.spec_tokens_per_s == 25 and s.base_tokens_per_s == 10
    assert s.measurable and s.verdict == "faster"
    assert s.describe() == "2.50× (range 2.00–3.00 over 3 rounds): faster"
    even = _speedup((12, 10), (14, 10), (13, 10), (16, 10))
    assert even.median == pytest.approx(1.35)


@pytest.mark.parametrize("rates, verdict", [
    ([(12, 10), (8, 10), (11, 10)], NO_DIFFERENCE),  # straddles 1x
    ([(11, 10), (16, 10), (12, 10)], NO_DIFFERENCE),  # all above 1x, range 0.5 > gain 0.2
    ([(8, 10), (7, 10), (8.5, 10)], "slower"),  # range 0.15 < loss 0.2
    ([(15, 10), (14, 10), (16, 10)], "faster"),
])
def test_verdict_needs_rounds_that_agree(rates, verdict):
    assert _speedup(*rates).verdict == verdict


def test_one_sample_has_no_verdict():
    s = _speedup((20, 10))
    assert not s.repeated and not s.measurable and s.verdict == "one sample"
    assert "one sample" in s.describe()
    assert _speedup((20, 0)).median is None


class _FakeClock:
    """Decoders whose wall times come from a script (a fake clock): the real tiny decode
    runs, then its summary's wall time and tokens/s are replaced by the next scripted one."""

    def __init__(self, spec_s: list[float], base_s: list[float]):
        self.spec_s, self.base_s = list(spec_s), list(base_s)
        self.calls: list[str] = []

    def _timed(self, decode, times, name):
        def run(pair, prompt, cfg, **kw):
            t = decode(pair, prompt, cfg, **kw)
            if kw.get("writer") is None and "label" not in kw:  # warm-up
                return t
            self.calls.append(name)
            wall = times.pop(0)
            n = t.summary.n_emitted
            return dataclasses.replace(t, summary=dataclasses.replace(
                t.summary, wall_s=wall, tokens_per_s=n / wall))
        return run

    def decoders(self):
        return (self._timed(speculative_decode, self.spec_s, "spec"),
                self._timed(target_only_decode, self.base_s, "base"))


def test_rounds_that_disagree_withhold_the_verdict(pair):
    # the speculative run's 12 tokens take 0.5 s, 2 s, 0.9 s; the target's always 1 s:
    # speed-ups 2.0, 0.5, 1.11 -- the range straddles 1x
    clock = _FakeClock([0.5, 2.0, 0.9], [1.0, 1.0, 1.0])
    seen = []
    m = measure_speedup(pair, PROMPT, CFG, rounds=3, decoders=clock.decoders(),
                        on_progress=lambda what, f: seen.append((what, f)))
    assert clock.calls == ["spec", "base", "base", "spec", "spec", "base"]  # order swapped
    assert m.speedup.ratios == pytest.approx([2.0, 0.5, 1 / 0.9], rel=1e-3)
    assert m.speedup.verdict == NO_DIFFERENCE and not m.speedup.measurable
    assert seen[0][0] == "warming up both paths" and seen[-1][0].startswith("round 3 of 3")
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    # the kept pair is the median round's (1.11x), linked, listing every round's tokens/s
    assert m.spec.summary.tokens_per_s / m.base.summary.tokens_per_s == pytest.approx(1 / 0.9, 1e-3)
    assert m.base.run.baseline_of == m.spec.run.run_id
    assert m.spec.summary.round_tokens_per_s == pytest.approx([24, 6, 12 / 0.9], rel=1e-3)
    # what a saved file carries gives the same speed-up back
    back = read_traces(io.StringIO(traces_to_jsonl([m.spec, m.base])))
    again = speedup_of(back[0], F.baseline_for(back[0], back))
    assert again.ratios == pytest.approx(m.speedup.ratios) and again.verdict == NO_DIFFERENCE


def test_rounds_that_agree_give_a_verdict_and_a_short_baseline_says_so(pair):
    clock = _FakeClock([0.5, 0.52, 0.48], [1.0, 1.0, 1.0])  # 6 of 12 tokens: 4x
    m = measure_speedup(pair, PROMPT, CFG, rounds=3, base_tokens=6, warmup=False,
                        decoders=clock.decoders())
    assert m.speedup.verdict == "faster" and m.speedup.median == pytest.approx(4.0, rel=1e-3)
    assert m.base.summary.n_emitted == 6 and m.base_tokens == 6 and m.shorter_baseline


def test_a_stopped_measurement_has_no_speedup(pair):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3  # stops during round 1
    m = measure_speedup(pair, PROMPT, CFG, rounds=2, warmup=False, should_stop=stop)
    assert m.speedup is None and m.base is None and m.spec is not None


def test_rounds_must_be_positive(pair):
    with pytest.raises(ValueError, match="rounds"):
        measure_speedup(pair, PROMPT, CFG, rounds=0)


def test_each_run_paired_with_its_own_baseline(pair):
    """A chain run and a tree run of the same prompt and settings, each with its own
    baseline, in one file: each is compared with its own (the last target-only run of the
    prompt is the tree's, which the chain run used to get)."""
    chain = speculative_decode(pair, PROMPT, CFG)
    chain_base = target_only_decode(pair, PROMPT, CFG, baseline_of=chain.run.run_id)
    tree = speculative_decode(pair, PROMPT, dataclasses.replace(CFG, tree="2,1"))
    tree_base = target_only_decode(pair, PROMPT, CFG, baseline_of=tree.run.run_id)
    traces = read_traces(io.StringIO(traces_to_jsonl([chain, chain_base, tree, tree_base])))
    got = {t.run.run_id: F.baseline_for(t, traces) for t in traces}
    assert got[chain.run.run_id].run.run_id == chain_base.run.run_id
    assert got[tree.run.run_id].run.run_id == tree_base.run.run_id
    assert got[chain_base.run.run_id] is None
    # an older file (no links): paired only when one target-only run of the set-up is there
    old = [dataclasses.replace(t, run=dataclasses.replace(t.run, baseline_of=""))
           for t in traces]
    assert F.baseline_for(old[0], old) is None and F.baseline_for(old[2], old) is None
    one = [old[0], old[1], old[2]]
    assert F.baseline_for(old[0], one) is old[1] and F.baseline_for(old[2], one) is old[1]


def test_cli_baseline_measures_over_rounds(tmp_path, capsys):
    """`specviz run --baseline --rounds 2`: the file holds the median round's pair, linked,
    each listing both rounds' tokens/s; the summary prints the median, range and verdict."""
    from specviz.cli import main
    out = tmp_path / "t.jsonl"
    rc = main(["run", "--target", "embedded:tiny-random-target", "--no-chat", "--prompt",
               PROMPT, "--max-new-tokens", "8", "--baseline", "--rounds", "2", "--out",
               str(out)])
    assert rc == 0
    spec, base = read_traces(out)
    assert (spec.run.mode, base.run.mode) == ("speculative", "target-only")
    assert base.run.baseline_of == spec.run.run_id
    assert len(spec.summary.round_tokens_per_s) == 2 == len(base.summary.round_tokens_per_s)
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "over 2 rounds" in printed and "median tok/s" in printed
    assert main(["run", "--target", "embedded:tiny-random-target", "--prompt", "hi",
                 "--baseline", "--rounds", "0", "--out", str(tmp_path / "u.jsonl")]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
