"""Traces for the app's tests: one made by hand (exact expectations) and real runs of the
tiny random models (made once per test session)."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

from specviz.traces.records import RunRecord, StepRecord, Trace, summarize


def _step(i, drafted, accepted, emitted, kinds, *, u=None, q=(0.5, 0.5, 0.5),
          p=(0.6, 0.3, 0.1), t_end=0.0) -> StepRecord:
    g = len(drafted)
    text = [chr(ord("a") + t) for t in drafted]
    return StepRecord(
        step=i, gamma=g, drafted_ids=list(drafted), drafted_text=text, q=list(q[:g]),
        p=list(p[:g]), accept_prob=[min(1.0, a / b) for a, b in zip(p[:g], q[:g])],
        u=u, accepted=list(accepted), emitted_ids=list(emitted),
        emitted_text=[chr(ord("a") + t) if t < 26 else "<b>" for t in emitted],
        emitted_kinds=list(kinds),
        p_top_ids=[[t, 9] for t in drafted], p_top_texts=[[x, "j"] for x in text],
        p_top_probs=[[pp, 0.2] for pp in p[:g]],
        q_top_ids=[[t, 8] for t in drafted], q_top_texts=[[x, "i"] for x in text],
        q_top_probs=[[qq, 0.3] for qq in q[:g]],
        beta=[0.7] * g, draft_ms=3.0, verify_ms=10.0, accept_ms=1.0, total_ms=14.0,
        t_end_s=t_end)


def handmade_trace() -> Trace:
    """Three steps of gamma 3: 2 accepted + correction; 3 accepted + bonus; 0 + correction.

    Token 30 (emitted as a correction) has the text "<b>" to test HTML escaping.
    """
    run = RunRecord(run_id="hand", mode="speculative", created="2026-01-01T00:00:00+00:00",
                    specviz_version="test", target={"source": "embedded:tiny-random-target"},
                    draft={"source": "embedded:tiny-random-draft"}, drafter="model",
                    config={"gamma": 3, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                            "max_new_tokens": 9, "chat": False},
                    prompt_text="hi", prompt_token_ids=[7, 8], hardware={"device": "cpu"},
                    label="hand")
    steps = (
        _step(0, [1, 2, 3], [True, True, False], [1, 2, 30], ["accepted", "accepted",
                                                              "resampled"],
              u=[0.1, 0.2, 0.9], t_end=0.014),
        _step(1, [4, 5, 6], [True, True, True], [4, 5, 6, 7], ["accepted"] * 3 + ["bonus"],
              u=[0.3, 0.4, 0.05], t_end=0.028),
        _step(2, [8, 9, 10], [False, False, False], [11], ["resampled"],
              u=[0.95, None, None], t_end=0.042),
    )
    summary = summarize(run, steps, wall_s=0.042, output_text="", stop_reason="max_new_tokens")
    return Trace(run, steps, summary)


@lru_cache(maxsize=None)
def tiny_runs() -> dict[str, Trace]:
    """Real runs of the tiny random pair: sampled and greedy, each with its baseline."""
    from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
    pair = load_pair("embedded:tiny-random-target")
    sampled = DecodeConfig(drafter="model", gamma=4, temperature=1.0, max_new_tokens=24,
                           chat=False, seed=3)
    greedy = DecodeConfig(drafter="prompt-lookup", gamma=4, max_new_tokens=24, chat=False)
    prompt = "abc <b> abc <b> abc"
    return {
        "sampled": speculative_decode(pair, prompt, sampled, label="sampled"),
        "sampled-base": target_only_decode(pair, prompt, sampled, label="sampled-base"),
        "greedy": speculative_decode(pair, prompt, greedy, label="greedy"),
        "greedy-base": target_only_decode(pair, prompt, greedy, label="greedy-base"),
    }


@contextmanager
def failing_forward(model, on_call: int, message: str = "simulated device failure"):
    """Within the block, the model's forward pass number ``on_call`` raises RuntimeError,
    counting the passes of the steps (the prompt's prefill pass before them is number 0)."""
    calls = {"n": -1}

    def boom(module, args, kwargs):
        calls["n"] += 1
        if calls["n"] == on_call:
            raise RuntimeError(message)
    handle = model.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
