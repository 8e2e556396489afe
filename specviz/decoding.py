"""Running speculative decoding and recording every step.

The algorithm itself is specviz.core.algorithm (draft -> verify -> accept -> commit); this
module chooses the engine, builds the models' forward passes and the drafter for it, runs the
steps, and turns each into a StepRecord (timings, texts, top-k alternatives), written as it
is made. Nothing here decides which token is emitted. A run's settings (DecodeConfig) and its
error (DecodeError) live in specviz.decode_config.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import uuid
import weakref
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .core.algorithm import Decoder, Step, steps
from .core.drafters import (
    DRAFTERS,  # noqa: F401  (re-exported: the app lists the drafters)
    FeatureHeadDrafter,
    ModelDrafter,
    PromptLookupDrafter,
    check_early_exit_layers,
)
from .core.policies import make_policy
from .core.state import RunState
from .core.tree_decoder import TreeDecoder, TreeShape, tree_draft
from .decode_config import DecodeConfig, DecodeError
from .engines import skinny
from .engines.eager import CachedLM, truncated_model
from .engines.phases import EagerPhases, GraphPhases, HostCopier
from .engines.static import (
    ENGINES,  # noqa: F401  (re-exported: the app lists the engines)
    StaticLlama,
    Unsupported,
    bucket,
    check_against,
    check_supported,
    fused_layers,
    stacked_layers,
)
from .errors import one_line
from .models import check_prompt_size
from .models.feature_head import StaticHead
from .traces.records import RunRecord, StepRecord, Trace, TraceWriter, summarize

StepCallback = Callable[[StepRecord], None]


class _Clock:
    """Phase times. On CUDA: events, read after the step's single transfer (no extra sync)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3


class _TokenText:
    """Token id -> display text, cached per tokenizer across runs (decoding one id at a time
    is slow, and a step shows dozens of ids)."""

    _caches: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def __init__(self, tokenizer):
        self.tok = tokenizer
        try:
            self.cache: dict[int, str] = self._caches.setdefault(tokenizer, {})
        except TypeError:  # a tokenizer that cannot be weakly referenced: cache per run
            self.cache = {}

    def __call__(self, ids) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            s = self.cache.get(i)
            if s is None:
                s = self.cache[i] = self.tok.decode([i])
            out.append(s)
        return out


def encode_prompt(tokenizer, prompt: str, chat: bool) -> list[int]:
    """Prompt text -> token ids, through the chat template when asked and one exists."""
    if chat and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


def check_drafter(pair, config: DecodeConfig) -> None:
    """Raise ValueError (one line) when the pair cannot run the config's drafter."""
    if config.drafter == "model" and pair.draft is None:
        raise ValueError("the 'model' drafter needs a draft model; give one, or choose "
                         "the prompt-lookup or early-exit drafter")
    if config.drafter == "feature-head" and getattr(pair, "head", None) is None:
        raise ValueError("the 'feature-head' drafter needs a feature head for this target; "
                         "the embedded SmolLM2 target ships one")
    if config.drafter == "early-exit":
        check_early_exit_layers(pair.target, config.early_exit_layers)


