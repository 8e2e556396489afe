"""Traces -> tidy pandas DataFrames, one row per thing a view draws.

Every view of the app (and every figure builder in ``specviz.figures``) reads these frames,
never the trace records themselves. The column names live here and nowhere else.

Notation: p = target distribution, q = draft distribution.

Frames:
- ``steps_frame``: one row per verification step (timings, counts).
- ``drafts_frame``: one row per drafted position (p, q, min(1, p/q), u, status).
- ``tokens_frame``: one row per token piece in reading order: emitted tokens by kind, and the
  drafts that were thrown away (kinds "rejected" and "unjudged").
- ``position_frame``: acceptance rate by draft position, beside the i.i.d. prediction.
- ``accepted_length_frame``: how many drafts each step accepted, beside the theory.
- ``topk_frame``: the top-k alternatives of p and q at one drafted position.
- ``runs_frame``: one row per run, key stats.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..teaching.theory import accepted_length_pmf
from .records import StepRecord, Trace
from .visible import visible

# ---------------------------------------------------------------- column names
STEP = "step"
POS = "pos"  # draft position in its step, 0-based
COL = "col"  # timeline column: draft position, or gamma for the token the target added
GAMMA = "gamma"
N_ACCEPTED = "n_accepted"
N_EVALUATED = "n_evaluated"
N_EMITTED = "n_emitted"
ALL_ACCEPTED = "all_accepted"
DRAFT_MS = "draft_ms"
VERIFY_MS = "verify_ms"
OVERHEAD_MS = "overhead_ms"  # accept + commit + bookkeeping: total - draft - verify
TOTAL_MS = "total_ms"
T_START_S = "t_start_s"
T_END_S = "t_end_s"
TOKENS_CUM = "tokens_cum"  # tokens emitted up to and including this step
TOKEN_ID = "token_id"
TEXT = "text"
P = "p"  # target probability of the token
Q = "q"  # draft probability of the token (NaN for drafters without q)
ACCEPT_PROB = "accept_prob"  # min(1, p/q); greedy: 1 if the token is the target's argmax
U = "u"  # the uniform draw (NaN under greedy and for positions never judged)
BETA = "beta"  # sum_x min(p(x), q(x)) at this position
STATUS = "status"  # drafts: accepted | rejected | unjudged
KIND = "kind"  # tokens: accepted | resampled | bonus | target | rejected | unjudged
EMITTED = "emitted"
OUT_INDEX = "out_index"  # index of an emitted token in the output; -1 for thrown-away drafts
RESIDUAL = "residual"  # norm(max(0, p - q)) over the tokens shown
IS_DRAFTED = "is_drafted"
RANK = "rank"

# position_frame
N_REACHED = "n_reached"  # steps that drafted this position
N_JUDGED = "n_judged"  # steps whose verifier judged this position
N_ACCEPTED_AT = "n_accepted_at"
RATE_JUDGED = "rate_judged"  # accepted / judged: P(accept | reached the verifier)
RATE_DRAFTED = "rate_drafted"  # accepted / drafted: P(this position survives)
PRED_JUDGED = "pred_judged"  # i.i.d. prediction: alpha
PRED_DRAFTED = "pred_drafted"  # i.i.d. prediction: alpha^(pos + 1)

# accepted_length_frame
LENGTH = "length"  # accepted drafts in a step
COUNT = "count"
FRACTION = "fraction"
PRED_COUNT = "pred_count"
PRED_FRACTION = "pred_fraction"

# runs_frame
RUN_ID = "run_id"
RUN_NAME = "run"
SOURCE = "source"
MODE = "mode"
TARGET = "target"
DRAFTER = "drafter"
TEMPERATURE = "temperature"
N_STEPS = "n_steps"
ALPHA_HAT = "alpha_hat"
MEAN_ACCEPTED_LENGTH = "mean_accepted_length"
TOKENS_PER_S = "tokens_per_s"
WALL_S = "wall_s"
STOP_REASON = "stop_reason"
DEVICE = "device"
PROMPT = "prompt"
CREATED = "created"

STATUSES = ("accepted", "rejected", "unjudged")
KINDS = ("accepted", "resampled", "bonus", "target", "rejected", "unjudged")

STEP_COLUMNS = [STEP, GAMMA, N_ACCEPTED, N_EVALUATED, N_EMITTED, ALL_ACCEPTED, DRAFT_MS,
                VERIFY_MS, OVERHEAD_MS, TOTAL_MS, T_START_S, T_END_S, TOKENS_CUM]
DRAFT_COLUMNS = [STEP, POS, TOKEN_ID, TEXT, P, Q, ACCEPT_PROB, U, BETA, STATUS]
TOKEN_COLUMNS = [STEP, POS, COL, TOKEN_ID, TEXT, KIND, EMITTED, OUT_INDEX, P, Q, ACCEPT_PROB,
                 U]
POSITION_COLUMNS = [POS, N_REACHED, N_JUDGED, N_ACCEPTED_AT, RATE_JUDGED, RATE_DRAFTED,
                    PRED_JUDGED, PRED_DRAFTED]
LENGTH_COLUMNS = [LENGTH, COUNT, FRACTION, PRED_COUNT, PRED_FRACTION]
TOPK_COLUMNS = [TOKEN_ID, TEXT, P, Q, RESIDUAL, IS_DRAFTED, RANK]
RUN_COLUMNS = [RUN_NAME, SOURCE, MODE, TARGET, DRAFTER, GAMMA, TEMPERATURE, N_STEPS, N_EMITTED,
               ALPHA_HAT, MEAN_ACCEPTED_LENGTH, TOKENS_PER_S, WALL_S, STOP_REASON, DEVICE,
               PROMPT, CREATED, RUN_ID]

NAN = float("nan")


def _num(x: float | None) -> float:
    return NAN if x is None else float(x)


def is_target_only(trace: Trace) -> bool:
    return trace.run.mode == "target-only"


def is_greedy(trace: Trace) -> bool:
    """Greedy decoding (τ = 0): a draft is accepted exactly when it is p's top token."""
    return not trace.run.config.get("temperature", 0.0)


