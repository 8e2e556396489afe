"""The walkthrough library: micro-steps of greedy, sampled and prompt-lookup steps, narration
written from the step's own numbers, cache bookkeeping checked against the real decoder,
HTML escaping, and the figures."""

import subprocess
import sys
from dataclasses import replace
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import pytest

from specviz.figures import walkthrough_views as V
from specviz.teaching import walkthrough as W
from specviz.traces import frames as F
from specviz.traces.records import Trace, summarize
from tests._traces import handmade_trace, tiny_runs


@pytest.fixture(scope="module")
def hand():
    return handmade_trace()


@lru_cache(maxsize=None)
def lookup_sampled() -> Trace:
    """Prompt lookup under sampling (q = None): a real run of the tiny random target."""
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-target")
    cfg = DecodeConfig(drafter="prompt-lookup", gamma=3, temperature=1.0, seed=1,
                       max_new_tokens=20, chat=False)
    return speculative_decode(pair, "abc abc abc abc", cfg, label="lookup-sampled")


def _correction_in_topk(hand: Trace) -> Trace:
    """The handmade run with its first correction ('<b>', id 30) among p's recorded top-k
    at the rejected position."""
    s0 = hand.steps[0]
    s0 = replace(s0, p_top_ids=s0.p_top_ids[:2] + [[3, 30]],
                 p_top_texts=s0.p_top_texts[:2] + [["d", "<b>"]],
                 p_top_probs=s0.p_top_probs[:2] + [[0.1, 0.5]])
    return Trace(hand.run, (s0, *hand.steps[1:]), hand.summary)


def _phases(walk: W.StepWalk) -> list[str]:
    return [m.phase for m in walk.micro]


def _expected_phases(s) -> list[str]:
    judged = s.n_evaluated
    return (["draft"] * max(s.gamma, 1) + ["verify"] + ["accept"] * judged + ["add", "commit"])


# ---------------------------------------------------------------- micro-step sequences

def test_sampled_step_with_a_rejection(hand):
    w = W.walk_step(hand, 0)
    assert _phases(w) == ["draft"] * 3 + ["verify"] + ["accept"] * 3 + ["add", "commit"]
    assert [m.position for m in w.micro] == [0, 1, 2, None, 0, 1, 2, 2, None]
    assert not w.greedy and w.has_q and w.n_accepted == 2
    assert w.added == W.Added(30, "<b>", "resampled")
    reject = w.micro[6].narration
    # p = 0.1, q = 0.5, min(1, p/q) = 0.2, u = 0.9
    assert "min(1, p/q) = min(1, 0.100/0.500) = 0.200" in reject
    assert "u = 0.900" in reject and reject.endswith("rejected.")
    accept = w.micro[4].narration
    assert "p = 0.600 ≥ q = 0.500" in accept and "u = 0.100" in accept
    assert accept.endswith("accepted.")
    assert "norm(max(0, p − q))" in w.micro[7].narration
    assert "'<b>'" in w.micro[7].narration  # the correction's text, raw in plain text
    assert "approximation" in w.micro[7].narration  # the residual comes from the top-k only


def test_all_accepted_step_adds_a_bonus(hand):
    w = W.walk_step(hand, 1)
    assert _phases(w) == ["draft"] * 3 + ["verify"] + ["accept"] * 3 + ["add", "commit"]
    add = w.micro[7]
    assert add.title == "The bonus token" and add.position is None
    assert "All 3 drafts were accepted" in add.narration and "'h'" in add.narration
    assert [t.state for t in W.strip_tokens(w, 7)][-4:] == ["accepted"] * 3 + ["bonus"]


def test_first_draft_rejected_leaves_the_rest_unjudged(hand):
    w = W.walk_step(hand, 2)
    assert _phases(w) == ["draft"] * 3 + ["verify", "accept", "add", "commit"]
    assert "('j', 'k') are never judged" in w.micro[4].narration
    states = [t.state for t in W.strip_tokens(w, 4) if t.segment == "drafts"]
    assert states == ["rejected", "unjudged", "unjudged"]


