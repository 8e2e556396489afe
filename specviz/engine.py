"""The static engine: Llama-family forward passes over preallocated KV caches, replayed as
CUDA graphs on a GPU.

Why: transformers' eager forward launches its many small kernels one by one from Python. On a
fast GPU those launches, not the arithmetic, set the pace (the 135M target takes about the
same 25-30 ms per pass on an H200 whether it holds 1 or 5 tokens). Here everything a step
needs lives on the device at fixed addresses (the committed sequence, its length P, both KV
caches, the drafted tokens and their q), so each phase of a step has fixed shapes and is
captured once as a CUDA graph, then replayed:

- draft (one graph per gamma): feed the draft the newest committed tokens, then draft gamma
  tokens one at a time (their q and the choices go to static buffers);
- verify (one graph per verify length gamma + 1): one target pass over the last committed
  token and every draft, giving p;
- accept (one graph per gamma): the verifier, the committed tokens written into the sequence
  buffer, P advanced, and the step's trace data packed into one buffer.

Random numbers are drawn before the step, into noise buffers, with the run's generator, so the
graphs themselves are deterministic functions of their buffers. The host reads the packed
buffer once per step: that copy is the step's only synchronisation (the confidence policy
adds one: it reads q's maxima to decide how many drafts to keep).

Without CUDA (or with graphs switched off) the same functions run eagerly: the "static" path,
which the CPU tests use to check this engine against transformers' forward.
Cache invariant as in the eager loop: the target's cache holds every committed token but the
last; the draft's, every committed token but the last two (its pass re-feeds both).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .limits import GAMMA_MAX
from .sampling import Sampling, choose, logits_to_probs
from .verify import verify_greedy, verify_sampled

ENGINES = ("auto", "eager", "static", "graphs")
_ROPE_TYPES = ("default", "linear", "llama3")  # position tables that do not change with length


class Unsupported(ValueError):
    """The static engine cannot run this model; the message says why in one line."""


def check_supported(model: torch.nn.Module) -> None:
    """Raise Unsupported unless ``model`` is a Llama-family causal LM this engine can run."""
    cfg = model.config
    kind = getattr(cfg, "model_type", None)
    if kind != "llama":
        raise Unsupported(f"the static engine runs Llama models; this one is {kind!r}")
    if getattr(cfg, "hidden_act", "silu") != "silu":
        raise Unsupported(f"the static engine needs SiLU MLPs, not {cfg.hidden_act!r}")
    if getattr(cfg, "mlp_bias", False):
        raise Unsupported("the static engine does not run MLP biases")
    rope = getattr(model.model.rotary_emb, "rope_type", "default")
    if rope not in _ROPE_TYPES:
        raise Unsupported(f"the static engine does not run {rope!r} rotary embeddings")


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
    return (h.is_cuda and 2 <= h.shape[0] <= _BATCHED_GEMV_MAX_ROWS
            and w.numel() <= _BATCHED_GEMV_MAX_WEIGHT)


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """h (T, in) @ w.T (+ b) -> (T, out), by whichever kernel is faster for the shape."""
    if _rows_as_gemv(h, w):
        y = torch.bmm(w.expand(h.shape[0], *w.shape), h.unsqueeze(-1)).squeeze(-1)
        return y if b is None else y + b
    return F.linear(h, w, b)


def _add_linear(x: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor | None = None) -> torch.Tensor:
    """x + h @ w.T (+ b); as one GEMM the add rides on its epilogue (one kernel, not two)."""
    if b is not None or _rows_as_gemv(h, w):
        return x + _linear(h, w, b)
    return torch.addmm(x, h, w.t())


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


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
        self.eps = cfg.rms_norm_eps
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.group = self.n_heads // self.n_kv
        self.scale = self.head_dim ** -0.5
        self.max_len = max_len
        dev, dtype = self.embed.device, self.embed.dtype
        pos = torch.arange(max_len, device=dev)[None]  # (1, max_len)
        cos, sin = model.model.rotary_emb(self.embed[:1][None], pos)  # (1, max_len, D)
        self.cos, self.sin = cos[0], sin[0]  # (max_len, D)
        shape = (len(layers), self.n_kv, max_len, self.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=dev)
        self.v = torch.zeros(shape, dtype=dtype, device=dev)
        self.key_pos = torch.arange(max_len, device=dev)  # (max_len,)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, logits: str = "all"
                ) -> torch.Tensor | None:
        """ids (T,), pos (T,) -> logits (T, V); ``logits`` "last" gives (1, V), "none" None.

        Written for few kernel launches at batch 1: q, k and v come from one matmul and get
        their rotary embedding together; attention is two batched matmuls and a softmax over
        the whole static cache, with the positions after each token masked out.
        """
        T, nh, nkv, D, g = ids.shape[0], self.n_heads, self.n_kv, self.head_dim, self.group
        x = F.embedding(ids, self.embed)  # (T, H)
        cos = self.cos.index_select(0, pos)[None]  # (1, T, D)
        sin = self.sin.index_select(0, pos)[None]
        bias = torch.where(self.key_pos[None, :] <= pos[:, None], 0.0, float("-inf"))
        bias = bias.to(x.dtype).repeat(g, 1)  # (g*T, L): query rows grouped by kv head
        for i, w in enumerate(self.layers):
            h = _rms(x, w.ln1, self.eps)
            qkv = _linear(h, w.wqkv, w.bqkv).view(T, nh + 2 * nkv, D).transpose(0, 1)
            qk = qkv[:nh + nkv]  # (nh + nkv, T, D)
            qk = qk * cos + _rotate_half(qk) * sin
            self.k[i].index_copy_(1, pos, qk[nh:])
            self.v[i].index_copy_(1, pos, qkv[nh + nkv:])
            q = qk[:nh].reshape(nkv, g * T, D)  # query heads sharing a kv head, stacked
            scores = torch.baddbmm(bias, q, self.k[i].transpose(1, 2), alpha=self.scale)
            o = torch.bmm(torch.softmax(scores, dim=-1), self.v[i])  # (nkv, g*T, D)
            o = o.view(nh, T, D).transpose(0, 1).reshape(T, nh * D)
            x = _add_linear(x, o, w.wo, w.bo)  # the residual add rides on the matmul
            gate, up = _linear(_rms(x, w.ln2, self.eps), w.wgu).chunk(2, dim=-1)
            x = _add_linear(x, F.silu(gate) * up, w.wdown)
        if logits == "none":
            return None
        if logits == "last":
            x = x[-1:]
        return F.linear(_rms(x, self.norm, self.eps), self.lm_head)  # (T, V)


def check_against(model: torch.nn.Module, engine: StaticLlama, n_tokens: int = 6) -> None:
    """Raise Unsupported if the engine's logits differ from transformers' on a short input."""
    dev = engine.embed.device
    vocab = engine.embed.shape[0]
    ids = (torch.arange(n_tokens, device=dev) * 7919 + 11) % vocab
    with torch.inference_mode():
        ref = model(input_ids=ids[None], use_cache=False).logits[0].float()  # (T, V)
        got = engine.forward(ids, torch.arange(n_tokens, device=dev)).float()
    err = float((ref - got).abs().max() / ref.abs().max().clamp_min(1e-6))
    if not err < 1e-3:
        raise Unsupported(f"the static engine's logits differ from transformers' "
                          f"(relative error {err:.1e}) for this model")


class _Graphs:
    """Runs step functions eagerly, or captures each once as a CUDA graph and replays it."""

    def __init__(self, enabled: bool, restore: Callable[[], Callable[[], None]]):
        self.enabled = enabled
        self.restore = restore  # saves the state a warm-up run changes; returns its undo
        self.graphs: dict = {}

    def __len__(self) -> int:
        return len(self.graphs)

    def run(self, key, fn: Callable[[], torch.Tensor | None]):
        if not self.enabled:
            return fn()
        hit = self.graphs.get(key)
        if hit is None:
            undo = self.restore()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture, as CUDA graphs require
                fn()
                undo()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread (a second app session) may use the GPU meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = fn()
            undo()
            hit = self.graphs[key] = (graph, out)
        hit[0].replay()
        return hit[1]


class StaticState:
    """One run's device state: the committed sequence and its length P, the static target
    (and draft) engines, drafted tokens with their q, noise for sampling, and the graphs
    captured over all of them. Reused by later runs of the same shape; ``lock`` keeps two
    runs from sharing it at once."""

    def __init__(self, target: StaticLlama, draft: StaticLlama | None, graphs: bool):
        self.target, self.draft = target, draft
        dev = target.embed.device
        vocab = target.lm_head.shape[0]
        self.max_len = target.max_len
        self.seq = torch.zeros(self.max_len, dtype=torch.long, device=dev)
        self.P = torch.zeros(1, dtype=torch.long, device=dev)  # committed length
        self.drafted = torch.zeros(GAMMA_MAX, dtype=torch.long, device=dev)
        self.q = torch.zeros(GAMMA_MAX, vocab, dtype=torch.float32, device=dev)
        self.e_draft = torch.ones(GAMMA_MAX, vocab, dtype=torch.float32, device=dev)
        self.e_next = torch.ones(vocab, dtype=torch.float32, device=dev)
        self.u = torch.zeros(GAMMA_MAX, dtype=torch.float32, device=dev)
        self.steps = torch.arange(GAMMA_MAX + 1, device=dev)
        self.staging = torch.zeros(GAMMA_MAX, dtype=torch.long,
                                   pin_memory=dev.type == "cuda")
        self.graphs = _Graphs(graphs and dev.type == "cuda", self._save_p)
        self.lock = threading.Lock()

    def _save_p(self) -> Callable[[], None]:
        saved = self.P.clone()
        return lambda: self.P.copy_(saved)

    # -- set-up -----------------------------------------------------------------------------
    def prefill(self, prompt_ids: list[int]) -> None:
        """Write the prompt to the sequence buffer and every prompt token but the last to the
        caches (eagerly: prompts vary in length)."""
        n = len(prompt_ids)
        ids = torch.tensor(prompt_ids, dtype=torch.long, device=self.seq.device)
        self.seq[:n] = ids
        self.P.fill_(n)
        if n > 1:
            pos = torch.arange(n - 1, device=self.seq.device)
            for engine in (self.target, self.draft):
                if engine is not None:
                    engine.forward(ids[:-1], pos, logits="none")

    def draw_noise(self, gamma: int, generator: torch.Generator) -> None:
        """Fresh randomness for a sampled step, outside the graphs."""
        self.e_draft[:gamma].exponential_(1.0, generator=generator)
        self.u[:gamma].uniform_(0.0, 1.0, generator=generator)
        self.e_next.exponential_(1.0, generator=generator)

    def put_drafts(self, ids: list[int]) -> None:
        """Drafts proposed on the host (prompt lookup) into the device buffer, without a sync."""
        k = len(ids)
        self.staging[:k] = torch.tensor(ids, dtype=torch.long)
        self.drafted[:k].copy_(self.staging[:k], non_blocking=True)

    # -- the three phases ---------------------------------------------------------------------
    def draft_step(self, gamma: int, tail: int, s: Sampling) -> None:
        """Draft gamma tokens: q into self.q[:gamma], tokens into self.drafted[:gamma]."""
        def fn():
            P = self.P
            pos = P - tail + self.steps[:tail]  # (tail,) the newest committed positions
            logits = self.draft.forward(self.seq.index_select(0, pos), pos, "last")[0]
            for i in range(gamma):
                q = logits_to_probs(logits, s)  # (V,)
                tok = choose(q, s, None, None if s.greedy else self.e_draft[i])
                self.q[i].copy_(q)
                self.drafted[i].copy_(tok)
                if i + 1 < gamma:
                    logits = self.draft.forward(tok.view(1), P + i, "last")[0]
        self.graphs.run(("draft", gamma, tail, s), fn)

    def verify_step(self, gamma: int, s: Sampling) -> torch.Tensor:
        """One target pass over [last committed token, drafts] -> p (gamma + 1, V)."""
        def fn():
            P = self.P
            pos = P - 1 + self.steps[:gamma + 1]  # (gamma + 1,)
            ids = torch.cat([self.seq.index_select(0, P - 1), self.drafted[:gamma]])
            return logits_to_probs(self.target.forward(ids, pos), s)
        return self.graphs.run(("verify", gamma, s), fn)

    def accept_step(self, gamma: int, p_probs: torch.Tensor, has_q: bool, s: Sampling,
                    rule: str, pack: Callable, pack_key) -> torch.Tensor:
        """Verify, commit on the device (sequence buffer and P), and pack the trace data.

        ``pack(drafted, verdict, p_probs, q_probs)`` builds the packed tensor; ``pack_key``
        names what it packs (graphs are kept per key)."""
        def fn():
            drafted = self.drafted[:gamma]
            q = self.q[:gamma] if has_q else None
            if s.greedy:
                v = verify_greedy(drafted, p_probs, q, rule)
            else:
                v = verify_sampled(drafted, p_probs, q, None, rule, u=self.u[:gamma],
                                   e=self.e_next)
            idx = self.steps[:gamma + 1]
            new = torch.where(idx < v.n_accepted,
                              torch.cat([drafted, drafted.new_zeros(1)]), v.next_token)
            self.seq.index_copy_(0, self.P + idx, new)
            self.P.add_(v.n_accepted + 1)
            return pack(drafted, v, p_probs, q)
        return self.graphs.run(("accept", gamma, has_q, s, rule, pack_key), fn)


def bucket(n: int) -> int:
    """Cache length for n positions: a multiple of 256, so that runs share graphs."""
    return max(256, -(-n // 256) * 256)


class HostCopier:
    """The step's one device -> host transfer. On CUDA it is asynchronous, into two pinned
    buffers used in turn, so the host can write one step's record while the GPU runs the
    next; ``finish`` waits for it. Elsewhere it is a plain copy."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.buffers: list[torch.Tensor] = []
        self.turn = 0

    def start(self, packed: torch.Tensor):
        if not self.cuda:
            return packed.cpu().numpy()
        n = packed.shape[0]
        if not self.buffers or self.buffers[0].shape[0] < n:
            self.buffers = [torch.empty(max(n, 4096), dtype=packed.dtype, pin_memory=True)
                            for _ in range(2)]
        buf = self.buffers[self.turn]
        self.turn ^= 1
        buf[:n].copy_(packed, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return buf, n, done

    def finish(self, started) -> np.ndarray:
        if not self.cuda:
            return started
        buf, n, done = started
        done.synchronize()
        return buf[:n].numpy()
