"""Token trees on toy p and q: structure, drafting, and verification that keeps p exactly.

The statistical tests decode with trees from fixed toy tables (p and q depend on the depth and
the last token only), tally the first two committed tokens over thousands of seeded runs, and
compare them with p's own joint distribution; a deliberately wrong verifier fails the same test.
"""

import functools

import pytest
import torch

from specviz.core.sampling import sample
from specviz.core.tree import (
    Tree,
    dynamic_tree,
    per_path,
    static_tree,
    verify_tree_greedy,
    verify_tree_sampled,
)
from specviz.core.verify import verify_greedy, verify_sampled
from specviz.engines.static import (
    StaticLlama,
    _rms,
    causal_bias,
    layer_step,
    stacked_layers,
)
from specviz.models.tiny import tiny_model
from tests.test_verify import GAMMA, P, Q, chi_square_pvalue

# ---------------------------------------------------------------------- toy tables
V = 6
_g = torch.Generator().manual_seed(123)
P_TABLE = torch.softmax(torch.randn(4, V, V, generator=_g) * 1.5, -1)  # (depth % 4, last, V)
Q_TABLE = torch.softmax(torch.randn(4, V, V, generator=_g) * 1.5, -1)
P_ROOT = torch.tensor([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])  # p at the empty context
Q_ROOT = torch.tensor([0.05, 0.10, 0.40, 0.30, 0.10, 0.05])  # q disagrees with it


def p_one(context: tuple[int, ...]) -> torch.Tensor:
    """The toy target's p (V,) after a context of tokens."""
    return P_ROOT if not context else P_TABLE[len(context) % 4, context[-1]]


def q_one(context: tuple[int, ...]) -> torch.Tensor:
    return Q_ROOT if not context else Q_TABLE[len(context) % 4, context[-1]]


def q_after(context: tuple[int, ...]):
    """The draft as a tree builder calls it: q after the context plus a token path."""
    return per_path(lambda path: q_one(context + path))


def p_rows(tree: Tree, context: tuple[int, ...] = ()) -> torch.Tensor:
    """What the target's verify pass gives: (1+N, V), the root's row then one per node."""
    return torch.stack([p_one(context)] + [p_one(context + tree.path_tokens(i))
                                           for i in range(tree.n)])


def greedy_target(context: tuple[int, ...], n: int) -> list[int]:
    out = []
    for _ in range(n):
        out.append(int(torch.argmax(p_one(context + tuple(out)))))
    return out


# ---------------------------------------------------------------------- structure
def hand_tree() -> Tree:
    """   root ─ 0 (tok 3) ─ 2 (tok 1) ─ 5 (tok 0)
              │            └ 3 (tok 4)
              └ 1 (tok 2) ─ 4 (tok 5)"""
    return Tree((-1, -1, 0, 0, 1, 2), torch.tensor([3, 2, 1, 4, 5, 0]), None)