def test_real_sampled_run_narration_matches_each_step():
    trace = tiny_runs()["sampled"]
    assert trace.run.drafter == "model"
    for s in trace.steps:
        w = W.walk_step(trace, s.step)
        assert _phases(w) == _expected_phases(s)
        draft = [m for m in w.micro if m.phase == "draft" and m.position is not None]
        for m in draft:
            assert f"q = {W.num(s.q[m.position])}" in m.narration
            assert "samples from q" in m.narration
        verify = next(m for m in w.micro if m.phase == "verify")
        for i in range(s.gamma):
            assert f"p({W.quote(s.drafted_text[i])}) = {W.num(s.p[i])}" in verify.narration
        for m in (m for m in w.micro if m.phase == "accept"):
            i = m.position
            assert f"u = {W.num(s.u[i])}" in m.narration
            assert f"{W.num(s.accept_prob[i])}" in m.narration
            assert (": accepted." if s.accepted[i] else ": rejected.") in m.narration
        add = next(m for m in w.micro if m.phase == "add")
        kind = s.emitted_kinds[s.n_accepted]
        assert add.title == ("The bonus token" if kind == "bonus" else "The correction")
        assert W.quote(s.emitted_text[s.n_accepted]) in add.narration


def test_real_greedy_prompt_lookup_run():
    trace = tiny_runs()["greedy"]
    assert trace.run.drafter == "prompt-lookup" and trace.steps[0].u is None
    drafted = [s for s in trace.steps if s.gamma]
    assert drafted, "the tiny greedy run should draft somewhere"
    for s in trace.steps:
        w = W.walk_step(trace, s.step)
        assert w.greedy and not w.has_q
        assert _phases(w) == _expected_phases(s)
        if not s.gamma:
            assert w.micro[0].title == "Nothing drafted"
            assert "prompt lookup found no earlier match" in w.micro[0].narration
            continue
        assert "Prompt lookup copies" in w.micro[0].narration
        for m in (m for m in w.micro if m.phase == "accept"):
            assert "most likely token" in m.narration
            assert f"p = {W.num(s.p[m.position])}" in m.narration
            assert "min(1" not in m.narration  # greedy: no acceptance probability


def test_prompt_lookup_under_sampling_uses_one_hot_q():
    trace = lookup_sampled()
    steps = [s for s in trace.steps if s.gamma]
    assert steps and all(s.q is None and s.u is not None for s in steps)
    s = steps[0]
    w = W.walk_step(trace, s.step)
    assert not w.greedy and not w.has_q
    m = next(m for m in w.micro if m.phase == "accept")
    assert s.accept_prob[0] == pytest.approx(s.p[0], rel=1e-5)  # min(1, p/1) = p
    assert f"min(1, p/1) = p = {W.num(s.p[0])}" in m.narration
    assert f"u = {W.num(s.u[0])}" in m.narration
    q = W.positions_frame(w, m.index)[F.Q]
    assert (q == 1.0).all()  # q one-hot: drawn as 1
    if s.n_accepted < s.gamma:
        add = next(m for m in w.micro if m.phase == "add")
        assert "p(y) / (1 − p(x))" in add.narration


def test_target_only_runs_are_refused():
    base = tiny_runs()["sampled-base"]
    assert not W.is_walkable(base)
    with pytest.raises(W.WalkError, match="target-only"):
        W.walk_step(base, 0)
    with pytest.raises(W.WalkError, match="out of range"):
        W.walk_step(tiny_runs()["sampled"], 10_000)


