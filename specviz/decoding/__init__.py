"""Running speculative decoding and recording every step.

The algorithm itself is specviz.core.algorithm (draft -> verify -> accept -> commit); this
package chooses the engine, builds the models' forward passes and the drafter for it
(engine_parts), runs the steps (here, with what a run keeps in keeping), and turns each into
a StepRecord (timings, texts, top-k alternatives; records), written as it is made. Nothing
here decides which token is emitted. A run's settings (DecodeConfig) and its error
(DecodeError) live in specviz.decode_config.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ..core.algorithm import Decoder, steps
from ..core.drafters import (
    DRAFTERS,  # noqa: F401  (re-exported: the app lists the drafters)
    check_early_exit_layers,
)
from ..core.policies import make_policy
from ..core.tree_decoder import TreeDecoder, TreeShape, tree_draft
from ..decode_config import DecodeConfig, DecodeError
from ..engines.phases import EagerPhases, HostCopier
from ..engines.static import (
    ENGINES,  # noqa: F401  (re-exported: the app lists the engines)
    Unsupported,
)
from ..models import check_prompt_size
from ..traces.records import RunRecord, StepRecord, Trace, TraceWriter
from .engine_parts import (  # noqa: F401  (_WORKSPACES re-exported: probes and tests clear it)
    _WORKSPACES,
    _eager_parts,
    _engine_info,
    _static_parts,
    resolve_engine,
)
from .keeping import _Budget, _Kept, _no_gc_pauses
from .records import _Clock, _record, _run_record, _short, _TokenText

StepCallback = Callable[[StepRecord], None]


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


