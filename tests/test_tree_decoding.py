"""Token trees in the decoder: lossless greedy on the static engine, the chain as width 1,
sampled runs reproducible and well recorded, clear errors."""

import numpy as np
import pytest
import torch

from specviz import DecodeConfig, load_pair, read_traces, speculative_decode, target_only_decode
from specviz.core.tree import dynamic_tree, per_path, static_tree
from specviz.core.tree_decoder import grow_dynamic, grow_static, parse_tree
from specviz.traces.records import TraceWriter
from tests._pairs import DRAFT, TARGET, embedded_pair
from tests.test_verify import chi_square_pvalue

PROMPT = "the cat sat on the mat and the cat sat"
SHAPES = ["1,1,1", "2,2,1", "3,2,1", "4", "dynamic:8:4", "dynamic:16:6:3", "dynamic:32:10:4",
          "dynamic:64:7:8"]


@pytest.fixture(scope="module")
def pair():
    return load_pair("embedded:tiny-random-target")


@pytest.fixture(scope="module")
def baseline(pair):
    return target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False))


@pytest.mark.parametrize("drafter", ["model", "feature-head"])
@pytest.mark.parametrize("tree", SHAPES)
def test_greedy_tree_output_is_the_targets_own(pair, baseline, tree, drafter):
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=40, chat=False,
                                                          tree=tree, drafter=drafter))
    assert trace.summary.output_token_ids == baseline.summary.output_token_ids
    assert trace.run.hardware["engine"]["path"] == ("graphs" if torch.cuda.is_available()
                                                    else "static")
    assert all(s.tree_parent is not None and len(s.tree_parent) == s.gamma
               for s in trace.steps)
    assert trace.steps[0].gamma <= parse_tree(tree).nodes


@pytest.mark.parametrize("drafter", ["model", "feature-head"])
def test_width_one_is_the_chain(pair, drafter):
    """The tree 1,1,1 makes the chain's decisions step by step (γ = 3, static engine)."""
    cfg = dict(max_new_tokens=40, chat=False, engine="static", drafter=drafter)
    chain = speculative_decode(pair, PROMPT, DecodeConfig(gamma=3, **cfg))
    tree = speculative_decode(pair, PROMPT, DecodeConfig(tree="1,1,1", **cfg))
    assert [s.n_accepted for s in tree.steps] == [s.n_accepted for s in chain.steps]
    assert [s.drafted_ids for s in tree.steps] == [s.drafted_ids for s in chain.steps]
    assert [s.tree_parent for s in tree.steps][0] == [-1, 0, 1]


@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:12:5", "head 2,2", "head dynamic:64:7:8"])
def test_sampled_tree_runs_are_reproducible_and_recorded(pair, tree, tmp_path):
    drafter = "feature-head" if tree.startswith("head") else "model"
    cfg = DecodeConfig(max_new_tokens=30, chat=False, tree=tree.split()[-1], temperature=1.0,
                       seed=3, drafter=drafter)
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        a = speculative_decode(pair, PROMPT, cfg, writer=w)
    b = speculative_decode(pair, PROMPT, cfg)
    assert a.summary.output_token_ids == b.summary.output_token_ids
    assert read_traces(path) == [a]
    s = a.summary
    assert s.n_emitted == 30
    judged = sum(st.n_evaluated for st in a.steps)
    assert s.alpha_hat == pytest.approx(s.n_accepted / judged)
    for st in a.steps:
        # untried nodes carry no verdict and no draw; the accepted ones form one path
        for acc, ap, u in zip(st.accepted, st.accept_prob, st.u):
            assert (ap is None) == (u is None)
            assert not acc or ap is not None
        path = [i for i, x in enumerate(st.accepted) if x]
        assert [st.tree_parent[i] for i in path] == ([-1] + path)[:len(path)]
        assert st.emitted_ids[:len(path)] == [st.drafted_ids[i] for i in path]