def test_a_step_cut_by_end_of_sequence_adds_nothing(hand):
    s0 = hand.steps[0]
    cut = replace(s0, accepted=[True, True, False], emitted_ids=[1, 2],
                  emitted_text=["a", "b"], emitted_kinds=["accepted", "accepted"])
    trace = Trace(hand.run, (cut,), summarize(hand.run, (cut,), wall_s=0.1, output_text="",
                                              stop_reason="eos"))
    w = W.walk_step(trace, 0)
    assert w.added is None and w.micro[-2].title == "Nothing added: the run ended"
    assert w.cache.committed_after == 4 and w.cache.target_kept == 3
    assert w.cache.target_dropped == 2  # the rejected draft and the position after 'b'


# ---------------------------------------------------------------- cache bookkeeping

def test_cache_counts_of_the_handmade_run(hand):
    c0, c1, c2 = (W.cache_counts(hand, i) for i in range(3))
    # prompt of 2 tokens, the first prefilled; step 0 feeds the last prompt token + 3 drafts
    assert (c0.committed_before, c0.target_before, c0.target_fed, c0.target_after_verify,
            c0.committed_after, c0.target_kept, c0.target_dropped) == (2, 1, 4, 5, 5, 4, 1)
    assert (c0.draft_before, c0.draft_after_drafting, c0.draft_kept) == (0, 4, 3)
    # all accepted + bonus: nothing dropped; the draft keeps all but the last two
    assert (c1.target_before, c1.target_fed, c1.target_after_verify, c1.target_kept,
            c1.target_dropped) == (4, 4, 8, 8, 0)
    assert (c1.draft_after_drafting, c1.draft_kept) == (7, 7)
    assert "every committed token but the last two" in W.walk_step(hand, 1).micro[-1].narration
    # first draft rejected: the target drops all 3 draft positions
    assert (c2.committed_before, c2.committed_after, c2.target_kept, c2.target_dropped) == \
        (9, 10, 9, 3)
    assert (c2.draft_after_drafting, c2.draft_kept, c2.draft_dropped) == (11, 8, 3)
    text = W.walk_step(hand, 2).micro[-1].narration
    assert "keeps 9" in text and "drops 3 positions" in text
    frame = W.cache_frame(c2)
    after_verify = frame[frame[W.MOMENT] == "target after verify"].iloc[0]
    assert (after_verify[W.HELD_COMMITTED], after_verify[W.HELD_DRAFTS]) == (9, 3)


def test_cache_counts_follow_the_real_decoder(monkeypatch):
    """Record the cache length before every forward pass of transformers' engine (which cuts
    the cache back to the first position it feeds) and compare with the bookkeeping the
    walkthrough replays from the trace alone."""
    from specviz import DecodeConfig, load_pair, speculative_decode
    from specviz.engines import eager
    pair = load_pair("embedded:tiny-random-target")
    passes: dict[str, list[tuple[int, int, int]]] = {"target": [], "draft": []}
    original = eager.CachedLM.forward

    def forward(self, ids, pos, *args, **kwargs):
        who = "target" if self.model is pair.target else "draft"
        passes[who].append((self.cache.get_seq_length(), int(pos[0]), len(ids)))
        out = original(self, ids, pos, *args, **kwargs)
        return out

    monkeypatch.setattr(eager.CachedLM, "forward", forward)
    cfg = DecodeConfig(drafter="model", gamma=3, temperature=1.0, seed=5, max_new_tokens=16,
                       chat=False, engine="eager")
    trace = speculative_decode(pair, "abc abc", cfg)
    assert any(s.n_accepted < s.gamma for s in trace.steps)  # some positions are dropped
    verify = passes["target"][1:]  # after the prefill: one pass per step
    first_drafts = [p for p in passes["draft"][1:] if p[2] == 2]  # each step's first pass
    assert len(verify) == len(first_drafts) == len(trace.steps)
    for s, (held, start, fed) in zip(trace.steps, verify):
        c = W.cache_counts(trace, s.step)
        assert (start, fed) == (c.target_before, c.target_fed), s.step
        if not s.step:  # the prefill left exactly that
            assert held == c.target_before
        else:  # what the previous step left, cut back to what it kept
            prev = W.cache_counts(trace, s.step - 1)
            assert (held, start) == (prev.target_after_verify, prev.target_kept), s.step
    for s, (held, start, _) in zip(trace.steps, first_drafts):
        c = W.cache_counts(trace, s.step)
        assert start == c.draft_before, s.step
        if not s.step:
            assert held == c.draft_before
        else:
            prev = W.cache_counts(trace, s.step - 1)
            assert (held, start) == (prev.draft_after_drafting, prev.draft_kept), s.step


