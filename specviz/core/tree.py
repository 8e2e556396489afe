"""Token trees: draft several continuations, verify them all in one target pass.

Notation: p = target, q = draft. The root of a tree is the last committed token x_0 (depth 0);
its children are candidates for the next token (depth 1), theirs for the one after, and so on.
Nodes are numbered so that a parent comes before its children and siblings stand in the order
they were proposed. One target pass over the rows [x_0, node_0 .. node_{N-1}] scores them all:
row 0 gives p at the root, row 1 + i gives p after node i. Each row sees the committed prefix
and its own ancestors only (``Tree.attention_bias``); its position is the root's plus its depth
(``Tree.positions``), while the pass writes its keys and values at consecutive cache slots
(``Tree.slots``), so siblings never overwrite each other.

How the children of a node were chosen decides how they are verified (docs/trees.md):
- "top-k": the k most probable tokens of q, a deterministic choice. No draw happened, so each
  child is a one-hot proposal: accept child c_i with probability p_i(c_i); on rejection
  p_{i+1} = p_i with c_i set to 0, renormalised.
- "sampled": drawn from q without replacement, in order. Recursive rejection sampling: child
  c_i was drawn from q_i (q without c_1..c_{i-1}, renormalised); accept with
  min(1, p_i(c_i)/q_i(c_i)); on rejection p_{i+1} = norm(max(0, p_i - q_i)) and q_{i+1} = q_i
  without c_i, renormalised.
Both are ordinary speculative-sampling steps for target p_i and proposal q_i, one after the
other, so the emitted token follows p. Where every child is rejected, the correction is drawn
from what is left of p; where the walk ends at a leaf, the bonus token is drawn from p there.
Width 1 is the chain: the same decisions as ``specviz.core.verify`` from the same draws.

The rule "plain-q" is deliberately wrong, kept as the negative control: every sibling is
judged against its parent's plain q (acceptance min(1, p_i/q), residual from q), as if each
had been drawn from q on its own.
"""

from __future__ import annotations

import functools
import heapq
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .sampling import sample

DRAWN = ("top-k", "sampled")  # how a node's children were chosen from q
TREE_RULES = ("exact", "plain-q")

# the draft's distribution after each token path (tokens from the root's child down), one
# row per path: (len(paths), V)
QOf = Callable[[list[tuple[int, ...]]], torch.Tensor]


