"""Float32 products of a few rows with a layer's weight on the CPU, through oneDNN.

Why: a verify pass multiplies γ + 1 rows by every weight of the target. On a memory-bound
CPU that should cost about what one row costs (the weights are read once either way), but
torch's F.linear (MKL's sgemm, the weight used as stored) re-reads the weight for every
block of about three rows: measured on a 2-core EPYC, the 1.5B's 17,920 x 1,536 gate/up
weight took 2.0 ms for 1-3 rows, 3.9 for 4-6 and 6.1 for 8-9 (issue 26), and a 5-token
pass of the 1.5B cost two one-token passes. oneDNN's matmul on the same dense weight
(``torch.ops.mkldnn._linear_pointwise``, no copy, no repacking) reads it once for a few rows:
see ``scripts/bench_matmul_rows.py --cpu`` and docs/qwen.md for the measured ratios.

Where it runs (``usable``): float32 rows on the CPU, from ``MIN_ROWS`` to ``MAX_ROWS`` rows,
against a weight of at least ``MIN_WEIGHT`` elements (small weights fit in cache, where the
library's kernel is as good). One row (a matrix-vector product: every one-token pass, the
target alone's and the draft's) goes wherever it is faster on this machine, measured once
per process (``one_row_on_onednn``): on the 2-core EPYC of docs/qwen.md, F.linear's
matrix-vector product read the 1.5B's gate/up weight at about half the speed of oneDNN's
(8.7 against 4.7 ms), so a one-token pass cost more than a two-token one, and a baseline
left on the slower kernel would flatter every speed-up. ``install(model)`` routes a
transformers model's ``nn.Linear`` layers through it (their weights untouched: state
dicts, tied weights and the static engine see the same tensors), so the eager engine's
verify passes use it too.

Exactness: each row's sums are float32 sums of the same products in another order, so rows
differ from F.linear's by rounding only (as F.linear's own kernels for different row counts
already differ); greedy speculative output stays the target's own (tests/test_qwen.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_ROWS = 2  # from here on, oneDNN; one row only where it measured faster
MAX_ROWS = 32
MIN_WEIGHT = 1 << 20  # elements (4 MiB in float32)
_enabled = True
_one_row: bool | None = None  # oneDNN for one row: measured at first use (None: not yet)


def enable(on: bool = True) -> None:
    """Use oneDNN for few-row CPU products from now on, or not (F.linear everywhere)."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def available() -> bool:
    """Whether oneDNN's matmul is built into this torch and switched on."""
    return _enabled and _HAS_ONEDNN


def _probe() -> bool:
    try:
        x, w = torch.ones(2, 4), torch.ones(3, 4)
        y = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
        return bool(torch.equal(y, F.linear(x, w)))
    except Exception:  # a torch without oneDNN (or with another signature): F.linear
        return False


_HAS_ONEDNN = torch.backends.mkldnn.is_available() and _probe()


def usable(h: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether ``h @ w.T`` takes oneDNN's few-row path: float32 on the CPU, 2-32 rows, a
    weight that does not fit in cache."""
    if not (_enabled and _HAS_ONEDNN) or h.is_cuda or w.is_cuda:
        return False
    if h.dtype != torch.float32 or w.dtype != torch.float32 or w.dim() != 2:
        return False
    rows = h.numel() // max(h.shape[-1], 1)
    if not (1 <= rows <= MAX_ROWS and w.numel() >= MIN_WEIGHT and w.is_contiguous()):
        return False
    return rows >= MIN_ROWS or one_row_on_onednn()


def set_one_row(on: bool | None) -> None:
    """Send one-row products through oneDNN (True), keep them on F.linear (False), or
    measure which is faster at the next one-row product (None)."""
    global _one_row
    _one_row = on


def one_row_on_onednn() -> bool:
    """Whether a one-row product (a matrix-vector product) is faster through oneDNN than
    through F.linear on this machine: both timed once per process, interleaved, on a
    64 MiB weight (larger than a CPU's caches, as a layer's weights are); oneDNN only where
    its median is at least 10 % below F.linear's. ``SPECVIZ_ONE_ROW=onednn`` or ``linear``
    decides without measuring."""
    global _one_row
    if _one_row is None:
        import os
        choice = os.environ.get("SPECVIZ_ONE_ROW", "").strip().lower()
        _one_row = {"onednn": True, "linear": False}.get(choice)
        if _one_row is None:
            _one_row = _measure_one_row()
    return _one_row


def _measure_one_row(rounds: int = 7) -> bool:
    import statistics
    import time
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(8192, 2048, generator=gen)
    x = torch.randn(1, 2048, generator=gen)
    times: dict[str, list[float]] = {"linear": [], "onednn": []}
    with torch.no_grad():
        for r in range(rounds + 2):  # two rounds warm up
            for name in ("linear", "onednn"):
                t = time.perf_counter()
                if name == "linear":
                    F.linear(x, w)
                else:
                    linear(x, w)
                if r >= 2:
                    times[name].append(time.perf_counter() - t)
    return statistics.median(times["onednn"]) < 0.9 * statistics.median(times["linear"])


def linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """h (..., in) @ w.T (+ b) -> (..., out) through oneDNN (call where ``usable``)."""
    lead = h.shape[:-1]
    x = h.reshape(-1, h.shape[-1])
    x = x if x.is_contiguous() else x.contiguous()
    y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    return y.view(*lead, w.shape[0])


def rows_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None
                ) -> torch.Tensor:
    """F.linear, or oneDNN where it is the faster kernel for the shape."""
    if usable(h, w):
        return linear(h, w, b)
    return F.linear(h, w, b)


class RowsLinear(torch.nn.Linear):
    """An nn.Linear whose few-row CPU products go through oneDNN (``install``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rows_linear(x, self.weight, self.bias)


def install(model: torch.nn.Module) -> int:
    """Route ``model``'s nn.Linear layers through ``rows_linear`` (in place; weights and
    parameters unchanged); returns how many. A no-op where oneDNN is missing."""
    if not _HAS_ONEDNN:
        return 0
    n = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = RowsLinear
            n += 1
    if n:
        one_row_on_onednn()  # measured here, at load, not in a decoding's first pass
    return n