# ---------------------------------------------------------------- what each micro-step shows

def test_positions_frame_reveals_step_by_step(hand):
    w = W.walk_step(hand, 0)
    first = W.positions_frame(w, 1)  # second draft token
    assert len(first) == 2 and first[F.P].isna().all() and first[W.CURRENT].tolist() == \
        [False, True]
    verify = W.positions_frame(w, 3)
    assert verify[F.P].tolist() == [0.6, 0.3, 0.1] and verify[F.U].isna().all()
    assert (verify[W.STATE] == W.PENDING).all()
    judged = W.positions_frame(w, 5)  # position 2 judged, position 3 not yet
    assert judged[W.STATE].tolist() == ["accepted", "accepted", "pending"]
    assert judged[F.U].tolist()[:2] == [0.1, 0.2] and np.isnan(judged[F.U].iloc[2])


def test_strip_segments_prefix_accepted_added(hand):
    w = W.walk_step(hand, 1)
    end = W.strip_tokens(w, len(w.micro) - 1)
    assert [t.segment for t in end] == ["prefix"] * 4 + ["drafts"] * 3 + ["added"]
    # the prompt, then step 0's output
    assert [t.text for t in end[:4]] == ["hi", "b", "c", "<b>"]
    assert [t.text for t in W.strip_tokens(w, 0) if t.segment == "drafts"] == ["e"]


def test_verify_table_lists_p_and_its_top_k(hand):
    table = W.verify_table(hand, W.walk_step(hand, 0))
    assert table["position"].tolist() == [1, 2, 3]
    assert table["p(draft)"].tolist() == ["0.600", "0.300", "0.100"]
    assert table["p's top-k"].tolist()[0] == "'b' 0.600, 'j' 0.200"


def test_topk_view_marks_and_residual(hand):
    w = W.walk_step(hand, 0)
    draft = W.topk_view(hand, w, 2)
    assert draft[F.P].isna().all() and draft[W.RESIDUAL].isna().all()
    assert draft.loc[draft[W.MARK] == "drafted", F.TEXT].tolist() == ["d"]
    assert W.topk_view(hand, w, 3) is None  # the verify pass is about no single position
    trace = _correction_in_topk(hand)
    w = W.walk_step(trace, 0)
    add = W.topk_view(trace, w, 7)
    # position 3: p = {d: 0.1, <b>: 0.5}, q = {d: 0.5, i: 0.3}: the residual is all on <b>
    assert add.loc[add[W.MARK] == "added", W.RESIDUAL].tolist() == [1.0]
    assert add.loc[add[W.MARK] == "drafted", W.RESIDUAL].tolist() == [0.0]
    assert "computed from the recorded top-k only, is about 1.000" in w.micro[7].narration


def test_navigation_crosses_steps_and_stops_at_the_ends(hand):
    n0 = len(W.walk_step(hand, 0).micro)
    assert W.neighbour(hand, 0, 0, -1) == (0, 0)
    assert W.neighbour(hand, 0, n0 - 1, 1) == (1, 0)
    assert W.neighbour(hand, 1, 0, -1) == (0, n0 - 1)
    last = len(W.walk_step(hand, 2).micro) - 1
    assert W.neighbour(hand, 2, last, 1) == (2, last)
    assert W.is_last(hand, 2, last) and not W.is_last(hand, 2, last - 1)


# ---------------------------------------------------------------- HTML and figures