def test_a_tree_record_whose_path_is_broken_is_refused(pair, tmp_path):
    import json

    from specviz.traces.records import TraceError
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False,
                                                          tree="3,2,1"))
    lines = [json.loads(x) for x in trace.lines()]
    step = next(x for x in lines if x.get("record") == "step" and x["gamma"] >= 3)
    step["tree_parent"][1] = 5  # a parent after its child
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(TraceError, match="tree_parent"):
        read_traces(path)


@pytest.mark.parametrize("cfg, message", [
    (dict(tree="3,x"), "cannot read the tree"),
    (dict(tree="8,8,2"), "has 200 nodes; at most 64"),
    (dict(tree="dynamic:0"), "at least 1"),
    (dict(tree="2,2", drafter="prompt-lookup"), "drafter with a distribution"),
    (dict(tree="2,2", policy="heuristic"), "own shape"),
    (dict(tree="2,2", verifier="accept-high-q"), "verified by the rules"),
])
def test_bad_tree_settings_are_one_line_errors(pair, cfg, message):
    with pytest.raises(ValueError, match=message):
        speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=5, chat=False, **cfg))


def test_trees_on_the_embedded_pair_are_lossless_and_longer_per_pass():
    pair = embedded_pair(TARGET, DRAFT)
    prompt = "Write a Python function that checks whether a string is a palindrome."
    cfg = dict(max_new_tokens=48, chat=True)
    base = target_only_decode(pair, prompt, DecodeConfig(**cfg)).summary.output_token_ids
    chain = speculative_decode(pair, prompt, DecodeConfig(gamma=4, engine="static", **cfg))
    tree = speculative_decode(pair, prompt, DecodeConfig(tree="dynamic:16:6", **cfg))
    assert chain.summary.output_token_ids == base == tree.summary.output_token_ids
    assert tree.summary.mean_accepted_length > chain.summary.mean_accepted_length


def test_the_wrong_tree_rule_runs_and_is_recorded(pair):
    cfg = DecodeConfig(max_new_tokens=20, chat=False, tree="3,2", temperature=1.0,
                       verifier="plain-q")
    trace = speculative_decode(pair, PROMPT, cfg)
    assert trace.run.config["verifier"] == "plain-q" and trace.summary.n_emitted == 20


def _first_token_counts(pair, rule: str, runs: int, bins: torch.Tensor, tree: str = "3,2",
                        drafter: str = "model") -> torch.Tensor:
    counts = torch.zeros(bins.shape[0] + 1)
    for seed in range(runs):
        cfg = DecodeConfig(max_new_tokens=3, chat=False, tree=tree, temperature=1.0,
                           seed=seed, verifier=rule, drafter=drafter)
        first = speculative_decode(pair, PROMPT, cfg).summary.output_token_ids[0]
        hit = (bins == first).nonzero()  # bins on the CPU
        counts[int(hit[0]) if len(hit) else -1] += 1
    return counts


@pytest.mark.parametrize("drafter, tree", [("model", "3,2"), ("feature-head", "3,2"),
                                           ("feature-head", "dynamic:8:3")])
def test_sampled_tree_decoding_emits_the_targets_distribution(pair, drafter, tree):
    """End to end (drafting a tree, the tree pass, multi-candidate rejection sampling: sampled
    children for a static tree, top-k children for a dynamic one), with the draft model and
    the feature head: the first emitted token follows p at τ = 1; chi-square over p's 6 most
    likely tokens and the rest, 2,000 runs."""
    ids = pair.tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        logits = pair.target(torch.tensor([ids], device=pair.device)).logits[0, -1]
    top = torch.softmax(logits.float(), -1).cpu().topk(6)
    probs = torch.cat([top.values, (1 - top.values.sum()).view(1)])
    counts = _first_token_counts(pair, "exact", 2000, top.indices, tree, drafter)
    assert chi_square_pvalue(counts, probs) > 1e-3, (counts, probs * counts.sum())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("drafter", ["model", "feature-head"])
