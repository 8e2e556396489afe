"""The static engine: Llama-family forward passes over preallocated KV caches (Llama, and
Qwen2: a Llama with biases on its q, k and v projections).

Why: transformers' eager forward launches its many small kernels one by one from Python. On a
fast GPU those launches, not the arithmetic, set the pace (the 135M target takes about the
same 25-30 ms per pass on an H200 whether it holds 1 or 5 tokens). Here a forward pass reads
its positions from a device tensor and writes keys and values into caches of fixed size, so
nothing in it depends on values on the host: each phase of a step has fixed shapes and can be
captured once as a CUDA graph and replayed (``specviz.engines.phases``).

Without CUDA (or with graphs off) the same forward runs eagerly: the "static" path, which the
CPU tests check against transformers' forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import cpu_rows, skinny
from .int8_draft import Int8Linear

ENGINES = ("auto", "eager", "static", "graphs")
FAMILIES = ("llama", "qwen2")  # model types it runs (Qwen2: q/k/v biases)
_ROPE_TYPES = ("default", "linear", "llama3")  # position tables that do not change with length


class Unsupported(ValueError):
    """The static engine cannot run this model; the message says why in one line."""


def check_supported(model: torch.nn.Module) -> None:
    """Raise Unsupported unless ``model`` is a Llama-family causal LM this engine can run."""
    cfg = model.config
    kind = getattr(cfg, "model_type", None)
    if kind not in FAMILIES:
        raise Unsupported(f"the static engine runs Llama and Qwen2 models; this one is "
                          f"{kind!r}")
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        raise Unsupported("the static engine does not run sliding-window attention")
    if getattr(cfg, "hidden_act", "silu") != "silu":
        raise Unsupported(f"the static engine needs SiLU MLPs, not {cfg.hidden_act!r}")
    if getattr(cfg, "mlp_bias", False):
        raise Unsupported("the static engine does not run MLP biases")
    rope = getattr(model.model.rotary_emb, "rope_type", "default")
    if rope not in _ROPE_TYPES:
        raise Unsupported(f"the static engine does not run {rope!r} rotary embeddings")
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        raise Unsupported("an int8 draft runs on the eager engine only")


@dataclass(frozen=True)
class _Layer:
    ln1: torch.Tensor
    wqkv: torch.Tensor  # q, k and v projections stacked: one matmul instead of three
    bqkv: torch.Tensor | None
    wo: torch.Tensor
    bo: torch.Tensor | None
    ln2: torch.Tensor
    wgu: torch.Tensor  # gate and up projections stacked
    wdown: torch.Tensor


def stacked_layers(model: torch.nn.Module) -> list[_Layer]:
    """The model's decoder layers with q/k/v and gate/up weights stacked (copies of those)."""
    out = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        bias = a.q_proj.bias
        out.append(_Layer(
            ln1=layer.input_layernorm.weight,
            wqkv=torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
            bqkv=None if bias is None else torch.cat([a.q_proj.bias, a.k_proj.bias,
                                                      a.v_proj.bias]),
            wo=a.o_proj.weight, bo=a.o_proj.bias,
            ln2=layer.post_attention_layernorm.weight,
            wgu=torch.cat([m.gate_proj.weight, m.up_proj.weight]),
            wdown=m.down_proj.weight))
    return out


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm in float32 (as transformers' LlamaRMSNorm), one fused kernel where torch has
    one."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype) * w


# On an H200, cuBLAS's fp32 kernels for 2-16 rows against a small weight (576 x 576, 576 x
# 1536) take 2-3x longer than one matrix-vector product per row run as a batch (bmm with the
# weight broadcast): e.g. 9.5 vs 3.5 us for 5 rows x (576 x 576). Larger weights (the MLP's
# 3072 x 576, the output layer) are faster as one GEMM. Measured with CUDA graphs; see
# docs/benchmarks.md.
_BATCHED_GEMV_MAX_ROWS = 16
_BATCHED_GEMV_MAX_WEIGHT = 1_600_000


def _rows_as_gemv(h: torch.Tensor, w: torch.Tensor) -> bool:
    return (h.is_cuda and h.dim() == 2 and 2 <= h.shape[0] <= _BATCHED_GEMV_MAX_ROWS
            and w.numel() <= _BATCHED_GEMV_MAX_WEIGHT)


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """h (..., in) @ w.T (+ b) -> (..., out), by whichever kernel is faster for the shape (few
    rows: see specviz.engines.skinny and _rows_as_gemv)."""
    if skinny.usable(h, w):
        return skinny.linear(h, w, b)
    if cpu_rows.usable(h, w):  # a few float32 rows on the CPU: the weight read once
        return cpu_rows.linear(h, w, b)
    if _rows_as_gemv(h, w):
        y = torch.bmm(w.expand(h.shape[0], *w.shape), h.unsqueeze(-1)).squeeze(-1)
        return y if b is None else y + b
    return F.linear(h, w, b)


def _add_linear(x: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor | None = None) -> torch.Tensor:
    """x + h @ w.T (+ b); as one GEMM the add rides on its epilogue (one kernel, not two)."""
    if skinny.usable(h, w):
        return skinny.linear(h, w, b, residual=x)
    if b is not None or _rows_as_gemv(h, w) or cpu_rows.usable(h, w):
        return x + _linear(h, w, b)
    return torch.addmm(x, h, w.t())


def _swiglu_add_linear(x: torch.Tensor, gate_up: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x + (silu(gate) * up) @ w.T, where gate_up = [gate | up]; on the few-row kernel the
    SwiGLU and the residual add ride on the product (one kernel and a sum of its parts, not
    four)."""
    if skinny.usable(gate_up, w, swiglu=True):
        return skinny.linear(gate_up, w, residual=x, swiglu=True)
    gate, up = gate_up.chunk(2, dim=-1)
    return _add_linear(x, F.silu(gate) * up, w)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


@dataclass(frozen=True)
class Shape:
    """Attention shape of a Llama layer."""

    n_heads: int
    n_kv: int
    head_dim: int
    eps: float

    @classmethod
    def of(cls, cfg) -> "Shape":
        heads = cfg.num_attention_heads
        return cls(heads, cfg.num_key_value_heads,
                   getattr(cfg, "head_dim", None) or cfg.hidden_size // heads, cfg.rms_norm_eps)

    @property
    def group(self) -> int:  # query heads per key/value head
        return self.n_heads // self.n_kv


def rotary_tables(model: torch.nn.Module, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's rotary cos and sin for positions 0..max_len-1, each (max_len, D)."""
    w = model.model.embed_tokens.weight
    cos, sin = model.model.rotary_emb(w[:1][None], torch.arange(max_len, device=w.device)[None])
    return cos[0], sin[0]


def causal_bias(key_pos: torch.Tensor, pos: torch.Tensor, group: int,
                dtype: torch.dtype) -> torch.Tensor:
    """(group*T, L): 0 where a key's position is at most the query's, -inf after it; query
    rows grouped by key/value head."""
    bias = torch.where(key_pos[None, :] <= pos[:, None], 0.0, float("-inf"))
    return bias.to(dtype).repeat(group, 1)


def layer_step(x: torch.Tensor, w: _Layer, k_cache: torch.Tensor, v_cache: torch.Tensor,
               slots: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor,
               s: Shape) -> torch.Tensor:
    """One Llama decoder layer over x (T, H) rotated by cos, sin (1, T, D): writes the keys
    and values into the layer's caches (n_kv, L, D) at ``slots`` (T,) (a chain's positions)
    and attends where ``bias`` (g*T, L) allows (a chain: every cached position up to each
    token's own). Few kernel launches at batch 1: q, k and v from one matmul, rotated
    together; attention as two batched matmuls and a softmax over the whole cache."""
    T, nh, nkv, D, g = x.shape[0], s.n_heads, s.n_kv, s.head_dim, s.group
    h = _rms(x, w.ln1, s.eps)
    qkv = _linear(h, w.wqkv, w.bqkv).view(T, nh + 2 * nkv, D).transpose(0, 1)
    qk = qkv[:nh + nkv]  # (nh + nkv, T, D)
    qk = qk * cos + _rotate_half(qk) * sin
    k_cache.index_copy_(1, slots, qk[nh:])
    v_cache.index_copy_(1, slots, qkv[nh + nkv:])
    q = qk[:nh].reshape(nkv, g * T, D)  # query heads sharing a kv head, stacked
    scores = torch.baddbmm(bias, q, k_cache.transpose(1, 2), alpha=D ** -0.5)
    o = torch.bmm(torch.softmax(scores, dim=-1), v_cache)  # (nkv, g*T, D)
    o = o.view(nh, T, D).transpose(0, 1).reshape(T, nh * D)
    x = _add_linear(x, o, w.wo, w.bo)  # the residual add rides on the matmul
    return _swiglu_add_linear(x, _linear(_rms(x, w.ln2, s.eps), w.wgu), w.wdown)


# Fused layers (opt-in): torch.compile (inductor) turns a layer's norms, rotary, cache writes,
# softmax and SwiGLU into a few generated kernels; the matmuls stay as they are. Compiled once
# per shape (tokens in the pass, cache length, model), so only the passes of a decoding step
# (few tokens) use it; a prompt's prefill, whose length varies, stays eager.
_FUSED_MAX_TOKENS = 16
_fused_layer = None


def fuse_layers(on: bool = True) -> None:
    """Run the decoding steps' layers compiled by torch.compile (inductor) from now on, or not.
    The first pass of each shape compiles (tens of seconds on a GPU), later ones reuse it."""
    global _fused_layer
    if not on:
        _fused_layer = None
        return
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
    _fused_layer = torch.compile(layer_step, dynamic=False, fullgraph=True)


def fused_layers() -> bool:
    return _fused_layer is not None


class StaticLlama:
    """A Llama forward pass with a static KV cache of ``max_len`` positions.

    ``forward(ids, pos)`` writes the keys and values of tokens ``ids`` (T,) at positions
    ``pos`` (T,) (device tensors) and attends to every cached position up to each token's
    own. Nothing in it depends on values on the host, so it can be captured in a CUDA graph.
    """

    def __init__(self, model: torch.nn.Module, layers: list[_Layer], max_len: int):
        check_supported(model)
        cfg = model.config
        self.layers = layers
        self.embed = model.model.embed_tokens.weight  # (V, H)
        self.norm = model.model.norm.weight
        self.lm_head = model.lm_head.weight  # (V, H)
        self.shape = Shape.of(cfg)
        self.eps = self.shape.eps
        self.max_len = max_len
        dev, dtype = self.embed.device, self.embed.dtype
        self.cos, self.sin = rotary_tables(model, max_len)  # (max_len, D)
        shape = (len(layers), self.shape.n_kv, max_len, self.shape.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=dev)
        self.v = torch.zeros(shape, dtype=dtype, device=dev)
        self.key_pos = torch.arange(max_len, device=dev)  # (max_len,)
        self.fused = _fused_layer  # as switched when this forward was built
        # hidden states written as features (indices as transformers' hidden_states: 0 the
        # embeddings, l after layer l, L after the final norm); None: the last one
        self.feature_layers: tuple[int, ...] | None = None

    def positions(self, pos: torch.Tensor, dtype: torch.dtype):
        """Rotary tables (1, T, D) at ``pos`` (T,) and the attention bias (g*T, max_len)."""
        return (self.cos.index_select(0, pos)[None], self.sin.index_select(0, pos)[None],
                causal_bias(self.key_pos, pos, self.shape.group, dtype))

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, logits: str = "all",
                features: torch.Tensor | None = None, slots: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor | None:
        """ids (T,), pos (T,) -> logits (T, V); ``logits`` "last" gives (1, V), "none" None.
        ``features`` (T, H) receives the last hidden states (after the final norm), or
        (T, n H) those of the ``feature_layers`` side by side.

        A token tree's pass (specviz.core.tree) gives ``slots`` (T,), the cache slots its keys
        and values go to (rotary positions are ``pos``, by depth), and ``bias``
        (group*T, max_len), who attends to whom; by default slots = positions and the bias
        is causal.

        Written for few kernel launches at batch 1: q, k and v come from one matmul and get
        their rotary embedding together; attention is two batched matmuls and a softmax over
        the whole static cache, with the positions after each token masked out.
        """
        x = F.embedding(ids, self.embed)  # (T, H)
        cos, sin, causal = self.positions(pos, x.dtype)
        bias = causal if bias is None else bias
        write = pos if slots is None else slots
        # a step's passes are fused: few tokens, or a token tree's (its shape fixed per tree)
        fused = self.fused is not None and (ids.shape[0] <= _FUSED_MAX_TOKENS or
                                            bias is not None)
        step = self.fused if fused else layer_step
        taps = self.feature_layers if features is not None else None
        tapped = {0: x} if taps else {}
        for i, w in enumerate(self.layers):
            x = step(x, w, self.k[i], self.v[i], write, cos, sin, bias, self.shape)
            if taps and i + 1 in taps:
                tapped[i + 1] = x
        if features is not None:
            last = _rms(x, self.norm, self.eps)
            tapped[len(self.layers)] = last
            features.copy_(torch.cat([tapped[j] for j in taps], dim=-1) if taps else last)
        if logits == "none":
            return None
        if logits == "last":
            x = x[-1:]
        return _linear(_rms(x, self.norm, self.eps), self.lm_head)  # (T, V)


    def move_kv(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Keys and values at cache slots ``src`` (n,) copied to ``dst`` (n,) in every layer
        (read first: the two may overlap). After a tree's pass, this puts the accepted path
        right after the prefix (``Tree.kv_moves``)."""
        for cache in (self.k, self.v):
            cache.index_copy_(2, dst, cache.index_select(2, src))


# Relative logit error allowed against transformers' forward in the same dtype: float32 agrees
# to rounding; in bfloat16 or float16 the two forwards round differently at every layer
LOGIT_TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 6e-2, torch.float16: 2e-2}


def check_against(model: torch.nn.Module, engine: StaticLlama, n_tokens: int = 6) -> None:
    """Raise Unsupported if the engine's logits differ from transformers' (same weights, same
    dtype) on a short input by more than the dtype's rounding allows."""
    dev = engine.embed.device
    vocab = engine.embed.shape[0]
    ids = (torch.arange(n_tokens, device=dev) * 7919 + 11) % vocab
    with torch.inference_mode():
        ref = model(input_ids=ids[None], use_cache=False).logits[0].float()  # (T, V)
        got = engine.forward(ids, torch.arange(n_tokens, device=dev)).float()
    err = float((ref - got).abs().max() / ref.abs().max().clamp_min(1e-6))
    tol = LOGIT_TOLERANCE.get(engine.embed.dtype, 1e-3)
    if not err < tol:
        raise Unsupported(f"the static engine's logits differ from transformers' "
                          f"(relative error {err:.1e}, allowed {tol:.0e} in "
                          f"{str(engine.embed.dtype).replace('torch.', '')}) for this model")


def bucket(n: int) -> int:
    """Cache length for n positions: a multiple of 256, so that runs share graphs."""
    return max(256, -(-n // 256) * 256)