def test_token_text_is_escaped_in_html():
    evil = "<script>alert(1)</script>"
    strip = V.token_strip_html([W.StripToken("x", W.PREFIX, "prefix"),
                                W.StripToken(evil, W.RESAMPLED, "added")])
    assert "<script>" not in strip and "&lt;script&gt;" in strip
    assert V.SEPARATOR in strip  # prefix │ added
    text = V.narration_html("The correction", f"The correction {W.quote(evil)} is drawn")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_handmade_correction_is_escaped_in_the_strip(hand):
    w = W.walk_step(hand, 0)
    html = V.token_strip_html(W.strip_tokens(w, len(w.micro) - 1))
    assert "&lt;b&gt;" in html and "<b>" not in html


def test_fig_step_probabilities(hand):
    w = W.walk_step(hand, 0)
    fig = V.fig_step_probabilities(W.positions_frame(w, 6), w.greedy, w.has_q)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names[:3] == ["q (draft)", "p (target)", "min(1, p/q)"] and names[3].startswith("u")
    assert list(fig.data[2].y) == [1.0, 0.6, 0.2]
    assert list(fig.data[3].y) == [0.1, 0.2, 0.9]
    assert "✗" in fig.data[0].x[2]  # the rejected position is marked
    assert len(fig.layout.shapes) == 1  # the current position is shaded
    greedy = tiny_runs()["greedy"]
    s = next(s for s in greedy.steps if s.gamma)
    gw = W.walk_step(greedy, s.step)
    gfig = V.fig_step_probabilities(W.positions_frame(gw, len(gw.micro) - 1), True, False)
    assert [t.name for t in gfig.data] == ["q = 1 (one-hot: prompt lookup)", "p (target)",
                                           "p is the top token (greedy)"]
    s0 = next(s for s in greedy.steps if not s.gamma)
    empty = V.fig_step_probabilities(W.positions_frame(W.walk_step(greedy, s0.step), 0))
    assert empty.layout.title.text == "Nothing drafted in this step" and not empty.data


def test_fig_topk_and_caches(hand):
    trace = _correction_in_topk(hand)
    w = W.walk_step(trace, 0)
    fig = V.fig_topk_alternatives(W.topk_view(trace, w, 7), "t")
    assert [t.name for t in fig.data] == ["q (draft)", "p (target)",
                                          "norm(max(0, p − q)), top-k only"]
    assert "◆ &lt;b&gt;" in fig.data[0].y  # the correction, with its mark, escaped
    caches = V.fig_cache_lengths(W.cache_frame(w.cache))
    assert list(caches.data[0].y) == list(W.cache_frame(w.cache)[W.MOMENT])
    assert len(caches.data[0].y) == 6  # target and draft, three moments each


