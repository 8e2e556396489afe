"""A draft model's linear layers with int8 weights (one scale per output row) on the CPU.

Why: on a memory-bound CPU a draft pass costs about the bytes it reads. The Qwen2.5-Coder
0.5B reads 35 % of the 1.5B's bytes in float32, so its pass costs c = 0.36-0.41 of the
target's and a chain of four drafts costs more than the verify pass itself (docs/qwen.md).
Stored as int8 it reads a quarter of that. The product is torch's weight-only int8 kernel
(``torch._weight_int8pack_mm``: activations in bfloat16, weights int8, one bfloat16 scale per
output row). On the 2-core EPYC of docs/qwen.md the 0.5B's one-token pass took 41 ms with
it against 93 ms in float32 (with the oneDNN row products of ``cpu_rows``), the target's 287
ms (``scripts/measure_int8_draft.py``, docs/bench/qwen/cpu-20261207-int8-draft.json).

Exactness: only the draft changes. Greedy output stays the target's own (the target verifies
every token); sampled output still follows p, because acceptance and the residual use the q
this draft computes. What int8 costs is acceptance: the draft agrees with the target a
little less often, measured beside its speed by the same script.

Only the weights of ``nn.Linear`` layers are quantised (the embedding, norms and attention
stay in the model's dtype); a tied output layer gets its own int8 copy and the embedding
keeps the float one.
"""

from __future__ import annotations

import torch

def available() -> bool:
    """Whether this torch has the weight-only int8 kernel on the CPU."""
    try:
        x = torch.ones(1, 32, dtype=torch.bfloat16)
        w = torch.ones(8, 32, dtype=torch.int8)
        s = torch.ones(8, dtype=torch.bfloat16)
        return bool(torch._weight_int8pack_mm(x, w, s).shape == (1, 8))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


class Int8Linear(torch.nn.Module):
    """``nn.Linear`` with an int8 weight and a bfloat16 scale per output row."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).to(torch.bfloat16)
        q = torch.round(w / scale.float()[:, None]).clamp_(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", q.contiguous())
        self.register_buffer("scales", scale)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch._weight_int8pack_mm(rows, self.qweight, self.scales).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def dequantized(self) -> torch.Tensor:
        """The weight this layer multiplies by, in float32 (for tests and reports)."""
        return self.qweight.float() * self.scales.float()[:, None]


def quantize(model: torch.nn.Module) -> int:
    """Replace ``model``'s ``nn.Linear`` layers by ``Int8Linear`` in place; returns how many. CPU only (the kernel is the CPU's); raises ValueError (one line) elsewhere."""
    if not available():
        raise ValueError("this torch has no weight-only int8 kernel on the CPU "
                         "(torch._weight_int8pack_mm)")
    devices = {p.device.type for p in model.parameters()}
    if devices != {"cpu"}:
        raise ValueError("an int8 draft runs on the CPU only")
    swaps = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children()
             if isinstance(child, torch.nn.Linear)]
    for parent, name, child in swaps:
        setattr(parent, name, Int8Linear(child))
    return len(swaps)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights a pass reads: parameters and the int8 layers' buffers, the
    embedding table left out (a pass reads one row of it per token)."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    skip = {id(emb.weight)} if emb is not None else set()
    total = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in skip)
    for m in model.modules():
        if isinstance(m, Int8Linear):
            total += m.qweight.numel() + m.scales.numel() * 2
    return total
