"""Speculative decoding with a token tree, step by step.

One step, with p = target and q = draft (specviz.core.tree holds the tree and its rules):
  1. draft   the draft model grows a tree from the last committed token x_0: depth by depth,
             one draft pass over the newest nodes (each sees the prefix and its own
             ancestors), their children chosen from q (a fixed shape, or EAGLE-2's
             most-probable-first growth within a node budget);
  2. verify  ONE target pass over [x_0, node_0 .. node_{N-1}] with the tree's attention mask
             gives p at the root and after every node;
  3. accept  walk down from the root: at each node, its children are tried in order (greedy:
             the child equal to p's argmax; sampling: multi-candidate rejection sampling), the
             first accepted one is followed; where none is, the target adds a token (the
             correction from what is left of p, or the bonus at a leaf);
  4. commit  the accepted path's keys and values are moved right after the prefix in the
             target's cache; the other branches are left behind as stale slots.

The chain is the tree of width 1. This decoder runs the static engine's forward passes step by
step from the host (no CUDA graphs: a tree's shape, and so its passes, can change from step to
step); it has the same launch/finish interface as ``specviz.core.algorithm.Decoder``, so the
runner, its records and its stops are shared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..limits import GAMMA_MAX, TREE_DEPTH_MAX, TREE_HELP
from .algorithm import Launched, Step
from .sampling import Sampling, logits_to_probs
from .tree import Tree, dynamic_tree, static_tree, verify_tree_greedy, verify_tree_sampled


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
    if shape.nodes > GAMMA_MAX:
        raise ValueError(f"the tree {text!r} has {shape.nodes} nodes; at most {GAMMA_MAX}")
    if shape.depth > TREE_DEPTH_MAX:
        raise ValueError(f"the tree {text!r} is {shape.depth} deep; at most {TREE_DEPTH_MAX}")
    return shape


class _DraftTree:
    """The draft model's passes for one step's tree (``q_of`` of specviz.core.tree).

    The draft's cache holds the committed tokens before ``valid``. The root's call reads the
    committed tokens it has not seen (so its cache is complete up to x_0); each later call
    reads the newest nodes at slots after the prefix, each attending to the prefix and its
    own ancestors. The nodes' slots are stale after the step; the next step reads the
    committed ones again.
    """

    def __init__(self, lm, host: list[int], valid: int, sampling: Sampling):
        self.lm, self.host, self.n, self.valid, self.s = lm, host, len(host), valid, sampling
        self.slots: dict[tuple[int, ...], list[int]] = {}  # path -> its ancestors' slots
        self.next_slot = self.n
        self.passes = 0

    def __call__(self, paths: list[tuple[int, ...]]) -> torch.Tensor:
        lm, dev, n = self.lm, self.lm.embed.device, self.n
        self.passes += 1
        if paths == [()]:
            ids = torch.tensor(self.host[self.valid:n], dtype=torch.long, device=dev)
            pos = torch.arange(self.valid, n, device=dev)
            self.valid = n
            logits = lm.forward(ids, pos, "last")
            return logits_to_probs(logits, self.s)
        rows, anc = [], []
        for path in paths:
            slot = self.next_slot
            self.next_slot += 1
            self.slots[path] = self.slots.get(path[:-1], []) + [slot]
            rows.append(path[-1])
            anc.append(self.slots[path])
        # who sees whom: the prefix (x_0 included), then among the node slots n.. the row's
        # own ancestors and itself (built on the host, one copy)
        width = self.next_slot - n
        tree_part = [[False] * width for _ in paths]
        for r, slots in enumerate(anc):
            for slot in slots:
                tree_part[r][slot - n] = True
        sees = (lm.key_pos < n)[None].repeat(len(paths), 1)  # (R, L)
        sees[:, n:n + width] = torch.tensor(tree_part, dtype=torch.bool, device=dev)
        bias = torch.where(sees, 0.0, float("-inf")).to(lm.embed.dtype)
        bias = bias.repeat(lm.shape.group, 1)
        pos = torch.tensor([n - 1 + len(p) for p in paths], device=dev)
        slots = torch.tensor([a[-1] for a in anc], device=dev)
        ids = torch.tensor(rows, dtype=torch.long, device=dev)
        return logits_to_probs(lm.forward(ids, pos, "all", slots=slots, bias=bias), self.s)


@dataclass
class TreeDecoder:
    """Token-tree speculative decoding over static forward passes (module docstring)."""

    target: Any  # specviz.engines.static.StaticLlama
    draft: Any  # StaticLlama of the draft model (or of the target's first layers)
    shape: TreeShape
    sampling: Sampling
    rule: str
    generator: torch.Generator
    k_top: int = 5
    clock: Callable[[], Any] = time.perf_counter

    def __post_init__(self) -> None:
        self.host: list[int] = []
        self.draft_valid = 0
        self.draft_passes = 0

    def start(self, prompt_ids: list[int]) -> None:
        """Prefill both caches with every prompt token but the last (x_0 of the first step)."""
        self.host = list(prompt_ids)
        n = len(prompt_ids)
        if n > 1:
            dev = self.target.embed.device
            ids = torch.tensor(prompt_ids[:-1], dtype=torch.long, device=dev)
            pos = torch.arange(n - 1, device=dev)
            for lm in (self.target, self.draft):  # once per run: not worth a graph
                getattr(lm, "lm", lm).forward(ids, pos, "none")
        self.draft_valid = n - 1

    def launch(self, want: int, stop_below: float | None = None) -> Launched:
        s, n = self.sampling, len(self.host)
        t0, marks = time.perf_counter(), [self.clock()]
        # 1. draft the tree
        tree = self._draft(want)
        marks.append(self.clock())
        # 2. verify: one target pass over the root and every node
        dev = self.target.embed.device
        root = torch.tensor(self.host[-1:], dtype=torch.long, device=dev)
        bias = tree.attention_bias(self.target.key_pos, n, self.target.shape.group,
                                   self.target.embed.dtype)
        logits = self.target.forward(torch.cat([root, tree.tokens]), tree.positions(n), "all",
                                     slots=tree.slots(n), bias=bias)
        p = logits_to_probs(logits, s)  # (1+N, V)
        marks.append(self.clock())
        # 3. accept, 4. commit: the accepted path's keys and values after the prefix
        if s.greedy:
            v = verify_tree_greedy(tree, p, self.rule)
        else:
            v = verify_tree_sampled(tree, p, self.generator, self.rule)
        if tree.max_depth:
            self.target.move_kv(*tree.kv_moves(v.path, n))
        return Launched(self._data(tree, v, p), None, marks, t0, tree.n)

    def _draft(self, want: int) -> Tree:
        dev = self.target.embed.device
        if want <= 0:  # no room left for drafts: the target's own token
            vocab = self.target.embed.shape[0]
            return Tree((), torch.zeros(0, dtype=torch.long, device=dev),
                        torch.zeros(0, vocab, device=dev))
        shape = self.shape.cut(want)
        q_of = _DraftTree(self.draft, self.host, self.draft_valid, self.sampling)
        if shape.kind == "dynamic":
            tree = dynamic_tree(q_of, shape.budget, shape.max_depth, shape.top_k)
        else:
            drawn = "top-k" if self.sampling.greedy else "sampled"
            tree = static_tree(q_of, shape.branching, drawn, self.generator)
        self.draft_valid = q_of.valid
        self.draft_passes += q_of.passes
        return tree

    def _data(self, tree: Tree, v, p: torch.Tensor) -> dict[str, np.ndarray]:
        """The step's arrays for its record (one host copy)."""
        k = min(self.k_top, p.shape[-1])
        out = {"drafted": tree.tokens,
               "parent": torch.tensor(tree.parent, dtype=torch.long, device=p.device),
               "accepted": v.accepted, "accept_prob": v.accept_prob, "p_tok": v.p_tok,
               "n_accepted": v.n_accepted.view(1), "next_token": v.next_token.view(1),
               "bonus": v.bonus.view(1), "tried": v.tried, "path": v.path}
        if v.u is not None:
            out["u"] = torch.where(v.tried, v.u, float("nan"))
        if tree.q is not None:
            out["q_tok"] = v.q_tok
        if tree.n:
            top = torch.topk(p[tree.parent_rows], k, dim=-1)
            out["p_top_ids"], out["p_top_probs"] = top.indices, top.values
            if tree.q is not None:
                top = torch.topk(tree.q, k, dim=-1)
                out["q_top_ids"], out["q_top_probs"] = top.indices, top.values
        # one device -> host copy for all of it (token ids are exact in float32)
        names = list(out)
        flat = [out[k].reshape(-1).float() for k in names]
        host = torch.cat(flat).cpu().numpy()
        data, at = {}, 0
        for name, x in zip(names, flat):
            data[name] = host[at:at + x.shape[0]].reshape(out[name].shape)
            at += x.shape[0]
        return data

    def finish(self, launched: Launched, eos: set[int]) -> Step:
        """The committed tokens on the host, cut at an EOS."""
        data = launched.handle
        path = [int(i) for i in data["path"] if i >= 0]
        ids = [int(data["drafted"][i]) for i in path] + [int(data["next_token"][0])]
        kinds = ["accepted"] * len(path) + ["bonus" if data["bonus"][0] else "resampled"]
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        if end is not None:
            ids, kinds = ids[:end + 1], kinds[:end + 1]
        self.host.extend(ids)
        return Step(launched, data, len(path), ids, kinds, end is not None, time.perf_counter(),
                    judged=int(data["tried"].sum()))
