"""What one field cannot say alone: a run's free-form objects (target, draft, config,
hardware) as plain JSON that writes back and whose known keys have their types; a step's
parallel lists and token kinds; a summary against the steps it sums up. Each check raises the
record's TraceError naming the field.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .checker import INT64_MAX, _Checker, _is_int, _show
from .model import RunRecord, StepRecord, SummaryRecord, summarize

MAX_TOKEN_ID = 2**31 - 1  # a token id (vocabularies are far smaller)
MAX_NESTING = 16  # objects and lists inside target, draft, config or hardware
MAX_OBJECT_VALUES = 10_000  # values in one of those objects, nested ones included
MAX_OBJECT_STRING = 10_000  # characters of one string in them
# Timings a clock can give: a step's phase of at most about 2.8 hours, and a non-zero one of at
# least 1 ns (below that a ratio of times overflows); a run of at most about 11.6 days; at
# most a million tokens a second (no decoder emits that many for one sequence)
TIMING_MS_MAX = 1e7
TIMING_MS_MIN = 1e-6
WALL_S_MAX = 1e6
MAX_TOKENS_PER_S = 1e6

_STR, _INT, _NUM, _BOOL, _NULL = "string", "integer", "number", "boolean", "null"
# known keys of the free-form objects -> the types their value may have
CONFIG_KEYS = {
    "gamma": (_INT,), "temperature": (_NUM,), "top_k": (_INT,), "top_p": (_NUM,),
    "seed": (_INT,), "max_new_tokens": (_INT,), "chat": (_BOOL,),
    "top_alternatives": (_INT,), "trace_detail": (_BOOL,), "verifier": (_STR,),
    "engine": (_STR,), "drafter": (_STR, _NULL), "policy": (_STR,),
    "confidence_threshold": (_NUM,), "early_exit_layers": (_INT, _NULL), "tree": (_STR, _NULL),
}
HARDWARE_KEYS = {
    "platform": (_STR,), "python": (_STR,), "torch": (_STR,), "transformers": (_STR,),
    "device": (_STR,), "cpu": (_STR, _NULL), "gpu": (_STR, _NULL), "cpu_count": (_INT, _NULL),
    "torch_threads": (_INT, _NULL), "engine": ("object", _NULL),
}
ENGINE_KEYS = {"path": (_STR,), "why": (_STR,), "cuda_graphs": (_BOOL,),
               "static_cache": (_BOOL,), "row_kernel": (_BOOL,), "fused": (_BOOL,)}
MODEL_KEYS = {"source": (_STR,), "n_params": (_INT,), "n_layers": (_INT,), "dtype": (_STR,),
              "device": (_STR,), "architecture": (_STR,)}


def _type(v: Any) -> str:
    if v is None:
        return _NULL
    if isinstance(v, bool):
        return _BOOL
    if isinstance(v, str):
        return _STR
    if _is_int(v):
        return _INT
    if isinstance(v, float):
        return _NUM
    return "object" if isinstance(v, dict) else "list"


def free_object(c: _Checker, name: str, known: dict, *, nullable: bool = False,
                optional: bool = False) -> dict | None:
    """A free-form object of a run record: at most MAX_NESTING deep and MAX_OBJECT_VALUES
    values, numbers finite and within int64, strings of at most MAX_OBJECT_STRING characters
    (so that it writes back as JSON and Parquet), its ``known`` keys of their types; what it
    takes in memory counted against the budget."""
    obj = c.dict_(name, nullable=nullable, optional=optional)
    if obj is None:
        return None
    c.spend(name, _walk(c, name, obj))
    _known(c, name, obj, known)
    return obj


def _walk(c: _Checker, name: str, obj: dict) -> int:
    """Bytes ``obj`` takes (as checker._cost counts: 64 a container and 64 an object's
    entry, 48 a number, 96 + 4 a character a string, 8 true/false/null), checking each value."""
    cost, n, todo = 0, 0, [(obj, 1)]
    while todo:
        v, depth = todo.pop()
        n += 1
        if n > MAX_OBJECT_VALUES:
            raise c.fail(name, f"holds more than {MAX_OBJECT_VALUES:,} values")
        if isinstance(v, dict) or isinstance(v, list):
            if depth > MAX_NESTING:
                raise c.fail(name, f"is nested more than {MAX_NESTING} deep")
            items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]
            cost += 64 + 64 * len(items)
            for k, x in items:
                if k is not None:
                    cost += 96 + 4 * len(k)
                    if len(k) > MAX_OBJECT_STRING:
                        raise c.fail(name, f"has a key of {len(k):,} characters")
                todo.append((x, depth + 1))
        elif isinstance(v, str):
            if len(v) > MAX_OBJECT_STRING:
                raise c.fail(name, f"holds a string of {len(v):,} characters; at most "
                             f"{MAX_OBJECT_STRING:,} are allowed")
            cost += 96 + 4 * len(v)
        elif isinstance(v, (bool, type(None))):
            cost += 8
        elif _is_int(v):
            if abs(v) > INT64_MAX:
                raise c.fail(name, f"holds an integer beyond 64 bits: {_show(v)}")
            cost += 48
        elif not (isinstance(v, float) and math.isfinite(v)):
            raise c.fail(name, f"holds a number that is not finite: {_show(v)}")
        else:
            cost += 48
    return cost


def _known(c: _Checker, name: str, obj: dict, known: dict) -> None:
    for key, types in known.items():
        if key not in obj:
            continue
        v = obj[key]
        t = _type(v)
        if t not in types and not (t == _INT and _NUM in types):
            raise c.fail(name, f"'{key}' must be {' or '.join(types)}, got {_show(v)}")
    if name == "hardware" and isinstance(obj.get("engine"), dict):
        _known(c, "hardware", obj["engine"], ENGINE_KEYS)


def check_config(c: _Checker, config: dict, gamma_max: int, temperature_max: float) -> None:
    """The ranges of a run's configuration that its views compute with."""
    ranges = {"gamma": (0, gamma_max), "temperature": (0, temperature_max),
              "top_k": (0, INT64_MAX), "top_p": (0, 1), "max_new_tokens": (0, INT64_MAX),
              "top_alternatives": (0, 1000)}
    for key, (lo, hi) in ranges.items():
        v = config.get(key)
        if v is not None and not (lo <= v <= hi):
            raise c.fail("config", f"'{key}' must lie in [{lo}, {hi:g}], got {_show(v)}")


