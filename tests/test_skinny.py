"""The few-row float32 kernel (specviz.engines.skinny): where the engine uses it, that it
computes float32's product on any shape, and that decoding decides the same with it."""

import pytest
import torch
import torch.nn.functional as F

from specviz import DecodeConfig, speculative_decode, target_only_decode
from specviz.engines import skinny
from specviz.engines.static import _add_linear, _linear, _swiglu_add_linear
from tests._pairs import embedded_pair

CUDA = pytest.mark.skipif(not (torch.cuda.is_available() and skinny.triton is not None),
                          reason="needs a CUDA device and Triton")


@pytest.mark.parametrize("m, n, k, used", [
    (1, 49152, 576, False),  # one row: the matrix-vector product
    (2, 49152, 576, True), (4, 16384, 576, True),  # an output layer, from 2 rows
    (4, 960, 576, False), (8, 3072, 576, False), (9, 3072, 576, True),
    (15, 960, 576, False), (16, 960, 576, True), (65, 576, 576, True), (128, 576, 576, True),
    (129, 576, 576, False),  # many rows: cuBLAS
    (65, 576, 1536, False), (16, 576, 1152, False),  # long sums: cuBLAS or the batch GEMV
])
def test_the_kernel_runs_where_it_was_measured_faster(m, n, k, used):
    assert skinny.wins(m, n, k) is used


@pytest.mark.parametrize("m, used", [(2, False), (15, False), (16, True), (65, True),
                                     (128, True), (129, False)])
def test_the_swiglu_down_projection_runs_on_the_kernel_from_16_rows(m, used):
    assert skinny.wins(m, 576, 1536, swiglu=True) is used


def test_without_cuda_the_swiglu_stays_torchs():
    """On the CPU the layer's SwiGLU and down projection are torch's, as before the kernel
    took them in: the same numbers bit for bit."""
    gu, wd, r = torch.randn(17, 2 * 48), torch.randn(64, 48), torch.randn(17, 64)
    gate, up = gu.chunk(2, dim=-1)
    assert torch.equal(_swiglu_add_linear(r, gu, wd), _add_linear(r, F.silu(gate) * up, wd))


def test_without_cuda_the_engine_keeps_torchs_kernels():
    h, w, b, x = torch.randn(17, 64), torch.randn(960, 64), torch.randn(960), torch.randn(17, 960)
    assert not skinny.usable(h, w)
    assert torch.equal(_linear(h, w, b), F.linear(h, w, b))
    assert torch.allclose(_add_linear(x, h, w), x + h @ w.T, atol=1e-5)


def test_a_kernel_that_cannot_run_here_switches_itself_off(monkeypatch):
    """If Triton cannot build or launch the kernel (an old driver, no compiler), the product
    comes from torch instead, with a warning, and the engine stops using the kernel."""
    class Broken:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise RuntimeError("PTX compile failed\nmore detail")
            return launch

    monkeypatch.setattr(skinny, "_rows_kernel", Broken(), raising=False)
    monkeypatch.setattr(skinny, "_enabled", True)
    h, w, b, x = torch.randn(17, 64), torch.randn(96, 64), torch.randn(96), torch.randn(17, 96)
    with pytest.warns(RuntimeWarning, match="few-row kernel is off: PTX compile failed"):
        y = skinny.linear(h, w, b, residual=x)
    assert torch.allclose(y, x + h @ w.T + b, atol=1e-5)
    assert not skinny.enabled()
    # with the SwiGLU inside, torch's kernels compute the same
    gu = torch.randn(17, 128)
    with pytest.warns(RuntimeWarning):
        y = skinny.linear(gu, w, residual=x, swiglu=True)
    gate, up = gu.chunk(2, dim=-1)
    assert torch.allclose(y, x + (F.silu(gate) * up) @ w.T, atol=1e-5)


@CUDA
@pytest.mark.parametrize("m", [2, 3, 9, 16, 17, 33, 65, 128])
@pytest.mark.parametrize("n, k", [(960, 576), (576, 576), (3072, 576), (16384, 576),
                                  (100, 70), (33, 130)])