@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:16:6"])
def test_graphed_tree_steps_give_the_static_trace_on_cuda(tree, drafter):
    """A tree step's two phases (draft; verify, accept and commit) replayed as CUDA graphs
    decide as the same step run directly: same drafts, same verdicts, same output, twice in a
    row (the second run replays the first run's graphs)."""
    pair = load_pair("embedded:tiny-random-target", device="cuda")
    cfg = dict(max_new_tokens=40, chat=False, tree=tree, drafter=drafter)
    static = speculative_decode(pair, PROMPT, DecodeConfig(engine="static", **cfg))
    for _ in range(2):
        graphs = speculative_decode(pair, PROMPT, DecodeConfig(engine="graphs", **cfg))
        assert graphs.run.hardware["engine"]["path"] == "graphs"
        assert [s.drafted_ids for s in graphs.steps] == [s.drafted_ids for s in static.steps]
        assert [s.accepted for s in graphs.steps] == [s.accepted for s in static.steps]
        assert graphs.summary.output_token_ids == static.summary.output_token_ids


class _PathDraft:
    """A draft whose q is a fixed function of the token path; each row remembers its path and
    checks what it is shown (depth, parent row, which rows it sees)."""

    vocab_ids = None  # q over the target's vocabulary

    def __init__(self, vocab: int = 11):
        self.vocab, self.paths = vocab, []

    def full(self, q):
        return q

    def begin(self, st, rows):
        pass

    def q_of(self, path: tuple) -> torch.Tensor:
        g = torch.Generator().manual_seed(hash(path) % (2 ** 31))
        return torch.softmax(3 * torch.randn(self.vocab, generator=g), -1)

    def root(self, st, depth):
        self.paths = []
        return self.q_of(())

    def grow(self, st, tokens, depth, parents, sees, first):
        assert first == len(self.paths)
        out = []
        for j, (tok, par) in enumerate(zip(tokens.tolist(), parents.tolist())):
            path = (self.paths[par] if par >= 0 else ()) + (tok,)
            assert len(path) == depth
            self.paths.append(path)
            seen = {r for r in range(sees.shape[1]) if bool(sees[j, r])}
            assert seen == {r for r, p in enumerate(self.paths) if path[:len(p)] == p}
            out.append(self.q_of(path))
        return torch.stack(out)


class _St:
    P = torch.tensor([7])


@pytest.mark.parametrize("shape", ["3,2,1", "1,1,1,1", "2,3", "dynamic:10:4:3",
                                   "dynamic:16:6:4", "dynamic:5:3:1", "dynamic:32:3:4"])
def test_trees_grown_on_the_device_are_the_reference_trees(shape):
    """The decoder's fixed-shape builders (top-k, sorts, no host reads) grow exactly the trees
    of specviz.core.tree's reference builders, with the same q rows and ancestry."""
    draft, spec = _PathDraft(), parse_tree(shape)
    q_of = per_path(draft.q_of)
    if spec.kind == "dynamic":
        ref = dynamic_tree(q_of, spec.budget, spec.max_depth, spec.top_k)
        got = grow_dynamic(draft, _St, spec)
    else:
        ref = static_tree(q_of, spec.branching)
        got = grow_static(draft, _St, spec.branching, "top-k", None)
    assert got.parent.tolist() == list(ref.parent)
    assert got.tokens.tolist() == ref.tokens.tolist()
    assert torch.equal(got.q, ref.q)
    assert torch.equal(got.ancestors(), ref.ancestors())
    assert torch.equal(got.depths, ref.depths) and torch.equal(got.leaf_rows, ref.leaf_rows)
    assert torch.equal(got.row_ancestors(), ref.row_ancestors())


def test_feature_head_trees_on_the_embedded_pair_are_lossless_and_longer_per_pass():
    """The embedded target with its feature head: static and dynamic trees give the target's
    own greedy output, and more tokens per verification than the head's chain."""
    pair = embedded_pair()
    prompt = "Explain in two sentences why the sky is blue."
    cfg = dict(max_new_tokens=40, chat=True, drafter="feature-head")
    base = target_only_decode(pair, prompt, DecodeConfig(**cfg)).summary.output_token_ids
    chain = speculative_decode(pair, prompt, DecodeConfig(gamma=4, engine="static", **cfg))
    for shape in ("2,2,1", "dynamic:24:6"):
        tree = speculative_decode(pair, prompt, DecodeConfig(tree=shape, **cfg))
        assert tree.summary.output_token_ids == base, shape
        assert tree.run.config["drafter"] == "feature-head"
    assert tree.summary.mean_accepted_length > chain.summary.mean_accepted_length