def steps_frame(trace: Trace) -> pd.DataFrame:
    """One row per verification step: draft size, counts, phase times (ms), clock (s)."""
    rows = [(s.step, s.gamma, s.n_accepted, s.n_evaluated, len(s.emitted_ids),
             s.gamma > 0 and s.n_accepted == s.gamma, s.draft_ms, s.verify_ms,
             max(s.total_ms - s.draft_ms - s.verify_ms, 0.0), s.total_ms,
             max(s.t_end_s - s.total_ms / 1e3, 0.0), s.t_end_s, 0) for s in trace.steps]
    df = pd.DataFrame(rows, columns=STEP_COLUMNS)
    df[TOKENS_CUM] = df[N_EMITTED].cumsum()
    return df.astype({ALL_ACCEPTED: bool})


def _status(s: StepRecord, i: int) -> str:
    if s.accepted[i]:
        return "accepted"
    if s.tree_parent is not None:  # a tree: judged nodes carry an acceptance probability
        return "unjudged" if s.accept_prob[i] is None else "rejected"
    return "rejected" if i == s.n_accepted else "unjudged"


def _reading_order(s: StepRecord) -> list[int]:
    """Draft positions in reading order: a chain's as drafted; a tree's accepted path only
    (its other nodes are alternatives, not text that followed: the tree view shows them)."""
    if s.tree_parent is None:
        return list(range(s.gamma))
    return [i for i in range(s.gamma) if s.accepted[i]]


def drafts_frame(trace: Trace) -> pd.DataFrame:
    """One row per drafted position: the token, p, q, min(1, p/q), u, beta, status."""
    rows = []
    for s in trace.steps:
        for i in range(s.gamma):
            rows.append((s.step, i, s.drafted_ids[i], s.drafted_text[i], s.p[i],
                         NAN if s.q is None else s.q[i], _num(s.accept_prob[i]),
                         NAN if s.u is None else _num(s.u[i]),
                         NAN if s.beta is None else s.beta[i], _status(s, i)))
    return pd.DataFrame(rows, columns=DRAFT_COLUMNS)


