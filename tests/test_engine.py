"""The static engine (specviz.engines.static) against transformers' eager forward.

On the CPU: the static forward's logits match transformers', and static-engine traces match
eager traces step by step. Where CUDA exists, the same with CUDA graphs, plus the one-sync-
per-step check; on a GPU machine with the embedded target the check runs on it too.
"""

import shutil
import warnings

import pytest
import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines.static import (
    StaticLlama,
    Unsupported,
    check_supported,
    fuse_layers,
    stacked_layers,
)
from tests._pairs import embedded_pair

PROMPT = "the cat sat on the mat and the cat sat"
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@pytest.fixture(scope="module")
def pair():
    return load_pair("embedded:tiny-random-target", device="cpu")


def _steps(trace):
    return [(s.gamma, s.drafted_ids, s.accepted, s.emitted_ids, s.emitted_kinds)
            for s in trace.steps]


def _probs(trace):
    return [x for s in trace.steps for x in (s.p + (s.q or []))]


def assert_same_greedy(a, b, tol: float = 1e-4):
    """Identical tokens and decisions, step by step; probabilities equal within tol."""
    assert _steps(a) == _steps(b)
    assert a.summary.output_token_ids == b.summary.output_token_ids
    assert _probs(a) == pytest.approx(_probs(b), abs=tol)


def test_static_forward_matches_transformers_and_its_cache_matches_a_full_pass(pair):
    model = pair.target
    engine = StaticLlama(model, stacked_layers(model), max_len=64)
    ids = torch.tensor([5, 9, 17, 3, 44, 2, 8])
    with torch.inference_mode():
        ref = model(input_ids=ids[None]).logits[0]  # (7, V)
        full = engine.forward(ids, torch.arange(7))
        # the same tokens fed in pieces: prefix, then two, then one (the cache carries on)
        engine.forward(ids[:4], torch.arange(4), logits="none")
        part = engine.forward(ids[4:6], torch.arange(4, 6))
        last = engine.forward(ids[6:], torch.arange(6, 7), logits="last")
    torch.testing.assert_close(full, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(part, ref[4:6], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(last, ref[6:], atol=1e-4, rtol=1e-4)


def test_unsupported_models_are_named(pair):
    cfg = pair.target.config
    old = cfg.model_type
    try:
        cfg.model_type = "gpt2"
        with pytest.raises(Unsupported, match="runs Llama and Qwen2 models; this one is .gpt2."):
            check_supported(pair.target)
    finally:
        cfg.model_type = old


@pytest.mark.parametrize("drafter", ["model", "prompt-lookup", "early-exit"])
@pytest.mark.parametrize("policy", ["fixed", "heuristic", "confidence"])
def test_static_engine_gives_the_eager_trace(pair, drafter, policy):
    cfg = DecodeConfig(drafter=drafter, policy=policy, gamma=3, max_new_tokens=30, chat=False,
                       early_exit_layers=2, confidence_threshold=0.3)
    eager = speculative_decode(pair, PROMPT, DecodeConfig(**{**cfg.__dict__,
                                                             "engine": "eager"}))
    static = speculative_decode(pair, PROMPT, DecodeConfig(**{**cfg.__dict__,
                                                              "engine": "static"}))
    assert static.run.hardware["engine"]["path"] == "static"
    assert eager.run.hardware["engine"]["path"] == "eager"
    assert_same_greedy(eager, static)


@pytest.fixture
def fused():
    """The static engine's layers compiled by torch.compile for the test, then switched off."""
    fuse_layers(True)
    yield
    fuse_layers(False)


@pytest.mark.skipif(CUDA is False and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU (scripts/test.sh "
                           "installs g++ where it can)")
def test_fused_layers_give_the_eager_trace(pair, fused):
    """torch.compile's fused layers (the decoding steps' passes; the prefill stays as it is)
    decide every step as the eager engine does."""
    cfg = dict(drafter="model", gamma=3, max_new_tokens=12, chat=False)
    eager = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="eager"))
    static = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="static"))
    assert_same_greedy(eager, static)


def test_static_engine_sampled_runs_are_seeded_and_follow_their_own_stream(pair):
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=30, chat=False,
                       temperature=1.0, engine="static")
    a = speculative_decode(pair, PROMPT, cfg)
    b = speculative_decode(pair, PROMPT, cfg)
    c = speculative_decode(pair, PROMPT, DecodeConfig(**{**cfg.__dict__, "seed": 1}))
    assert a.summary.output_token_ids == b.summary.output_token_ids
    assert a.summary.output_token_ids != c.summary.output_token_ids
    # each step's record is self-consistent: accepted exactly where u < min(1, p/q)
    for s in a.steps:
        n = s.n_accepted
        assert all(s.u[i] < s.accept_prob[i] for i in range(n))
        if n < s.gamma:
            assert s.u[n] >= s.accept_prob[n]


