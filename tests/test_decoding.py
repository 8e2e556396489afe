"""The decoding loop on tiny random models: lossless greedy, caches, stops, failures."""

import copy
import dataclasses
import subprocess
import sys

import pytest
import torch

from specviz import (
    DecodeConfig,
    DecodeError,
    load_pair,
    read_traces,
    speculative_decode,
    target_only_decode,
)
from specviz.core.drafters import lookup
from specviz.engines.eager import truncated_model
from specviz.traces.records import TraceWriter
from tests._traces import failing_forward

PROMPT = "the cat sat on the mat and the cat sat"


@pytest.fixture(scope="module")
def pair():
    return load_pair("embedded:tiny-random-target")


@pytest.fixture(scope="module")
def baseline(pair):
    cfg = DecodeConfig(max_new_tokens=40, chat=False)
    return target_only_decode(pair, PROMPT, cfg).summary.output_token_ids


@pytest.mark.parametrize("drafter", ["model", "prompt-lookup", "early-exit"])
@pytest.mark.parametrize("policy", ["fixed", "heuristic", "confidence"])
@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_greedy_speculative_equals_target_greedy(pair, baseline, drafter, policy, gamma):
    cfg = DecodeConfig(drafter=drafter, policy=policy, gamma=gamma, max_new_tokens=40,
                       chat=False, early_exit_layers=2, confidence_threshold=0.3)
    trace = speculative_decode(pair, PROMPT, cfg)
    assert trace.summary.output_token_ids == baseline
    assert len(baseline) == 40
    assert trace.summary.n_emitted == 40


def test_runs_mix_acceptances_and_rejections(pair):
    """Guards the tests above against a degenerate pair (all accepted or none)."""
    cfg = DecodeConfig(drafter="early-exit", early_exit_layers=2, gamma=4, max_new_tokens=40,
                       chat=False)
    trace = speculative_decode(pair, PROMPT, cfg)
    kinds = {k for s in trace.steps for k in s.emitted_kinds}
    assert {"accepted", "resampled"} <= kinds
    assert 0 < trace.summary.alpha_hat < 1


def _record_forward(model):
    """Hook that keeps (input length, logits of the last positions) of every forward call."""
    calls = []

    def hook(module, args, kwargs, out):
        calls.append((kwargs["input_ids"].shape[1], out.logits[0].detach().clone()))
    return calls, model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cached_logits_equal_a_full_recompute_after_rejections(pair, temperature):
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=30, chat=False,
                       temperature=temperature, seed=7)
    calls, handle = _record_forward(pair.target)
    try:
        trace = speculative_decode(pair, PROMPT, cfg)
    finally:
        handle.remove()
    assert any(not all(s.accepted) for s in trace.steps), "need rejections to test cropping"
    context = list(trace.run.prompt_token_ids)
    # one prefill pass (every prompt token but the last), then one pass per step
    assert len(calls) == len(trace.steps) + 1 and calls[0][0] == len(context) - 1
    for step, (_, logits) in zip(trace.steps, calls[1:]):
        full = torch.tensor([context + step.drafted_ids])
        with torch.no_grad():
            ref = pair.target(input_ids=full).logits[0, -(step.gamma + 1):]
        assert torch.allclose(logits, ref, atol=1e-4), f"step {step.step}"
        context += step.emitted_ids


def test_draft_cache_gives_the_same_q_as_a_full_recompute(pair):
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=30, chat=False,
                       temperature=1.0, seed=3)
    trace = speculative_decode(pair, PROMPT, cfg)
    context = list(trace.run.prompt_token_ids)
    for step in trace.steps:
        for i, tok in enumerate(step.drafted_ids):
            with torch.no_grad():
                logits = pair.draft(input_ids=torch.tensor([context + step.drafted_ids[:i]]))
            q = torch.softmax(logits.logits[0, -1], -1)[tok]
            assert abs(float(q) - step.q[i]) < 1e-4
        context += step.emitted_ids


