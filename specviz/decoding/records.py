"""A step's record and a run's record: what the loop keeps of each step (texts, timings,
top-k alternatives, float32 values written exactly) and of the run's settings and models."""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import torch

from .. import __version__
from ..core.algorithm import Step
from ..decode_config import DecodeConfig
from ..engines.eager import truncated_model
from ..errors import one_line
from ..traces.records import RunRecord, StepRecord


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


def _f32(a) -> list[float]:
    """float32 values as the shortest decimals that read back to the same float32."""
    return [float(str(x)) for x in np.asarray(a, dtype=np.float32)]


def _run_record(pair, config: DecodeConfig, mode: str, prompt: str, prompt_ids: list[int],
                label: str, command: str = "", engine: dict | None = None,
                baseline_of: str = "") -> RunRecord:
    from ..models import hardware_info
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