@pytest.mark.parametrize("drafter", ["model", "feature-head"])
@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:16:6"])
def test_trees_on_transformers_forward_decide_as_on_the_static_engine(pair, baseline, tree,
                                                                      drafter):
    """The eager engine (transformers' forward, dynamic caches, the tree as a 4-D mask) drafts
    the same trees, with the same verdicts, as the static engine, and keeps the target's
    greedy output."""
    cfg = dict(max_new_tokens=40, chat=False, tree=tree, drafter=drafter)
    static = speculative_decode(pair, PROMPT, DecodeConfig(engine="static", **cfg))
    eager = speculative_decode(pair, PROMPT, DecodeConfig(engine="eager", **cfg))
    assert eager.run.hardware["engine"]["path"] == "eager"
    assert [s.drafted_ids for s in eager.steps] == [s.drafted_ids for s in static.steps]
    assert [s.accepted for s in eager.steps] == [s.accepted for s in static.steps]
    assert eager.summary.output_token_ids == baseline.summary.output_token_ids


def test_a_tree_runs_figures_name_its_nodes(pair):
    """A tree run's figures: the step's tree has a row per node, x₀ and the added token; the
    acceptance heatmap's grey key says a node's branch was never reached (not "after a
    rejection", which is the chain's reason)."""
    pytest.importorskip("plotly")
    from specviz import figures as G
    from specviz.traces import frames as F
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=12, chat=False,
                                                          tree="3,2,1", temperature=1.0))
    step = trace.steps[0]
    frame = F.tree_frame(step, F.last_committed_text(trace, 0))
    assert len(frame) == len(step.tree_parent) + 2  # x₀, the nodes, the added token
    assert G.fig_tree_step(frame).data
    heat = G.fig_acceptance_heatmap(F.drafts_frame(trace), tree=True)
    names = {t.name for t in heat.data if t.name}
    assert "not judged (its branch never reached)" in names
    assert not any("after a rejection" in n for n in names)


def test_a_child_the_draft_could_not_draw_is_explained_as_such(pair):
    """Sampled, top-k 2, three children per node: the third child of each node has q = 0
    and is never judged though its parent was reached. The tree view, the heatmap and the
    explanation say q = 0 for it, and "never reached" only for the nodes below a rejection."""
    pytest.importorskip("plotly")
    from specviz import figures as G
    from specviz.traces import frames as F
    trace = speculative_decode(pair, PROMPT, DecodeConfig(
        max_new_tokens=12, chat=False, tree="3,2,1", temperature=1.0, top_k=2, seed=1))
    drafts = F.drafts_frame(trace)
    cut = drafts[(drafts[F.Q] == 0)]
    assert len(cut) and set(cut[F.STATUS]) == {"unjudged"}
    heat = G.fig_acceptance_heatmap(drafts, tree=True)
    hover = " ".join(str(h) for t in heat.data
                     if t.customdata is not None for h in np.ravel(t.customdata))
    assert "q = 0, the draft could not have drawn it" in hover
    # its own mark and legend entry, apart from the nodes never reached
    legend = [t.name for t in heat.data if t.name]
    assert G.Q_ZERO_LABEL in legend and any("never reached" in n for n in legend)
    marks = [m for t in heat.data if t.type == "scatter" and t.mode == "text" for m in t.text]
    assert marks.count(G.Q_ZERO_MARK) == len(cut) and "·" in marks
    step = trace.steps[int(cut[F.STEP].iloc[0])]
    fig = G.fig_tree_step(F.tree_frame(step, "x"))
    tree_hover = " ".join(h for t in fig.data if t.customdata is not None for h in t.customdata)
    assert "q = 0, the draft could not have drawn it" in tree_hover
    assert G.Q_ZERO_LABEL in [t.name for t in fig.data]
    # the walkthrough says so where the tree is drafted
    from specviz.teaching import walkthrough as W
    told = " ".join(m.narration for m in W.walk_step(trace, int(cut[F.STEP].iloc[0])).micro
                    if m.phase == "draft")
    assert "q = 0" in told and "could not have been drawn" in told
    greedy = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=12, chat=False,
                                                           tree="3,2,1"))
    assert G.Q_ZERO_LABEL not in [t.name for t in G.fig_acceptance_heatmap(
        F.drafts_frame(greedy), greedy=True, tree=True).data]
    assert G.unjudged_why(0.3, True).endswith("never reached its branch")


