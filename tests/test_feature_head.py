"""The feature-level draft head (specviz.models.feature_head) and its drafter, on the tiny random
target: the static head equals the training pass, drafts equal a recompute from scratch,
greedy output is the target's own, and sampled output follows p (chi-square, with a wrong
verifier as the negative control), with the full vocabulary and a reduced one."""

import dataclasses

import pytest
import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.core.algorithm import Decoder
from specviz.decoding import _eager_parts, _prepare
from specviz.engines.phases import HostCopier
from specviz.models.feature_head import (
    FeatureHead,
    HeadConfig,
    StaticHead,
    load_head,
    rotary_tables,
    save_head,
)
from tests.test_verify import chi_square_pvalue

PROMPT = "the cat sat on the mat and the cat sat"


@pytest.fixture(scope="module")
def pair():
    return load_pair("embedded:tiny-random-target", device="cpu")


@pytest.fixture(scope="module")
def cuda_pair():
    return load_pair("embedded:tiny-random-target", device="cuda")


def _reduced(pair, n: int = 40):
    """The pair with a head over the n tokens of lowest id only (q is zero elsewhere)."""
    full = pair.head
    cfg = dataclasses.replace(full.cfg, vocab_ids=tuple(range(n)))
    head = FeatureHead(cfg)
    head.load_state_dict(full.state_dict())
    return dataclasses.replace(pair, head=head.eval())


def _target_features(pair, ids):
    with torch.inference_mode():
        out = pair.target(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[-1][0]  # (T, H), after the final norm


def test_static_head_rows_equal_the_training_pass(pair):
    head = pair.head
    ids = list(range(5, 17))
    feats = _target_features(pair, ids)[:-1]  # rows 0..T-2
    nxt = torch.tensor(ids[1:])
    cos, sin = rotary_tables(pair.target, len(nxt))
    with torch.inference_mode():
        full = head(feats[None], pair.target.model.embed_tokens.weight[nxt][None], cos, sin)[0]
        static = StaticHead(head, pair.target, max_len=64)
        a = static.rows(feats[:6], nxt[:6], torch.arange(6))
        b = static.rows(feats[6:8], nxt[6:8], torch.arange(6, 8))
        c = static.rows(feats[8:], nxt[8:], torch.arange(8, len(nxt)))
    torch.testing.assert_close(torch.cat([a, b, c]), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("engine", ["eager", "static"])
@pytest.mark.parametrize("policy", ["fixed", "heuristic", "confidence"])
@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_greedy_with_the_head_is_the_targets_own_output(pair, engine, policy, gamma):
    base = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False))
    cfg = DecodeConfig(drafter="feature-head", gamma=gamma, policy=policy, engine=engine,
                       max_new_tokens=40, chat=False, confidence_threshold=0.3)
    trace = speculative_decode(pair, PROMPT, cfg)
    assert trace.summary.output_token_ids == base.summary.output_token_ids
    assert trace.run.drafter == "feature-head"
    assert trace.run.draft["source"] == "embedded:tiny-random-head"


def test_reduced_vocabulary_stays_lossless_and_q_is_zero_off_it(pair):
    small = _reduced(pair)
    base = target_only_decode(small, PROMPT, DecodeConfig(max_new_tokens=30, chat=False))
    trace = speculative_decode(small, PROMPT, DecodeConfig(drafter="feature-head", gamma=4,
                                                           max_new_tokens=30, chat=False))
    assert trace.summary.output_token_ids == base.summary.output_token_ids
    assert all(t < 40 for s in trace.steps for t in s.drafted_ids)
    for s in trace.steps:  # q's recorded top tokens: any with mass lies in the head's vocab
        for ids, probs in zip(s.q_top_ids, s.q_top_probs):
            assert all(t < 40 for t, q in zip(ids, probs) if q > 0)


def test_drafts_equal_a_recompute_from_the_whole_context(pair):
    """Each step's q at its first two positions, recomputed with no cache: the target's
    features over the committed context, then the head over every row, then one more row
    that reads the head's own guess and the first draft."""
    head, emb = pair.head, pair.target.model.embed_tokens.weight
    cfg = DecodeConfig(drafter="feature-head", gamma=3, temperature=1.0, seed=2,
                       max_new_tokens=30, chat=False)
    trace = speculative_decode(pair, PROMPT, cfg)
    context = list(trace.run.prompt_token_ids)
    with torch.inference_mode():
        for s in trace.steps:
            feats = _target_features(pair, context)[:-1]
            nxt = torch.tensor(context[1:] + s.drafted_ids[:1])
            cos, sin = rotary_tables(pair.target, len(nxt))
            rows = torch.cat([feats, torch.zeros_like(feats[:1])])
            h = head(rows[None], emb[nxt][None], cos, sin)[0]
            q1 = torch.softmax(torch.nn.functional.linear(h[-2], pair.target.lm_head.weight), -1)
            assert abs(float(q1[s.drafted_ids[0]]) - s.q[0]) < 1e-4, s.step
            if s.gamma > 1:  # row P-1 reads h_{P-2} in place of the target's feature
                rows[-1] = h[-2]
                h2 = head(rows[None], emb[nxt][None], cos, sin)[0][-1]
                q2 = torch.softmax(torch.nn.functional.linear(h2, pair.target.lm_head.weight),
                                   -1)
                assert abs(float(q2[s.drafted_ids[1]]) - s.q[1]) < 1e-4, s.step
            context += s.emitted_ids