def tokens_frame(trace: Trace) -> pd.DataFrame:
    """Token pieces in reading order, for the colored text and the timeline.

    Per step: the accepted drafts, then the drafts thrown away ("rejected" for the first
    rejection, "unjudged" after it), then the token the target added ("resampled" correction
    or "bonus"). Target-only runs have one token per step, of kind "target".
    """
    return step_tokens_frame(trace.steps, is_target_only(trace))


def step_tokens_frame(steps: Sequence[StepRecord], target_only: bool,
                      out_start: int = 0) -> pd.DataFrame:
    """``tokens_frame`` of some consecutive steps, the first of which emits output token
    ``out_start`` (the live view adds the steps of each frame to what it has)."""
    rows = []
    out = out_start
    for s in steps:
        n_acc = s.n_accepted
        order = _reading_order(s)
        for col, i in enumerate(order):
            status = _status(s, i)
            emitted = status == "accepted" and col < len(s.emitted_ids)
            rows.append((s.step, i, col, s.drafted_ids[i], s.drafted_text[i], status, emitted,
                         out + col if emitted else -1, s.p[i],
                         NAN if s.q is None else s.q[i], _num(s.accept_prob[i]),
                         NAN if s.u is None else _num(s.u[i])))
        extra = s.emitted_ids[n_acc:]
        for j, tok in enumerate(extra):  # the correction or bonus (absent if cut by a stop)
            kind = "target" if target_only else s.emitted_kinds[n_acc + j]
            rows.append((s.step, s.gamma, len(order), tok, s.emitted_text[n_acc + j], kind,
                         True, out + n_acc + j, NAN, NAN, NAN, NAN))
        out += len(s.emitted_ids)
    return pd.DataFrame(rows, columns=TOKEN_COLUMNS)