def test_a_sampled_tree_is_narrated_and_labelled_with_the_walks_own_rule(pair):
    """Sampled trees: a dynamic tree's children are top-k picks, judged with p(c) / (1 - p of
    the siblings tried before), never called min(1, p/q); a static tree's later siblings
    with min(1, p'/q'). The verify inspector and the heatmap of a tree call the number
    P(accept) and draw no chain residual."""
    pytest.importorskip("plotly")
    from specviz import figures as G
    from specviz.teaching import walkthrough as W
    from specviz.traces import frames as F
    told = {}
    for tree in ("dynamic:16:4", "3,2,1"):
        trace = speculative_decode(pair, PROMPT, DecodeConfig(
            max_new_tokens=16, chat=False, tree=tree, temperature=1.0, seed=3))
        told[tree] = [m.narration for s in range(len(trace.steps))
                      for m in W.walk_step(trace, s).micro if m.phase == "accept"]
    dynamic, static = " ".join(told["dynamic:16:4"]), " ".join(told["3,2,1"])
    assert "a top-k pick, not a draw from q" in dynamic and "min(1, p" not in dynamic
    assert "p(c) / (1 − their p)" in dynamic  # a later sibling somewhere in 16 tokens
    assert "min(1, p/q) = " in static and "min(1, p′/q′) = " in static
    assert "top-k pick" not in static
    drafts = F.drafts_frame(trace)
    row = drafts[drafts[F.STATUS] != "unjudged"].iloc[0]
    topk = F.topk_frame(trace, int(row[F.STEP]), int(row[F.POS]))
    fig = G.fig_verify_inspector(topk, float(row[F.ACCEPT_PROB]), float(row[F.U]),
                                 str(row[F.TEXT]), str(row[F.STATUS]), tree=True)
    names = [t.name for t in fig.data]
    assert "norm(max(0, p − q))" not in names and G.TREE_ACCEPT in fig.layout.xaxis2.title.text
    heat = G.fig_acceptance_heatmap(drafts, tree=True)
    assert "min(1, p/q)" not in heat.layout.title.text
    chain = G.fig_verify_inspector(topk, 0.5, 0.2, "a", "accepted")
    assert "norm(max(0, p − q))" in [t.name for t in chain.data]


def test_the_first_steps_root_is_the_prompts_last_token(pair, tmp_path):
    """x₀ of step 0 is the prompt's last token: the run records its text (schema 4) and the
    tree views name it, after a round trip through a file; a trace written before that field
    still loads and says "x₀"."""
    from dataclasses import replace

    from specviz.traces import frames as F
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=8, chat=False,
                                                          tree="2,2"))
    last = pair.tokenizer.decode(trace.run.prompt_token_ids[-1:])
    assert trace.run.prompt_last_text == last and last.strip()
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as w:
        w.write_trace(trace)
    back = read_traces(path)[0]
    assert F.last_committed_text(back, 0) == last
    assert F.tree_frame(back.steps[0], F.last_committed_text(back, 0))[F.TEXT].iloc[0] == last
    old = replace(back, run=replace(back.run, prompt_last_text=""))
    assert F.last_committed_text(old, 0) == "x₀"
    assert F.last_committed_text(old, 1) == back.steps[0].emitted_text[-1]


@pytest.mark.parametrize("drafter, who", [("model", "The draft model reads"),
                                          ("feature-head", "The feature head reads")])
def test_the_walkthrough_of_a_tree_step_names_its_drafter(pair, drafter, who):
    from specviz.teaching import walkthrough as W
    trace = speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=8, chat=False,
                                                          tree="2,2", drafter=drafter))
    drafts = [m for m in W.walk_step(trace, 0).micro if m.phase == "draft"]
    assert len(drafts) == 2 and all(who in m.narration for m in drafts), drafts