def test_hand_built_tree_structure_positions_and_mask():
    t = hand_tree()
    assert t.depth == (1, 1, 2, 2, 2, 3) and t.max_depth == 3
    assert t.children(-1) == [0, 1] and t.children(0) == [2, 3] and t.children(3) == []
    assert t.path_to(5) == [0, 2, 5] and t.path_tokens(5) == (3, 1, 0)
    anc = torch.tensor([[1, 0, 0, 0, 0, 0],
                        [0, 1, 0, 0, 0, 0],
                        [1, 0, 1, 0, 0, 0],
                        [1, 0, 0, 1, 0, 0],
                        [0, 1, 0, 0, 1, 0],
                        [1, 0, 1, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(t.ancestors(), anc)
    n_committed = 10  # x_0 at position 9; slots 9..15 for the root and the 6 nodes
    assert t.positions(n_committed).tolist() == [9, 10, 10, 11, 11, 11, 12]
    assert t.slots(n_committed).tolist() == [9, 10, 11, 12, 13, 14, 15]
    key_pos = torch.arange(20)
    bias = t.attention_bias(key_pos, n_committed, group=2, dtype=torch.float32)
    assert bias.shape == (2 * 7, 20)
    assert torch.equal(bias[:7], bias[7:])  # the same rows for each query head of a group
    seen = [torch.nonzero(row == 0).flatten().tolist() for row in bias[:7]]
    prefix = list(range(10))  # slots 0..8 and the root's, 9
    assert seen[0] == prefix
    assert seen[1] == prefix + [10]  # node 0
    assert seen[3] == prefix + [10, 12]  # node 2: node 0, itself
    assert seen[5] == prefix + [11, 14]  # node 4: node 1, itself
    assert seen[6] == prefix + [10, 12, 15]  # node 5: nodes 0, 2, itself
    assert torch.isinf(bias[:7]).sum() == 7 * 20 - sum(len(s) for s in seen)
    # a device tensor for the committed length gives the same (the engines keep it there)
    assert torch.equal(t.attention_bias(key_pos, torch.tensor([n_committed]), 2, torch.float32),
                       bias)


def test_chain_mask_and_positions_are_the_causal_ones():
    chain = Tree.chain(torch.tensor([4, 1, 3]), None, "top-k")
    key_pos, n_committed = torch.arange(16), 7
    pos = chain.positions(n_committed)
    assert torch.equal(pos, chain.slots(n_committed))
    assert torch.equal(chain.attention_bias(key_pos, n_committed, 3, torch.float32),
                       causal_bias(key_pos, pos, 3, torch.float32))


def test_bad_trees_are_refused():
    with pytest.raises(ValueError, match="parents come before"):
        Tree((1, -1), torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match="appears twice"):
        Tree((-1, -1), torch.tensor([2, 2]), None)
    with pytest.raises(ValueError, match="need the q"):
        Tree((-1,), torch.tensor([2]), None, "sampled")
    with pytest.raises(ValueError, match="unknown way"):
        Tree((-1,), torch.tensor([2]), None, "beam")
    with pytest.raises(ValueError, match="unknown tree verifier rule"):
        verify_tree_greedy(hand_tree(), torch.ones(7, V) / V, rule="nope")
    with pytest.raises(ValueError, match=r"p must be \(7, V\)"):
        verify_tree_sampled(hand_tree(), torch.ones(6, V) / V, None)


def tree_pass(eng: StaticLlama, tree: Tree, prefix: torch.Tensor) -> torch.Tensor:
    """Prefill the prefix but its last token, then one pass over [x_0, nodes] with the tree's
    bias, rotary at its positions and cache writes at its slots; (1+N, V) logits."""
    n_committed = prefix.shape[0]
    eng.forward(prefix[:-1], torch.arange(n_committed - 1), "none")
    ids = torch.cat([prefix[-1:], tree.tokens])
    pos, slots = tree.positions(n_committed), tree.slots(n_committed)
    cos, sin = eng.cos.index_select(0, pos)[None], eng.sin.index_select(0, pos)[None]
    bias = tree.attention_bias(eng.key_pos, n_committed, eng.shape.group, torch.float32)
    x = torch.nn.functional.embedding(ids, eng.embed)
    for i, w in enumerate(eng.layers):
        x = layer_step(x, w, eng.k[i], eng.v[i], slots, cos, sin, bias, eng.shape)
    return torch.nn.functional.linear(_rms(x, eng.norm, eng.eps), eng.lm_head)


def test_tree_pass_scores_every_node_as_its_own_path_and_keeps_the_accepted_one():
    """One pass of a real (tiny) Llama over a tree gives each node the logits of a plain causal
    pass over prefix + its path; after the accepted path's keys and values are moved into
    place, decoding goes on as if only that path had been fed."""
    model = tiny_model("target")
    eng = StaticLlama(model, stacked_layers(model), max_len=64)
    prefix = torch.tensor([5, 9, 12, 7, 20, 11])
    n_committed = prefix.shape[0]
    tree = Tree((-1, -1, 0, 0, 1, 2, 2), torch.tensor([8, 13, 21, 4, 30, 6, 17]), None)
    with torch.inference_mode():
        got = tree_pass(eng, tree, prefix)  # (1+N, V)
        for row in range(tree.n + 1):
            seq = torch.cat([prefix, torch.tensor(tree.path_tokens(row - 1), dtype=torch.long)])
            ref = model(input_ids=seq[None]).logits[0, -1]
            assert torch.allclose(got[row], ref, atol=1e-4), row
        for path in ([0, 2, 5], [1, 4, -1], [-1, -1, -1]):
            tree_pass(eng, tree, prefix)
            src, dst = tree.kv_moves(torch.tensor(path), n_committed)
            for cache in (eng.k, eng.v):  # (layers, n_kv, L, D)
                cache.index_copy_(2, dst, cache.index_select(2, src))
            kept = [int(tree.tokens[i]) for i in path if i >= 0]
            nxt = 3  # the next step feeds one more token after the kept path
            at = n_committed + len(kept)
            logits = eng.forward(torch.tensor([nxt]), torch.tensor([at]))[0]
            ref = model(input_ids=torch.tensor([prefix.tolist() + kept + [nxt]])).logits[0, -1]
            assert torch.allclose(logits, ref, atol=1e-4), path


# ---------------------------------------------------------------------- drafting
def test_static_tree_shape_and_top_k_children():
    t = static_tree(q_after(()), (3, 2, 1))
    assert t.n == 3 + 6 + 6 and t.depth.count(1) == 3 and t.depth.count(3) == 6
    assert t.tokens[:3].tolist() == torch.topk(Q_ROOT, 3).indices.tolist()
    for i in range(t.n):
        kids = t.children(i)
        want = {1: 2, 2: 1, 3: 0}[t.depth[i]]
        assert len(kids) == want
        if kids:
            q = q_one(t.path_tokens(i))
            assert t.tokens[kids].tolist() == torch.topk(q, want).indices.tolist()
            assert all(torch.equal(t.q[k], q) for k in kids)


def test_width_one_trees_are_chains():
    greedy = static_tree(q_after(()), (1,) * 4)
    assert greedy.parent == (-1, 0, 1, 2)
    assert dynamic_tree(q_after(()), budget=4, max_depth=4, top_k=1).tokens.tolist() == \
        greedy.tokens.tolist()
    ctx: tuple[int, ...] = ()
    for tok in greedy.tokens.tolist():  # each draft is the argmax of q after the ones before
        assert tok == int(torch.argmax(q_one(ctx)))
        ctx += (tok,)
    # sampled width 1: the draws of a chain drafter sampling q one token after the other
    drawn = static_tree(q_after(()), (1,) * 4, "sampled", torch.Generator().manual_seed(7))
    g, ctx = torch.Generator().manual_seed(7), ()
    for tok in drawn.tokens.tolist():
        assert tok == int(sample(q_one(ctx), g))
        ctx += (tok,)


def test_sampled_children_never_exceed_what_q_can_propose():
    q = torch.tensor([0.0, 0.7, 0.0, 0.3, 0.0, 0.0])
    t = static_tree(per_path(lambda path: q), (4,), "sampled", torch.Generator().manual_seed(0))
    assert sorted(t.tokens.tolist()) == [1, 3]


def all_paths(top_k: int, max_depth: int) -> dict[tuple[int, ...], float]:
    """Every path of the full top-k tree with the product of q along it."""
    out, frontier = {}, [((), 1.0)]
    for _ in range(max_depth):
        nxt = []
        for path, score in frontier:
            top = torch.topk(q_one(path), top_k)
            for prob, tok in zip(top.values.tolist(), top.indices.tolist()):
                out[path + (tok,)] = score * prob
                nxt.append((path + (tok,), score * prob))
        frontier = nxt
    return out


@pytest.mark.parametrize("budget", [1, 5, 12])
def test_dynamic_tree_keeps_the_most_probable_paths_within_its_budget(budget):
    # expanding every node: the candidates are the whole top-3 tree of depth 3
    t = dynamic_tree(q_after(()), budget=budget, max_depth=3, top_k=3, expand=9)
    assert t.n == budget and t.max_depth <= 3
    every = all_paths(3, 3)
    kept = {t.path_tokens(i) for i in range(t.n)}
    best = sorted(every.values(), reverse=True)[:budget]
    assert sorted((every[k] for k in kept), reverse=True) == pytest.approx(best)
    assert torch.allclose(t.path_q(), torch.tensor([every[t.path_tokens(i)]
                                                    for i in range(t.n)]))


def test_dynamic_tree_expands_only_the_best_nodes_of_each_depth():
    t = dynamic_tree(q_after(()), budget=40, max_depth=4, top_k=3, expand=2)
    assert t.max_depth == 4 and t.n <= 40
    score = t.path_q()
    for d in (1, 2, 3):
        at_d = [i for i in range(t.n) if t.depth[i] == d]
        parents = {t.parent[i] for i in range(t.n) if t.depth[i] == d + 1}
        assert len(parents) <= 2
        # the expanded nodes are the best-scoring ones of their depth
        top = sorted(at_d, key=lambda i: -float(score[i]))[:len(parents)]
        assert parents == set(top)


# ---------------------------------------------------------------------- the chain, as a tree
def test_width_one_tree_decides_as_the_chain_verifier():
    """Same distributions and seeds as test_verify: the same acceptances, the same draws, the
    same added token."""
    for seed in range(300):
        drafted = sample(Q, torch.Generator().manual_seed(10_000 + seed))  # (gamma,)
        g_chain, g_tree = (torch.Generator().manual_seed(seed) for _ in range(2))
        chain = verify_sampled(drafted, P, Q, g_chain)
        tree = verify_tree_sampled(Tree.chain(drafted, Q, "sampled"), P, g_tree)
        n = int(chain.n_accepted)
        assert torch.equal(tree.accepted, chain.accepted)
        assert int(tree.n_accepted) == n
        assert torch.equal(tree.u, chain.u)
        judged = min(n + 1, GAMMA)  # the chain computes every ratio; the tree the judged ones
        assert torch.allclose(tree.accept_prob[:judged], chain.accept_prob[:judged])
        assert torch.isnan(tree.accept_prob[judged:]).all()
        assert int(tree.next_token) == int(chain.next_token)
        assert bool(tree.bonus) == (n == GAMMA)
        assert tree.accepted_path() == list(range(n))
        # a drafter without q (prompt lookup): one-hot proposals, as the chain takes them
        lookup = torch.tensor([3, 4, 5])
        g_chain, g_tree = (torch.Generator().manual_seed(seed) for _ in range(2))
        chain = verify_sampled(lookup, P, None, g_chain)
        tree = verify_tree_sampled(Tree.chain(lookup, None, "top-k"), P, g_tree)
        assert torch.equal(tree.accepted, chain.accepted)
        assert int(tree.next_token) == int(chain.next_token)


def reference_walk(tree: Tree, p: torch.Tensor, u: torch.Tensor, e: torch.Tensor,
                   rule: str = "exact") -> tuple[list[bool], list[bool], int]:
    """The walk as section 3 of docs/trees.md states it, one node at a time on the host:
    (accepted, tried, the added token)."""
    accepted, tried = [False] * tree.n, [False] * tree.n
    row, left = 0, p[0].clone()
    while True:
        kids = [i for i in range(tree.n) if tree.parent[i] + 1 == row]
        proposal = tree.q[kids[0]].clone() if kids and tree.drawn == "sampled" else None
        for i in kids:
            c = int(tree.tokens[i])
            if tree.drawn == "sampled" and tree.q[i][c] == 0:
                continue  # could not have been drawn: as if absent
            if rule == "plain-q":
                q_i = tree.q[i]
            elif proposal is None:
                q_i = torch.nn.functional.one_hot(torch.tensor(c), p.shape[-1]).to(p.dtype)
            else:
                q_i = proposal
            tried[i] = True
            if u[i] < min(1.0, float(left[c] / q_i[c])):
                accepted[i], row, left = True, i + 1, p[i + 1].clone()
                break
            r = torch.clamp(left - q_i, min=0.0)
            left = r / r.sum() if r.sum() > 0 else left
            if proposal is not None and rule == "exact":
                proposal = proposal.clone()
                proposal[c] = 0.0
                proposal = proposal / proposal.sum()
        else:
            return accepted, tried, int(sample(left, None, e))


@pytest.mark.parametrize("drawn,rule", [("top-k", "exact"), ("sampled", "exact"),
                                        ("sampled", "plain-q")])
def test_the_verifier_decides_as_the_walk_node_by_node(drawn, rule):
    """Random trees (siblings share their parent's q; sometimes a token q cannot draw): the
    verifier (every node at once for top-k children, a loop with the walk's state for sampled
    ones) makes the node-by-node walk's decisions from the same draws."""
    g = torch.Generator().manual_seed(7)
    for _ in range(150):
        n, vocab = int(torch.randint(1, 12, (1,), generator=g)), 6
        parent: list[int] = []
        for i in range(n):
            par = int(torch.randint(-1, i, (1,), generator=g)) if i else -1
            if sum(x == par for x in parent) < vocab:
                parent.append(par)
        n = len(parent)
        order = {row: torch.randperm(vocab, generator=g).tolist() for row in range(-1, n)}
        tokens = [order[par][parent[:i].count(par)] for i, par in enumerate(parent)]  # distinct
        q_rows = torch.softmax(2 * torch.randn(n + 1, vocab, generator=g), -1)
        q_rows[:, 0] = 0.0  # token 0: never drawable
        q_rows /= q_rows.sum(-1, keepdim=True)
        tree = Tree(torch.tensor(parent), torch.tensor(tokens),
                    q_rows[torch.tensor(parent) + 1], drawn)
        p = torch.softmax(2 * torch.randn(n + 1, vocab, generator=g), -1)
        u, e = torch.rand(n, generator=g), torch.empty(vocab).exponential_(generator=g)
        verdict = verify_tree_sampled(tree, p, None, rule=rule, u=u, e=e)
        accepted, tried, token = reference_walk(tree, p, u, e, rule)
        assert verdict.accepted.tolist() == accepted
        assert verdict.tried.tolist() == tried
        assert int(verdict.next_token) == token


def test_an_empty_tree_is_a_target_only_step():
    empty = Tree((), torch.zeros(0, dtype=torch.long), None)
    p = torch.tensor([[0.2, 0.5, 0.3]])
    assert verify_tree_greedy(empty, p).emitted(empty) == [1]
    for seed in range(20):
        tree = verify_tree_sampled(empty, p, torch.Generator().manual_seed(seed))
        chain = verify_sampled(torch.zeros(0, dtype=torch.long), p, None,
                               torch.Generator().manual_seed(seed))
        assert tree.emitted(empty) == [int(chain.next_token)] and bool(tree.bonus)


def test_width_one_tree_decides_as_the_chain_verifier_under_greedy():
    for drafted in ([0, 4, 0], [0, 4, 1], [1, 4, 1], [0, 2, 1]):
        x = torch.tensor(drafted)
        chain = verify_greedy(x, P, Q)
        tree = verify_tree_greedy(Tree.chain(x, Q), P)
        assert torch.equal(tree.accepted, chain.accepted)
        assert int(tree.next_token) == int(chain.next_token)
        assert bool(tree.bonus) == (int(chain.n_accepted) == GAMMA)


# ---------------------------------------------------------------------- greedy
@pytest.mark.parametrize("build", [
    lambda ctx: static_tree(q_after(ctx), (3, 2, 1)),
    lambda ctx: static_tree(per_path(lambda path: p_one(ctx + path)), (2, 2, 2)),
    lambda ctx: dynamic_tree(q_after(ctx), budget=12, max_depth=5, top_k=3),
])
def test_greedy_tree_commits_the_target_greedy_output(build):
    """Whatever the tree, the step commits the target's own greedy tokens, as far as the
    tree holds them, plus one."""
    for ctx in [(), (0,), (2,), (3, 1), (5, 5, 4)]:
        tree = build(ctx)
        v = verify_tree_greedy(tree, p_rows(tree, ctx))
        out = v.emitted(tree)
        assert out == greedy_target(ctx, len(out))
        # as deep as the tree goes along the target's greedy path
        node, depth = -1, 0
        for tok in out[:-1]:
            node = next(k for k in tree.children(node) if int(tree.tokens[k]) == tok)
            depth += 1
        assert not any(int(tree.tokens[k]) == out[-1] for k in tree.children(node))
        assert int(v.n_accepted) == depth and bool(v.bonus) == (not tree.children(node))
        assert v.accept_prob[~v.tried].isnan().all()


def test_greedy_tree_from_the_target_itself_accepts_to_the_leaves():
    tree = static_tree(per_path(lambda path: p_one(path)), (2, 2, 2))
    v = verify_tree_greedy(tree, p_rows(tree))
    assert int(v.n_accepted) == 3 and bool(v.bonus)
    assert len(v.emitted(tree)) == 4


# ---------------------------------------------------------------------- sampling keeps p
TREES = {
    "top-k (3, 2, 1)": lambda ctx, g: static_tree(q_after(ctx), (3, 2, 1)),
    "sampled (3, 2, 1)": lambda ctx, g: static_tree(q_after(ctx), (3, 2, 1), "sampled", g),
    "dynamic": lambda ctx, g: dynamic_tree(q_after(ctx), budget=10, max_depth=4, top_k=3),
}
N_RUNS = 2500


def chi_square_pooled(counts: torch.Tensor, probs: torch.Tensor, least: float = 5.0) -> float:
    """Pearson's test with the cells expected fewer than ``least`` times pooled into one."""
    counts, probs = counts.flatten(), probs.flatten()
    small = probs * counts.sum() < least
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum().view(1)])
        probs = torch.cat([probs[~small], probs[small].sum().view(1)])
    return chi_square_pvalue(counts, probs)


def first_two(kind: str, rule: str, n_runs: int, seed: int, build=None) -> torch.Tensor:
    """(V, V) counts of the first two tokens committed, decoding step after step with trees
    (a step that commits one token is followed by a step from the longer context)."""
    g = torch.Generator().manual_seed(seed)
    build = build or TREES[kind]
    fixed = not kind.startswith("sampled")  # deterministic trees: built once per context

    @functools.cache
    def tree_and_p(ctx):
        tree = build(ctx, g)
        return tree, p_rows(tree, ctx)

    counts = torch.zeros(V, V)
    for _ in range(n_runs):
        out: list[int] = []
        while len(out) < 2:
            ctx = tuple(out)
            if fixed:
                tree, p = tree_and_p(ctx)
            else:
                tree = build(ctx, g)
                p = p_rows(tree, ctx)
            out += verify_tree_sampled(tree, p, g, rule).emitted(tree)
        counts[out[0], out[1]] += 1
    return counts


def joint_p() -> torch.Tensor:
    """(V, V) p(x1) p(x2 | x1)."""
    return torch.stack([P_ROOT[a] * p_one((a,)) for a in range(V)])


@pytest.mark.parametrize("kind", list(TREES))
def test_tree_sampling_commits_tokens_distributed_as_p(kind):
    counts = first_two(kind, "exact", N_RUNS, seed=1)
    assert chi_square_pooled(counts.sum(1), P_ROOT) > 1e-3  # the first token alone
    assert chi_square_pooled(counts, joint_p()) > 1e-3


@pytest.mark.parametrize("kind", list(TREES))
def test_plain_q_for_every_sibling_is_caught_by_the_same_test(kind):
    """Negative control: judging each sibling against its parent's plain q loses p."""
    counts = first_two(kind, "plain-q", N_RUNS, seed=1)
    assert chi_square_pooled(counts, joint_p()) < 1e-6


def test_top_k_children_judged_as_if_sampled_are_caught_too():
    """Another way to lose p: recursive rejection sampling (min(1, p/q)) on top-k children,
    which no draw from q produced; only the one-hot rule is exact for them."""
    def mislabelled(ctx, g):
        t = static_tree(q_after(ctx), (3, 2, 1))
        return Tree(t.parent, t.tokens, t.q, "sampled")

    counts = first_two("top-k judged as sampled", "exact", N_RUNS, seed=1, build=mislabelled)
    assert chi_square_pooled(counts, joint_p()) < 1e-6


def test_tree_records_explain_each_decision():
    g = torch.Generator().manual_seed(3)
    tree = static_tree(q_after(()), (3, 2, 1), "sampled", g)
    v = verify_tree_sampled(tree, p_rows(tree), g)
    root_kids = tree.children(-1)
    # the first child of the root is always judged, against q itself
    first = root_kids[0]
    assert bool(v.tried[first])
    assert float(v.q_used[first]) == pytest.approx(float(tree.q[first, tree.tokens[first]]))
    assert float(v.accept_prob[first]) == pytest.approx(
        min(1.0, float(v.p_used[first] / v.q_used[first])))
    # exactly one node accepted per depth down the path, each judged and u below its ratio
    path = v.accepted_path()
    assert [tree.depth[i] for i in path] == list(range(1, len(path) + 1))
    for i in path:
        assert bool(v.tried[i]) and float(v.u[i]) < float(v.accept_prob[i])
    assert v.accepted.sum() == len(path) == int(v.n_accepted)
    # judged-and-rejected nodes drew u at or above their ratio
    rejected = v.tried & ~v.accepted
    assert (v.u[rejected] >= v.accept_prob[rejected]).all()


@pytest.mark.parametrize("drawn", ["sampled", "top-k"])
@pytest.mark.parametrize("rule", ["exact", "plain-q"])
def test_sampled_verification_of_a_device_tree_is_that_of_its_host_tree(drawn, rule):
    """The same tree as a DeviceTree (no host structure) and as a Tree, same draws: the same
    verdict. A sampled child whose q is 0 (q cut to two tokens under a node of three
    children) is never judged, and the walk decides as on the tree without it (and below it),
    given the same draws for the nodes that remain."""
    from specviz.core.tree import DeviceTree
    g = torch.Generator().manual_seed(7)
    parent = (-1, -1, -1, 0, 0, 1, 1, 3)
    for trial in range(40):
        q_rows = torch.softmax(torch.randn(4, V, generator=g) * 2, -1)  # root, nodes 0, 1, 3
        if trial % 2:
            q_rows[0, torch.argsort(q_rows[0])[:V - 2]] = 0.0  # the root's q: 2 tokens left
            q_rows[0] /= q_rows[0].sum()
        row_of = {-1: 0, 0: 1, 1: 2, 3: 3}
        q = torch.stack([q_rows[row_of[par]] for par in parent])
        tokens = []
        for i, par in enumerate(parent):  # distinct siblings, the root's by q's order
            taken = {tokens[j] for j in range(i) if parent[j] == par}
            order = torch.argsort(q[i], descending=True).tolist()
            tokens.append(next(t for t in order if t not in taken))
        tokens = torch.tensor(tokens)
        p = torch.softmax(torch.randn(len(parent) + 1, V, generator=g) * 2, -1)
        u, e = torch.rand(len(parent), generator=g), torch.empty(V).exponential_(generator=g)
        host = Tree(parent, tokens, q, drawn)
        dev = DeviceTree.build(torch.tensor(parent), tokens, q, 3, drawn)
        a = verify_tree_sampled(host, p, None, rule, u=u, e=e)
        b = verify_tree_sampled(dev, p, None, rule, u=u, e=e)
        assert a.emitted(host) == b.emitted(host) and torch.equal(a.tried, b.tried)
        q_tok = q.gather(-1, tokens[:, None]).squeeze(-1)
        dead = [i for i in range(len(parent)) if drawn == "sampled" and
                (q_tok[i] == 0 or (parent[i] >= 0 and q_tok[parent[i]] == 0))]
        assert not a.tried[dead].any()
        if dead:  # the tree without them, the same draws for the rest
            keep = [i for i in range(len(parent)) if i not in dead]
            new = {old: k for k, old in enumerate(keep)}
            pruned = Tree(tuple(new.get(parent[i], -1) for i in keep), tokens[keep], q[keep],
                          drawn)
            c = verify_tree_sampled(pruned, p[[0] + [i + 1 for i in keep]], None, rule,
                                    u=u[keep], e=e)
            assert c.emitted(pruned) == a.emitted(host)