def _first_tokens(pair, rule: str, n: int) -> torch.Tensor:
    """The first emitted token of n seeded one-step runs (τ = 1, γ = 3)."""
    cfg = DecodeConfig(drafter="feature-head", gamma=3, temperature=1.0, chat=False,
                       max_new_tokens=8, verifier=rule)
    ids, _ = _prepare(pair, "the cat sat on the mat", cfg)
    target, drafter, state, phases, _ = _eager_parts(pair, cfg, "feature-head", len(ids) + 8)
    copier = HostCopier(pair.device)
    dec = Decoder(target, drafter, state, phases, cfg.sampling, rule, torch.Generator(),
                  copier.start, copier.finish, detail=False)
    counts = torch.zeros(pair.target.config.vocab_size)
    with torch.inference_mode():
        for seed in range(n):
            dec.generator.manual_seed(seed)
            dec.start(ids)  # every cache is rewritten from position 0
            counts[dec.finish(dec.launch(3, None), set()).new_ids[0]] += 1
    return counts


def _p_first(pair) -> torch.Tensor:
    ids, _ = _prepare(pair, "the cat sat on the mat", DecodeConfig(chat=False))
    with torch.inference_mode():
        return torch.softmax(pair.target(input_ids=torch.tensor([ids])).logits[0, -1], -1)


@pytest.mark.parametrize("reduced", [False, True])
def test_sampled_output_follows_p_and_a_wrong_verifier_is_caught(pair, reduced):
    pair = _reduced(pair) if reduced else pair
    p = _p_first(pair)
    keep = p > 0.01  # tokens below 1 % pooled into one bin

    def binned(x):
        return torch.cat([x[keep], x[~keep].sum()[None]])

    exact = _first_tokens(pair, "exact", 2000)
    wrong = _first_tokens(pair, "correction-from-p", 2000)
    assert chi_square_pvalue(binned(exact), binned(p)) > 1e-3
    assert chi_square_pvalue(binned(wrong), binned(p)) < 1e-6


def test_save_and_load_round_trip(pair, tmp_path):
    head = _reduced(pair, 50).head
    folder = save_head(head, tmp_path / "head")
    back = load_head(folder, torch.device("cpu"), torch.float32)
    assert back.cfg.vocab_ids == tuple(range(50))
    for (k, a), (_, b) in zip(head.state_dict().items(), back.state_dict().items()):
        torch.testing.assert_close(a.to(torch.bfloat16).float(), b, msg=k)
    with pytest.raises(ValueError, match="does not hold a feature head"):
        load_head(tmp_path, torch.device("cpu"), torch.float32)


def test_a_pair_without_a_head_says_so():
    pair = load_pair("embedded:tiny-random-target", head=None)
    with pytest.raises(ValueError, match="needs a feature head"):
        speculative_decode(pair, PROMPT, DecodeConfig(drafter="feature-head", chat=False))


def test_head_config_follows_the_target(pair):
    cfg = HeadConfig.for_target(pair.target)
    c = pair.target.config
    assert (cfg.hidden, cfg.n_heads, cfg.n_kv, cfg.vocab_size) == (
        c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.vocab_size)


def test_unrolled_training_pass_is_the_drafting_path(pair):
    """Step k of the unrolled pass at row i equals drafting k+1 tokens after the target-fed
    rows 0..i-k: the static head fed those rows, then its own guesses."""
    head, emb = pair.head, pair.target.model.embed_tokens.weight
    ids = list(range(5, 19))
    feats = _target_features(pair, ids)[:-1]
    nxt = torch.tensor(ids[1:])
    T = len(nxt)
    cos, sin = rotary_tables(pair.target, T)
    with torch.inference_mode():
        steps = head.unrolled(feats[None], emb[nxt][None], cos, sin, depth=3)
        for i in (4, 9, T - 1):
            for k in (1, 2):
                static = StaticHead(head, pair.target, max_len=64)
                h = static.rows(feats[:i - k + 1], nxt[:i - k + 1], torch.arange(i - k + 1))[-1]
                for r in range(i - k + 1, i + 1):  # the chain: its own guess, true tokens
                    h = static.rows(h[None], nxt[r:r + 1], torch.tensor([r]))[0]
                torch.testing.assert_close(h, steps[k][0, i], atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("policy", ["fixed", "heuristic", "confidence"])
def test_head_on_graphs_is_lossless(cuda_pair, policy):
    base = target_only_decode(cuda_pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False))
    cfg = DecodeConfig(drafter="feature-head", gamma=3, policy=policy, engine="graphs",
                       max_new_tokens=40, chat=False, confidence_threshold=0.3)
    trace = speculative_decode(cuda_pair, PROMPT, cfg)
    assert trace.summary.output_token_ids == base.summary.output_token_ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_head_on_graphs_equals_eager_and_syncs_once_per_step(cuda_pair):
    pair = cuda_pair
    import warnings

    from specviz.engines.phases import HostCopier
    cfg = DecodeConfig(drafter="feature-head", gamma=4, max_new_tokens=40, chat=False)
    eager = speculative_decode(pair, PROMPT, dataclasses.replace(cfg, engine="eager"))
    graphs = speculative_decode(pair, PROMPT, dataclasses.replace(cfg, engine="graphs"))
    assert [s.drafted_ids for s in eager.steps] == [s.drafted_ids for s in graphs.steps]
    assert eager.summary.output_token_ids == graphs.summary.output_token_ids
    waits = []
    finish = HostCopier.finish
    HostCopier.finish = lambda self, st: waits.append(1) or finish(self, st)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trace = speculative_decode(pair, PROMPT, dataclasses.replace(cfg, engine="graphs"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
        HostCopier.finish = finish
    hidden = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(waits) == trace.summary.n_steps and len(hidden) <= 2
