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
"""

from __future__ import annotations

import json
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

    @classmethod
    def for_target(cls, target: torch.nn.Module, vocab_ids=None, source: str = ""
                   ) -> "HeadConfig":
        c, s = target.config, Shape.of(target.config)
        return cls(c.hidden_size, s.n_heads, s.n_kv, s.head_dim, c.intermediate_size, s.eps,
                   c.vocab_size, None if vocab_ids is None else tuple(int(i) for i in vocab_ids),
                   source)


class FeatureHead(torch.nn.Module):
    """The head's own weights (fc, one decoder layer, norm), in the static engine's layout."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        H, D, inter = cfg.hidden, cfg.head_dim, cfg.intermediate
        qkv = (cfg.n_heads + 2 * cfg.n_kv) * D
        self.fc = torch.nn.Linear(2 * H, H)
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

    def layer(self) -> _Layer:
        return _Layer(self.ln1, self.wqkv, None, self.wo, None, self.ln2, self.wgu, self.wdown)

    def out_weight(self, lm_head: torch.Tensor) -> torch.Tensor:
        """The rows of the target's output layer (V, H) the head predicts over."""
        return lm_head if self.cfg.vocab_ids is None else lm_head.index_select(0,
                                                                               self.vocab_ids)

    def forward(self, feats: torch.Tensor, next_emb: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        """Training pass over whole sequences: feats (B, T, H) target features, next_emb
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
        x_in = feats
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
        """feats (T, H), next_ids (T,), pos (T,) -> h (T, H); writes the rows' keys/values.
        A token tree's rows give their cache ``slots`` and attention ``bias`` (as
        ``StaticLlama.forward`` takes them); by default slots = positions, causal."""
        x = _linear(torch.cat([feats.to(self.embed.dtype), F.embedding(next_ids, self.embed)],
                              dim=-1), self.head.fc.weight, self.head.fc.bias)
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


def save_head(head: FeatureHead, folder: str | Path) -> Path:
    """The head's weights (safetensors) and config (JSON) into ``folder``."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to(torch.bfloat16).contiguous().cpu()
               for k, v in head.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE))
    cfg = asdict(head.cfg)
    cfg["vocab_ids"] = list(cfg["vocab_ids"]) if cfg["vocab_ids"] is not None else None
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
        if cfg.vocab_ids is not None:
            cfg = HeadConfig(**{**asdict(cfg), "vocab_ids": tuple(cfg.vocab_ids)})
        head = FeatureHead(cfg)
        head.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise ValueError(f"{folder} does not hold a feature head ({type(e).__name__})"
                         ) from None
    return head.to(device=device, dtype=dtype).eval()
