"""Lesson 1, two models and one vocabulary: who is who in a run, and what goes wrong when the
draft's token ids are read through a different vocabulary (computed on a recorded run).

Two mismatches are computed, both from the recorded greedy run:
- renumbered: the draft numbers the same tokens differently (a fixed permutation of every
  token id the run's records name). The recorded greedy verifier is replayed: a drafted id is
  kept iff it equals the target's top token id at that position. With the identity this
  reproduces the recorded α̂ exactly, so the check can fail;
- another vocabulary: the character-level tokenizer of specviz's tiny test models (a few dozen ids).
  SmolLM2's drafted ids mostly lie outside it, and it writes the same text in more ids.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...traces.records import Trace
from .runs import CPU_EARLY_EXIT, CPU_LOOKUP, GREEDY, Files, short, speculative, visible

FILES = (GREEDY, CPU_EARLY_EXIT, CPU_LOOKUP)

ROLE = "role"
SOURCE = "source"
N_PARAMS = "n_params"
N_LAYERS = "n_layers"
PASSES = "forward_passes"
TIME_MS = "time_ms"


def roles_frame(trace: Trace) -> pd.DataFrame:
    """Two rows, draft (q) and target (p): what the run record says about each model, how
    many forward passes it made and how much time its phase took (ms)."""
    t = trace.with_summary()
    sm, r = t.summary, t.run
    d = r.draft or {}
    draft_src = d.get("source") or {"prompt-lookup": "prompt lookup (no model, no q)"}.get(
        r.drafter or "", "none")
    rows = [("draft (q)", draft_src, d.get("n_params"), d.get("n_layers"),
             sm.draft_forward_passes, sum(s.draft_ms for s in t.steps)),
            ("target (p)", r.target.get("source", ""), r.target.get("n_params"),
             r.target.get("n_layers"), sm.target_forward_passes,
             sum(s.verify_ms for s in t.steps))]
    return pd.DataFrame(rows, columns=[ROLE, SOURCE, N_PARAMS, N_LAYERS, PASSES, TIME_MS])


# ---------------------------------------------------------------- a renumbered vocabulary


def known_tokens(traces: Sequence[Trace]) -> dict[int, str]:
    """Every token id the runs' records name (drafted, emitted, top-k of p and q), with its
    text (the target's tokenizer's)."""
    out: dict[int, str] = {}
    for t in traces:
        for s in t.steps:
            pairs = [zip(s.drafted_ids, s.drafted_text), zip(s.emitted_ids, s.emitted_text)]
            pairs += [zip(i, x) for i, x in zip(s.p_top_ids, s.p_top_texts)]
            pairs += [zip(i, x) for i, x in zip(s.q_top_ids or [], s.q_top_texts or [])]
            for it in pairs:
                out.update(it)
    return out


def renumbering(traces: Sequence[Trace], seed: int = 0) -> dict[int, int]:
    """A draft vocabulary with the same tokens numbered differently: token id → the id the
    draft uses for it. One cycle through the known ids in a fixed shuffled order, so no id
    keeps its number."""
    ids = sorted(known_tokens(traces))
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return {a: b for a, b in zip(order, order[1:] + order[:1])}


def replay_greedy(traces: Sequence[Trace], mapping: dict[int, int] | None = None
                  ) -> tuple[int, int]:
    """(accepted, judged) when the recorded greedy steps are verified again with the draft's
    ids passed through ``mapping`` (None: unchanged): a draft is kept iff the id the target
    receives is its top token there; judging stops at the first rejection."""
    acc = judged = 0
    for t in speculative(traces):
        for s in t.steps:
            for i, tok in enumerate(s.drafted_ids):
                sent = tok if mapping is None else mapping.get(tok, tok)
                judged += 1
                if sent != s.p_top_ids[i][0]:
                    break
                acc += 1
    return acc, judged


MEANT = "draft means"
SENT = "id sent"
READS = "target reads"
TOP = "target's top token"
KEPT = "kept"


def mismatch_frame(trace: Trace, step: int, mapping: dict[int, int] | None) -> pd.DataFrame:
    """The drafts of one step as the target receives them: what the draft meant, the id it
    sends, the token the target reads under that id, the target's top token, kept or not
    (the greedy rule, until the first rejection; later drafts are not judged)."""
    texts = known_tokens([trace])
    s = trace.steps[step]
    rows, alive = [], True
    for i, tok in enumerate(s.drafted_ids):
        sent = tok if mapping is None else mapping.get(tok, tok)
        ok = sent == s.p_top_ids[i][0]
        kept = ("kept" if ok else "rejected") if alive else "not judged"
        alive = alive and ok
        rows.append((i + 1, visible(texts[tok]), sent, visible(texts.get(sent, "?")),
                     visible(s.p_top_texts[i][0]), kept))
    return pd.DataFrame(rows, columns=["position", MEANT, SENT, READS, TOP, KEPT])


def demo_step(trace: Trace) -> int:
    """A step worth showing: the first that kept at least two drafts (else the first that
    drafted)."""
    drafting = [s for s in trace.steps if s.gamma > 0]
    return next((s.step for s in drafting if s.n_accepted >= 2), drafting[0].step)


# ---------------------------------------------------------------- another vocabulary


def other_vocabulary() -> tuple[object, int]:
    """The character-level tokenizer of specviz's tiny test models, and its size."""
    from ...models.tiny import tiny_tokenizer
    tok = tiny_tokenizer()
    return tok, len(tok)