class _PassLayout:
    """The verify pass's layout of a tree, from its row depths and row ancestry (shared by
    ``Tree``, built on the host, and ``DeviceTree``, built on the device)."""

    n: int
    max_depth: int
    tokens: torch.Tensor
    depths: torch.Tensor

    def row_ancestors(self) -> torch.Tensor:
        raise NotImplementedError

    def positions(self, n_committed: int | torch.Tensor) -> torch.Tensor:
        """(1+N,) rotary positions of the rows: the root x_0 sits at n_committed - 1, a node at
        that plus its depth. ``n_committed`` may be an int or a (1,) device tensor."""
        return n_committed - 1 + self.depths

    def slots(self, n_committed: int | torch.Tensor) -> torch.Tensor:
        """(1+N,) cache slots the pass writes: consecutive from the root's, by node index."""
        return n_committed - 1 + torch.arange(self.n + 1, device=self.tokens.device)

    def attention_bias(self, key_pos: torch.Tensor, n_committed: int | torch.Tensor,
                       group: int, dtype: torch.dtype) -> torch.Tensor:
        """(group*(1+N), L) additive bias over cache slots ``key_pos`` (L,), in the convention
        of ``specviz.engines.static.causal_bias``: 0 where a row may attend, -inf where not.
        A row sees the committed prefix (slots before the root's), the root, and the slots of
        its own ancestors and itself; never a sibling's, a cousin's, or a stale slot."""
        rel = key_pos - (n_committed - 1)  # (L,) slot relative to the root's
        in_tree = (rel >= 0) & (rel <= self.n)
        sees = self.row_ancestors()[:, rel.clamp(0, self.n)] & in_tree[None]  # (1+N, L)
        allowed = (rel < 0)[None] | sees
        bias = torch.where(allowed, 0.0, float("-inf"))
        return bias.to(dtype).repeat(group, 1)

    def kv_moves(self, path: torch.Tensor, n_committed: int | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the accepted path's keys and values go after the pass: (max_depth,) source and
        destination slots. The node accepted at depth d moves from its slot to
        n_committed - 1 + d, right after the root's, so the cache holds the prefix and the
        path contiguously, slot = position; padding (-1) moves a slot onto itself. Read the
        sources before writing (``index_select`` then ``index_copy_``): they may overlap."""
        dst = n_committed + torch.arange(self.max_depth, device=path.device)
        return torch.where(path >= 0, n_committed + path, dst), dst


@dataclass(frozen=True)
class Tree(_PassLayout):
    """A drafted token tree; N nodes, vocabulary V.

    ``parent[i]`` is the index of node i's parent, -1 for a child of the root (the last
    committed token); parents come before their children and siblings carry distinct tokens,
    in the order they were proposed. ``q`` row i is the draft's distribution at node i's parent,
    the one node i was chosen from (siblings share it); None for a drafter without one.
    """

    parent: tuple[int, ...]  # (N,)
    tokens: torch.Tensor  # (N,) int64
    q: torch.Tensor | None  # (N, V) float32
    drawn: str = "top-k"
    # the tokens as host ints when the builder has them (no device read to check siblings)
    host_tokens: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.drawn not in DRAWN:
            raise ValueError(f"unknown way of drawing children {self.drawn!r}; "
                             f"choose from {', '.join(DRAWN)}")
        n = len(self.parent)
        if self.tokens.shape != (n,):
            raise ValueError(f"a tree of {n} nodes needs ({n},) tokens, "
                             f"got {tuple(self.tokens.shape)}")
        if self.q is not None and (self.q.dim() != 2 or self.q.shape[0] != n):
            raise ValueError(f"q must be ({n}, V), got {tuple(self.q.shape)}")
        if self.q is None and self.drawn == "sampled":
            raise ValueError("sampled children need the q they were drawn from")
        for i, par in enumerate(self.parent):
            if not -1 <= par < i:
                raise ValueError(f"node {i} has parent {par}: parents come before children")
        seen: set[tuple[int, int]] = set()
        host = self.host_tokens if self.host_tokens is not None else self.tokens.tolist()
        for par, tok in zip(self.parent, host):
            if (par, tok) in seen:
                raise ValueError(f"token {tok} appears twice among the children of {par}")
            seen.add((par, tok))

    @classmethod
    def chain(cls, tokens: torch.Tensor, q: torch.Tensor | None,
              drawn: str = "sampled") -> "Tree":
        """Width 1: x_1..x_gamma (gamma,) with q (gamma, V), each node the child of the one
        before."""
        return cls(tuple(range(-1, tokens.shape[0] - 1)), tokens, q, drawn)

    # ------------------------------------------------------------------ structure (host)
    @property
    def n(self) -> int:
        return len(self.parent)

    @functools.cached_property
    def depth(self) -> tuple[int, ...]:
        """(N,) 1 for a child of the root."""
        d: list[int] = []
        for par in self.parent:
            d.append(1 if par < 0 else d[par] + 1)
        return tuple(d)

    @property
    def max_depth(self) -> int:
        return max(self.depth, default=0)

    def children(self, i: int) -> list[int]:
        """Indices of node i's children in proposal order; i = -1: the root's."""
        return [j for j, par in enumerate(self.parent) if par == i]

    def path_to(self, i: int) -> list[int]:
        """Node indices from the root's child down to node i (included)."""
        path = []
        while i >= 0:
            path.append(i)
            i = self.parent[i]
        return path[::-1]

    def path_tokens(self, i: int) -> tuple[int, ...]:
        """The tokens along ``path_to(i)``; () for i = -1 (the root)."""
        toks = self.tokens.tolist()
        return tuple(toks[j] for j in self.path_to(i))

    # ------------------------------------------------------------------ the verify pass
    @functools.cached_property
    def ancestor_lists(self) -> tuple[tuple[int, ...], ...]:
        """Per node: itself and its ancestors (node indices), computed on the host."""
        out: list[tuple[int, ...]] = []
        for i, par in enumerate(self.parent):
            out.append((out[par] if par >= 0 else ()) + (i,))
        return tuple(out)

    def ancestors(self) -> torch.Tensor:
        """(N, N) bool: [i, j] is True where node j is node i or one of its ancestors."""
        rows = [[False] * self.n for _ in range(self.n)]
        for i, anc in enumerate(self.ancestor_lists):
            for j in anc:
                rows[i][j] = True
        return torch.tensor(rows, dtype=torch.bool, device=self.tokens.device).view(self.n,
                                                                                  self.n)

    def row_ancestors(self) -> torch.Tensor:
        """(1+N, 1+N) bool over the verify pass's rows (row 0 the root, 1+i node i): which
        rows each row sees among the tree's; the root is everyone's ancestor."""
        rows = [[True] + [False] * self.n for _ in range(self.n + 1)]
        for i, anc in enumerate(self.ancestor_lists):
            for j in anc:
                rows[i + 1][j + 1] = True
        return torch.tensor(rows, dtype=torch.bool, device=self.tokens.device)

    @functools.cached_property
    def depths(self) -> torch.Tensor:
        """(1+N,) int64 depth of each row of the verify pass: 0 for the root."""
        return torch.tensor((0, *self.depth), dtype=torch.long, device=self.tokens.device)

    @functools.cached_property
    def parent_rows(self) -> torch.Tensor:
        """(N,) int64 the row of each node's parent in the verify pass (0 for the root)."""
        return torch.tensor([par + 1 for par in self.parent], dtype=torch.long,
                            device=self.tokens.device)

    @functools.cached_property
    def leaf_rows(self) -> torch.Tensor:
        """(1+N,) bool: rows without children."""
        parents = set(self.parent)
        return torch.tensor([r - 1 not in parents for r in range(self.n + 1)],
                            device=self.tokens.device)

    def path_q(self) -> torch.Tensor:
        """(N,) the product of q along each node's path: the draft's probability that the
        node's whole path is what comes next (what a dynamic tree ranks nodes by)."""
        if self.q is None:
            raise ValueError("this tree has no q")
        q_tok = self.q.gather(-1, self.tokens[:, None]).squeeze(-1)  # (N,)
        return torch.exp(self.ancestors().float() @ torch.log(q_tok))