def _f32(a) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32."""
    return [float(str(x)) for x in np.asarray(a, dtype=np.float32)]


def _run_record(pair, config: DecodeConfig, mode: str, prompt: str, prompt_ids: list[int],
                label: str, command: str = "", engine: dict | None = None,
                baseline_of: str = "") -> RunRecord:
    from .models import hardware_info
    cfg = asdict(config)
    if mode == "target-only":
        for k in ("drafter", "gamma", "policy", "confidence_threshold", "early_exit_layers"):
            cfg.pop(k)
    draft = None
    if mode == "speculative" and config.drafter == "model":
        draft = dict(pair.draft_info)
    elif mode == "speculative" and config.drafter == "feature-head":
        draft = {**pair.head_info, "reads": "the target's last hidden states"}
    elif mode == "speculative" and config.drafter == "early-exit":
        n, t = config.early_exit_layers, pair.target_info
        view = truncated_model(pair.target, min(n, max(t["n_layers"] - 1, 1)))
        unique = {id(w): w.numel() for w in view.parameters()}  # tied weights once
        draft = {**t, "source": f"{t['source']} (first {n} of {t['n_layers']} layers)",
                 "n_layers": n, "n_params": sum(unique.values()),
                 "shares_target_weights": True}
    return RunRecord(
        run_id=uuid.uuid4().hex[:12],
        mode=mode,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        specviz_version=__version__,
        target=dict(pair.target_info),
        draft=draft,
        drafter=config.drafter if mode == "speculative" else None,
        config=cfg,
        prompt_text=prompt,
        prompt_token_ids=list(prompt_ids),
        hardware={**hardware_info(pair.device), **({"engine": engine} if engine else {})},
        label=label,
        command=command,
        prompt_last_text=_TokenText(pair.tokenizer)(prompt_ids[-1:])[0] if prompt_ids else "",
        baseline_of=baseline_of,
    )


def _prepare(pair, prompt: str, config: DecodeConfig) -> tuple[list[int], int]:
    config.check()
    check_prompt_size(pair.tokenizer, prompt, pair.context_length)  # before tokenizing
    ids = encode_prompt(pair.tokenizer, prompt, config.chat)
    if not ids:
        raise ValueError("the prompt is empty")
    limit = pair.context_length
    if len(ids) >= limit:
        raise ValueError(f"the prompt has {len(ids)} tokens; the target's context holds "
                         f"{limit}")
    return ids, limit


@torch.inference_mode()
def speculative_decode(pair, prompt: str, config: DecodeConfig = DecodeConfig(), *,
                       on_step: StepCallback | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       writer: TraceWriter | None = None, label: str = "",
                       command: str = "") -> Trace:
    """Speculative decoding of ``prompt`` with ``pair``; returns the full trace.

    ``on_step`` gets each step record as soon as it is verified; ``should_stop`` is asked
    between steps and ends the run early (the trace is kept, stop_reason "stopped");
    ``writer`` receives each record as it is made. On failure a DecodeError carries the
    partial trace.
    """
    prompt_ids, limit = _prepare(pair, prompt, config)
    check_drafter(pair, config)
    path, why = resolve_engine(pair, config, "speculative")
    run = _run_record(pair, config, "speculative", prompt, prompt_ids, label, command,
                      _engine_info(pair, path, why))
    shape = config.tree_shape
    policy = make_policy(config.policy, shape.depth if shape else config.gamma,
                         config.confidence_threshold)
    return _loop(pair, run, prompt_ids, limit, config, path, policy, on_step, should_stop,
                 writer)


@torch.inference_mode()
def target_only_decode(pair, prompt: str, config: DecodeConfig = DecodeConfig(), *,
                       on_step: StepCallback | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       writer: TraceWriter | None = None, label: str = "",
                       command: str = "", baseline_of: str = "") -> Trace:
    """Plain autoregressive decoding with the target: one token per step, same trace format
    (gamma 0; each step's token is recorded with kind "bonus", a token drawn from p).
    ``baseline_of``: the run_id of the speculative run this one is the baseline of (written
    into its run record, so the views pair the two and no other)."""
    prompt_ids, limit = _prepare(pair, prompt, config)
    path, why = resolve_engine(pair, config, "target-only")
    run = _run_record(pair, config, "target-only", prompt, prompt_ids, label, command,
                      _engine_info(pair, path, why), baseline_of)
    return _loop(pair, run, prompt_ids, limit, config, path, None, on_step, should_stop,
                 writer)


def resolve_engine(pair, config: DecodeConfig, mode: str) -> tuple[str, str]:
    """Which engine runs: ("eager" | "static" | "graphs", why). Raises ValueError when an
    engine asked for by name cannot run this pair."""
    want = config.engine
    tree = mode == "speculative" and config.tree_shape is not None
    if want == "eager":
        return "eager", "asked for"
    cuda = pair.device.type == "cuda"
    models = [pair.target]
    if mode == "speculative" and config.drafter == "model" and pair.draft is not None:
        models.append(pair.draft)
    try:
        for m in models:
            check_supported(m)
    except Unsupported as e:
        if want == "auto":
            return "eager", str(e)
        raise ValueError(str(e)) from None
    if tree and want == "auto":
        return ("graphs", "token tree, CUDA device") if cuda else ("static", "token tree")
    if want == "graphs" and not cuda:
        raise ValueError(f"CUDA graphs need a CUDA device; this pair is on {pair.device}")
    if want == "auto":
        return ("graphs", "CUDA device") if cuda else ("eager", "no CUDA device")
    return want, "asked for"


def _engine_info(pair, path: str, why: str) -> dict:
    rows = (path != "eager" and pair.device.type == "cuda" and skinny.available()
            and pair.target.dtype == torch.float32)  # float32 few-row products on Triton
    return {"path": path, "cuda_graphs": path == "graphs", "static_cache": path != "eager",
            "row_kernel": rows, "fused": path != "eager" and fused_layers(), "why": why}


# ---------------------------------------------------------------- the models per engine

def _eager_parts(pair, config: DecodeConfig, kind: str | None, max_len: int):
    """transformers' forward with dynamic caches: fresh for every run."""
    s = config.sampling
    drafter = None
    if kind == "model":
        drafter = ModelDrafter(CachedLM(pair.draft, max_len), s)
    elif kind == "early-exit":
        drafter = ModelDrafter(CachedLM(truncated_model(pair.target, config.early_exit_layers),
                                        max_len), s)
    elif kind == "prompt-lookup":
        drafter = PromptLookupDrafter()
    elif kind == "feature-head":
        drafter = FeatureHeadDrafter(StaticHead(pair.head, pair.target, max_len), s)
    state = RunState(max_len, pair.target.config.vocab_size, pair.device,
                     _hidden(pair) if kind == "feature-head" else None)
    target = CachedLM(pair.target, max_len)
    if kind == "feature-head":  # the hidden states the head reads
        target.feature_layers = pair.head.feature_taps
    return target, drafter, state, EagerPhases(), None


def _hidden(pair) -> int:
    """Width of the features a head reads (its target's hidden size per layer read)."""
    return getattr(pair.head, "feature_width", pair.target.config.hidden_size)


class _Workspace:
    """The static engine's state for one shape of run, reused by later runs of that shape
    (so CUDA graphs are captured once): the static forwards, the device buffers, the graphs.
    ``lock`` keeps two runs from sharing it at once."""

    def __init__(self, target: StaticLlama, draft: StaticLlama | StaticHead | None,
                 vocab: int, graphs: bool):
        self.target, self.draft = target, draft
        hidden = draft.feature_width if isinstance(draft, StaticHead) else None
        if isinstance(draft, StaticHead):  # the hidden states the head reads
            target.feature_layers = draft.feature_taps
        self.state = RunState(target.max_len, vocab, target.embed.device, hidden)
        self.phases = GraphPhases(self._save_p, fused_layers()) if graphs else EagerPhases()
        self.lock = threading.Lock()

    def _save_p(self) -> Callable[[], None]:
        saved = self.state.P.clone()
        return lambda: self.state.P.copy_(saved)


# model -> {shape key: workspace}; model -> its stacked layers; models checked once
_WORKSPACES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LAYERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _layers(model) -> list:
    if model not in _LAYERS:
        _LAYERS[model] = stacked_layers(model)
    return _LAYERS[model]


def _static_lm(model, n_layers: int | None, max_len: int) -> StaticLlama:
    layers = _layers(model)[:n_layers] if n_layers else _layers(model)
    lm = StaticLlama(model, layers, max_len)
    if n_layers is None and model not in _CHECKED:
        check_against(model, lm)
        _CHECKED[model] = True
    return lm


def _static_parts(pair, config: DecodeConfig, kind: str | None, max_len: int, graphs: bool):
    """A free workspace of the right shape (cached), or a private one if it is in use."""
    draft_model = pair.draft if kind == "model" else None
    n_layers = config.early_exit_layers if kind == "early-exit" else None
    max_len = bucket(max_len)
    key = (id(draft_model), id(pair.head) if kind == "feature-head" else None, kind, n_layers,
           max_len, graphs, fused_layers(), skinny.enabled())
    spaces = _WORKSPACES.setdefault(pair.target, {})
    ws = spaces.get(key)
    release = None
    if ws is None or not ws.lock.acquire(blocking=False):
        draft = None
        if draft_model is not None:
            draft = _static_lm(draft_model, None, max_len)
        elif kind == "feature-head":
            draft = StaticHead(pair.head, pair.target, max_len)
        elif n_layers is not None:  # its range was checked by check_drafter
            draft = StaticLlama(pair.target, _layers(pair.target)[:n_layers], max_len)
        fresh = _Workspace(_static_lm(pair.target, None, max_len), draft,
                           pair.target.config.vocab_size, graphs)
        if ws is None:  # the first of its shape: cache it
            spaces[key] = ws = fresh
            ws.lock.acquire()
        else:  # the cached one is busy (another run): a private one
            ws = fresh
            fresh.lock.acquire()
    release = ws.lock.release
    s = config.sampling
    if isinstance(ws.draft, StaticHead):
        drafter = FeatureHeadDrafter(ws.draft, s)
    elif ws.draft is not None:
        drafter = ModelDrafter(ws.draft, s)
    else:
        drafter = PromptLookupDrafter() if kind == "prompt-lookup" else None
    return ws.target, drafter, ws.state, ws.phases, release


# ---------------------------------------------------------------- the run

_GC_LOCK = threading.Lock()
_GC_HOLDERS = [0, False]  # runs inside _no_gc_pauses; whether automatic collection was on


@contextlib.contextmanager
def _no_gc_pauses():
    """Automatic garbage collection off while steps run (across threads: on again when the
    last run ends, if it was on before the first). A full collection walks every object of
    the process (~400 k with torch and transformers loaded: 60–160 ms), and the objects a
    traced run keeps make one due every few hundred steps; in the middle of a run it stalls
    the device for dozens of steps. Step records hold no reference cycles, so reference
    counting frees everything the loop drops."""
    with _GC_LOCK:
        if _GC_HOLDERS[0] == 0:
            _GC_HOLDERS[1] = gc.isenabled()
            gc.disable()
        _GC_HOLDERS[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDERS[0] -= 1
            if _GC_HOLDERS[0] == 0 and _GC_HOLDERS[1]:
                gc.enable()

@dataclass
class _Totals:
    """A run's running totals (all an untraced run keeps of its steps)."""

    steps: int = 0
    emitted: int = 0
    drafted: int = 0
    accepted: int = 0
    evaluated: int = 0
    draft_passes: int = 0

    def add(self, step: Step, draft_passes: int) -> None:
        g, n = step.launched.gamma, step.n_accepted
        self.steps += 1
        self.emitted += len(step.new_ids)
        self.drafted += g
        self.accepted += n
        self.evaluated += min(g, n + 1) if step.judged is None else step.judged
        self.draft_passes = draft_passes

    def into(self, summary, output_ids: list[int], wall: float):
        """The summary of an untraced run: its totals from these counters."""
        return replace(summary, output_token_ids=output_ids, n_steps=self.steps,
                       n_drafted=self.drafted, n_accepted=self.accepted,
                       n_emitted=self.emitted,
                       alpha_hat=self.accepted / self.evaluated if self.evaluated else None,
                       mean_accepted_length=self.emitted / max(self.steps, 1),
                       tokens_per_s=round(self.emitted / wall, 3) if wall > 0 else 0.0)


# Sampled token-tree steps replayed as CUDA graphs on the graphed engine (their draws are made
# outside the phases, as graphs need); False runs their phases directly (6-7 times slower on
# an H200, docs/benchmarks.md)
GRAPH_SAMPLED_TREES = True


def _decoder(pair, config: DecodeConfig, path: str, kind: str | None, shape, max_len: int,
             gen: torch.Generator, clock: _Clock):
    """The run's decoder on its engine: (decoder, drafter, release of the workspace)."""
    try:
        if path == "eager":
            parts = _eager_parts(pair, config, kind, max_len)
        else:
            parts = _static_parts(pair, config, kind, max_len, graphs=path == "graphs")
    except Unsupported as e:
        raise ValueError(str(e)) from None
    target, drafter, state, phases, release = parts
    copier = HostCopier(pair.device)
    if shape is not None:
        graphed = config.sampling.greedy or GRAPH_SAMPLED_TREES
        return (TreeDecoder(target, tree_draft(drafter, config.sampling, shape.depth), state,
                            phases if graphed else EagerPhases(), shape,
                            config.sampling, config.verifier, gen, copier.start,
                            copier.finish, config.trace_detail, config.top_alternatives,
                            clock.mark),
                drafter, release)
    return (Decoder(target, drafter, state, phases, config.sampling, config.verifier, gen,
                    copier.start, copier.finish, config.trace_detail, config.top_alternatives,
                    clock.mark), drafter, release)


class _Budget:
    """When a run ends, and each step's draft length until then."""

    def __init__(self, config: DecodeConfig, policy, should_stop, n_prompt: int, limit: int):
        self.config, self.policy, self.should_stop = config, policy, should_stop
        self.n_prompt, self.limit = n_prompt, limit
        self.host: list[int] = []  # the committed tokens (the decoder's, once it starts)
        self.stop_reason = "max_new_tokens"

    def next_gamma(self) -> int | None:
        """The next step's draft length, or None when the run ends (stop_reason set)."""
        remaining = self.config.max_new_tokens - (len(self.host) - self.n_prompt)
        room = self.limit - len(self.host)
        if remaining <= 0:
            return None
        if room <= 0:
            self.stop_reason = "context"
            return None
        if self.should_stop is not None and self.should_stop():
            self.stop_reason = "stopped"
            return None
        return min(self.policy.next_gamma(), remaining - 1, room - 1) if self.policy else 0

    def update(self, gamma: int, n_accepted: int) -> None:
        if self.policy is not None:
            self.policy.update(gamma, n_accepted)


@dataclass
class _Kept:
    """What a run keeps of its steps: records (traced), running totals (always)."""

    run: RunRecord
    tokenizer: Any
    budget: _Budget
    detail: bool
    t_start: float = 0.0
    records: list[StepRecord] = field(default_factory=list)
    totals: _Totals = field(default_factory=_Totals)

    def trace(self, reason: str) -> Trace:
        """The run so far as a trace that ended for ``reason``."""
        wall = time.perf_counter() - self.t_start
        new = self.budget.host[self.budget.n_prompt:]
        out = self.tokenizer.decode(new, skip_special_tokens=False)
        summary = summarize(self.run, self.records, wall_s=wall, output_text=out,
                            stop_reason=reason, target_forward_passes=self.totals.steps,
                            draft_forward_passes=self.totals.draft_passes)
        if not self.detail:  # no step records were kept: totals come from the counters
            summary = self.totals.into(summary, new, wall)
        return Trace(self.run, tuple(self.records), summary)


def _loop(pair, run: RunRecord, prompt_ids: list[int], limit: int, config: DecodeConfig,
          path: str, policy, on_step, should_stop, writer) -> Trace:
    device = pair.device
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    text, clock = _TokenText(pair.tokenizer), _Clock(device)
    kind = config.drafter if policy is not None else None
    budget = _Budget(config, policy, should_stop, len(prompt_ids), limit)
    budget.host = list(prompt_ids)
    kept = _Kept(run, pair.tokenizer, budget, bool(config.trace_detail))
    if not kept.detail:
        writer = None  # untraced runs (for measuring tracing cost) keep no step records
    shape = config.tree_shape if policy is not None else None
    dec, drafter, release = _decoder(pair, config, path, kind, shape,
                                     _cache_len(len(prompt_ids), config, shape), gen, clock)
    counts_q = drafter is not None and drafter.has_q
    # the clock starts once the engine is ready: building a static engine's workspace (and
    # checking it against transformers) happens once per shape in a process, not per run
    kept.t_start = time.perf_counter()
    if writer is not None:
        writer.write(run)
    with _no_gc_pauses():  # records are made while the device runs the next step
        try:
            dec.start(prompt_ids)
            budget.host = dec.host  # the committed tokens, as the decoder extends them
            for step in steps(dec, budget.next_gamma, set(pair.eos_ids),
                              policy.stop_below if policy else None,
                              overlap=device.type == "cuda", update=budget.update):
                kept.totals.add(step, dec.draft_passes if shape is not None else
                                kept.totals.draft_passes +
                                (step.launched.gamma if counts_q else 0))
                if step.eos:
                    budget.stop_reason = "eos"
                if kept.detail:
                    rec = _record(step, len(kept.records), text, clock, kept.t_start)
                    kept.records.append(rec)
                    if writer is not None:
                        writer.write(rec)
                    if on_step is not None:
                        on_step(rec)
        except KeyboardInterrupt:
            budget.stop_reason = "stopped"
        except Exception as e:  # keep what finished; say plainly what broke
            trace = kept.trace("error")
            if writer is not None:
                writer.write(trace.summary)
            raise DecodeError(f"decoding failed after {len(kept.records)} steps: {_short(e)}",
                              trace) from e
        finally:
            if release is not None:
                release()
    trace = kept.trace(budget.stop_reason)
    if writer is not None:
        writer.write(trace.summary)
    return trace


def _cache_len(n_prompt: int, config: DecodeConfig, shape: TreeShape | None) -> int:
    """KV cache slots a run needs: the prompt, its new tokens and one more; a tree step also
    writes its nodes (or its draft rows) after the prefix and moves its path of up to its
    depth right after it."""
    extra = max(shape.nodes, shape.draft_rows) + shape.depth + 2 if shape else 0
    return n_prompt + config.max_new_tokens + 1 + extra


def _record(step: Step, index: int, text, clock: _Clock, t_start: float) -> StepRecord:
    """The step's record: its device data (specviz.core.layout) with texts and timings."""
    d, g, n = step.data, step.launched.gamma, step.n_accepted
    drafted = d["drafted"].astype(np.int64).tolist()
    m0, m1, m2 = step.launched.marks
    draft_ms, verify_ms = clock.ms(m0, m1), clock.ms(m1, m2)
    total_ms = (step.t1 - step.launched.t0) * 1e3
    has_q = "q_tok" in d
    top: dict = {"q_top_ids": None, "q_top_texts": None, "q_top_probs": None}
    for who in ("p", "q") if has_q else ("p",):
        if g:
            ids = d[f"{who}_top_ids"].astype(np.int64).tolist()
            top.update({f"{who}_top_ids": ids, f"{who}_top_texts": [text(r) for r in ids],
                        f"{who}_top_probs": [_f32(r) for r in d[f"{who}_top_probs"]]})
        else:
            top.update({f"{who}_top_ids": [], f"{who}_top_texts": [], f"{who}_top_probs": []})
    u, tree = d.get("u"), "parent" in d
    if tree:  # untried nodes: None
        judged = d["tried"].astype(bool).tolist()
        accept_prob = [x if t else None for x, t in zip(_f32(d["accept_prob"]), judged)]
        u = None if u is None else [x if t else None for x, t in zip(_f32(u), judged)]
    else:
        accept_prob = _f32(d["accept_prob"])
        u = None if u is None else [x if i <= n else None for i, x in enumerate(_f32(u))]
    return StepRecord(
        step=index, gamma=g, drafted_ids=drafted, drafted_text=text(drafted),
        q=_f32(d["q_tok"]) if has_q else None, p=_f32(d["p_tok"]),
        accept_prob=accept_prob, u=u,
        accepted=d["accepted"].astype(bool).tolist(), emitted_ids=step.new_ids,
        emitted_text=text(step.new_ids), emitted_kinds=step.kinds, **top,
        beta=_f32(d["beta"]) if "beta" in d else None,
        draft_ms=round(draft_ms, 4), verify_ms=round(verify_ms, 4),
        accept_ms=round(max(total_ms - draft_ms - verify_ms, 0.0), 4),
        total_ms=round(total_ms, 4), t_end_s=round(step.t1 - t_start, 6),
        tree_parent=d["parent"].astype(np.int64).tolist() if tree else None)


def _short(e: BaseException) -> str:
    if isinstance(e, torch.OutOfMemoryError):
        return "out of memory on the device (try a shorter run, float16/bfloat16, or the CPU)"
    return one_line(e, with_type=False)