def test_same_seed_same_trace_and_other_seed_differs(pair):
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=30, chat=False,
                       temperature=1.0, top_p=0.9, seed=11)
    a = speculative_decode(pair, PROMPT, cfg)
    b = speculative_decode(pair, PROMPT, cfg)
    c = speculative_decode(pair, PROMPT, DecodeConfig(**{**cfg.__dict__, "seed": 12}))
    assert a.summary.output_token_ids == b.summary.output_token_ids
    assert [s.u for s in a.steps] == [s.u for s in b.steps]
    assert a.summary.output_token_ids != c.summary.output_token_ids


def test_step_records_are_consistent(pair):
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=30, chat=False,
                       temperature=0.8, seed=5, top_alternatives=3)
    trace = speculative_decode(pair, PROMPT, cfg)
    for s in trace.steps:
        n = s.n_accepted
        assert s.emitted_ids[:n] == s.drafted_ids[:n]
        assert s.emitted_kinds[-1] == ("bonus" if n == s.gamma else "resampled")
        for i in range(s.gamma):
            assert s.accept_prob[i] == pytest.approx(min(1.0, s.p[i] / s.q[i]), rel=1e-5)
            if i <= n and i < s.gamma:
                assert s.accepted[i] == (s.u[i] < s.accept_prob[i])
            else:
                assert s.u[i] is None
            assert len(s.p_top_ids[i]) == 3 and s.p_top_probs[i] == sorted(
                s.p_top_probs[i], reverse=True)
        assert s.total_ms >= s.draft_ms and s.total_ms >= s.verify_ms
    summ = trace.summary
    assert summ.n_emitted == sum(len(s.emitted_ids) for s in trace.steps)
    assert summ.target_forward_passes == summ.n_steps == len(trace.steps)
    evaluated = sum(min(s.gamma, s.n_accepted + 1) for s in trace.steps)
    assert summ.alpha_hat == pytest.approx(summ.n_accepted / evaluated)


def test_stop_between_steps_keeps_the_partial_trace(pair, tmp_path):
    seen = []
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        trace = speculative_decode(
            pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False),
            on_step=seen.append, should_stop=lambda: len(seen) >= 3, writer=w)
    assert len(trace.steps) == 3 and trace.summary.stop_reason == "stopped"
    loaded = read_traces(path)
    assert len(loaded) == 1 and loaded[0] == trace


def test_failure_mid_run_raises_with_the_finished_steps(pair, tmp_path):
    path = tmp_path / "t.jsonl"
    with failing_forward(pair.target, on_call=4), TraceWriter(path) as w, \
            pytest.raises(DecodeError) as err:
        speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False),
                           writer=w)
    assert "simulated device failure" in str(err.value)
    assert len(err.value.partial.steps) == 3
    loaded = read_traces(path)[0]
    assert loaded.summary.stop_reason == "error" and len(loaded.steps) == 3


def test_trace_written_line_by_line_equals_the_returned_trace(pair, tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        a = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False,
                                                          temperature=1.0), writer=w)
        b = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False),
                               writer=w)
    assert read_traces(path) == [a, b]
    assert b.run.mode == "target-only" and all(s.gamma == 0 for s in b.steps)
    assert all(s.emitted_kinds == ["bonus"] for s in b.steps)


def test_untraced_run_gives_the_same_output_and_totals(pair):
    cfg = DecodeConfig(drafter="early-exit", early_exit_layers=2, max_new_tokens=30,
                       chat=False)
    a = speculative_decode(pair, PROMPT, cfg)
    b = speculative_decode(pair, PROMPT, DecodeConfig(**{**cfg.__dict__,
                                                         "trace_detail": False}))
    assert b.steps == ()
    for k in ("output_token_ids", "n_steps", "n_drafted", "n_accepted", "alpha_hat"):
        assert getattr(a.summary, k) == getattr(b.summary, k)


