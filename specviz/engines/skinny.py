"""Float32 products of a few rows with a layer's weight, as one Triton kernel on a GPU.

Why: a tree's verify pass (2-65 rows) or a head's tree rows multiply a handful of rows by
small weights (576 x 576 ... 3072 x 576) or by an output layer (16,384 or 49,152 x 576).
cuBLAS's float32 kernels for such shapes run few, large tiles, so a 65-row pass of the 135M
target cost 1.8 one-row passes on an H200. Here each program computes a small tile (``bm``
rows x ``bn`` outputs) on the tensor cores, so even a 576-wide layer spreads over many
multiprocessors; the bias and a residual add ride on the same kernel, and so does the SwiGLU
before the MLP's down projection: silu(gate) * up is made from the gate and up projections as
they are read, and that sum over 1,536 inputs is cut in four parts, each its own programs,
added in order by a second small kernel (two launches instead of four, and faster).

Exactness: each product is three TensorFloat-32 products ("tf32x3": the operands split into
a high and a low part, the low x low term dropped), which carries float32's precision: the
rows differ from cuBLAS's float32 only by rounding (relative error ~2e-7 against float64, as
cuBLAS's own), as two cuBLAS kernels for different row counts already do.

Where it runs (``wins``): what was faster on an H200 (``scripts/gpu/skinny_probe.py``, CUDA
graphs, 30 weights in turn so that they come from memory as in a pass; docs/benchmarks.md):
weights of at most 1,024 inputs, from 16 rows on (from 9 rows for 2,048 outputs or more,
from 2 for an output layer of 8,192 or more). Fewer rows stay on the batched matrix-vector product
or cuBLAS; so do wider inputs as plain products (the MLP's down projection: its 1,536-long
sums over a few dozen tiles were slower than cuBLAS at every row count measured), which take
the kernel only with the SwiGLU inside, from 16 rows. Without Triton, CUDA or
TensorFloat-32 tensor cores (compute capability 8.0 and later) or in other dtypes, callers
keep torch's kernels (``usable``). Inside torch.compile (the fused layers) the product is the
custom operator ``torch.ops.specviz.few_rows``: compiled code calls it as one opaque kernel,
and fuses what lies around it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU install: torch's kernels everywhere
    triton = None

MAX_ROWS = 128  # more rows: cuBLAS's tiles are full enough
_enabled = True


@dataclass(frozen=True)
class Config:
    """A kernel's tile: rows ``bm`` x outputs ``bn``, summed ``bk`` inputs at a time."""

    bm: int = 16
    bn: int = 32
    bk: int = 64
    warps: int = 4
    stages: int = 3
    precision: str = "tf32x3"
    split: int = 1  # the sum cut in this many parts, each its own programs, added after


# The fastest tiles measured on an H200 (scripts/gpu/skinny_probe.py): small tiles for a
# layer's weight; for an output layer, taller and wider ones as rows grow
_LAYER = Config()
_LONG = Config(split=4)  # sums over more than 1,024 inputs (the MLP's down projection)
_OUTPUT = {16: Config(16, 64, 32, 2), 32: Config(32, 32, 32, 2), 64: Config(64, 64, 32, 4),
           128: Config(64, 128, 32, 4)}
_OUTPUT_MIN = 8192  # outputs from which a weight counts as an output layer