def ancestry(parent: torch.Tensor, max_depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From parent indices (N,) (-1: a child of the root; no tree deeper than ``max_depth``):
    (N, N) bool, [i, j] True where node j is node i or one of its ancestors, and each node's
    depth (N,). Device ops at fixed shapes, no host reads: "j is i or i's parent", then
    squared as a matrix (reachable in 1, 2, 4, ... steps up) until it covers every depth."""
    nodes = torch.arange(parent.shape[0], device=parent.device)
    anc = (parent[:, None] == nodes[None, :]) | (nodes[:, None] == nodes[None, :])
    reach = 1  # anc holds the ancestors up to `reach` steps up
    while reach < max_depth - 1:
        up = anc.float()
        anc = (up @ up) > 0  # counts of paths: small integers, exact in any float matmul
        reach *= 2
    return anc, anc.sum(-1)


@dataclass(frozen=True)
class DeviceTree(_PassLayout):
    """A tree held as device tensors at fixed shapes (drafted on the device, no host reads),
    with what the verify pass and ``verify_tree_greedy`` read from a ``Tree``. Parents come
    before their children; ``max_depth`` bounds the depth (the tree may be shallower). Every
    derived tensor is either a field or recomputed when read (nothing cached: a CUDA graph
    captures the ops that make it)."""

    parent: torch.Tensor  # (N,) int64, -1 for a child of the root
    tokens: torch.Tensor  # (N,) int64
    q: torch.Tensor | None  # (N, V): the draft's distribution at each node's parent
    max_depth: int
    drawn: str
    anc: torch.Tensor  # (N, N) bool: ``ancestry``
    node_depth: torch.Tensor  # (N,) int64, 1 for a child of the root

    @classmethod
    def build(cls, parent: torch.Tensor, tokens: torch.Tensor, q: torch.Tensor | None,
              max_depth: int, drawn: str = "top-k") -> "DeviceTree":
        return cls(parent, tokens, q, max_depth, drawn, *ancestry(parent, max_depth))

    @property
    def n(self) -> int:
        return self.parent.shape[0]

    def ancestors(self) -> torch.Tensor:
        return self.anc

    @property
    def depths(self) -> torch.Tensor:
        return torch.cat([self.parent.new_zeros(1), self.node_depth])

    @property
    def parent_rows(self) -> torch.Tensor:
        return self.parent + 1

    @property
    def leaf_rows(self) -> torch.Tensor:
        has_child = torch.zeros(self.n + 1, dtype=torch.bool, device=self.parent.device)
        return ~has_child.index_fill(0, self.parent_rows, True)

    def row_ancestors(self) -> torch.Tensor:
        n, dev = self.n, self.parent.device
        below = torch.cat([torch.zeros(1, n, dtype=torch.bool, device=dev), self.anc])
        return torch.cat([torch.ones(n + 1, 1, dtype=torch.bool, device=dev), below], 1)


# ---------------------------------------------------------------------- drafting a tree
def per_path(q_one: Callable[[tuple[int, ...]], torch.Tensor]) -> QOf:
    """A ``QOf`` from a function of one token path that returns (V,)."""
    return lambda paths: torch.stack([q_one(path) for path in paths])


def _choose(q: torch.Tensor, k: int, drawn: str, generator: torch.Generator | None
            ) -> list[list[int]]:
    """k children for each row of q (R, V): the top-k, or k draws without replacement (the
    order of an exponential race, q / E with E ~ Exp(1), is the order of successive draws).
    Never more than the tokens a row can propose. One host read for all rows."""
    k = min(k, q.shape[-1])
    keys = q
    if drawn == "sampled":
        keys = q / torch.empty_like(q).exponential_(1.0, generator=generator)
    top = torch.topk(keys, k, dim=-1).indices  # (R, k)
    support = (q > 0).sum(-1)  # (R,)
    both = torch.cat([top, support[:, None]], dim=-1).tolist()
    return [row[:min(k, row[-1])] for row in both]


def static_tree(q_of: QOf, branching: Sequence[int], drawn: str = "top-k",
                generator: torch.Generator | None = None) -> Tree:
    """A tree of fixed shape: every node at depth d gets ``branching[d-1]`` children (fewer
    where q has fewer tokens), chosen from its q as ``drawn`` says. (3, 2, 1) gives 3 + 6 + 6
    nodes; (1,) * gamma is a chain. One ``q_of`` call per depth, for the whole frontier."""
    if drawn not in DRAWN:
        raise ValueError(f"unknown way of drawing children {drawn!r}; "
                         f"choose from {', '.join(DRAWN)}")
    if not branching or min(branching) < 1:
        raise ValueError(f"branching needs at least one depth, each >= 1; got {branching}")
    parent: list[int] = []
    tokens: list[int] = []
    q_rows: list[torch.Tensor] = []
    frontier: list[tuple[int, tuple[int, ...]]] = [(-1, ())]  # (node index, token path)
    for width in branching:
        q = q_of([path for _, path in frontier])  # (len(frontier), V)
        nxt = []
        for (node, path), q_node, kids in zip(frontier, q, _choose(q, width, drawn, generator)):
            for tok in kids:
                nxt.append((len(parent), path + (tok,)))
                parent.append(node)
                tokens.append(tok)
                q_rows.append(q_node)
        frontier = nxt
    return Tree(tuple(parent), torch.tensor(tokens, dtype=torch.long, device=q.device),
                torch.stack(q_rows).float(), drawn, tuple(tokens))


def dynamic_tree(q_of: QOf, budget: int, max_depth: int, top_k: int = 4,
                 expand: int | None = None) -> Tree:
    """A tree grown where the draft is confident (EAGLE-2): a node's score is the product of q
    along its path. Depth by depth, the ``expand`` best-scoring nodes of the newest depth get
    their ``top_k`` most probable tokens as candidate children; at the end the ``budget``
    best-scoring candidates of all depths are kept. A child never outscores its parent, so
    what is kept is a tree. Children are top-k choices: verified as one-hot proposals."""
    if budget < 1 or max_depth < 1 or top_k < 1:
        raise ValueError("budget, max_depth and top_k must be at least 1")
    expand = top_k if expand is None else expand
    # candidates: (score, depth, parent candidate, token, path, q row)
    cands: list[tuple[float, int, int, int, tuple[int, ...], torch.Tensor]] = []
    frontier: list[int] = [-1]  # candidate indices to expand; -1 the root
    for depth in range(1, max_depth + 1):
        paths = [cands[c][4] if c >= 0 else () for c in frontier]
        q = q_of(paths)  # (len(frontier), V)
        top = torch.topk(q, min(top_k, q.shape[-1]), dim=-1)
        probs, toks = top.values.tolist(), top.indices.tolist()  # one host read per depth
        newest = []
        for c, path, q_node, row_p, row_t in zip(frontier, paths, q, probs, toks):
            base = cands[c][0] if c >= 0 else 1.0
            for prob, tok in zip(row_p, row_t):
                if prob > 0:
                    newest.append(len(cands))
                    cands.append((base * prob, depth, c, tok, path + (tok,), q_node))
        frontier = heapq.nlargest(expand, newest, key=lambda c: (cands[c][0], -c))
        if not frontier:
            break
    # the best `budget`; on equal scores the shallower, then the older: parents before children
    keep = sorted(heapq.nsmallest(budget, range(len(cands)),
                                  key=lambda c: (-cands[c][0], cands[c][1], c)))
    new_index = {c: i for i, c in enumerate(keep)}
    parent = tuple(new_index[cands[c][2]] if cands[c][2] >= 0 else -1 for c in keep)
    host = tuple(cands[c][3] for c in keep)
    tokens = torch.tensor(host, dtype=torch.long, device=q.device)
    return Tree(parent, tokens, torch.stack([cands[c][5] for c in keep]).float(), "top-k", host)


# ---------------------------------------------------------------------- verifying a tree
@dataclass(frozen=True)
class TreeVerdict:
    """Tensors on the model device; N nodes. A node is "tried" when the walk reached its
    parent and no earlier sibling had been accepted; records of untried nodes are NaN."""

    accepted: torch.Tensor  # (N,) bool: the accepted path, one node per depth from 1
    n_accepted: torch.Tensor  # () int64
    path: torch.Tensor  # (max_depth,) int64 node index accepted at each depth, then -1
    next_token: torch.Tensor  # () int64: the correction, or the bonus after a leaf
    bonus: torch.Tensor  # () bool: the walk ended at a leaf (every node on it accepted)
    tried: torch.Tensor  # (N,) bool
    accept_prob: torch.Tensor  # (N,) min(1, p_i/q_i) as judged, or argmax match (greedy)
    u: torch.Tensor | None  # (N,) uniform draws; None under greedy
    p_tok: torch.Tensor  # (N,) the target's p of each node's token at its parent
    q_tok: torch.Tensor | None  # (N,) the plain q of each node's token; None without q
    p_used: torch.Tensor | None  # (N,) p_i(token): what was left of p when it was judged
    q_used: torch.Tensor | None  # (N,) q_i(token): the proposal it was judged against

    def accepted_path(self) -> list[int]:
        """Node indices of the accepted path, root's child first (a host read)."""
        return [i for i in self.path.tolist() if i >= 0]

    def emitted(self, tree: Tree) -> list[int]:
        """The tokens the step commits: the accepted path's, then the one the target adds."""
        toks = tree.tokens.tolist()
        return [toks[i] for i in self.accepted_path()] + [int(self.next_token)]


def _check_rule(rule: str) -> None:
    if rule not in TREE_RULES:
        raise ValueError(f"unknown tree verifier rule {rule!r}; "
                         f"choose from {', '.join(TREE_RULES)}")


def _check_p(tree: Tree, p_probs: torch.Tensor) -> None:
    if p_probs.dim() != 2 or p_probs.shape[0] != tree.n + 1:
        raise ValueError(f"p must be ({tree.n + 1}, V) for a tree of {tree.n} nodes, "
                         f"got {tuple(p_probs.shape)}")


def _walk_end(tree: Tree, accepted: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """From the accepted nodes (N,) bool: the row where the walk ended (the deepest accepted
    node, or the root), the path by depth, its length and whether it ended at a leaf."""
    depths = tree.depths  # (1+N,)
    on_path = torch.cat([accepted.new_ones(1), accepted])  # (1+N,) rows
    end = torch.argmax(torch.where(on_path, depths, -1))  # () row index
    d = tree.max_depth
    slot = torch.where(accepted, depths[1:] - 1, d)  # (N,) depth - 1, or a spare slot
    path = torch.full((d + 1,), -1, dtype=torch.long, device=accepted.device)
    path.scatter_(0, slot, torch.arange(tree.n, device=accepted.device))
    return end, path[:d], accepted.sum(), tree.leaf_rows.index_select(0, end.view(1))[0]


def verify_tree_greedy(tree: Tree, p_probs: torch.Tensor, rule: str = "exact") -> TreeVerdict:
    """Greedy verification of a tree. p_probs (1+N, V): row 0 at the root, 1+i after node i.

    From the root, the child equal to the target's argmax is accepted; where no child
    matches, the target's argmax is added. The committed tokens are the target's own greedy
    output. (Greedy involves no q: the rule "plain-q" changes nothing here.)
    """
    _check_rule(rule)
    _check_p(tree, p_probs)
    rows = tree.parent_rows  # (N,)
    choice = torch.argmax(p_probs, dim=-1)  # (1+N,)
    match = tree.tokens == choice[rows]  # (N,)
    accepted = ~(tree.ancestors() & ~match[None, :]).any(-1)  # its whole path matches
    end, path, n, bonus = _walk_end(tree, accepted)
    on_path = torch.cat([accepted.new_ones(1), accepted])
    tried = on_path[rows]
    nan = torch.full_like(p_probs[1:, 0], float("nan"))
    p_tok = p_probs[rows].gather(-1, tree.tokens[:, None]).squeeze(-1)
    q_tok = None if tree.q is None else tree.q.gather(-1, tree.tokens[:, None]).squeeze(-1)
    return TreeVerdict(accepted, n, path, choice.index_select(0, end.view(1))[0], bonus, tried,
                       torch.where(tried, match.float(), nan), None, p_tok, q_tok, None, None)


def _residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """norm(max(0, p - q)) (V,); p itself where nothing is left (then p == q, and the
    proposal is always accepted)."""
    r = torch.clamp(p - q, min=0.0)
    mass = r.sum()
    return torch.where(mass > 0, r / mass.clamp_min(1e-30), p)


def _verify_top_k_children(tree: Tree | DeviceTree, p_probs: torch.Tensor, u: torch.Tensor,
                           generator: torch.Generator | None,
                           e: torch.Tensor | None) -> TreeVerdict:
    """``verify_tree_sampled`` for top-k children (rule "exact"), every node at once.

    With one-hot proposals the walk needs no vectors: after a node's earlier children were
    rejected, what is left of p is p with their tokens removed, so child c_i is accepted with
    p(c_i) / (1 - S_i), S_i the p of its earlier siblings' tokens, against its own u. A node is
    tried when its parent is on the path and no earlier sibling passed its test, accepted when
    it passed and was tried; the added token comes from p at the walk's end without the tokens
    of the children judged there. The same draws give the loop's decisions (up to rounding
    of the renormalised p), with a fixed number of operations however many nodes there are.
    """
    n, rows, tokens = tree.n, tree.parent_rows, tree.tokens
    p_tok = p_probs.index_select(0, rows).gather(-1, tokens[:, None]).squeeze(-1)  # (N,)
    index = torch.arange(n, device=rows.device)
    earlier = (rows[:, None] == rows[None, :]) & (index[None, :] < index[:, None])  # (N, N)
    before = (earlier.to(p_tok.dtype) @ p_tok[:, None]).squeeze(-1)  # S_i
    p_used = p_tok / (1.0 - before).clamp_min(1e-30)
    a = p_used.clamp(0.0, 1.0)
    passed = u < a
    beaten = (earlier & passed[None, :]).any(-1)  # an earlier sibling passed
    first = passed & ~beaten
    accepted = ~(tree.ancestors() & ~first[None, :]).any(-1)  # its whole path is first
    on_path = torch.cat([accepted.new_ones(1), accepted])  # (1+N,) rows
    tried = on_path.index_select(0, rows) & ~beaten
    end, path, n_acc, bonus = _walk_end(tree, accepted)
    p_end = p_probs.index_select(0, end.view(1))[0]  # (V,)
    judged_here = (rows == end).to(p_probs.dtype)  # the end's children, all rejected
    removed = torch.zeros_like(p_end).scatter_add_(0, tokens, judged_here).clamp_max(1.0)
    left = torch.where(removed.sum() > 0, _residual(p_end, removed), p_end)  # a leaf: p
    nxt = sample(left, generator, e)
    q_tok = None if tree.q is None else tree.q.gather(-1, tokens[:, None]).squeeze(-1)
    nan = torch.full_like(p_tok, float("nan"))
    return TreeVerdict(accepted, n_acc, path, nxt, bonus, tried, torch.where(tried, a, nan), u,
                       p_tok, q_tok, torch.where(tried, p_used, nan),
                       torch.where(tried, torch.ones_like(p_tok), nan))


def _walk_children(tree: Tree | DeviceTree, p_probs: torch.Tensor, u: torch.Tensor,
                   possible: torch.Tensor, rule: str) -> tuple[list, list, list, list, list,
                                                          torch.Tensor]:
    """The walk over the tree's nodes in index order, one judgement a node reached: per node
    accepted, judged, min(1, p/q), p and q of its token; and what is left of p where the walk
    ended."""
    n, dev = tree.n, p_probs.device
    rows, tokens = tree.parent_rows, tree.tokens  # (N,) each
    # The walk's state, on the device: the row it stands on, what is left of p there, the q
    # its next sampled child was drawn from (siblings share their parent's q; after a
    # rejection, q without the rejected token), and whether that child is the first judged
    # there (then its proposal is its own q row). Made by operations, not by writing host
    # values into device tensors, which a CUDA graph's capture refuses.
    cur = rows.new_zeros(())
    p_run = p_probs[0]
    q_run = p_probs[0] if tree.q is None or not n else tree.q[0].to(p_probs.dtype)
    fresh = torch.ones((), dtype=torch.bool, device=dev)
    accepted, tried, a_all, p_all, q_all = [], [], [], [], []
    for i in range(n):
        c = tokens[i:i + 1]  # (1,)
        if rule == "plain-q":
            q_i = tree.q[i]  # wrong on purpose: the parent's plain q for every sibling
        else:  # sampled children, the exact rule (top-k children: _verify_top_k_children)
            q_i = torch.where(fresh, tree.q[i].to(p_probs.dtype), q_run)
        p_c, q_c = p_run.index_select(0, c)[0], q_i.index_select(0, c)[0]
        a = torch.clamp(p_c / q_c.clamp_min(1e-30), max=1.0)
        judged = (rows[i] == cur) & possible[i]
        ok = judged & (u[i] < a)
        rejected = judged & ~ok
        p_run = torch.where(ok, p_probs[i + 1],
                            torch.where(rejected, _residual(p_run, q_i), p_run))
        if rule == "exact":
            rest = q_i.index_fill(0, c, 0.0)
            q_run = torch.where(rejected, rest / rest.sum().clamp_min(1e-30), q_run)
        fresh = torch.where(judged, ok, fresh)
        cur = torch.where(ok, i + 1, cur)
        accepted.append(ok)
        tried.append(judged)
        a_all.append(a)
        p_all.append(p_c)
        q_all.append(q_c)
    return accepted, tried, a_all, p_all, q_all, p_run


def verify_tree_sampled(tree: Tree | DeviceTree, p_probs: torch.Tensor,
                        generator: torch.Generator | None, rule: str = "exact", *,
                        u: torch.Tensor | None = None,
                        e: torch.Tensor | None = None) -> TreeVerdict:
    """Exact multi-candidate speculative sampling over a tree (module docstring).

    p_probs (1+N, V): row 0 at the root, row 1+i after node i. ``u`` (N,) uniforms, one per
    node in index order, and ``e`` (V,) Exp(1) noise for the added token may be given
    pre-drawn; else they come from ``generator`` (u first, then e: for a chain, the draws of
    ``specviz.core.verify.verify_sampled``). Stays on the device and reads no tree structure
    on the host (a ``DeviceTree`` will do): the walk is a fixed loop over the nodes, each
    judged only if the walk reached it. A sampled child whose q is 0 (an impossible draw,
    possible only where q was cut by top-k or top-p) is never judged, as if absent.
    """
    _check_rule(rule)
    _check_p(tree, p_probs)
    if rule == "plain-q" and tree.q is None:
        raise ValueError("the rule plain-q needs the tree's q")
    n, dev = tree.n, p_probs.device
    if u is None:
        u = torch.rand(n, generator=generator, device=dev)
    rows, tokens = tree.parent_rows, tree.tokens  # (N,) each
    sampled = tree.drawn == "sampled"
    if not sampled and rule == "exact" and n:
        return _verify_top_k_children(tree, p_probs, u, generator, e)
    q_tok = None if tree.q is None else tree.q.gather(-1, tokens[:, None]).squeeze(-1)
    possible = q_tok > 0 if sampled else torch.ones(n, dtype=torch.bool, device=dev)
    accepted, tried, a_all, p_all, q_all, p_run = _walk_children(tree, p_probs, u, possible,
                                                                rule)
    accepted_t = torch.stack(accepted) if n else torch.zeros(0, dtype=torch.bool, device=dev)
    end, path, n_acc, bonus = _walk_end(tree, accepted_t)
    nxt = sample(p_run, generator, e)  # what is left of p where the walk ended
    p_tok = p_probs.index_select(0, rows).gather(-1, tokens[:, None]).squeeze(-1)
    if not n:
        empty = p_probs.new_zeros(0)
        return TreeVerdict(accepted_t, n_acc, path, nxt, bonus, accepted_t, empty, u, p_tok,
                           q_tok, empty, empty)
    tried_t = torch.stack(tried)

    def judged(x: list[torch.Tensor]) -> torch.Tensor:
        return torch.where(tried_t, torch.stack(x), float("nan"))

    return TreeVerdict(accepted_t, n_acc, path, nxt, bonus, tried_t, judged(a_all), u, p_tok,
                       q_tok, judged(p_all), judged(q_all))