def test_the_draft_models_q_at_each_root_is_its_q_after_the_committed_text():
    """The draft model's cache is complete up to x_0 at every step, also when a step's tree
    is cut shorter than the run's (few tokens left) after a step that committed many: the q
    recorded for each child of the root equals a fresh forward of the draft model over the
    committed tokens."""
    pair = embedded_pair(TARGET, DRAFT)
    prompt = "Write a Python function that checks whether a string is a palindrome."
    trace = speculative_decode(pair, prompt, DecodeConfig(
        max_new_tokens=42, chat=True, engine="static", drafter="model", tree="2,2,1"))
    steps = trace.steps
    assert any(b.gamma < 10 and len(a.emitted_ids) >= 3 for a, b in zip(steps, steps[1:]))
    seq = list(trace.run.prompt_token_ids)
    with torch.no_grad():
        for s in steps:
            q = torch.softmax(pair.draft(torch.tensor([seq])).logits[0, -1].float(), -1)
            for i, par in enumerate(s.tree_parent):
                if par < 0:
                    assert abs(float(q[s.drafted_ids[i]]) - s.q[i]) < 1e-4, (s.step, i)
            seq += s.emitted_ids


def test_a_fused_engine_compiles_only_the_phases_that_ask_once_each(monkeypatch):
    """GraphPhases compiles a phase run with fuse=True before its capture, once per key,
    only when the engine is fused; the compiled phase runs twice before the capture; if the
    capture would have to compile again, the phase is captured uncompiled instead."""
    import types

    from specviz.engines import phases
    compiled = []

    def fake_compile(fn, **kw):
        compiled.append(kw)

        def run():
            return fn("compiled")
        run.compiled = True
        return run

    def fake_capture(fn, undo, pool=None):
        return types.SimpleNamespace(replay=lambda: None), fn()

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(phases, "capture", fake_capture)
    calls = []
    fn = lambda how="plain": calls.append(how) or torch.zeros(1)  # noqa: E731
    fused = phases.GraphPhases(lambda: (lambda: None), fused=True)
    for _ in range(3):
        fused.run(("tree-draft", 1), fn, fuse=True)
    fused.run(("tree-draft", 2), fn, fuse=False)
    assert compiled == [{"dynamic": False}]
    assert calls == ["compiled"] * 3 + ["plain"]
    plain = phases.GraphPhases(lambda: (lambda: None))
    plain.run(("tree-draft", 1), fn, fuse=True)
    assert len(compiled) == 1 and calls[-1] == "plain"

    def refusing_capture(fn, undo, pool=None):
        if getattr(fn, "compiled", False):
            raise torch._dynamo.exc.RecompileError("would compile inside the capture")
        return fake_capture(fn, undo)

    monkeypatch.setattr(phases, "capture", refusing_capture)
    calls.clear()
    fused.run(("tree-draft", 3), fn, fuse=True)
    assert calls == ["compiled", "compiled", "plain"]


@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:16:6"])
def test_only_the_runs_own_tree_shape_asks_to_be_fused(pair, monkeypatch, tree):
    """The draft phase of a step with the run's tree asks for fusion; the shorter trees of
    the last steps (cut to the tokens left) do not, so a fused engine compiles one shape."""
    import specviz.decoding as decoding
    from specviz.engines.phases import EagerPhases
    seen = []

    class Recorder(EagerPhases):
        def run(self, key, fn, fuse=False):
            if key[0] == "tree-draft":
                seen.append((key[1], fuse))
            return fn()

    for module in (decoding, decoding.engine_parts):  # the loop's phases and a workspace's
        monkeypatch.setattr(module, "EagerPhases", Recorder)
    decoding._WORKSPACES.clear()
    try:
        speculative_decode(pair, PROMPT, DecodeConfig(max_new_tokens=13, chat=False, tree=tree,
                                                      drafter="feature-head", engine="static"))
    finally:
        decoding._WORKSPACES.clear()
    full = parse_tree(tree)
    assert {fuse for shape, fuse in seen if shape == full} == {True}
    assert seen[-1][0] != full and not any(fuse for shape, fuse in seen if shape != full)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:48:6:6"])