def test_the_kernel_is_float32s_product_on_any_shape(m, n, k):
    """Against a float64 product, fresh random inputs, with and without bias and residual,
    for every tile the engine uses: relative error at float32's rounding, every element
    written (outputs start as whatever the allocator holds)."""
    g = torch.Generator(device="cuda").manual_seed(m * 1000 + n + k)
    h = torch.randn(m, k, device="cuda", generator=g)
    w = torch.randn(n, k, device="cuda", generator=g) / k ** 0.5
    b = torch.randn(n, device="cuda", generator=g)
    x = torch.randn(m, n, device="cuda", generator=g)
    for cfg in {skinny.config_for(m, n), skinny.Config(), *skinny._OUTPUT.values()}:
        for bias, res in ((None, None), (b, None), (None, x), (b, x)):
            torch.empty(m * n * 4, device="cuda").fill_(float("nan"))  # poison the allocator
            got = skinny.linear(h, w, bias, res, config=cfg).double()
            ref = h.double() @ w.double().T
            ref = ref + (0 if bias is None else bias.double()) + (0 if res is None else
                                                                   res.double())
            err = float((got - ref).norm() / ref.norm())
            assert torch.isfinite(got).all() and err < 1e-6, (cfg, err)


@CUDA
@pytest.mark.parametrize("m", [2, 16, 17, 33, 65, 128])
@pytest.mark.parametrize("n, k", [(576, 1536), (960, 576), (100, 70), (33, 130)])
def test_the_kernel_with_the_swiglu_inside_is_float32s(m, n, k):
    """x + (silu(gate) * up) @ w.T (+ bias), its sum in 1-6 parts, against float64, fresh
    random inputs, every element written."""
    gen = torch.Generator(device="cuda").manual_seed(m * 1000 + n + k)
    w = torch.randn(n, k, device="cuda", generator=gen) / k ** 0.5
    gu = torch.randn(m, 2 * k, device="cuda", generator=gen)
    x = torch.randn(m, n, device="cuda", generator=gen)
    b = torch.randn(n, device="cuda", generator=gen)
    gate, up = gu.double().chunk(2, dim=-1)
    ref = x.double() + (F.silu(gate) * up) @ w.double().T
    for parts in (1, 2, 3, 4, 6):
        for bias in (None, b):
            torch.empty(parts * m * n * 4, device="cuda").fill_(float("nan"))  # poison
            got = skinny.linear(gu, w, bias, x, swiglu=True,
                                config=skinny.Config(split=parts)).double()
            want = ref + (0 if bias is None else bias.double())
            err = float((got - want).norm() / want.norm())
            assert torch.isfinite(got).all() and err < 1e-6, (parts, bias is None, err)


def test_inside_torch_compile_the_kernel_is_one_opaque_operator(monkeypatch):
    """Compiled code (the fused layers) calls the kernel as the custom operator
    specviz::few_rows, in one graph with what lies around it; the result is the eager one.
    (The launch is replaced by torch's product here: no GPU needed.)"""
    calls = []

    def launch(h, w, b, residual, config, swiglu):
        calls.append(h.shape[0])
        return skinny._torch_product(h, w, b, residual, swiglu)

    monkeypatch.setattr(skinny, "_launch", launch)
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(20, 64, generator=g), torch.randn(20, 16, generator=g)
    w, b = torch.randn(16, 32, generator=g), torch.randn(16, generator=g)

    def f(x):
        return skinny.linear(torch.tanh(x), w, b, r, swiglu=True) * 2

    graphs = []

    def backend(gm, inputs):  # the graph torch.compile hands on, then run as it is
        graphs.append(gm.code)
        return gm.forward

    got = torch.compile(f, backend=backend, fullgraph=True, dynamic=False)(x)
    assert len(graphs) == 1 and "specviz.few_rows" in graphs[0] and "tanh" in graphs[0]
    assert calls == [20]
    assert torch.allclose(got, f(x), rtol=1e-5, atol=1e-5) and calls == [20, 20]


@CUDA
def test_graphed_trees_decide_the_same_with_and_without_the_kernel():
    """The embedded pair on CUDA graphs, feature-head trees and the chain: the same drafts,
    verdicts and output with the kernel as with torch's kernels, and the target's own output;
    twice (the second run replays the graphs)."""
    pair = embedded_pair(device="cuda")
    prompt = "Explain in two sentences why the sky is blue."
    cfg = dict(max_new_tokens=48, chat=True, drafter="feature-head", engine="graphs")
    base = target_only_decode(pair, prompt, DecodeConfig(**cfg)).summary.output_token_ids
    try:
        for shape in ("chain", "4,2,1,1", "dynamic:64:7:8"):
            runs = []
            for on in (False, True, True):
                skinny.enable(on)
                runs.append(speculative_decode(pair, prompt, DecodeConfig(tree=shape, gamma=3,
                                                                          **cfg)))
            for r in runs[1:]:
                assert [s.drafted_ids for s in r.steps] == [s.drafted_ids for s in runs[0].steps]
                assert [s.accepted for s in r.steps] == [s.accepted for s in runs[0].steps]
                assert r.summary.output_token_ids == base, shape
    finally:
        skinny.enable(True)
