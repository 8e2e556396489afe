"""Valid but odd traces for property tests (hypothesis): chains and trees, greedy and sampled,
drafters with and without q, top-k lists of 0 to 3 entries or none, timings of 0 ms or
the clock's extremes, incomplete runs, stops inside a step, baselines linked or not, text
with markup, control and bidirectional characters. Every trace they make loads."""

from __future__ import annotations

from hypothesis import strategies as st

from specviz.traces.records import (
    DRAFTER_KINDS,
    STOP_REASONS,
    RunRecord,
    StepRecord,
    Trace,
    summarize,
)

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6) | \
    st.sampled_from(["", " ", "\n", "<b>x</b>", "\u202e12345", "\x00", "&amp;", "$x$",
                     "**", "😀\u200d😀", "a" * 40])
PROB = st.sampled_from([0.0, 5e-324, 1e-300, 0.25, 0.5, 1.0])
MS = st.sampled_from([0.0, 1e-6, 0.5, 12.0, 1e7])
TOKEN = st.sampled_from([0, 1, 7, 2**31 - 1])


def _topk(draw, g: int) -> tuple[list, list, list]:
    if g == 0 or draw(st.booleans()):
        return [], [], []
    k = draw(st.integers(0, 3))
    return ([[draw(TOKEN) for _ in range(k)] for _ in range(g)],
            [[draw(TEXT) for _ in range(k)] for _ in range(g)],
            [[draw(PROB) for _ in range(k)] for _ in range(g)])


def _tree(draw, g: int) -> tuple[list[int], list[bool]]:
    """Parents (each before its child) and one accepted path down from the root."""
    parent = [draw(st.integers(-1, i - 1)) for i in range(g)]
    accepted, at = [False] * g, -1
    while draw(st.booleans()):
        children = [i for i in range(g) if parent[i] == at]
        if not children:
            break
        at = draw(st.sampled_from(children))
        accepted[at] = True
    return parent, accepted


def _step(draw, i: int, t_end: float, spec: bool, tree: bool, has_q: bool, greedy: bool,
          cut: bool) -> StepRecord:
    g = draw(st.integers(0, 5 if tree else 4)) if spec else 0
    parent = None
    if tree and g:
        parent, accepted = _tree(draw, g)
    else:
        n_acc = draw(st.integers(0, g))
        accepted = [True] * n_acc + [False] * (g - n_acc)
    path = [j for j in range(g) if accepted[j]]
    drafted = [draw(TOKEN) for _ in range(g)]
    n_acc = len(path)
    last = "bonus" if (n_acc == g and parent is None) else (
        draw(st.sampled_from(["bonus", "resampled"])) if parent is not None else "resampled")
    emitted = [drafted[j] for j in path] + [draw(TOKEN)]
    kinds = ["accepted"] * n_acc + [last]
    if cut:  # the run stopped inside this step
        n = draw(st.integers(1, len(emitted)))
        emitted, kinds = emitted[:n], kinds[:n]
    pt, tt, pp = _topk(draw, g)
    qt = _topk(draw, g) if has_q else (None, None, None)
    ms = [draw(MS) for _ in range(4)]
    return StepRecord(
        step=i, gamma=g, drafted_ids=drafted, drafted_text=[draw(TEXT) for _ in range(g)],
        q=[draw(PROB) for _ in range(g)] if has_q else None,
        p=[draw(PROB) for _ in range(g)],
        accept_prob=[None if parent is not None and not accepted[j] and draw(st.booleans())
                     else draw(PROB) for j in range(g)],
        u=None if greedy else [draw(st.none() | PROB) for _ in range(g)],
        accepted=accepted, emitted_ids=emitted,
        emitted_text=[draw(TEXT) for _ in emitted], emitted_kinds=kinds,
        p_top_ids=pt, p_top_texts=tt, p_top_probs=pp,
        q_top_ids=qt[0], q_top_texts=qt[1], q_top_probs=qt[2],
        beta=[draw(PROB) for _ in range(g)] if has_q and draw(st.booleans()) else None,
        draft_ms=ms[0], verify_ms=ms[1], accept_ms=ms[2], total_ms=ms[3],
        t_end_s=t_end, tree_parent=parent)


