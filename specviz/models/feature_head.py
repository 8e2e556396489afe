"""A feature-level draft head (EAGLE-style, Li et al. 2024) for a Llama-family target.

The head drafts from the target's own last hidden states. Notation: t_i is the token at
position i, f_i the target's last hidden state (after its final norm) having read t_0..t_i,
so p(t_{i+1}) = softmax(lm_head(f_i)). Row i of the head reads [f_i ; e(t_{i+1})] (e: the
target's token embeddings), maps it to the target's width, runs one decoder layer of the
target's shape (causal over rows) and a norm, and outputs h_i, its guess of f_{i+1}:

    q(t_{i+2}) = softmax(lm_head(h_i))    over the head's vocabulary (zero elsewhere)

When drafting, h_i stands in for the target feature of the next row. The head owns only fc,
its layer and its norm; embeddings and lm_head are the target's (frozen, not stored). Its
vocabulary may be a subset of the target's (the most frequent tokens): q is then zero
elsewhere, which keeps verification exact (the residual supplies those tokens).

Features from several layers (EAGLE-3, Li et al. 2025): with ``feature_layers`` set (indices
into transformers' ``hidden_states``: 0 the embeddings, l the output of layer l, L the last
layer's output after the final norm), f_i is the target's hidden states at those layers side
by side (width n H); each is RMS-normalised, scaled and mapped to width H by ``fuse``, which
then stands where the last hidden state stands above. Rows fed the head's own guess h read h
itself (width H), as before.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..engines.static import Shape, _Layer, _linear, _rms, _rotate_half, causal_bias, layer_step
from ..engines.static import rotary_tables as _rotary_tables

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class HeadConfig:
    hidden: int
    n_heads: int
    n_kv: int
    head_dim: int
    intermediate: int
    eps: float
    vocab_size: int  # the target's
    vocab_ids: tuple[int, ...] | None = None  # the head's vocabulary; None: the target's
    target: str = ""  # the target it was trained for
    info: dict = field(default_factory=dict)  # how it was trained
    # the target's hidden states the head reads (indices into transformers' hidden_states:
    # 0 embeddings, l after layer l, L after the final norm); None: the last one only
    feature_layers: tuple[int, ...] | None = None

    @classmethod
    def for_target(cls, target: torch.nn.Module, vocab_ids=None, source: str = "", *,
                   intermediate: int | None = None,
                   feature_layers: tuple[int, ...] | None = None) -> "HeadConfig":
        """The target's shape; ``intermediate`` (the MLP width) may be smaller than the
        target's, and ``feature_layers`` lists several layers to read (see the module)."""
        c, s = target.config, Shape.of(target.config)
        layers = check_feature_layers(feature_layers, c.num_hidden_layers)
        return cls(c.hidden_size, s.n_heads, s.n_kv, s.head_dim,
                   intermediate or c.intermediate_size, s.eps, c.vocab_size,
                   None if vocab_ids is None else tuple(int(i) for i in vocab_ids), source,
                   feature_layers=layers)

    @property
    def n_features(self) -> int:
        """How many of the target's hidden states a target-fed row reads."""
        return len(self.feature_layers) if self.feature_layers else 1