def test_bad_settings_give_clear_errors(pair):
    with pytest.raises(ValueError, match="gamma must be between 1 and 32"):
        speculative_decode(pair, PROMPT, DecodeConfig(gamma=33))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        speculative_decode(pair, PROMPT, DecodeConfig(temperature=-0.1))
    with pytest.raises(ValueError, match="context holds 512"):
        speculative_decode(pair, "ab" * 300, DecodeConfig(chat=False))
    with pytest.raises(ValueError, match="early exit needs 1 to 3 layers"):
        speculative_decode(pair, PROMPT, DecodeConfig(drafter="early-exit",
                                                      early_exit_layers=4, chat=False))


def test_run_stops_at_the_context_limit(pair):
    prompt = "ab" * 250  # 500 of 512 positions
    trace = speculative_decode(pair, prompt, DecodeConfig(max_new_tokens=64, chat=False))
    assert trace.summary.stop_reason == "context"
    assert len(trace.run.prompt_token_ids) + trace.summary.n_emitted == 512


def test_early_exit_shares_the_target_weights(pair):
    view = truncated_model(pair.target, 2)
    assert len(view.model.layers) == 2 and len(pair.target.model.layers) == 4
    assert view.model.layers[0] is pair.target.model.layers[0]
    assert view.lm_head is pair.target.lm_head


def test_prompt_lookup_copies_what_followed_the_latest_match():
    assert lookup([1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3], 2) == [7, 1]
    assert lookup([5, 6, 7], 3) == []
    assert lookup([4, 4], 3) == []  # a lone repeated token is not a match by default
    assert lookup([4, 4], 3, min_ngram=1) == [4]


def test_importing_specviz_does_not_import_streamlit():
    code = "import sys, specviz, specviz.cli, specviz.cli.bench; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_wrong_verifier_rule_is_recorded_and_caught_by_the_output_check(pair, baseline):
    """A teaching run with the deliberately wrong rule: accepted tokens the target would not
    choose show up as a difference from target-only greedy output."""
    confident = copy.deepcopy(pair.draft)
    with torch.no_grad():
        confident.lm_head.weight.mul_(50.0)  # sharp q: the draft is often sure, and wrong
    sure = dataclasses.replace(pair, draft=confident)
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=40, chat=False)
    exact = speculative_decode(sure, PROMPT, cfg)
    assert exact.summary.output_token_ids == baseline
    wrong = speculative_decode(sure, PROMPT, dataclasses.replace(cfg, verifier="accept-high-q"))
    assert wrong.run.config["verifier"] == "accept-high-q"
    assert wrong.summary.output_token_ids != baseline
    with pytest.raises(ValueError, match="unknown verifier"):
        speculative_decode(pair, PROMPT, DecodeConfig(verifier="sloppy", chat=False))


def test_no_garbage_collection_pause_inside_a_run_and_collection_restored(pair):
    import gc
    import threading
    enabled_during = []

    def on_step(rec):
        enabled_during.append(gc.isenabled())

    try:
        assert gc.isenabled()
        speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False),
                           on_step=on_step)
        assert enabled_during and not any(enabled_during)
        assert gc.isenabled()  # on again after the run, after a failure too
        with failing_forward(pair.target, on_call=3), pytest.raises(DecodeError):
            speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False))
        assert gc.isenabled()
        # two runs at once: on again only when both have ended
        runs = [threading.Thread(target=speculative_decode,
                                 args=(pair, PROMPT, DecodeConfig(max_new_tokens=30,
                                                                  chat=False)))
                for _ in range(2)]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
        assert gc.isenabled()
        gc.disable()  # a program that turned collection off keeps it off
        speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=5, chat=False))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_runs_clock_starts_once_its_engine_is_ready(pair, monkeypatch):
    """Building an engine's workspace (once per shape in a process) is not part of a run's
    wall time: a setup made slow by two seconds leaves the run's time as it was."""
    import time

    import specviz.decoding as decoding
    build = decoding._decoder

    def slow(*args, **kwargs):
        time.sleep(2.0)
        return build(*args, **kwargs)

    monkeypatch.setattr(decoding, "_decoder", slow)
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=4, chat=False,
                                                          engine="static"))
    assert trace.summary.wall_s < 1.5
    assert trace.steps[-1].t_end_s <= trace.summary.wall_s