def _run(draw, run_id: str, spec: bool, tree: bool, greedy: bool, baseline_of: str = "",
         prompt: str = "hi") -> RunRecord:
    drafter = draw(st.sampled_from(DRAFTER_KINDS)) if spec else None
    config = {"temperature": 0.0 if greedy else draw(st.sampled_from([0.7, 1.0, 100.0])),
              "top_k": draw(st.sampled_from([0, 5])), "top_p": draw(st.sampled_from([1.0, 0.9])),
              "max_new_tokens": draw(st.sampled_from([0, 16, 4096])), "chat": False}
    if spec:
        config["gamma"] = draw(st.integers(0, 32))
        config["policy"] = draw(st.sampled_from(["fixed", "heuristic", "confidence"]))
        if tree:
            config["tree"] = draw(st.sampled_from(["3,2,1", "dynamic:16:6", ""]))
    engine = draw(st.sampled_from([None, "missing", "graphs", "eager", "other"]))
    hardware = {"device": draw(st.sampled_from(["cpu", "cuda:0", "<b>x</b>"])),
                "cpu": draw(st.none() | TEXT)}
    if engine not in (None, "missing"):
        hardware["engine"] = {"path": engine, "why": draw(TEXT)}
    elif engine is None:
        hardware["engine"] = None
    if draw(st.booleans()):
        hardware["gpu"] = draw(st.none() | TEXT)
    return RunRecord(
        run_id=run_id, mode="speculative" if spec else "target-only", created="",
        specviz_version="fuzz", target={"source": draw(TEXT)},
        draft={"source": draw(TEXT)} if drafter == "model" else None, drafter=drafter,
        config=config, prompt_text=prompt, prompt_token_ids=[1, 2],
        hardware=hardware, label=draw(TEXT), prompt_last_text=draw(TEXT),
        baseline_of=baseline_of)


def _trace(draw, run: RunRecord, tree: bool, greedy: bool) -> Trace:
    spec = run.mode == "speculative"
    has_q = spec and run.drafter in ("model", "feature-head") and draw(st.booleans())
    n = draw(st.integers(0 if draw(st.booleans()) else 1, 5))
    complete = draw(st.integers(0, 4)) > 0
    steps, t = [], 0.0
    for i in range(n):
        t += draw(st.sampled_from([0.0, 1e-6, 0.01, 3.0]))
        steps.append(_step(draw, i, t, spec, tree, has_q, greedy,
                           cut=i == n - 1 and draw(st.booleans())))
    if not complete:
        return Trace(run, tuple(steps))
    n_out = sum(len(s.emitted_ids) for s in steps)
    wall = max(t, n_out / 1e5) + draw(st.sampled_from([0.0, 1e-3, 10.0]))
    return Trace(run, tuple(steps), summarize(
        run, steps, wall_s=wall, output_text=draw(TEXT),
        stop_reason=draw(st.sampled_from(STOP_REASONS))))


@st.composite
def trace_files(draw) -> list[Trace]:
    """One file's runs: a speculative run (chain or tree), often with its target-only
    baseline (linked by baseline_of, or matched by its setup), sometimes a second run."""
    tree, greedy = draw(st.booleans()), draw(st.booleans())
    runs = [_trace(draw, _run(draw, "s1", True, tree, greedy), tree, greedy)]
    link = draw(st.sampled_from(["linked", "matched", "none"]))
    if link != "none":
        base = _run(draw, "b1", False, False, greedy,
                    baseline_of="s1" if link == "linked" else "")
        base = RunRecord(**{**base.__dict__, "target": runs[0].run.target,
                            "hardware": runs[0].run.hardware,
                            "config": {k: runs[0].run.config.get(k, v)
                                       for k, v in base.config.items()}})
        runs.append(_trace(draw, base, False, greedy))
    if draw(st.booleans()):
        runs.append(_trace(draw, _run(draw, "s2", True, not tree, greedy), not tree, greedy))
    return runs