def default_feature_layers(n_layers: int) -> tuple[int, int, int]:
    """Low, middle and last (EAGLE-3's choice of depths): hidden states 2, L/2 and L."""
    return (min(2, n_layers - 1), n_layers // 2, n_layers)


def check_feature_layers(layers, n_layers: int) -> tuple[int, ...] | None:
    """``layers`` as a sorted tuple of distinct hidden-state indices in 0..L, or None for the
    last one alone; raises ValueError (one line) for anything else."""
    if layers is None:
        return None
    out = tuple(sorted({int(j) for j in layers}))
    if not out or out[0] < 0 or out[-1] > n_layers:
        raise ValueError(f"feature layers must lie in 0..{n_layers}, got {list(layers)}")
    return None if out == (n_layers,) else out


class FeatureHead(torch.nn.Module):
    """The head's own weights (fc, one decoder layer, norm), in the static engine's layout."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        H, D, inter = cfg.hidden, cfg.head_dim, cfg.intermediate
        qkv = (cfg.n_heads + 2 * cfg.n_kv) * D
        self.fc = torch.nn.Linear(2 * H, H)
        n = cfg.n_features
        if n > 1:  # several layers: each normalised, then mapped to width H
            self.fuse_norm = torch.nn.Parameter(torch.ones(n * H))
            self.fuse = torch.nn.Linear(n * H, H, bias=False)
        self.ln1 = torch.nn.Parameter(torch.ones(H))
        self.wqkv = torch.nn.Parameter(torch.empty(qkv, H))
        self.wo = torch.nn.Parameter(torch.empty(H, cfg.n_heads * D))
        self.ln2 = torch.nn.Parameter(torch.ones(H))
        self.wgu = torch.nn.Parameter(torch.empty(2 * inter, H))
        self.wdown = torch.nn.Parameter(torch.empty(H, inter))
        self.norm = torch.nn.Parameter(torch.ones(H))
        for w in (self.wqkv, self.wo, self.wgu, self.wdown):
            torch.nn.init.normal_(w, std=0.02)
        ids = torch.tensor(cfg.vocab_ids if cfg.vocab_ids is not None else [], dtype=torch.long)
        self.register_buffer("vocab_ids", ids, persistent=False)

    @property
    def shape(self) -> Shape:
        c = self.cfg
        return Shape(c.n_heads, c.n_kv, c.head_dim, c.eps)

    @property
    def feature_width(self) -> int:
        """Width of a target-fed row's features: n_features * H."""
        return self.cfg.n_features * self.cfg.hidden

    @property
    def feature_taps(self) -> tuple[int, ...] | None:
        """The hidden states the target's engine writes into the features (None: the last,
        after the final norm)."""
        return self.cfg.feature_layers

    def fused(self, feats: torch.Tensor) -> torch.Tensor:
        """Target features (..., n H) -> (..., H); the identity for a one-layer head."""
        if self.cfg.n_features == 1:
            return feats
        H = self.cfg.hidden
        parts = feats.unflatten(-1, (self.cfg.n_features, H))
        normed = F.rms_norm(parts.float(), (H,), eps=self.cfg.eps).flatten(-2)
        return _linear(normed.to(feats.dtype) * self.fuse_norm, self.fuse.weight)

    def layer(self) -> _Layer:
        return _Layer(self.ln1, self.wqkv, None, self.wo, None, self.ln2, self.wgu, self.wdown)

    def out_weight(self, lm_head: torch.Tensor) -> torch.Tensor:
        """The rows of the target's output layer (V, H) the head predicts over."""
        return lm_head if self.cfg.vocab_ids is None else lm_head.index_select(0,
                                                                               self.vocab_ids)

    def forward(self, feats: torch.Tensor, next_emb: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        """Training pass over whole sequences: feats (B, T, n H) target features, next_emb
        (B, T, H) embeddings of the next tokens, cos/sin (T, D) -> h (B, T, H)."""
        return self.unrolled(feats, next_emb, cos, sin, depth=1)[0]

    def unrolled(self, feats: torch.Tensor, next_emb: torch.Tensor, cos: torch.Tensor,
                 sin: torch.Tensor, depth: int) -> list[torch.Tensor]:
        """The head as it drafts, ``depth`` tokens deep, over whole sequences at once.

        Step 0 reads the target's features; step k >= 1 reads at row i the guess step k-1
        made at row i-1, and attends to the target-fed rows up to i-k and to its own chain
        (step m at row i-k+m), exactly as when it drafts its (k+1)-th token after row i-k.
        Returns h of every step, each (B, T, H).
        """
        B, T, _ = feats.shape
        s = self.shape
        rows = torch.arange(T, device=feats.device)
        keys, values, outs = [], [], []
        x_in = self.fused(feats)  # (B, T, H)
        for k in range(depth):
            x = self.fc(torch.cat([x_in, next_emb], dim=-1))
            qkv = F.linear(_rms(x, self.ln1, s.eps), self.wqkv)
            qkv = qkv.view(B, T, s.n_heads + 2 * s.n_kv, s.head_dim).transpose(1, 2)
            qk = qkv[:, :s.n_heads + s.n_kv]
            qk = qk * cos + _rotate_half(qk) * sin
            keys.append(qk[:, s.n_heads:].repeat_interleave(s.group, dim=1))
            values.append(qkv[:, s.n_heads + s.n_kv:].repeat_interleave(s.group, dim=1))
            q = qk[:, :s.n_heads]
            if k == 0:
                o = F.scaled_dot_product_attention(q, keys[0], values[0], is_causal=True)
            else:  # (T, (k+1) T): target-fed rows j <= i-k, then the chain j = i-k+m
                i, j = rows[:, None], rows[None, :]
                mask = torch.cat([j <= i - k] + [j == i - k + m for m in range(1, k + 1)], 1)
                o = F.scaled_dot_product_attention(q, torch.cat(keys, 2), torch.cat(values, 2),
                                                   attn_mask=mask)
            x = x + F.linear(o.transpose(1, 2).reshape(B, T, -1), self.wo)
            gate, up = F.linear(_rms(x, self.ln2, s.eps), self.wgu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.wdown)
            h = _rms(x, self.norm, s.eps)
            outs.append(h)
            x_in = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # row i: h_{i-1}
        return outs


def rotary_tables(target: torch.nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's rotary tables (n, D): the head uses the target's positions."""
    return _rotary_tables(target, n)


class StaticHead:
    """The head at inference: a KV cache of ``max_len`` rows at fixed addresses, rows fed at
    device positions (no host values), so drafting can be replayed as a CUDA graph."""

    def __init__(self, head: FeatureHead, target: torch.nn.Module, max_len: int):
        self.head, self.shape = head, head.shape
        w = target.model.embed_tokens.weight
        self.embed = w  # (V, H)
        self.out = head.out_weight(target.lm_head.weight).to(w.dtype)  # (V_head, H)
        self.vocab_ids = head.vocab_ids.to(w.device) if head.cfg.vocab_ids is not None \
            else None
        self.vocab = head.cfg.vocab_size
        self.layer = head.layer()
        self.feature_width, self.feature_taps = head.feature_width, head.feature_taps
        self.cos, self.sin = rotary_tables(target, max_len)
        s = self.shape
        self.k = torch.zeros(s.n_kv, max_len, s.head_dim, dtype=w.dtype, device=w.device)
        self.v = torch.zeros_like(self.k)
        self.key_pos = torch.arange(max_len, device=w.device)
        self.max_len = max_len
        self.h = torch.zeros(w.shape[1], dtype=w.dtype, device=w.device)  # the next feature

    def rows(self, feats: torch.Tensor, next_ids: torch.Tensor, pos: torch.Tensor,
             slots: torch.Tensor | None = None, bias: torch.Tensor | None = None
             ) -> torch.Tensor:
        """feats (T, H) or the target's (T, n H), next_ids (T,), pos (T,) -> h (T, H); writes
        the rows' keys/values. A token tree's rows give their cache ``slots`` and attention
        ``bias`` (as ``StaticLlama.forward`` takes them); by default slots = positions,
        causal. Rows of the target's features from several layers are fused first (their
        width tells them from the head's own guesses)."""
        feats = feats.to(self.embed.dtype)
        if feats.shape[-1] != self.embed.shape[1]:
            feats = self.head.fused(feats)
        x = _linear(torch.cat([feats, F.embedding(next_ids, self.embed)], dim=-1),
                    self.head.fc.weight, self.head.fc.bias)
        cos, sin = self.cos.index_select(0, pos)[None], self.sin.index_select(0, pos)[None]
        if bias is None:
            bias = causal_bias(self.key_pos, pos, self.shape.group, x.dtype)
        x = layer_step(x, self.layer, self.k, self.v, pos if slots is None else slots, cos,
                       sin, bias, self.shape)
        return _rms(x, self.head.norm, self.shape.eps)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., H) -> logits over the head's vocabulary (..., V_head)."""
        return _linear(h, self.out)

    def spread(self, probs: torch.Tensor) -> torch.Tensor:
        """Probabilities over the head's vocabulary (..., V_head) -> over the target's
        (..., V)."""
        if self.vocab_ids is None:
            return probs
        out = probs.new_zeros(*probs.shape[:-1], self.vocab)
        return out.index_copy_(probs.dim() - 1, self.vocab_ids, probs)


PACKINGS = ("bfloat16", "int8")  # how a saved head's weights are stored
_INT8_MIN_NUMEL = 65536  # matrices at least this large go to int8 (norms, biases stay bf16)


def _packed(weights: dict[str, torch.Tensor], packing: str) -> dict[str, torch.Tensor]:
    """State dict -> the tensors written: bfloat16, or (``int8``) large matrices as int8 with
    one bfloat16 scale per row (symmetric, max |w| / 127) under ``NAME.scale``."""
    if packing not in PACKINGS:
        raise ValueError(f"unknown packing {packing!r}; choose from {', '.join(PACKINGS)}")
    out = {}
    for k, v in weights.items():
        v = v.detach().float().cpu()
        if packing == "int8" and v.dim() == 2 and v.numel() >= _INT8_MIN_NUMEL:
            scale = (v.abs().amax(dim=1, keepdim=True) / 127.0).clamp_min(1e-12)
            scale = scale.to(torch.bfloat16)
            out[k] = (v / scale.float()).round().clamp(-127, 127).to(torch.int8).contiguous()
            out[k + ".scale"] = scale.contiguous()
        else:
            out[k] = v.to(torch.bfloat16).contiguous()
    return out


def _unpacked(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors written by ``_packed`` -> a state dict (float32)."""
    out = {}
    for k, v in stored.items():
        if k.endswith(".scale"):
            continue
        scale = stored.get(k + ".scale")
        out[k] = v.float() * scale.float() if scale is not None else v.float()
    return out


def packed_nbytes(cfg: HeadConfig, packing: str = "bfloat16") -> int:
    """Bytes of the weights file ``save_head`` writes for a head of config ``cfg`` (an upper
    bound, exact to ~72 bytes): its tensors' bytes plus the safetensors header, computed from
    the shapes alone (no weights are made: the head is built on the meta device)."""
    with torch.device("meta"):
        head = FeatureHead(cfg)
    total, header = 0, {}
    for k, v in head.state_dict().items():
        quant = packing == "int8" and v.dim() == 2 and v.numel() >= _INT8_MIN_NUMEL
        entries = [(k, v.shape, 1 if quant else 2)]
        if quant:
            entries.append((k + ".scale", (v.shape[0], 1), 2))
        for name, shape, item in entries:
            n = item * math.prod(shape)
            header[name] = {"dtype": "I8" if item == 1 else "BF16", "shape": list(shape),
                            "data_offsets": [total, total + n]}
            total += n
    text = json.dumps(header, separators=(",", ":"))
    # length prefix, header (its JSON as safetensors writes it may differ by a few bytes, and
    # is padded to 8), data: an upper bound, at most ~72 bytes over
    return 8 + len(text) + 64 + total


def save_head(head: FeatureHead, folder: str | Path, packing: str = "bfloat16") -> Path:
    """The head's weights (safetensors; bfloat16, or int8 with per-row scales) and config
    (JSON, with ``packing``) into ``folder``."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_packed(head.state_dict(), packing), str(folder / WEIGHTS_FILE))
    cfg = asdict(head.cfg)
    for k in ("vocab_ids", "feature_layers"):
        cfg[k] = list(cfg[k]) if cfg[k] is not None else None
    if cfg["feature_layers"] is None:
        del cfg["feature_layers"]  # a one-layer head's config reads as before
    if packing != "bfloat16":
        cfg["packing"] = packing
    (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=1) + "\n")
    return folder


def load_head(folder: str | Path, device: torch.device, dtype: torch.dtype) -> FeatureHead:
    """A saved head, on ``device`` in ``dtype``. Raises ValueError with one line if the folder
    does not hold one."""
    from safetensors.torch import load_file
    folder = Path(folder)
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        known = set(HeadConfig.__dataclass_fields__)
        cfg = HeadConfig(**{k: v for k, v in raw.items() if k in known})
        tuples = {k: tuple(getattr(cfg, k)) for k in ("vocab_ids", "feature_layers")
                  if getattr(cfg, k) is not None}
        cfg = dataclasses.replace(cfg, **tuples)
        head = FeatureHead(cfg)
        head.load_state_dict(_unpacked(load_file(str(folder / WEIGHTS_FILE))))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f"{folder} does not hold a feature head ({type(e).__name__})"
                         ) from None
    return head.to(device=device, dtype=dtype).eval()
