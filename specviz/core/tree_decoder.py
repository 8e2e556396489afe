"""Speculative decoding with a token tree, step by step, on the device.

One step, with p = target and q = draft (specviz.core.tree holds the tree and its rules):
  1. draft   the drafter grows a tree from the last committed token x_0: depth by depth, one
             draft pass over the newest nodes (each row at a cache slot after the prefix,
             seeing the prefix and its own ancestors), their children chosen from q (a fixed
             shape, or EAGLE-2's most-probable-first growth within a node budget);
  2. verify  ONE target pass over [x_0, node_0 .. node_{N-1}] with the tree's attention mask
             gives p at the root and after every node;
  3. accept  walk down from the root: at each node, its children are tried in order (greedy:
             the child equal to p's argmax; sampling: multi-candidate rejection sampling), the
             first accepted one is followed; where none is, the target adds a token (the
             correction from what is left of p, or the bonus at a leaf);
  4. commit  the accepted path's keys and values are moved right after the prefix in the
             target's cache; the committed tokens go to the sequence; a feature head reads the
             target's features along the path (from the verify pass it already made).

The chain is the tree of width 1. A step has a fixed shape for a given tree shape: the tree is
built on the device (``grow_static``, ``grow_dynamic``: top-k and sorts, no host reads) as a
``DeviceTree``, so on CUDA each of the two phases (draft; verify-accept-commit) is captured
once as a CUDA graph and replayed, and the host waits once per step, for the step's packed
record. Greedy runs take that path. Sampled runs verify the same device tree with
``verify_tree_sampled`` (no host read of the tree either); their random draws are made before
each phase into buffers of the run state, so their phases are captured too
(``specviz.decoding.GRAPH_SAMPLED_TREES``, on by default; off: they run directly). The
interface is ``specviz.core.algorithm.Decoder``'s (start, launch, finish), so the runner, its
records and its stops are shared.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..limits import TREE_DEPTH_MAX, TREE_HELP, TREE_NODES_MAX
from .algorithm import Launched, Step
from .sampling import Sampling, logits_to_probs
from .state import RunState
from .tree import DeviceTree, Tree, verify_tree_greedy, verify_tree_sampled


@dataclass(frozen=True)
class TreeShape:
    """How a step's tree is drafted: ``static`` with ``branching`` children per depth, or
    ``dynamic`` (EAGLE-2) with a node ``budget``, ``max_depth`` and ``top_k`` candidates per
    expanded node."""

    kind: str
    branching: tuple[int, ...] = ()
    budget: int = 0
    max_depth: int = 0
    top_k: int = 4

    @property
    def nodes(self) -> int:
        """Most nodes a step drafts."""
        if self.kind == "dynamic":
            return self.budget
        total, width = 0, 1
        for b in self.branching:
            width *= b
            total += width
        return total

    @property
    def depth(self) -> int:
        return self.max_depth if self.kind == "dynamic" else len(self.branching)

    @property
    def draft_rows(self) -> int:
        """Draft rows a step writes after the prefix (the nodes that get children)."""
        if self.kind == "dynamic":
            return self.top_k * (self.max_depth - 1)
        return self.nodes - math.prod(self.branching)

    @property
    def label(self) -> str:
        if self.kind == "dynamic":
            return f"dynamic tree, {self.budget} nodes, depth {self.max_depth}, top-{self.top_k}"
        if max(self.branching) == 1:
            return f"chain of {len(self.branching)}"
        return f"static tree {'-'.join(map(str, self.branching))} ({self.nodes} nodes)"

    def cut(self, depth: int) -> "TreeShape":
        """The same shape, no deeper than ``depth`` (>= 1)."""
        if self.kind == "dynamic":
            return TreeShape("dynamic", budget=self.budget, max_depth=min(self.max_depth, depth),
                             top_k=self.top_k)
        return TreeShape("static", self.branching[:depth])



def parse_tree(text: str) -> TreeShape | None:
    """'' or 'chain': None (the chain of the run's γ); '3,2,1' a static tree;
    'dynamic:16[:6[:4]]' a dynamic one. Raises ValueError with a one-line message."""
    t = (text or "").strip().lower()
    if t in ("", "chain"):
        return None
    try:
        if t.startswith("dynamic"):
            parts = [int(x) for x in t.split(":")[1:]]
            if not 1 <= len(parts) <= 3:
                raise ValueError
            budget, depth, top_k = (parts + [6, 4][len(parts) - 1:])[:3]
            shape = TreeShape("dynamic", budget=budget, max_depth=depth, top_k=top_k)
        else:
            shape = TreeShape("static", tuple(int(x) for x in t.replace("-", ",").split(",")))
    except ValueError:
        raise ValueError(f"cannot read the tree {text!r}: {TREE_HELP}") from None
    numbers = shape.branching if shape.kind == "static" else (shape.budget, shape.max_depth,
                                                              shape.top_k)
    if min(numbers) < 1:
        raise ValueError(f"every number of the tree {text!r} must be at least 1")
    if shape.kind == "dynamic" and shape.top_k > shape.budget:
        raise ValueError(f"the tree {text!r} asks for the top {shape.top_k} children of each "
                         f"node, more than its budget of {shape.budget} nodes can keep; at "
                         f"most {shape.budget}")
    if shape.nodes > TREE_NODES_MAX:
        raise ValueError(f"the tree {text!r} has {shape.nodes} nodes; at most "
                         f"{TREE_NODES_MAX}")
    if shape.depth > TREE_DEPTH_MAX:
        raise ValueError(f"the tree {text!r} is {shape.depth} deep; at most {TREE_DEPTH_MAX}")
    return shape


# ---------------------------------------------------------------------- the draft's side
class _TreeDraft:
    """The draft's passes for one step's tree. ``root`` gives q at x_0; ``grow`` runs one pass
    over the newest nodes that get children: row j reads node token ``tokens[j]`` (its depth
    gives its position), is written at cache slot P + first + j and sees the committed prefix
    and the draft rows ``sees[j]`` (its ancestors' and its own). ``parents[j]`` is the draft
    row of its parent (-1: the root)."""

    reads_features = False
    prefix = 0  # the draft's cache holds the committed rows before slot P + prefix
    shift = 0  # a depth-d node's row sits at position P - 1 + d + shift
    # ``root`` and ``grow`` give q over the draft's own vocabulary: the target's, or a
    # subset (a feature head's), whose token ids these are (None: the same ids)
    vocab_ids: torch.Tensor | None = None

    def __init__(self, drafter, sampling: Sampling):
        self.drafter, self.s = drafter, sampling

    def full(self, q: torch.Tensor) -> torch.Tensor:
        """q over the draft's vocabulary -> over the target's (zero off the draft's)."""
        return q

    def start(self, st: RunState, prompt: torch.Tensor, features) -> None:
        self.drafter.start(st, prompt, features)

    def begin(self, st: RunState, rows: int) -> None:
        """At the start of each step's drafting: what all its draft passes share, from P (the
        step's ``rows`` draft rows, their cache slots and the mask's part over the prefix).
        Made anew in every step, so that a captured graph remakes it too."""
        rel = self.key_pos - st.P  # (L,) slot relative to the first draft row
        self._frame = (rel.clamp(0, max(rows, 1) - 1), ((rel >= 0) & (rel < rows))[None],
                       (self.key_pos < st.P + self.prefix)[None],
                       st.P + self.key_pos[:rows])

    def _rows(self, st: RunState, sees: torch.Tensor, depth: int, first: int):
        """Positions, slots and attention bias of ``sees.shape[0]`` draft rows."""
        rel, in_tree, in_prefix, slots = self._frame
        R = sees.shape[0]
        allowed = in_prefix | (sees[:, rel] & in_tree)
        bias = torch.where(allowed, 0.0, float("-inf")).to(self.dtype).repeat(self.group, 1)
        return (st.P + (depth - 1 + self.shift)).expand(R), slots[first:first + R], bias

    def commit(self, st: RunState, feats, path: torch.Tensor, n_accepted: torch.Tensor) -> None:
        pass


class _ModelDraft(_TreeDraft):
    """A draft LM (the draft model, or the target's first layers). The root's pass re-reads
    the newest ``depth`` + 1 committed tokens (all a step of the run's tree can have added,
    also when this step's tree is cut shorter), so its cache is complete up to x_0 at every
    step, at a fixed shape."""

    def __init__(self, drafter, sampling: Sampling, depth: int):
        super().__init__(drafter, sampling)
        self.lm, self.depth = drafter.lm, depth
        self.key_pos, self.dtype, self.group = self.lm.key_pos, self.lm.embed.dtype, \
            self.lm.shape.group

    def root(self, st: RunState, depth: int) -> torch.Tensor:
        n = self.depth + 1
        pos = (st.P - n + torch.arange(n, device=st.P.device)).clamp(min=0)
        logits = self.lm.forward(st.seq.index_select(0, pos), pos, "last")[0]
        return logits_to_probs(logits, self.s)

    def grow(self, st: RunState, tokens: torch.Tensor, depth: int, parents: torch.Tensor,
             sees: torch.Tensor, first: int) -> torch.Tensor:
        pos, slots, bias = self._rows(st, sees, depth, first)
        return logits_to_probs(self.lm.forward(tokens, pos, "all", slots=slots, bias=bias),
                               self.s)


class _HeadDraft(_TreeDraft):
    """A feature head (specviz.models.feature_head.StaticHead). q at the root comes from its
    guess ``h`` of x_0's feature; a node's row reads [its parent's guess; its token] and
    guesses the node's feature. Its committed rows end before x_0's (the target's feature of
    x_0 comes with the verify pass), so node rows sit one position earlier than a draft LM's.
    After the step, the head reads the target's features along the accepted path."""

    reads_features = True
    prefix, shift = -1, -1

    def __init__(self, drafter, sampling: Sampling):
        super().__init__(drafter, sampling)
        self.head = drafter.head
        self.key_pos, self.dtype, self.group = self.head.key_pos, self.head.embed.dtype, \
            self.head.shape.group
        self.vocab_ids = self.head.vocab_ids
        self._h: list[torch.Tensor] = []

    def full(self, q: torch.Tensor) -> torch.Tensor:
        return self.head.spread(q)

    def _q(self, h: torch.Tensor) -> torch.Tensor:
        return logits_to_probs(self.head.logits(h), self.s)

    def root(self, st: RunState, depth: int) -> torch.Tensor:
        self._h = [self.head.h[None]]  # row 0: the root; row 1 + r: draft row r
        return self._q(self.head.h)

    def grow(self, st: RunState, tokens: torch.Tensor, depth: int, parents: torch.Tensor,
             sees: torch.Tensor, first: int) -> torch.Tensor:
        pos, slots, bias = self._rows(st, sees, depth, first)
        feats = torch.cat(self._h).index_select(0, parents + 1)
        h = self.head.rows(feats, tokens, pos, slots, bias)
        self._h.append(h)
        return self._q(h)

    def commit(self, st: RunState, feats, path: torch.Tensor, n_accepted: torch.Tensor) -> None:
        """Rows P-1 .. P-1+depth from the verify pass's features along the path and the
        committed tokens (rows past the accepted ones are junk, overwritten later); the next
        guess h from row n_accepted."""
        d = torch.arange(path.shape[0] + 1, device=path.device)
        rows = torch.cat([path.new_zeros(1), path.clamp(min=0) + 1])
        h = self.head.rows(feats.index_select(0, rows), st.seq.index_select(0, st.P + d),
                           st.P - 1 + d)
        self.head.h.copy_(h.index_select(0, n_accepted.view(1))[0])


def tree_draft(drafter, sampling: Sampling, depth: int) -> _TreeDraft:
    """The tree-drafting side of a chain drafter (specviz.core.drafters), for trees at most
    ``depth`` deep."""
    if getattr(drafter, "reads_features", False):
        return _HeadDraft(drafter, sampling)
    return _ModelDraft(drafter, sampling, depth)


# ---------------------------------------------------------------------- trees on the device
# Per tree shape and device, the tensors a step's drafting reads but never changes (kept:
# graphs read them, and making them anew would cost a kernel each in every replay)
_PLANS: dict = {}


def _ids(draft: _TreeDraft, index: torch.Tensor) -> torch.Tensor:
    """Token ids of entries ``index`` of the draft's vocabulary."""
    return index if draft.vocab_ids is None else draft.vocab_ids[index]


def _static_plan(branching: tuple[int, ...], device: torch.device) -> dict:
    """A static shape's structure: parents, ancestry, and per depth the range of its nodes."""
    key = ("static", branching, str(device))
    if key not in _PLANS:
        parent, ranges, width, start = [], [], 1, 0
        for b in branching:
            ranges.append((start, start + width * b))
            parent += [p for p in range(start - width, start) for _ in range(b)] \
                if start else [-1] * b
            start, width = start + width * b, width * b
        par = torch.tensor(parent, dtype=torch.long, device=device)
        tree = DeviceTree.build(par, par, None, len(branching))
        _PLANS[key] = {"parent": par, "anc": tree.anc, "depth": tree.node_depth,
                       "ranges": ranges}
    return _PLANS[key]


def grow_static(draft: _TreeDraft, st: RunState, branching: tuple[int, ...], drawn: str,
                generator: torch.Generator | None,
                races: list[torch.Tensor] | None = None) -> DeviceTree:
    """``specviz.core.tree.static_tree`` on the device: every node at depth d gets
    ``branching[d-1]`` children, the top-k of its q (or k draws without replacement, the
    order of an exponential race over the target's vocabulary: Exp(1) noise per depth from
    ``generator``, or pre-drawn in ``races``, one (parents at depth d-1, V) per depth). A
    node's draft row is its index."""
    plan = _static_plan(tuple(branching), st.P.device)
    parent, ranges, depth = plan["parent"], plan["ranges"], len(branching)
    rows = ranges[-1][0]  # the nodes above the last depth get draft rows
    sees = plan["anc"][:rows, :rows]
    draft.begin(st, rows)
    q = draft.root(st, depth)[None]  # (1, V of the draft)
    qs, toks = [q], []
    for d, b in enumerate(branching, 1):
        if d > 1:
            plo, phi = ranges[d - 2]  # the parents: depth d - 1
            q = draft.grow(st, toks[-1], d - 1, parent[plo:phi], sees[plo:phi], plo)
            qs.append(q)
        if drawn == "sampled":
            keys = draft.full(q)
            e = races[d - 1] if races is not None else \
                torch.empty_like(keys).exponential_(1.0, generator=generator)
            keys = keys / e
            toks.append(torch.topk(keys, b, dim=-1).indices.reshape(-1))
        else:
            toks.append(_ids(draft, torch.topk(q, b, dim=-1).indices.reshape(-1)))
    q_rows = torch.cat(qs)  # row 0 the root's, 1 + i node i's
    return DeviceTree(parent, torch.cat(toks), draft.full(q_rows.index_select(0, parent + 1)),
                      depth, drawn, plan["anc"], plan["depth"])


def _dynamic_plan(K: int, D: int, device: torch.device) -> dict:
    """A dynamic shape's constants: draft row r (of depth 2 + r // K) sees itself at least
    (``own``, (K*(D-1), K*(D-1)) one-hot rows, a block of K per depth), the parents of the
    root's children (-1), and each candidate's q row (its parent's draft row + 1; 0: the
    root), in the order candidates are made."""
    key = ("dynamic", K, D, str(device))
    if key not in _PLANS:
        rows = K * (D - 1)
        qrow = [0] * K + [1 + r for r in range(rows) for _ in range(K)]
        _PLANS[key] = {"own": torch.eye(rows, dtype=torch.bool, device=device),
                       "root_parent": torch.full((K,), -1, dtype=torch.long, device=device),
                       "qrow": torch.tensor(qrow, dtype=torch.long, device=device),
                       "index": torch.arange(K + rows * K, device=device)}
    return _PLANS[key]


def _plan(shape: TreeShape, device: torch.device) -> dict:
    """The shape's constants (made once per shape and device)."""
    if shape.kind == "dynamic":
        return _dynamic_plan(shape.top_k, shape.max_depth, device)
    return _static_plan(tuple(shape.branching), device)


def grow_dynamic(draft: _TreeDraft, st: RunState, shape: TreeShape) -> DeviceTree:
    """``specviz.core.tree.dynamic_tree`` on the device, at fixed shapes (EAGLE-2): a node's
    score is the product of q along its path; at each depth the ``top_k`` best candidates of
    the newest depth get their ``top_k`` most probable tokens as candidates; then the
    ``budget`` best of all candidates are kept (equal scores: the older first, so parents come
    before children). Candidates are numbered in the order they are made: the root's K
    children, then K per draft row, each depth's rows in the order of their scores.

    Only the newest depth's candidates can be chosen, so a depth works on its own block: the
    candidate j of the newest block was made by the previous depth's draft row j // K, which
    is its parent's row and whose ancestry it inherits."""
    K, D = shape.top_k, shape.max_depth
    plan = _dynamic_plan(K, D, st.P.device)
    draft.begin(st, K * (D - 1))
    q = draft.root(st, D)  # (V of the draft,)
    top = torch.topk(q, K)
    score, tok, par = [top.values], [_ids(draft, top.indices)], [plan["root_parent"]]
    q_rows, sees, made = [q[None]], None, 0  # made: candidates before the newest block
    for d in range(2, D + 1):
        order = torch.sort(-score[-1], stable=True).indices[:K]  # the newest block's best K
        first = (d - 2) * K  # their draft rows: first .. first + K - 1
        own = plan["own"][first:first + K]
        if sees is None:  # children of the root
            parents, sees = plan["root_parent"], own
        else:
            maker = order // K  # the previous depth's row that made each
            parents, sees = first - K + maker, sees.index_select(0, maker) | own
        q = draft.grow(st, tok[-1].index_select(0, order), d - 1, parents, sees, first)
        top = torch.topk(q, K, dim=-1)
        score.append((score[-1].index_select(0, order)[:, None] * top.values).reshape(-1))
        tok.append(_ids(draft, top.indices).reshape(-1))
        par.append((made + order)[:, None].expand(K, K).reshape(-1))
        q_rows.append(q)
        made += score[-2].shape[0]
    sc, pa, tk = torch.cat(score), torch.cat(par), torch.cat(tok)
    n = min(shape.budget, sc.shape[0])
    keep = torch.sort(torch.sort(-sc, stable=True).indices[:n]).values
    new_index = torch.full_like(pa, -1).index_copy(0, keep, plan["index"][:n])
    pk = pa.index_select(0, keep)
    parent = torch.where(pk >= 0, new_index.index_select(0, pk.clamp(min=0)), -1)
    q_kept = torch.cat(q_rows).index_select(0, plan["qrow"].index_select(0, keep))
    return DeviceTree.build(parent, tk.index_select(0, keep), draft.full(q_kept), D)


def _pack(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
    """A step's fields as one float32 tensor (one copy; token ids are exact in float32) and
    the layout to read it back with ``_unpack``. Fields of one dtype are joined first, so
    that each dtype is converted once."""
    groups: dict[torch.dtype, list[str]] = {}
    for name, v in out.items():
        groups.setdefault(v.dtype, []).append(name)
    names = [name for group in groups.values() for name in group]
    flat = torch.cat([torch.cat([out[k].reshape(-1) for k in group]).float()
                      for group in groups.values()])
    return flat, tuple((k, tuple(out[k].shape)) for k in names)


def _unpack(flat: np.ndarray, layout: tuple) -> dict[str, np.ndarray]:
    data, at = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape)) if shape else 1
        data[name] = flat[at:at + size].reshape(shape)
        at += size
    return data


@dataclass
class TreeDecoder:
    """Token-tree speculative decoding over static forward passes (module docstring)."""

    target: Any  # specviz.engines.static.StaticLlama
    draft: _TreeDraft
    state: RunState
    phases: Any  # EagerPhases or GraphPhases (specviz.engines.phases)
    shape: TreeShape
    sampling: Sampling
    rule: str
    generator: torch.Generator
    fetch: Callable[[torch.Tensor], Any]  # starts the step's one device -> host copy
    wait: Callable[[Any], np.ndarray]  # waits for it
    detail: bool = True  # include the top-k alternatives of p and q at each node
    k_top: int = 5
    clock: Callable[[], Any] = time.perf_counter

    def __post_init__(self) -> None:
        self.draft_passes = 0

    def _draws_of(self, shape: TreeShape | None, part: str, n: int = 0) -> dict[str, Any]:
        """The buffers of a sampled step's random draws for its "draft" or "verify" phase
        (``n``: the tree's nodes), kept per shape in the run state: at fixed addresses, so
        that a phase that reads them can be captured and replayed as a graph."""
        key, kept = (shape, part), self.state.tree_draws
        if key not in kept:
            dev, vocab = self.state.P.device, self.state.vocab
            if part == "draft":  # a static tree drawn from q: one race per depth's parents
                races, width = [], 1
                for b in shape.branching if shape.kind == "static" else ():
                    races.append(torch.empty(width, vocab, device=dev))
                    width *= b
                kept[key] = {"races": races}
            else:
                kept[key] = {"u": torch.empty(n, device=dev), "e": torch.empty(vocab, device=dev)}
        return kept[key]

    def _draw(self, shape: TreeShape | None, part: str, n: int = 0) -> None:
        """A sampled step's draws, made outside its phases in the order the phases used to
        make them: "draft", the children's exponential races depth by depth; "verify", a
        uniform per node, then the added token's race."""
        draws, g = self._draws_of(shape, part, n), self.generator
        for race in draws.get("races", ()):
            race.exponential_(1.0, generator=g)
        if part == "verify":
            draws["u"].uniform_(generator=g)
            draws["e"].exponential_(1.0, generator=g)

    @property
    def host(self) -> list[int]:
        return self.state.host

    def start(self, prompt_ids: list[int]) -> None:
        """Prefill the target with every prompt token but the last (x_0 of the first step);
        the drafter prefills its own way (a head from the target's features)."""
        prompt, n = self.state.start(prompt_ids), len(prompt_ids)
        feats = None
        if self.draft.reads_features and n > 1:
            feats = torch.empty(n - 1, self.state.features.shape[1], device=prompt.device)
        if n > 1:  # once per run: not worth a graph
            self.target.forward(prompt[:-1], torch.arange(n - 1, device=prompt.device), "none",
                                feats)
        self.draft.start(self.state, prompt, feats)

    def launch(self, want: int, stop_below: float | None = None) -> Launched:
        t0, marks = time.perf_counter(), [self.clock()]
        shape = self.shape.cut(want) if want > 0 else None
        # 1. draft the tree (none when there is no room left: nothing to capture)
        if shape is not None:  # its constants made here, outside a compiled or captured phase
            _plan(shape, self.state.P.device)
        sampled = not self.sampling.greedy
        if sampled and shape is not None:
            self._draw(shape, "draft")
        # (a fused engine compiles the run's own shape, not the shorter ones of its last steps)
        tree = (self._draft(shape) if shape is None else
                self.phases.run(("tree-draft", shape, self.sampling),
                                lambda: self._draft(shape), fuse=shape == self.shape))
        self.draft_passes += shape.depth if shape else 0
        marks.append(self.clock())
        if sampled:
            self._draw(shape, "verify", tree.n)
        # 2. verify, 3. accept, 4. commit; the step's data packed for the host
        flat, layout = self.phases.run(("tree-verify", shape, self.rule, self.sampling),
                                       lambda: self._verify_commit(tree, shape))
        marks.append(self.clock())
        return Launched(self.fetch(flat), layout, marks, t0, tree.n)

    def _draft(self, shape: TreeShape | None) -> DeviceTree:
        st = self.state
        if shape is None:  # no room left for drafts: the target's own token
            none = torch.zeros(0, dtype=torch.long, device=st.P.device)
            return DeviceTree.build(none, none, torch.zeros(0, st.vocab, device=st.P.device), 0)
        if shape.kind == "dynamic":
            return grow_dynamic(self.draft, st, shape)
        if self.sampling.greedy:
            return grow_static(self.draft, st, shape.branching, "top-k", None)
        return grow_static(self.draft, st, shape.branching, "sampled", None,
                           self._draws_of(shape, "draft")["races"])

    def _verify_commit(self, tree: Tree | DeviceTree,
                       shape: TreeShape | None) -> tuple[torch.Tensor, tuple]:
        st, lm, s = self.state, self.target, self.sampling
        ids = torch.cat([st.seq.index_select(0, st.P - 1), tree.tokens])
        feats = st.features[:tree.n + 1] if self.draft.reads_features else None
        bias = tree.attention_bias(lm.key_pos, st.P, lm.shape.group, lm.embed.dtype)
        logits = lm.forward(ids, tree.positions(st.P), "all", feats, slots=tree.slots(st.P),
                            bias=bias)
        p = logits_to_probs(logits, s)  # (1+N, V)
        if s.greedy:
            v = verify_tree_greedy(tree, p, self.rule)
        else:
            draws = self._draws_of(shape, "verify", tree.n)
            v = verify_tree_sampled(tree, p, None, self.rule, u=draws["u"], e=draws["e"])
        depth = tree.max_depth
        if depth:
            lm.move_kv(*tree.kv_moves(v.path, st.P))
        # the committed tokens: the path's, then the added one (later slots are overwritten)
        i = torch.arange(depth + 1, device=p.device)
        path_tokens = torch.cat([tree.tokens.index_select(0, v.path.clamp(min=0)),
                                 v.path.new_zeros(1)])
        st.seq.index_copy_(0, st.P + i, torch.where(i < v.n_accepted, path_tokens,
                                                    v.next_token))
        self.draft.commit(st, feats, v.path, v.n_accepted)
        st.P.add_(v.n_accepted + 1)
        return _pack(self._fields(tree, v, p))

    def _fields(self, tree: Tree | DeviceTree, v, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step's arrays for its record."""
        k = min(self.k_top, p.shape[-1])
        out = {"drafted": tree.tokens, "parent": tree.parent_rows - 1,
               "accepted": v.accepted, "accept_prob": v.accept_prob, "p_tok": v.p_tok,
               "n_accepted": v.n_accepted.view(1), "next_token": v.next_token.view(1),
               "bonus": v.bonus.view(1), "tried": v.tried, "path": v.path}
        if v.u is not None:
            out["u"] = torch.where(v.tried, v.u, float("nan"))
        if tree.q is not None:
            out["q_tok"] = v.q_tok
        if tree.n and self.detail:
            top = torch.topk(p.index_select(0, tree.parent_rows), k, dim=-1)
            out["p_top_ids"], out["p_top_probs"] = top.indices, top.values
            if tree.q is not None:
                top = torch.topk(tree.q, k, dim=-1)
                out["q_top_ids"], out["q_top_probs"] = top.indices, top.values
        return out

    def finish(self, launched: Launched, eos: set[int]) -> Step:
        """Wait for the step's data; the committed tokens on the host, cut at an EOS."""
        data = _unpack(self.wait(launched.handle), launched.layout)
        path = [int(i) for i in data["path"] if i >= 0]
        ids = [int(data["drafted"][i]) for i in path] + [int(data["next_token"][0])]
        kinds = ["accepted"] * len(path) + ["bonus" if data["bonus"][0] else "resampled"]
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        if end is not None:
            ids, kinds = ids[:end + 1], kinds[:end + 1]
        self.state.host.extend(ids)
        return Step(launched, data, len(path), ids, kinds, end is not None, time.perf_counter(),
                    judged=int(data["tried"].sum()))
