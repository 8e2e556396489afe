"""The speculative decoding loop, instrumented: every step returns a full record.

Phases, named as in the trace and the app: draft -> verify -> accept -> commit.
Both models keep KV caches. The target scores all drafted tokens in one forward pass; after a
rejection both caches are cut back to the accepted prefix; the prefix is never recomputed.
Cache invariant: a cache holds every committed token but the last, which the next forward
pass feeds.
"""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import torch
from transformers import DynamicCache

from . import __version__
from .drafters import (
    DRAFTERS,
    Candidates,
    EarlyExitDrafter,
    ModelDrafter,
    PromptLookupDrafter,
    check_early_exit_layers,
    crop_cache,
    lookup,
    truncated_model,
)
from .engine import (
    ENGINES,
    HostCopier,
    StaticLlama,
    StaticState,
    Unsupported,
    bucket,
    check_against,
    check_supported,
    stacked_layers,
)
from .errors import one_line
from .limits import (
    GAMMA_MAX,
    GAMMA_MIN,
    MAX_NEW_TOKENS_MAX,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    TOP_ALTERNATIVES_MAX,
)
from .models import check_prompt_size
from .policies import POLICIES, make_policy
from .sampling import Sampling, logits_to_probs
from .trace import RunRecord, StepRecord, Trace, TraceWriter, summarize
from .verify import RULES, verify_greedy, verify_sampled