def test_auto_is_eager_on_the_cpu_and_graphs_are_refused_there(pair):
    trace = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=3, chat=False))
    if not CUDA:
        assert trace.run.hardware["engine"] == {
            "path": "eager", "cuda_graphs": False, "static_cache": False,
            "row_kernel": False, "fused": False, "why": "no CUDA device"}
        with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
            target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=3, chat=False,
                                                          engine="graphs"))
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        target_only_decode(pair, PROMPT, DecodeConfig(engine="fast", chat=False))


# ------------------------------------------------------------------ CUDA only

def _cuda_pair(target: str):
    return load_pair(target, device="cuda")


@pytest.fixture(scope="module")
def cuda_pair():
    return _cuda_pair("embedded:tiny-random-target")


def _compare_on(pair, drafter: str, policy: str, gamma: int, n: int, prompt: str,
                chat: bool, layers: int = 2):
    cfg = dict(drafter=drafter, policy=policy, gamma=gamma, max_new_tokens=n, chat=chat,
               early_exit_layers=layers, confidence_threshold=0.3)
    eager = speculative_decode(pair, prompt, DecodeConfig(**cfg, engine="eager"))
    graphs = speculative_decode(pair, prompt, DecodeConfig(**cfg, engine="graphs"))
    assert graphs.run.hardware["engine"]["cuda_graphs"] is True
    assert_same_greedy(eager, graphs)
    return eager, graphs


@needs_cuda
@pytest.mark.parametrize("drafter", ["model", "prompt-lookup", "early-exit"])
@pytest.mark.parametrize("policy", ["fixed", "heuristic", "confidence"])
def test_graphs_give_the_eager_trace_on_cuda(cuda_pair, drafter, policy):
    _compare_on(cuda_pair, drafter, policy, 3, 30, PROMPT, False)


@needs_cuda
def test_graphs_target_only_and_sampled_runs_on_cuda(cuda_pair):
    cfg = dict(max_new_tokens=30, chat=False)
    eager = target_only_decode(cuda_pair, PROMPT, DecodeConfig(**cfg, engine="eager"))
    graphs = target_only_decode(cuda_pair, PROMPT, DecodeConfig(**cfg, engine="graphs"))
    assert_same_greedy(eager, graphs)
    sampled = dict(drafter="model", gamma=3, temperature=0.8, top_k=20, **cfg)
    static = speculative_decode(cuda_pair, PROMPT, DecodeConfig(**sampled, engine="static"))
    g1 = speculative_decode(cuda_pair, PROMPT, DecodeConfig(**sampled, engine="graphs"))
    g2 = speculative_decode(cuda_pair, PROMPT, DecodeConfig(**sampled, engine="graphs"))
    # the same noise through the same kernels: graphs replay the static path exactly
    assert _steps(static) == _steps(g1) == _steps(g2)


@needs_cuda
def test_fused_graphs_give_the_eager_trace_on_cuda(cuda_pair, fused):
    _compare_on(cuda_pair, "model", "fixed", 3, 30, PROMPT, False)


@needs_cuda
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_runs_on_the_static_engine_and_graphs_on_cuda(dtype):
    """The logits check passes in the model's own dtype (same-dtype reference, a tolerance
    fit for it); graphs replay the static engine's kernels, so their greedy traces agree."""
    pair = load_pair("embedded:tiny-random-target", device="cuda", dtype=dtype)
    cfg = dict(drafter="model", gamma=3, max_new_tokens=30, chat=False)
    static = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="static"))
    graphs = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="graphs"))
    assert graphs.run.hardware["engine"]["cuda_graphs"] is True
    assert static.run.target["dtype"] == dtype
    assert static.summary.output_token_ids == graphs.summary.output_token_ids


@needs_cuda
def test_graphs_sync_the_host_once_per_step(cuda_pair, monkeypatch):
    """No hidden synchronisation (torch's sync debug mode flags .item(), .cpu(), nonzero and
    the like); the host waits once per step, for the packed trace data."""
    from specviz.engines.phases import HostCopier
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=30, chat=False,
                       engine="graphs")
    speculative_decode(cuda_pair, PROMPT, cfg)  # capture first
    waits = []
    finish = HostCopier.finish
    monkeypatch.setattr(HostCopier, "finish", lambda self, s: waits.append(1) or finish(self, s))
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trace = speculative_decode(cuda_pair, PROMPT, cfg)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    hidden = [w for w in caught if "synchroniz" in str(w.message)]
    print(f"{len(waits)} waits and {len(hidden)} other synchronising calls for "
          f"{trace.summary.n_steps} steps")
    assert len(waits) == trace.summary.n_steps
    assert len(hidden) <= 2  # the prompt's upload at the start


@needs_cuda
def test_graphs_give_the_eager_trace_on_the_embedded_pair():
    pair = embedded_pair(device="cuda")
    prompt = "Write a Python function that checks whether a string is a palindrome."
    for drafter in ("model", "prompt-lookup", "early-exit"):
        eager, graphs = _compare_on(pair, drafter, "fixed", 4, 64, prompt, True, layers=8)
        print(f"{drafter}: {len(graphs.steps)} identical steps, "
              f"{graphs.summary.n_emitted} tokens, alpha_hat {graphs.summary.alpha_hat:.3f}")