# the field names, made once: a name built at each call stays referenced by the type
# attribute cache and pins the memory of the parse that made it
_TOP = {(who, k): f"{who}_top_{k}" for who in "pq" for k in ("ids", "texts", "probs")}


def check_topk(c: _Checker, step: StepRecord) -> None:
    """p's (and q's) top-k lists go together: ids, texts and probabilities all empty, or all
    one row per drafted token with as many entries each (q's also all null, or none)."""
    for who in ("p", "q"):
        ids, texts, probs = (getattr(step, _TOP[who, k]) for k in ("ids", "texts", "probs"))
        rows = (ids, texts, probs)
        if who == "q" and any(r is None for r in rows):
            if not all(r is None for r in rows):
                raise c.fail(f"q_top_{'ids texts probs'.split()[rows.index(None)]}",
                             "is null while the other q_top_ lists are not")
            continue
        if not (len(ids) == len(texts) == len(probs)):
            raise c.fail(f"{who}_top_texts", f"{who}_top_ids, {who}_top_texts and "
                         f"{who}_top_probs must have the same number of rows, got "
                         f"{len(ids)}, {len(texts)}, {len(probs)}")
        for i, (a, b, d) in enumerate(zip(*rows)):
            if not (len(a) == len(b) == len(d)):
                raise c.fail(f"{who}_top_texts", f"row {i} has {len(a)} ids, {len(b)} texts "
                             f"and {len(d)} probabilities (they must go together)")


def check_kinds(c: _Checker, step: StepRecord) -> None:
    """A step emits its accepted drafts ('accepted'), then one token of the target: in a
    chain, 'bonus' after every draft was accepted, else 'resampled' (a tree may end in either)."""
    n_acc, kinds = step.n_accepted, step.emitted_kinds
    for i, (a, prob) in enumerate(zip(step.accepted, step.accept_prob)):
        if a and prob is None:
            raise c.fail("accept_prob", f"entry {i} is null but the node was accepted (an "
                         "accepted node was judged)")
    for i, k in enumerate(kinds[:n_acc]):
        if k != "accepted":
            raise c.fail("emitted_kinds", f"entry {i} is '{k}' but the step accepted "
                         f"{n_acc} drafts: the first {n_acc} tokens are 'accepted'")
    if len(kinds) == n_acc + 1:
        last = kinds[-1]
        want = (("bonus", "resampled") if step.tree_parent is not None
                else ("bonus",) if n_acc == step.gamma else ("resampled",))
        if last not in want:
            raise c.fail("emitted_kinds", f"the token the target added is '{last}', expected "
                         f"{' or '.join(want)} after {n_acc} of {step.gamma} drafts accepted")