def test_the_library_leaves_streamlit_out():
    code = ("import sys, specviz.teaching.walkthrough, specviz.figures.walkthrough_views; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_feature_head_step_says_what_the_head_reads():
    """The walkthrough of a real feature-head run (tiny target): the first draft reads the
    target's hidden state from its previous pass, later drafts the head's own guess."""
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-target")
    cfg = DecodeConfig(drafter="feature-head", gamma=3, max_new_tokens=16, chat=False)
    trace = speculative_decode(pair, "abc abc abc", cfg)
    step = next(s.step for s in trace.steps if s.gamma == 3)
    texts = [m.narration for m in W.walk_step(trace, step).micro]
    assert "reads the target's own last hidden state" in texts[0]
    assert "its own guess" in texts[1]
    assert "hidden states of the committed tokens" in texts[-1]


# ---------------------------------------------------------------- issues 27 and 28

BUNDLED = sorted(__import__("pathlib").Path("assets/traces").glob("*.jsonl"))


def test_the_draft_cache_never_keeps_more_than_it_holds():
    """Every step of every bundled chain run: the caches hold what they keep (the last step of
    a run drafts nothing: the draft model does not run and its cache stays as it was; it once
    read "holds 139 and keeps 140, dropping -1")."""
    from specviz import read_traces
    seen_empty = 0
    for path in BUNDLED:
        for trace in read_traces(path):
            if not W.is_walkable(trace) or trace.steps[0].tree_parent is not None:
                continue
            for s in trace.steps:
                c = W.cache_counts(trace, s.step)
                assert c.target_dropped >= 0, (path.name, s.step)
                if c.draft_kept is None:
                    continue
                assert 0 <= c.draft_kept <= c.draft_after_drafting, (path.name, s.step)
                if not s.gamma:
                    seen_empty += 1
                    told = W.walk_step(trace, s.step).micro[-1].narration
                    assert c.draft_kept == c.draft_before and "dropping -" not in told
                    assert f"still holds {c.draft_before} positions" in told
    assert seen_empty  # cpu-smollm2-draft-greedy's last step among them


def test_draft_top_k_bars_follow_q_before_the_verify_pass():
    from specviz import read_traces
    trace = read_traces("assets/traces/cpu-smollm2-draft-greedy.jsonl")[0]
    for step in range(6):
        w = W.walk_step(trace, step)
        for m in w.micro:
            if m.phase == "draft" and m.position is not None:
                q = W.topk_view(trace, w, m.index)[F.Q].tolist()
                assert q == sorted(q, reverse=True), (step, m.index)


@lru_cache(maxsize=None)
def sampled_static_tree() -> Trace:
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-target")
    return speculative_decode(pair, "abc abc abc", DecodeConfig(
        max_new_tokens=16, chat=False, tree="3,2,1", temperature=1.0, seed=0))


def test_a_later_sibling_is_narrated_with_the_p_and_q_it_was_judged_against():
    """A sampled static tree: the second child tried at a node was drawn from
    q′ = q without the first, renormalised, and judged against p′ = norm(max(0, p − q)); the
    third against p″ = norm(max(0, p′ − q′)) and q″ (specviz.core.tree). The narration names
    them with q′(c) computed from the recorded q, never the plain-q update after every
    rejection."""
    trace = sampled_static_tree()
    checked = 0
    for s in trace.steps:
        w = W.walk_step(trace, s.step)
        tried: dict[int, list] = {}
        for m in w.micro:
            if m.phase != "accept":
                continue
            x = w.positions[m.position]
            earlier = tried.setdefault(s.tree_parent[x.pos], [])
            if earlier:
                p_k, q_k = W.judged_as(len(earlier))
                q_c = x.q / (1 - sum(e.q for e in earlier))
                assert f"{q_k}(c) = {W.num(x.q)} / (1 − " in m.narration
                assert f"= {W.num(q_c)}" in m.narration and f"min(1, {p_k}/{q_k})" in m.narration
                prev = W.judged_as(len(earlier) - 1)
                assert f"{p_k} = norm(max(0, {prev[0]} − {prev[1]}))" in m.narration
                checked += 1
            if x.status == W.REJECTED:
                nxt, now = W.judged_as(len(earlier) + 1), W.judged_as(len(earlier))
                assert f"{nxt[0]} = norm(max(0, {now[0]} − {now[1]}))" in m.narration
                assert "is norm(max(0, p − q))" not in m.narration
            earlier.append(x)
    assert checked >= 2


def test_a_greedy_trees_bonus_is_ps_top_token():
    from specviz import read_traces
    trace = read_traces("assets/traces/cpu-smollm2-draft-tree-greedy.jsonl")[0]
    told = [m.narration for s in trace.steps for m in W.walk_step(trace, s.step).micro
            if m.phase == "add" and "leaf" in m.narration]
    assert told and all("p's top token there" in t and "from p" not in t for t in told)
    sampled = [m.narration for s in sampled_static_tree().steps
               for m in W.walk_step(sampled_static_tree(), s.step).micro
               if m.phase == "add" and "leaf" in m.narration]
    assert all("drawn from p there" in t for t in sampled)


def test_the_split_modules_keep_the_public_names():
    from specviz.teaching import walk_chain, walk_records, walk_tree  # noqa: F401
    for name in W.__all__:
        assert hasattr(W, name), name