def enable(on: bool = True) -> None:
    """Use the kernel from now on, or not (the decoder keeps graphs captured either way
    apart: ``enabled`` is part of their key)."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def available() -> bool:
    """Whether the kernel can run here (Triton, a CUDA GPU with TensorFloat-32 tensor cores)
    and is switched on."""
    return (_enabled and triton is not None and torch.cuda.is_available()
            and _tf32_cores(torch.device("cuda")))


def wins(m: int, n: int, k: int, swiglu: bool = False) -> bool:
    """Whether the kernel was the faster way to multiply m rows by an (n, k) weight (with
    ``swiglu``: rows that are the SwiGLU of a gate and an up projection, made in the kernel:
    two elementwise kernels fewer)."""
    if not 2 <= m <= MAX_ROWS:
        return False
    if swiglu:
        return m >= 16 and k <= 2048  # measured: 1,536 inputs, 16-65 rows
    if k > 1024:
        return False
    return n >= _OUTPUT_MIN or m >= 16 or (m > 8 and n >= 2048)


_TENSOR_CORES: dict[int, bool] = {}  # device index -> TensorFloat-32 tensor cores (sm 8.0+)


@torch.compiler.assume_constant_result  # inside torch.compile: a constant of the device
def _tf32_cores(device: torch.device) -> bool:
    i = device.index if device.index is not None else torch.cuda.current_device()
    if i not in _TENSOR_CORES:
        _TENSOR_CORES[i] = torch.cuda.get_device_capability(i) >= (8, 0)
    return _TENSOR_CORES[i]


def usable(h: torch.Tensor, w: torch.Tensor, swiglu: bool = False) -> bool:
    """Whether ``h @ w.T`` runs on the kernel: float32 on a CUDA GPU with TensorFloat-32
    tensor cores and Triton, where it wins (``swiglu``: ``h`` holds the gate and up
    projections side by side, see ``linear``)."""
    return (_enabled and triton is not None and h.is_cuda and h.dim() == 2
            and h.dtype == torch.float32 and w.dtype == torch.float32
            and wins(h.shape[0], *w.shape, swiglu=swiglu) and _tf32_cores(h.device))


def config_for(m: int, n: int, k: int = 0) -> Config:
    if k > 1024:
        return _LONG
    if n < _OUTPUT_MIN:
        return _LAYER
    return _OUTPUT[max(16, 1 << (m - 1).bit_length())]


if triton is not None:
    @triton.jit
    def _rows_kernel(x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, M, N, K: tl.constexpr,
                     PART: tl.constexpr, stride_x, stride_w, stride_r, stride_y,
                     HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, SWIGLU: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                     PRECISION: tl.constexpr):
        """y[:, tile] = rows @ w[tile].T over the inputs of part program_id(2) (``PART``
        inputs each), + bias in the first part, + residual where there is one part only. The
        rows are x, or with SWIGLU silu(x[:, :K]) * x[:, K:]."""
        rn = tl.program_id(0) * BN + tl.arange(0, BN)
        rm = tl.program_id(1) * BM + tl.arange(0, BM)
        part = tl.program_id(2)
        rk = tl.arange(0, BK)
        m_ok, n_ok = rm < M, rn < N
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, PART, BK):
            kk = part * PART + k0 + rk
            k_ok = kk < K
            a_mask = m_ok[:, None] & k_ok[None, :]
            a = tl.load(x_ptr + rm[:, None] * stride_x + kk[None, :], mask=a_mask, other=0.0)
            if SWIGLU:
                up = tl.load(x_ptr + rm[:, None] * stride_x + K + kk[None, :], mask=a_mask,
                             other=0.0)
                a = a * tl.sigmoid(a) * up
            b = tl.load(w_ptr + rn[None, :] * stride_w + kk[:, None],
                        mask=n_ok[None, :] & k_ok[:, None], other=0.0)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        if HAS_BIAS:  # in the first part only
            acc += tl.load(b_ptr + rn, mask=n_ok & (part == 0), other=0.0)[None, :]
        if HAS_RES:
            acc += tl.load(r_ptr + rm[:, None] * stride_r + rn[None, :],
                           mask=m_ok[:, None] & n_ok[None, :], other=0.0)
        tl.store(y_ptr + part * M * N + rm[:, None] * stride_y + rn[None, :], acc,
                 mask=m_ok[:, None] & n_ok[None, :])

    @triton.jit
    def _parts_kernel(p_ptr, r_ptr, y_ptr, SIZE, PARTS: tl.constexpr, HAS_RES: tl.constexpr,
                      BLOCK: tl.constexpr):
        """y = residual + (part 0 + part 1 + ...), the parts added in order."""
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ok = i < SIZE
        acc = tl.load(p_ptr + i, mask=ok, other=0.0)
        for j in tl.static_range(1, PARTS):
            acc += tl.load(p_ptr + j * SIZE + i, mask=ok, other=0.0)
        if HAS_RES:
            acc = tl.load(r_ptr + i, mask=ok, other=0.0) + acc
        tl.store(y_ptr + i, acc, mask=ok)


def _torch_product(h, w, b, residual, swiglu):
    """What the kernel computes, with torch's kernels."""
    if swiglu:
        gate, up = h.chunk(2, dim=-1)
        h = torch.nn.functional.silu(gate) * up
    y = torch.nn.functional.linear(h, w, b)
    return y if residual is None else residual + y


def linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None,
           residual: torch.Tensor | None = None, config: Config | None = None,
           swiglu: bool = False) -> torch.Tensor:
    """(residual +) rows (M, K) @ w.T (N, K) (+ b) -> (M, N) in float32, on the kernel (where
    ``usable``; ``config`` overrides the tile). The rows are ``h``, or with ``swiglu``
    silu(gate) * up where h = [gate | up] (M, 2K). Inside torch.compile, through the custom
    operator (``few_rows``)."""
    if config is None and torch.compiler.is_compiling():
        return torch.ops.specviz.few_rows(h, w, b, residual, swiglu)
    return _launch(h, w, b, residual, config, swiglu)


@torch.library.custom_op("specviz::few_rows", mutates_args=())
def few_rows(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
             residual: torch.Tensor | None, swiglu: bool) -> torch.Tensor:
    """``linear`` as one operator that torch.compile leaves whole (a new output tensor)."""
    return _launch(h, w, b, residual, None, swiglu)


@few_rows.register_fake
def _few_rows_shape(h, w, b, residual, swiglu):
    return h.new_empty(h.shape[0], w.shape[0])


def _launch(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
            residual: torch.Tensor | None, config: Config | None,
            swiglu: bool) -> torch.Tensor:
    m, n, k = h.shape[0], w.shape[0], w.shape[1]
    c = config or config_for(m, n, k)
    h = h if h.stride(1) == 1 else h.contiguous()
    w = w if w.stride(1) == 1 else w.contiguous()
    y = torch.empty(m, n, dtype=h.dtype, device=h.device)
    r = y if residual is None else residual.expand(m, n)
    r = r if r.is_contiguous() else r.contiguous()
    split = max(1, min(c.split, -(-k // c.bk)))
    part = -(-k // (split * c.bk)) * c.bk  # inputs per part, whole tiles
    split = -(-k // part)
    out = y if split == 1 else torch.empty(split, m, n, dtype=h.dtype, device=h.device)
    grid = (-(-n // c.bn), -(-m // c.bm), split)
    try:
        _rows_kernel[grid](h, w, y if b is None else b, r, out, m, n, k, part, h.stride(0),
                           w.stride(0), r.stride(0), n, HAS_BIAS=b is not None,
                           HAS_RES=residual is not None and split == 1, SWIGLU=swiglu,
                           BM=c.bm, BN=c.bn, BK=c.bk,
                           PRECISION=c.precision, num_warps=c.warps, num_stages=c.stages)
        if split > 1:  # the parts added in order, then the residual
            block = 1024
            _parts_kernel[(-(-(m * n) // block),)](out, r, y, m * n, PARTS=split,
                                                  HAS_RES=residual is not None, BLOCK=block)
    except Exception as e:  # Triton cannot build or launch it here: torch's kernels from now on
        enable(False)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        warnings.warn(f"the few-row kernel is off: {first}", RuntimeWarning, stacklevel=2)
        return _torch_product(h, w, b, residual, swiglu)
    return y