def char_view(trace: Trace, step: int) -> pd.DataFrame:
    """One step's drafts in both vocabularies: SmolLM2's id and text, whether that id exists
    in the character vocabulary, and the character tokenizer's ids for the same text."""
    tok, size = other_vocabulary()
    s = trace.steps[step]
    rows = [(visible(x), i, "yes" if i < size else "no (outside it)",
             " ".join(map(str, tok(x, add_special_tokens=False)["input_ids"])))
            for i, x in zip(s.drafted_ids, s.drafted_text)]
    return pd.DataFrame(rows, columns=["token", "SmolLM2 id", f"in the {size}-id vocabulary",
                                       "character ids of the same text"])


# ---------------------------------------------------------------- the lesson's numbers


def numbers(files: Files) -> dict:
    runs = speculative(files[GREEDY])
    judged_rec = sum(s.n_evaluated for t in runs for s in t.steps)
    alpha_rec = sum(s.n_accepted for t in runs for s in t.steps) / judged_rec
    acc, judged = replay_greedy(runs)
    acc_r, judged_r = replay_greedy(runs, renumbering(runs))
    tok, size = other_vocabulary()
    drafted = [(i, x) for t in runs for s in t.steps for i, x in zip(s.drafted_ids,
                                                                      s.drafted_text)]
    text = "".join(x for _, x in drafted)
    first = runs[0].run
    lookup = speculative(files[CPU_LOOKUP])
    ee_runs = speculative(files[CPU_EARLY_EXIT])
    ee = ee_runs[0].run
    ee_judged = sum(s.n_evaluated for t in ee_runs for s in t.steps)
    one = runs[0]  # the numeric exercise: α̂ of one run from its counts
    k1 = sum(s.n_accepted for s in one.steps)
    j1 = sum(s.n_evaluated for s in one.steps)
    d1 = sum(s.gamma for s in one.steps)
    return {
        "ex_kept": k1, "ex_judged": j1, "ex_drafted": d1, "ex_steps": len(one.steps),
        "ex_alpha": k1 / j1, "ex_per_drafted": k1 / d1, "ex_refused": 1 - k1 / j1,
        "ex_prompt": short(one.run.prompt_text, 50),
        "alpha_recorded": alpha_rec, "shared_accepted": acc, "shared_judged": judged,
        "alpha_shared": acc / judged, "renum_accepted": acc_r, "renum_judged": judged_r,
        "alpha_renum": acc_r / judged_r,
        "n_draft_ids": len(drafted), "n_out": sum(i >= size for i, _ in drafted),
        "char_vocab": size, "n_char_ids": len(tok(text, add_special_tokens=False)["input_ids"]),
        "draft_params_m": first.draft["n_params"] / 1e6,
        "target_params_m": first.target["n_params"] / 1e6,
        "draft_layers": first.draft["n_layers"], "target_layers": first.target["n_layers"],
        "ee_layers": ee.draft["n_layers"],
        "ee_alpha": sum(s.n_accepted for t in ee_runs for s in t.steps) / ee_judged,
        "lookup_steps_with_q": sum(s.q is not None for t in lookup for s in t.steps),
    }


def checks(n: dict) -> dict[str, bool]:
    return {
        "shared_replay_reproduces": abs(n["alpha_shared"] - n["alpha_recorded"]) < 1e-12,
        "renumbered_collapses": n["alpha_renum"] < 0.1 < 0.5 < n["alpha_shared"],
        "ids_outside": n["n_out"] > 0.75 * n["n_draft_ids"],
        "more_ids": n["n_char_ids"] > 2 * n["n_draft_ids"],
        "draft_smaller": n["draft_params_m"] < n["target_params_m"] / 2,
        "early_exit_shares_layers": n["ee_layers"] < n["target_layers"],
        "lookup_has_no_q": n["lookup_steps_with_q"] == 0,
        "early_exit_rarely_agrees": n["ee_alpha"] < 0.1,
    }