def check_timings(c: _Checker, step: StepRecord, before: StepRecord | None) -> None:
    """A step's timings are ones a clock can give, its end no earlier than the last step's."""
    for name in ("draft_ms", "verify_ms", "accept_ms", "total_ms"):
        v = getattr(step, name)
        if v > TIMING_MS_MAX or 0 < v < TIMING_MS_MIN:
            raise c.fail(name, f"is {v:g} ms; a step's time is 0 or between "
                         f"{TIMING_MS_MIN:g} and {TIMING_MS_MAX:g} ms")
    if step.t_end_s > WALL_S_MAX:
        raise c.fail("t_end_s", f"is {step.t_end_s:g} s; at most {WALL_S_MAX:g} are allowed")
    if before is not None and step.t_end_s < before.t_end_s:
        raise c.fail("t_end_s", f"is {step.t_end_s:g} s, before the previous step's end "
                     f"({before.t_end_s:g} s)")


def _close(a: float | None, b: float | None, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= abs_ + rel * abs(b)


def check_summary(c: _Checker, run: RunRecord, steps: Sequence[StepRecord],
                  sm: SummaryRecord) -> None:
    """A summary says what its steps say: the same tokens and counts, rates computed from
    them, a wall time no shorter than the steps' clock and a rate it can give. (Before, a
    summary claiming alpha 1.000 for steps with rejections was believed.)"""
    want = summarize(run, steps, wall_s=sm.wall_s, output_text=sm.output_text,
                     stop_reason=sm.stop_reason)

    def differ(name: str, said: Any, is_: Any) -> None:
        raise c.fail(name, f"says {_show(said)} but the run's steps give {_show(is_)} (a "
                     "summary must agree with its steps)")

    for name in ("n_drafted", "n_accepted", "n_emitted"):
        if getattr(sm, name) != getattr(want, name):
            differ(name, getattr(sm, name), getattr(want, name))
    if sm.output_token_ids != want.output_token_ids:
        differ("output_token_ids", f"{len(sm.output_token_ids)} tokens",
               f"{len(want.output_token_ids)} other tokens")
    for name in ("alpha_hat", "mean_accepted_length", "mean_beta"):
        if not _close(getattr(sm, name), getattr(want, name)):
            differ(name, getattr(sm, name), getattr(want, name))
    if sm.target_forward_passes != len(steps):
        differ("target_forward_passes", sm.target_forward_passes, len(steps))
    if sm.draft_forward_passes > want.n_drafted + len(steps):
        raise c.fail("draft_forward_passes", f"is {sm.draft_forward_passes}, more than the "
                     f"{want.n_drafted} drafted tokens and {len(steps)} steps allow")
    check_rate(c, sm, steps)


def check_rate(c: _Checker, sm: SummaryRecord, steps: Sequence[StepRecord]) -> None:
    """wall_s, tokens_per_s and round_tokens_per_s are times a clock can give and agree."""
    if sm.wall_s > WALL_S_MAX:
        raise c.fail("wall_s", f"is {sm.wall_s:g} s; at most {WALL_S_MAX:g} are allowed")
    if steps and sm.wall_s < steps[-1].t_end_s - 1e-6:
        raise c.fail("wall_s", f"is {sm.wall_s:g} s, shorter than the steps' "
                     f"{steps[-1].t_end_s:g} s")
    for v in [sm.tokens_per_s, *(sm.round_tokens_per_s or ())]:
        if v > MAX_TOKENS_PER_S:
            raise c.fail("tokens_per_s", f"is {v:g}; no decoder emits more than "
                         f"{MAX_TOKENS_PER_S:g} tokens a second")
    n, w, tps = sm.n_emitted, sm.wall_s, sm.tokens_per_s
    ok = (tps == 0 if w <= 0 or n == 0 else abs(tps - n / w) <= 1e-3 + 1e-4 * tps
          or (tps > 0 and abs(n / tps - w) <= 1e-6 + 1e-4 * w))
    if not ok:
        raise c.fail("tokens_per_s", f"says {tps:g} but {n} tokens in {w:g} s make "
                     f"{(n / w if w > 0 else 0):g} (a summary must agree with its steps)")