@dataclass(frozen=True)
class DecodeConfig:
    """Everything that decides a run besides the models and the prompt."""

    drafter: str = "model"  # model | prompt-lookup | early-exit
    gamma: int = 4
    policy: str = "fixed"  # fixed | heuristic | confidence
    confidence_threshold: float = 0.4
    early_exit_layers: int = 4
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    max_new_tokens: int = 64
    chat: bool = True
    top_alternatives: int = 5  # top-k of p and q recorded per drafted position
    trace_detail: bool = True  # False: no per-step records (for measuring tracing cost)
    verifier: str = "exact"  # or a deliberately wrong rule of verify.RULES, for teaching
    engine: str = "auto"  # auto (CUDA graphs on a GPU, else eager) | eager | static | graphs

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_k, self.top_p)

    def check(self) -> None:
        """Raise ValueError with a one-line message for out-of-range settings."""
        if self.drafter not in DRAFTERS:
            raise ValueError(f"unknown drafter {self.drafter!r}; choose from "
                             f"{', '.join(DRAFTERS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose from "
                             f"{', '.join(POLICIES)}")
        if not GAMMA_MIN <= self.gamma <= GAMMA_MAX:
            raise ValueError(f"gamma must be between {GAMMA_MIN} and {GAMMA_MAX}, "
                             f"got {self.gamma}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if 0 < self.temperature < TEMPERATURE_MIN:
            raise ValueError(f"temperature {self.temperature:g} is too small: logits divided "
                             "by it can overflow and turn the probabilities into NaN; use 0 "
                             f"(greedy) or at least {TEMPERATURE_MIN}")
        if self.temperature > TEMPERATURE_MAX:
            raise ValueError(f"temperature must be at most {TEMPERATURE_MAX:g}, got "
                             f"{self.temperature:g} (beyond it every distribution is "
                             "practically uniform)")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must lie in (0, 1], got {self.top_p}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_MAX:
            raise ValueError(f"max new tokens must be between 1 and {MAX_NEW_TOKENS_MAX}, "
                             f"got {self.max_new_tokens}")
        if not 0 <= self.confidence_threshold <= 1:
            raise ValueError("confidence threshold must lie in [0, 1], got "
                             f"{self.confidence_threshold}")
        if self.early_exit_layers < 1:
            raise ValueError(f"early-exit layers must be >= 1, got {self.early_exit_layers}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        if self.verifier not in RULES:
            raise ValueError(f"unknown verifier {self.verifier!r}; choose from "
                             f"{', '.join(RULES)}")
        if not 1 <= self.top_alternatives <= TOP_ALTERNATIVES_MAX:
            raise ValueError(f"top alternatives must be between 1 and {TOP_ALTERNATIVES_MAX}, "
                             f"got {self.top_alternatives}")


class DecodeError(RuntimeError):
    """A run failed part way; ``partial`` holds the trace of the steps that finished."""

    def __init__(self, message: str, partial: Trace | None):
        super().__init__(message)
        self.partial = partial


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
    if config.drafter == "early-exit":
        check_early_exit_layers(pair.target, config.early_exit_layers)


def make_drafter(pair, config: DecodeConfig):
    check_drafter(pair, config)
    s = config.sampling
    if config.drafter == "model":
        return ModelDrafter(pair.draft, s)
    if config.drafter == "early-exit":
        return EarlyExitDrafter(pair.target, config.early_exit_layers, s)
    return PromptLookupDrafter()


def _f32(a) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32."""
    return [float(str(x)) for x in np.asarray(a, dtype=np.float32)]


def _run_record(pair, config: DecodeConfig, mode: str, prompt: str, prompt_ids: list[int],
                label: str, command: str = "", engine: dict | None = None) -> RunRecord:
    from .models import hardware_info
    cfg = asdict(config)
    if mode == "target-only":
        for k in ("drafter", "gamma", "policy", "confidence_threshold", "early_exit_layers"):
            cfg.pop(k)
    draft = None
    if mode == "speculative" and config.drafter == "model":
        draft = dict(pair.draft_info)
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
                      _engine_info(path, why))
    policy = make_policy(config.policy, config.gamma, config.confidence_threshold)
    return _loop(pair, run, prompt_ids, limit, config, path, policy, on_step, should_stop,
                 writer)


@torch.inference_mode()
def target_only_decode(pair, prompt: str, config: DecodeConfig = DecodeConfig(), *,
                       on_step: StepCallback | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       writer: TraceWriter | None = None, label: str = "",
                       command: str = "") -> Trace:
    """Plain autoregressive decoding with the target: one token per step, same trace format
    (gamma 0; each step's token is recorded with kind "bonus", a token drawn from p)."""
    prompt_ids, limit = _prepare(pair, prompt, config)
    path, why = resolve_engine(pair, config, "target-only")
    run = _run_record(pair, config, "target-only", prompt, prompt_ids, label, command,
                      _engine_info(path, why))
    return _loop(pair, run, prompt_ids, limit, config, path, None, on_step, should_stop,
                 writer)


def resolve_engine(pair, config: DecodeConfig, mode: str) -> tuple[str, str]:
    """Which engine runs: ("eager" | "static" | "graphs", why). Raises ValueError when an
    engine asked for by name cannot run this pair."""
    want = config.engine
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
    if want == "graphs" and not cuda:
        raise ValueError(f"CUDA graphs need a CUDA device; this pair is on {pair.device}")
    if want == "auto":
        return ("graphs", "CUDA device") if cuda else ("eager", "no CUDA device")
    return want, "asked for"


def _engine_info(path: str, why: str) -> dict:
    return {"path": path, "cuda_graphs": path == "graphs", "static_cache": path != "eager",
            "why": why}


def _pack(drafted: torch.Tensor, v, p_probs: torch.Tensor, q_probs: torch.Tensor | None,
          detail: bool, k_top: int) -> torch.Tensor:
    """Everything the step record needs, in one float32 tensor (read by _Unpack in order)."""
    gamma = drafted.shape[0]
    packed = [drafted.float(), v.accepted.float(), v.accept_prob.float(), v.p_tok.float(),
              v.n_accepted.float().view(1), v.next_token.float().view(1)]
    for extra in (v.u, v.q_tok, v.beta):
        if extra is not None:
            packed.append(extra.float())
    if detail and gamma:
        pt = torch.topk(p_probs[:gamma], min(k_top, p_probs.shape[-1]), dim=-1)
        packed += [pt.indices.float().flatten(), pt.values.flatten()]
        if q_probs is not None:
            qt = torch.topk(q_probs, min(k_top, q_probs.shape[-1]), dim=-1)
            packed += [qt.indices.float().flatten(), qt.values.flatten()]
    return torch.cat(packed)


@dataclass
class _Step:
    """What one step's device work hands back to the host."""

    host: np.ndarray  # the packed trace data (see _pack)
    gamma: int
    has_q: bool
    vocab: int
    marks: tuple  # clock marks: draft start, verify start, verify end
    draft_passes: int


class _EagerSteps:
    """transformers' forward passes with a DynamicCache per model: the reference path."""

    def __init__(self, pair, config: DecodeConfig, drafter, prompt_ids: list[int], gen,
                 clock: _Clock):
        self.pair, self.config, self.drafter, self.gen, self.clock = (
            pair, config, drafter, gen, clock)
        self.seq = torch.tensor(prompt_ids, dtype=torch.long, device=pair.device)  # (n,)
        self.cache = DynamicCache(config=pair.target.config)
        self.cached = 0
        if drafter is not None:
            drafter.reset()

    overlaps = False  # each step ends with its host copy: nothing to overlap

    def launch(self, want: int, stop_below: float | None, seq_list: list[int]) -> _Step:
        s, clock = self.config.sampling, self.clock
        m0 = clock.mark()
        # 1. draft
        cand = Candidates(self.seq.new_zeros(0), None, 0)
        if self.drafter is not None and want > 0:
            if isinstance(self.drafter, PromptLookupDrafter):
                cand = self.drafter.get_candidates(self.seq, want, self.gen, seq_list=seq_list)
            else:
                cand = self.drafter.get_candidates(self.seq, want, self.gen, stop_below)
        gamma = int(cand.ids.shape[0])
        m1 = clock.mark()
        # 2. verify: one target pass over the uncached tail plus every drafted token
        inp = torch.cat([self.seq[self.cached:], cand.ids])[None, :]  # (1, n - cached + g)
        logits = self.pair.target(input_ids=inp, past_key_values=self.cache, use_cache=True,
                                  logits_to_keep=gamma + 1).logits[0]  # (gamma+1, V)
        p_probs = logits_to_probs(logits, s)  # (gamma+1, V)
        m2 = clock.mark()
        # 3. accept
        if s.greedy:
            v = verify_greedy(cand.ids, p_probs, cand.q_probs, self.config.verifier)
        else:
            v = verify_sampled(cand.ids, p_probs, cand.q_probs, self.gen, self.config.verifier)
        packed = _pack(cand.ids, v, p_probs, cand.q_probs, self.config.trace_detail,
                       self.config.top_alternatives)
        return _Step(packed.cpu().numpy(), gamma, cand.q_probs is not None,
                     p_probs.shape[-1], (m0, m1, m2), cand.forward_passes)

    def result(self, launched: _Step) -> _Step:
        return launched

    def commit(self, seq_list: list[int], new_ids: list[int]) -> None:
        """Cut both caches back to the committed prefix (all but its last token)."""
        self.seq = torch.cat([self.seq, self.seq.new_tensor(new_ids)])
        self.cached = len(seq_list) - 1
        crop_cache(self.cache, self.cached)
        if self.drafter is not None:
            self.drafter.update(len(seq_list))


# static states reused across runs: model -> {shape key: StaticState}; model -> its layers
_STATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LAYERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _engine_for(model, n_layers: int | None, max_len: int) -> StaticLlama:
    if model not in _LAYERS:
        _LAYERS[model] = stacked_layers(model)
    layers = _LAYERS[model][:n_layers] if n_layers else _LAYERS[model]
    engine = StaticLlama(model, layers, max_len)
    if n_layers is None and model not in _CHECKED:
        check_against(model, engine)
        _CHECKED[model] = True
    return engine


def _static_state(pair, config: DecodeConfig, drafter: str | None, max_len: int,
                  graphs: bool) -> tuple[StaticState, bool]:
    """A free state of the right shape (cached), or a fresh private one if it is in use.
    Returns (state, locked): ``locked`` means the caller must release state.lock."""
    draft_model, n_layers = None, None
    if drafter == "model":
        draft_model = pair.draft
    elif drafter == "early-exit":
        n_layers = config.early_exit_layers
    key = (id(draft_model), drafter, n_layers, max_len, graphs)
    states = _STATES.setdefault(pair.target, {})
    state = states.get(key)
    if state is not None and state.lock.acquire(blocking=False):
        return state, True

    def build() -> StaticState:
        target = _engine_for(pair.target, None, max_len)
        draft = None
        if draft_model is not None:
            draft = _engine_for(draft_model, None, max_len)
        elif n_layers is not None:  # its range was checked by check_drafter
            draft = StaticLlama(pair.target, _LAYERS[pair.target][:n_layers], max_len)
        return StaticState(target, draft, graphs)

    if state is None:
        state = states[key] = build()
        state.lock.acquire()
        return state, True
    return build(), False  # the cached one is busy (another run): a private one


class _StaticSteps:
    """The static engine (specviz.engine): device-resident state, CUDA graphs when enabled."""

    def __init__(self, pair, config: DecodeConfig, drafter: str | None,
                 prompt_ids: list[int], gen, clock: _Clock, graphs: bool):
        self.config, self.drafter, self.gen, self.clock = config, drafter, gen, clock
        self.lookup = PromptLookupDrafter() if drafter == "prompt-lookup" else None
        max_len = bucket(len(prompt_ids) + config.max_new_tokens + 1)
        self.state, self.locked = _static_state(pair, config, drafter, max_len, graphs)
        try:
            self.state.prefill(prompt_ids)
        except BaseException:
            self.close()
            raise
        self.vocab = self.state.q.shape[-1]
        self.pack_key = (config.trace_detail, config.top_alternatives)
        self.copier = HostCopier(pair.device)
        self.overlaps = pair.device.type == "cuda"

    def close(self) -> None:
        if self.locked:
            self.state.lock.release()
            self.locked = False

    def _pack(self, drafted, v, p_probs, q_probs) -> torch.Tensor:
        return _pack(drafted, v, p_probs, q_probs, self.config.trace_detail,
                     self.config.top_alternatives)

    def launch(self, want: int, stop_below: float | None, seq_list: list[int]) -> _Step:
        """Queue the step's device work; on CUDA this returns before the GPU is done."""
        s, st, clock = self.config.sampling, self.state, self.clock
        gamma, has_q, passes = 0, False, 0
        if want > 0 and self.lookup is not None:
            found = lookup(seq_list, want, self.lookup.max_ngram, self.lookup.min_ngram)
            gamma = len(found)
            if gamma:
                st.put_drafts(found)
        elif want > 0 and self.drafter is not None:
            gamma, has_q = want, True
        if not s.greedy:
            st.draw_noise(gamma, self.gen)
        m0 = clock.mark()
        # 1. draft
        if has_q:
            st.draft_step(gamma, min(2, len(seq_list)), s)
            passes = gamma
            if stop_below is not None:  # the confidence policy's extra host read
                low = (st.q[:gamma].amax(-1) < stop_below).nonzero().flatten().tolist()
                gamma = low[0] + 1 if low else gamma
        m1 = clock.mark()
        # 2. verify
        p_probs = st.verify_step(gamma, s)
        m2 = clock.mark()
        # 3. accept, and commit on the device
        packed = st.accept_step(gamma, p_probs, has_q, s, self.config.verifier, self._pack,
                                self.pack_key)
        return _Step(self.copier.start(packed), gamma, has_q, self.vocab, (m0, m1, m2),
                     passes)

    def result(self, launched: _Step) -> _Step:
        """Wait for the step's one device -> host copy (its only synchronisation)."""
        launched.host = self.copier.finish(launched.host)
        return launched

    def commit(self, seq_list: list[int], new_ids: list[int]) -> None:
        pass  # the accept phase already advanced the device's sequence and length


def _loop(pair, run: RunRecord, prompt_ids: list[int], limit: int, config: DecodeConfig,
          path: str, policy, on_step, should_stop, writer) -> Trace:
    device = pair.device
    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    text = _TokenText(pair.tokenizer)
    clock = _Clock(device)
    eos = set(pair.eos_ids)
    k_top = config.top_alternatives
    detail = config.trace_detail
    greedy = config.sampling.greedy
    drafter_kind = config.drafter if policy is not None else None

    seq_list = list(prompt_ids)
    steps: list[StepRecord] = []
    n_steps = n_emitted = 0
    n_drafted_total = n_accepted_total = n_evaluated_total = 0
    draft_passes = 0
    stop_reason = "max_new_tokens"
    if not detail:
        writer = None  # untraced runs (for measuring tracing cost) keep no step records
    t_start = time.perf_counter()

    def partial(reason: str) -> Trace:
        wall = time.perf_counter() - t_start
        summary = summarize(run, steps, wall_s=wall, output_text=_decode(seq_list),
                            stop_reason=reason, target_forward_passes=n_steps,
                            draft_forward_passes=draft_passes)
        if not detail:  # no step records were kept: totals come from the counters
            summary = replace(summary, output_token_ids=seq_list[len(prompt_ids):],
                              n_steps=n_steps, n_drafted=n_drafted_total,
                              n_accepted=n_accepted_total, n_emitted=n_emitted,
                              alpha_hat=(n_accepted_total / n_evaluated_total
                                         if n_evaluated_total else None),
                              mean_accepted_length=n_emitted / max(n_steps, 1),
                              tokens_per_s=round(n_emitted / wall, 3) if wall > 0 else 0.0)
        return Trace(run, tuple(steps), summary)

    def _decode(ids: list[int]) -> str:
        return pair.tokenizer.decode(ids[len(prompt_ids):], skip_special_tokens=False)

    backend = None
    try:
        if path == "eager":
            drafter = make_drafter(pair, config) if drafter_kind else None
            backend = _EagerSteps(pair, config, drafter, prompt_ids, gen, clock)
        else:
            backend = _StaticSteps(pair, config, drafter_kind, prompt_ids, gen, clock,
                                   graphs=path == "graphs")
    except Unsupported as e:
        raise ValueError(str(e)) from None
    if writer is not None:
        writer.write(run)
    def next_want() -> int | None:
        """The next step's draft length, or None when the run ends (stop_reason set)."""
        nonlocal stop_reason
        remaining = config.max_new_tokens - n_emitted
        room = limit - len(seq_list)
        if remaining <= 0:
            return None
        if room <= 0:
            stop_reason = "context"
            return None
        if should_stop is not None and should_stop():
            stop_reason = "stopped"
            return None
        return min(policy.next_gamma(), remaining - 1, room - 1) if policy else 0

    def launch(want: int):
        t0 = time.perf_counter()
        return backend.launch(want, policy.stop_below if policy else None, seq_list), t0

    try:
        want = next_want()
        pending = launch(want) if want is not None else None
        while pending is not None:
            launched, t0 = pending
            out = backend.result(launched)
            t1 = time.perf_counter()
            gamma = out.gamma
            draft_passes += out.draft_passes
            take = _Unpack(out.host).take  # in the order packed
            drafted = take(gamma).astype(np.int64).tolist()
            accepted = take(gamma).astype(bool).tolist()
            accept_prob = take(gamma)
            p_tok = take(gamma)
            n_acc = int(take(1)[0])
            next_tok = int(take(1)[0])
            u = None if greedy else take(gamma)
            q_tok = take(gamma) if out.has_q else None
            beta = take(gamma) if out.has_q and not greedy else None
            # 4. commit
            new_ids = drafted[:n_acc] + [next_tok]
            kinds = ["accepted"] * n_acc + ["bonus" if n_acc == gamma else "resampled"]
            for i, t in enumerate(new_ids):  # stop at the first end-of-sequence token
                if t in eos:
                    new_ids, kinds = new_ids[:i + 1], kinds[:i + 1]
                    stop_reason = "eos"
                    break
            seq_list.extend(new_ids)
            backend.commit(seq_list, new_ids)
            if policy is not None:
                policy.update(gamma, n_acc)
            n_steps += 1
            n_emitted += len(new_ids)
            n_drafted_total += gamma
            n_accepted_total += n_acc
            n_evaluated_total += min(gamma, n_acc + 1)
            pending = None
            if backend.overlaps and stop_reason != "eos":
                # the GPU starts the next step while the host writes this one's record
                want = next_want()
                pending = launch(want) if want is not None else None
            if detail:
                m0, m1, m2 = out.marks
                draft_ms, verify_ms = clock.ms(m0, m1), clock.ms(m1, m2)
                total_ms = (t1 - t0) * 1e3
                rec = StepRecord(
                    step=len(steps), gamma=gamma, drafted_ids=drafted,
                    drafted_text=text(drafted),
                    q=_f32(q_tok) if q_tok is not None else None,
                    p=_f32(p_tok), accept_prob=_f32(accept_prob),
                    u=None if u is None else [x if i <= n_acc else None
                                              for i, x in enumerate(_f32(u))],
                    accepted=accepted, emitted_ids=new_ids, emitted_text=text(new_ids),
                    emitted_kinds=kinds,
                    **_top_fields(take, gamma, k_top, out.has_q, text, out.vocab),
                    beta=_f32(beta) if beta is not None else None,
                    draft_ms=round(draft_ms, 4), verify_ms=round(verify_ms, 4),
                    accept_ms=round(max(total_ms - draft_ms - verify_ms, 0.0), 4),
                    total_ms=round(total_ms, 4), t_end_s=round(t1 - t_start, 6))
                steps.append(rec)
                if writer is not None:
                    writer.write(rec)
                if on_step is not None:
                    on_step(rec)
            if not backend.overlaps and stop_reason != "eos":
                want = next_want()
                pending = launch(want) if want is not None else None
    except KeyboardInterrupt:
        stop_reason = "stopped"
    except Exception as e:  # keep what finished; say plainly what broke
        trace = partial("error")
        if writer is not None:
            writer.write(trace.summary)
        raise DecodeError(f"decoding failed after {len(steps)} steps: {_short(e)}",
                          trace) from e
    finally:
        if isinstance(backend, _StaticSteps):
            backend.close()
    trace = partial(stop_reason)
    if writer is not None:
        writer.write(trace.summary)
    return trace


class _Unpack:
    """Reads consecutive slices of the step's packed host array."""

    def __init__(self, host: np.ndarray):
        self.host, self.at = host, 0

    def take(self, n: int) -> np.ndarray:
        self.at += n
        return self.host[self.at - n:self.at]


def _top_fields(take, gamma: int, k: int, has_q: bool, text, vocab: int) -> dict:
    if not gamma:
        return {"p_top_ids": [], "p_top_texts": [], "p_top_probs": [],
                "q_top_ids": [] if has_q else None, "q_top_texts": [] if has_q else None,
                "q_top_probs": [] if has_q else None}
    k = min(k, vocab)
    out: dict = {}
    for who in ("p", "q") if has_q else ("p",):
        ids = take(gamma * k).astype(np.int64).reshape(gamma, k).tolist()
        probs = take(gamma * k).reshape(gamma, k)
        out[f"{who}_top_ids"] = ids
        out[f"{who}_top_texts"] = [text(r) for r in ids]
        out[f"{who}_top_probs"] = [_f32(r) for r in probs]
    if not has_q:
        out.update(q_top_ids=None, q_top_texts=None, q_top_probs=None)
    return out


def _short(e: BaseException) -> str:
    if isinstance(e, torch.OutOfMemoryError):
        return "out of memory on the device (try a shorter run, float16/bfloat16, or the CPU)"
    return one_line(e, with_type=False)