def position_frame(trace: Trace, alpha: float | None = None) -> pd.DataFrame:
    """Acceptance by draft position, measured and as the i.i.d. model predicts from alpha.

    rate_judged = accepted / judged (the i.i.d. model says: alpha at every position);
    rate_drafted = accepted / drafted (it says: alpha^(pos + 1)).
    """
    alpha = trace_alpha(trace) if alpha is None else alpha
    g_max = max((max(s.tree_depth, default=0) for s in trace.steps), default=0)
    reached = np.zeros(g_max, dtype=np.int64)
    judged = np.zeros(g_max, dtype=np.int64)
    acc = np.zeros(g_max, dtype=np.int64)
    for s in trace.steps:  # a tree's "position" is a depth: reached, judged, accepted there
        depth = s.tree_depth
        reached[: max(depth, default=0)] += 1
        if s.tree_parent is None:
            judged[: s.n_evaluated] += 1
        else:
            for d in {d for d, a in zip(depth, s.accept_prob) if a is not None}:
                judged[d - 1] += 1
        acc[: s.n_accepted] += 1
    pos = np.arange(g_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = pd.DataFrame({POS: pos, N_REACHED: reached, N_JUDGED: judged, N_ACCEPTED_AT: acc,
                           RATE_JUDGED: np.where(judged > 0, acc / np.maximum(judged, 1), NAN),
                           RATE_DRAFTED: np.where(reached > 0, acc / np.maximum(reached, 1),
                                                  NAN)})
    a = NAN if alpha is None else alpha
    df[PRED_JUDGED] = a
    df[PRED_DRAFTED] = a ** (pos + 1.0)
    return df


def accepted_length_frame(trace: Trace, alpha: float | None = None) -> pd.DataFrame:
    """Histogram of accepted drafts per step beside the theory (a mixture over each step's
    gamma, so adaptive draft lengths are handled)."""
    alpha = trace_alpha(trace) if alpha is None else alpha
    steps = [s for s in trace.steps if s.gamma > 0]
    g_max = max((s.gamma for s in steps), default=0)
    counts = np.zeros(g_max + 1)
    pred = np.zeros(g_max + 1)
    by_gamma: dict[int, int] = {}
    for s in steps:
        counts[s.n_accepted] += 1
        by_gamma[s.gamma] = by_gamma.get(s.gamma, 0) + 1
    if alpha is not None:
        for g, n in by_gamma.items():
            pred[: g + 1] += n * accepted_length_pmf(alpha, g)
    else:
        pred[:] = NAN
    n = max(len(steps), 1)
    return pd.DataFrame({LENGTH: np.arange(g_max + 1), COUNT: counts.astype(int),
                         FRACTION: counts / n, PRED_COUNT: pred, PRED_FRACTION: pred / n})


def topk_frame(trace: Trace, step: int, pos: int) -> pd.DataFrame:
    """The top-k tokens of p and of q at one drafted position (their union), with the
    residual norm(max(0, p - q)).

    Only the recorded top-k are known: a token missing from one list gets NaN there, and the
    residual is computed over the tokens shown with missing values read as 0 (so it is an
    approximation when the lists differ). The drafted token's own p and q are exact.
    """
    s = trace.steps[step]
    p_of: dict[int, float] = {}
    q_of: dict[int, float] = {}
    text: dict[int, str] = {}
    if s.p_top_ids:
        for t, x, pr in zip(s.p_top_ids[pos], s.p_top_texts[pos], s.p_top_probs[pos]):
            p_of[t], text[t] = pr, x
    if s.q_top_ids:
        for t, x, pr in zip(s.q_top_ids[pos], s.q_top_texts[pos], s.q_top_probs[pos]):
            q_of[t], text[t] = pr, x
    d = s.drafted_ids[pos]
    p_of[d] = s.p[pos]
    text[d] = s.drafted_text[pos]
    q_of[d] = 1.0 if s.q is None else s.q[pos]  # without q the draft is one-hot on d
    if s.q is None:
        q_of = {t: (1.0 if t == d else 0.0) for t in text}
    ids = list(text)
    p = np.array([p_of.get(t, NAN) for t in ids])
    q = np.array([q_of.get(t, NAN) for t in ids])
    res = np.clip(np.nan_to_num(p) - np.nan_to_num(q), 0.0, None)
    total = res.sum()
    res = res / total if total > 0 else res
    df = pd.DataFrame({TOKEN_ID: ids, TEXT: [text[t] for t in ids], P: p, Q: q, RESIDUAL: res,
                       IS_DRAFTED: [t == d for t in ids]})
    df = df.sort_values([P, Q], ascending=False, na_position="last").reset_index(drop=True)
    df[RANK] = np.arange(len(df))
    return df[TOPK_COLUMNS]


def trace_alpha(trace: Trace) -> float | None:
    """alpha_hat = accepted / judged drafts (from the summary when there is one)."""
    if trace.summary is not None and trace.summary.alpha_hat is not None:
        return trace.summary.alpha_hat
    judged = sum(s.n_evaluated for s in trace.steps)
    return sum(s.n_accepted for s in trace.steps) / judged if judged else None


def run_name(trace: Trace, source: str = "") -> str:
    """A short readable name of a run: label or run id, with its drafter and gamma."""
    r = trace.run
    tree = r.config.get("tree")
    what = "target only" if is_target_only(trace) else \
        f"{r.drafter or 'draft'} " + (f"tree {tree}" if tree else
                                      f"γ={r.config.get('gamma', '?')}")
    head = r.label or r.run_id
    return visible(f"{head} · {what}" + (f" · {source}" if source else ""))


def engine_summary(trace: Trace) -> str:
    """Where and how a run ran, in one line: device, engine, CUDA graphs on or off."""
    hw = trace.run.hardware
    device = hw.get("device", "unknown device")
    chip = hw.get("gpu") or hw.get("cpu")
    where = f"{device} ({chip})" if chip else device
    eng = hw.get("engine")
    if not isinstance(eng, dict):
        return f"Ran on {where}; engine not recorded (transformers' eager forward)."
    path = eng.get("path")
    how = {"graphs": "static KV caches, CUDA graphs on",
           "static": "static KV caches, CUDA graphs off",
           "eager": "transformers' eager forward, CUDA graphs off"}.get(path, str(path))
    if eng.get("row_kernel"):
        how += ", few-row products on the Triton kernel"
    if eng.get("fused"):
        how += ", layers and tree drafts compiled (fused)"
    why = eng.get("why")
    return f"Ran on {where}: {how}" + (f" ({why})." if why else ".")


def run_label(i: int, trace: Trace, prompt_chars: int = 32) -> str:
    """A run's name in a list of runs: its number (from 1), name and prompt, so that runs
    of one setup on several prompts read apart."""
    cut = "" if trace.complete else " (incomplete)"
    return (f"{i + 1}. {run_name(trace)}{cut} · "
            f"“{visible(_short(trace.run.prompt_text, prompt_chars))}”")


def runs_frame(traces: Sequence[Trace], sources: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per run: setup and key stats (summary computed for incomplete runs). The
    ``run`` column holds ``run_label``: distinct for every row."""
    sources = list(sources) if sources is not None else [""] * len(traces)
    rows = []
    for i, (t, src) in enumerate(zip(traces, sources)):
        r, sm = t.run, t.with_summary().summary
        rows.append((run_label(i, t), src, r.mode, r.target.get("source", ""),
                     r.drafter or "", r.config.get("gamma", 0) if r.mode != "target-only"
                     else 0, r.config.get("temperature", NAN), sm.n_steps, sm.n_emitted,
                     _num(sm.alpha_hat), _num(sm.mean_accepted_length),
                     sm.tokens_per_s if t.complete else NAN,  # no wall time: unknown
                     sm.wall_s, sm.stop_reason if t.complete else "incomplete",
                     r.hardware.get("gpu") or r.hardware.get("cpu") or
                     r.hardware.get("device", ""),
                     _short(r.prompt_text), r.created, r.run_id))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first token where two outputs differ (or where one ends); None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def tag(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """A copy of a frame with a ``run`` column naming the run (for multi-run figures)."""
    return df.assign(**{RUN_NAME: name})


_SAME_SETUP = ("temperature", "top_k", "top_p", "max_new_tokens", "chat")


def _same_setup(b: Trace, r) -> bool:
    """Whether target-only run ``b`` has run record ``r``'s target, prompt, sampling settings
    and device."""
    b = b.run
    return (b.mode == "target-only" and b.target.get("source") == r.target.get("source")
            and b.prompt_text == r.prompt_text
            and b.hardware.get("device") == r.hardware.get("device")
            and all(b.config.get(k) == r.config.get(k) for k in _SAME_SETUP))


def baseline_for(trace: Trace, traces: Sequence[Trace]) -> Trace | None:
    """This run's own target-only baseline among ``traces``, or None.

    A baseline names the run it was measured against (run.baseline_of, schema 5): such links
    are the only pairing when the file has any for this run (the last if several). Without a
    link (older traces) a run is paired only with an unambiguous match: the one target-only
    run of the file, unlinked, with the same target, prompt, sampling settings and device;
    two or more such runs give None rather than a guess."""
    if is_target_only(trace):
        return None
    rid = trace.run.run_id
    linked = [t for t in traces if t.run.mode == "target-only" and t.run.baseline_of == rid]
    if linked:
        return linked[-1]
    same = [t for t in traces if not t.run.baseline_of and _same_setup(t, trace.run)]
    return same[0] if len(same) == 1 else None


# ---------------------------------------------------------------- token trees
NODE = "node"  # index in the step's tree; -1 the root (the last committed token)
PARENT = "parent"
DEPTH = "depth"
X = "x"  # layout: depth
Y = "y"  # layout: leaves in drafting order, a parent amid its children
TREE_COLUMNS = [NODE, PARENT, DEPTH, TOKEN_ID, TEXT, KIND, P, Q, ACCEPT_PROB, U, Y]
ROOT = "root"


def is_tree(trace: Trace) -> bool:
    """Whether the run drafted token trees (any step with a tree)."""
    return any(s.tree_parent is not None for s in trace.steps)


def tree_frame(s: StepRecord, root_text: str = "x₀") -> pd.DataFrame:
    """One row per node of a step's tree (a chain is a tree of width 1), plus the root and
    the token the target added (a child of the last accepted node): node, parent, depth,
    token, kind (root | accepted | rejected | unjudged | resampled | bonus), p, q,
    min(1, p/q), u and a layout row y (leaves in order, each parent amid its children)."""
    parent = s.tree_parent if s.tree_parent is not None else list(range(-1, s.gamma - 1))
    depth = s.tree_depth
    path = [i for i in range(s.gamma) if s.accepted[i]]
    kids: dict[int, list[int]] = {-1: []}
    for i, par in enumerate(parent):
        kids.setdefault(par, []).append(i)
        kids.setdefault(i, [])
    added = s.emitted_ids[s.n_accepted:s.n_accepted + 1]
    end = path[-1] if path else -1
    if added:
        kids[end].append(s.gamma)  # the added token, drawn last
        kids[s.gamma] = []
    y: dict[int, float] = {}
    leaf = [0]

    def place(i: int) -> None:
        if not kids[i]:
            y[i] = float(leaf[0])
            leaf[0] += 1
            return
        for k in kids[i]:
            place(k)
        y[i] = sum(y[k] for k in kids[i]) / len(kids[i])

    place(-1)
    rows = [(-1, -2, 0, -1, root_text, ROOT, NAN, NAN, NAN, NAN, y[-1])]
    for i in range(s.gamma):
        rows.append((i, parent[i], depth[i], s.drafted_ids[i], s.drafted_text[i],
                     _status(s, i), s.p[i], NAN if s.q is None else s.q[i],
                     _num(s.accept_prob[i]), NAN if s.u is None else _num(s.u[i]), y[i]))
    if added:
        rows.append((s.gamma, end, len(path) + 1, added[0], s.emitted_text[s.n_accepted],
                     s.emitted_kinds[s.n_accepted], NAN, NAN, NAN, NAN, y[s.gamma]))
    return pd.DataFrame(rows, columns=TREE_COLUMNS)


NODES = "nodes"  # drafted per verification
MAX_DEPTH = "max_depth"  # deepest node drafted
N_TRIED = "n_tried"  # nodes the verifier judged
USEFUL = "useful"  # accepted nodes / drafted nodes
TREE_STEP_COLUMNS = [STEP, NODES, MAX_DEPTH, N_ACCEPTED, N_TRIED, N_EMITTED, USEFUL]


def last_committed_text(trace: Trace, step: int) -> str:
    """The text of x₀ of a step (the last token committed before it): at the first step the
    prompt's last token (traces before schema 4 do not hold its text: "x₀")."""
    if step > 0 and trace.steps[step - 1].emitted_text:
        return trace.steps[step - 1].emitted_text[-1]
    return (trace.run.prompt_last_text or "x₀") if step == 0 else "x₀"


def tree_steps_frame(trace: Trace) -> pd.DataFrame:
    """Per step of a tree run: nodes drafted, the deepest drafted, the accepted depth, nodes
    judged, tokens emitted, and the useful share (accepted / drafted)."""
    rows = [(s.step, s.gamma, max(s.tree_depth, default=0), s.n_accepted, s.n_evaluated,
             len(s.emitted_ids), s.n_accepted / s.gamma if s.gamma else NAN)
            for s in trace.steps]
    return pd.DataFrame(rows, columns=TREE_STEP_COLUMNS)