def test_fused_graphed_trees_on_the_embedded_pair_are_the_targets_output(tree):
    """The fused engine (layers and a tree's draft phase compiled, then captured) on the
    embedded pair: greedy output equals target-only's, in a first run (compiles) and a
    second (replays)."""
    from specviz.engines.static import fuse_layers
    pair = embedded_pair(device="cuda")
    prompt = "Explain in two sentences why the sky is blue."
    cfg = dict(max_new_tokens=48, chat=True, drafter="feature-head", engine="graphs")
    base = target_only_decode(pair, prompt, DecodeConfig(**cfg)).summary.output_token_ids
    fuse_layers(True)
    try:
        for _ in range(2):
            got = speculative_decode(pair, prompt, DecodeConfig(tree=tree, **cfg))
            assert got.summary.output_token_ids == base
            assert got.run.hardware["engine"]["fused"] is True
    finally:
        fuse_layers(False)


@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:16:6:3"])
def test_a_sampled_tree_step_draws_nothing_inside_its_phases(pair, monkeypatch, tree):
    """Every random draw of a sampled tree step (the children's races, u, the added token's
    race) is made before the phase that reads it, as a CUDA graph needs: none while a phase
    runs. And a run still decides as before: reproducible from its seed."""
    import specviz.decoding as decoding
    from specviz.engines.phases import EagerPhases
    inside, draws = [False], []

    class Recorder(EagerPhases):
        def run(self, key, fn, fuse=False):
            inside[0] = True
            try:
                return fn()
            finally:
                inside[0] = False

    for name in ("exponential_", "uniform_"):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _real=real, **kwargs):
            draws.append(inside[0])
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    for module in (decoding, decoding.engine_parts):  # the loop's phases and a workspace's
        monkeypatch.setattr(module, "EagerPhases", Recorder)
    monkeypatch.setattr(decoding, "GRAPH_SAMPLED_TREES", True)
    decoding._WORKSPACES.clear()
    cfg = DecodeConfig(max_new_tokens=16, chat=False, tree=tree, drafter="model",
                       temperature=0.9, seed=4, engine="static")
    try:
        a = speculative_decode(pair, PROMPT, cfg)
        b = speculative_decode(pair, PROMPT, cfg)
    finally:
        decoding._WORKSPACES.clear()
    assert draws and not any(draws)
    assert a.summary.output_token_ids == b.summary.output_token_ids


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("drafter", ["model", "feature-head"])
@pytest.mark.parametrize("tree", ["3,2,1", "dynamic:16:6"])
def test_sampled_tree_steps_graphed_decide_as_run_directly(tree, drafter, monkeypatch):
    """Sampled tree steps captured as CUDA graphs (GRAPH_SAMPLED_TREES): the same drafts,
    verdicts and output as the static engine's from the same seed, twice in a row (the
    second run replays the graphs on its own fresh draws), and another seed differs."""
    import specviz.decoding as decoding
    monkeypatch.setattr(decoding, "GRAPH_SAMPLED_TREES", True)
    pair = load_pair("embedded:tiny-random-target", device="cuda")
    cfg = dict(max_new_tokens=40, chat=False, tree=tree, drafter=drafter, temperature=0.9)
    static = speculative_decode(pair, PROMPT, DecodeConfig(engine="static", seed=5, **cfg))
    for _ in range(2):
        graphs = speculative_decode(pair, PROMPT, DecodeConfig(engine="graphs", seed=5, **cfg))
        assert [s.drafted_ids for s in graphs.steps] == [s.drafted_ids for s in static.steps]
        assert [s.accepted for s in graphs.steps] == [s.accepted for s in static.steps]
        assert graphs.summary.output_token_ids == static.summary.output_token_ids
    other = speculative_decode(pair, PROMPT, DecodeConfig(engine="graphs", seed=6, **cfg))
    assert other.summary.output_token_ids != static.summary.output_token_ids
