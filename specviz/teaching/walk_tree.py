"""A token tree's step as micro-steps, with narration from its own numbers: the draft grows
the tree depth by depth, one target pass scores every node, the walk goes down from x₀
(greedy: one look per depth; sampled: child after child, each judged against what is left of
p and of q), the target adds one token, the accepted path is kept. ``tree_view`` says what
of the tree is known at a micro-step.

Notation: p = target distribution, q = draft distribution. No streamlit here.
"""

from __future__ import annotations

import pandas as pd

from ..traces import frames as F
from ..traces.records import StepRecord, Trace
from .walk_records import (
    ACCEPTED,
    PHASES,
    UNJUDGED,
    MicroStep,
    Position,
    StepWalk,
    _Item,
    num,
    quote,
)


def _drawn(trace: Trace, s: StepRecord) -> str:
    """How a tree step's children were chosen (StepWalk.drawn)."""
    dynamic = str(trace.run.config.get("tree") or "").startswith("dynamic")
    return "sampled" if s.u is not None and not dynamic else "top-k"


def _names(w: StepWalk, nodes: list[int]) -> str:
    return ", ".join(quote(w.positions[i].text) for i in nodes)


def _parent(w: StepWalk, i: int) -> str:
    """Node i's parent, named: x₀ or its parent's token."""
    par = (w.parents or ())[i]
    return "x₀" if par < 0 else quote(w.positions[par].text)


def _after(w: StepWalk, i: int) -> str:
    """What node i follows, for the narration: x₀ said in full, or its parent's token."""
    name = _parent(w, i)
    return "x₀ (the last committed token)" if name == "x₀" else name


def _q_zero_note(w: StepWalk, nodes: list[int]) -> str:
    """For a sampled tree: which of these nodes have q = 0, and what the walk does with them."""
    cut = [i for i in nodes if w.positions[i].q == 0] if w.drawn == "sampled" else []
    if not cut:
        return ""
    one = len(cut) == 1
    return (f" {_names(w, cut)} {'has' if one else 'have'} q = 0: top-k / top-p left the draft "
            f"fewer tokens than the node has children, so {'it' if one else 'they'} could not "
            f"have been drawn, and the walk will skip {'it' if one else 'them'}.")


def _tree_drafting(s: StepRecord, w: StepWalk) -> list[_Item]:
    """The tree as the draft grows it, depth by depth."""
    depth = s.tree_depth
    reader, sees = (("The feature head", "each row reads its parent's guessed feature and "
                     "its own token, and sees the committed text and its own ancestors only")
                    if w.drafter == "feature-head" else
                    ("The draft model", "each sees the committed text and its own ancestors "
                     "only"))
    items: list[_Item] = []
    for d in sorted(set(depth)):
        nodes = [i for i in range(w.gamma) if depth[i] == d]
        by_parent: dict[int, list[int]] = {}
        for i in nodes:
            by_parent.setdefault((w.parents or ())[i], []).append(i)
        listed = "; ".join(f"after {_after(w, kids[0])}, " + ", ".join(
            quote(w.positions[i].text) + ("" if w.positions[i].q is None else
                                          f" (q {num(w.positions[i].q)})") for i in kids)
            for kids in by_parent.values())
        how = ("tokens drawn from q without replacement" if w.drawn == "sampled" else
               "its most probable tokens" if w.greedy else "the candidates most probable "
               "under q along their path (picked, not drawn)") if d == 1 or len(nodes) > 1 \
            else "its most probable token"
        items.append(("draft", f"Depth {d}: {len(nodes)} candidate{'s' * (len(nodes) > 1)}",
                      f"{reader} reads the newest nodes in one pass ({sees}) and proposes "
                      f"{how}: {listed}.{_q_zero_note(w, nodes)}", nodes[-1]))
    return items


def _tree_walk(s: StepRecord, w: StepWalk) -> list[_Item]:
    """The walk down the tree: greedy, one look per depth; sampled, node after node."""
    depth = s.tree_depth
    judged = [x for x in w.positions if x.status != UNJUDGED]
    items: list[_Item] = []
    if w.greedy:  # siblings are all compared with p's top token at their parent: one look
        for d in sorted({depth[x.pos] for x in judged}):
            kids = [x for x in judged if depth[x.pos] == d]
            won = [x for x in kids if x.status == ACCEPTED]
            names = ", ".join(f"{quote(x.text)} (p {num(x.p)})" for x in kids)
            one = len(kids) == 1
            verdict = (f"{quote(won[0].text)} is p's top token there: accepted, the walk goes "
                       "down into it" + ("" if one else " and the others are rejected")) \
                if won else ("it is not p's top token there: rejected" if one else
                             "none of them is p's top token there: all rejected")
            items.append(("accept", f"Depth {d}: compare with p's top token",
                          f"After {_after(w, kids[0].pos)} "
                          + (f"the candidate is {names}" if one else
                             f"the candidates are {names}") + f"; {verdict}.",
                          max(x.pos for x in kids)))
        return items
    tried_at: dict[int, list[Position]] = {}  # children already tried at each parent
    for x in judged:  # sampled: tried one after the other
        par = (w.parents or ())[x.pos]
        earlier = tried_at.setdefault(par, [])
        body = f"{quote(x.text)} after {_after(w, x.pos)}: " + _tree_rule(w, x, list(earlier))
        earlier.append(x)
        items.append(("accept", f"Depth {depth[x.pos]}: try {quote(x.text)}", body, x.pos))
    return items


def judged_as(i: int) -> tuple[str, str]:
    """The names of what is left of p and q after ``i`` rejected siblings: p, p′, p″, …"""
    mark = ("", "′", "″", "‴")[i] if i < 4 else f"⁽{i}⁾"
    return "p" + mark, "q" + mark


def _tree_rule(w: StepWalk, x: Position, earlier: list[Position]) -> str:
    """A sampled tree's judgement of node x after its ``earlier`` siblings (tried at the same
    parent, all rejected): its acceptance probability as the verifier computes it, the draw,
    the verdict. A top-k pick is judged against p without the earlier tokens; a sampled
    child against p_i = norm(max(0, p_(i-1) − q_(i-1))) and q_i = q without the earlier
    tokens, renormalised (specviz.core.tree)."""
    ok, k = x.status == ACCEPTED, len(earlier)
    if w.drawn == "top-k":  # picked, not drawn: q is one-hot on it, so min(1, p/q) = p
        rule = ("a top-k pick, not a draw from q, so it is accepted with probability p(c) = "
                f"{num(x.accept_prob)}" if not k else
                f"a top-k pick, not a draw from q: after {k} rejected "
                f"sibling{'s' * (k > 1)}, what is left of p is p without their "
                f"tokens, so it is accepted with p(c) / (1 − their p) = {num(x.accept_prob)}"
                f" (its plain p is {num(x.p)})")
        after = "its token is taken out of p (renormalised) for its next sibling"
    else:
        rule = _sampled_rule(x, earlier)
        p_next, q_next = judged_as(k + 1)
        p_now, q_now = judged_as(k)
        after = (f"for its next sibling what is left is {p_next} = norm(max(0, {p_now} − "
                 f"{q_now})) and {q_next} = {q_now} without {quote(x.text)}, renormalised")
    verdict = ("accepted, the walk goes down into it" if ok else f"rejected; {after}")
    return f"{rule}; u = {num(x.u)} {'<' if ok else '≥'} {num(x.accept_prob)}: {verdict}."


def _sampled_rule(x: Position, earlier: list[Position]) -> str:
    """The p_i and q_i a sampled child was judged against, with their numbers at its token:
    q_i(c) = q(c) / (1 − q of the earlier siblings' tokens), exact from the recorded q;
    p_i(c) = min(1, p_i/q_i) · q_i(c) (at least q_i(c) where the ratio reaches 1)."""
    k = len(earlier)
    if not k or x.q is None:
        return (f"min(1, p/q) = min(1, {num(x.p)}/{num(x.q)}) = {num(x.accept_prob)}"
                if x.q is not None else f"min(1, p/q) = {num(x.accept_prob)}")
    p_k, q_k = judged_as(k)
    p_prev, q_prev = judged_as(k - 1)
    gone = sum(e.q or 0.0 for e in earlier)
    q_c = x.q / (1.0 - gone) if gone < 1.0 else float("nan")
    names = ", ".join(quote(e.text) for e in earlier)
    minus = " − ".join(num(e.q) for e in earlier)
    if x.accept_prob <= 0.0 and x.p <= x.q:  # max(0, p - q) took all of it at the first cut
        p_c = (f"{p_k}(c) = 0: p(c) ≤ q(c), so max(0, p − q) left nothing on c, and a token "
               "the draft over-proposed can no longer be accepted here")
    elif x.accept_prob < 1.0:
        p_c = f"{p_k}(c) = {num(x.accept_prob)} × {num(q_c)} = {num(x.accept_prob * q_c)}"
    else:
        p_c = f"{p_k}(c) ≥ {q_k}(c)"
    whose = "their tokens" if k > 1 else "its token"
    return (f"{k} sibling{'s' * (k > 1)} tried before it ({names}) {'were' if k > 1 else 'was'} "
            f"rejected, so it was drawn from {q_k} = q without {whose}, renormalised: "
            f"{q_k}(c) = {num(x.q)} / (1 − {minus}) = {num(q_c)}; and "
            f"the target's side is what is left of p, {p_k} = norm(max(0, {p_prev} − {q_prev}))"
            f". min(1, {p_k}/{q_k}) = {num(x.accept_prob)}, so {p_c} (plain p {num(x.p)}, "
            f"plain q {num(x.q)})")


def _tree_ending(w: StepWalk) -> list[_Item]:
    """The token the target adds, and the commit of the accepted path."""
    a, n_acc, items = w.added, w.n_accepted, []
    if a is not None:
        last = [i for i in range(w.gamma) if w.positions[i].status == ACCEPTED]
        end = last[-1] if last else -1  # the node the walk ended on (-1: x₀)
        at = quote(w.positions[end].text) if last else "x₀"
        skipped = [i for i in range(w.gamma) if (w.parents or ())[i] == end
                   and w.drawn == "sampled" and w.positions[i].q == 0]
        why = ("The walk reached a leaf of the tree, so the target adds a bonus token, "
               + ("p's top token there" if w.greedy else "drawn from p there")
               if a.kind == "bonus" else
               f"Every child of {at} that was tried was rejected"
               + (f" ({_names(w, skipped)}, with q = 0, skipped)" if skipped else "")
               + ", so the target adds the token "
               + ("p ranks first there" if w.greedy else "drawn from what is left of p "
                  "there"))
        items.append(("add", "The target adds one token",
                      f"{why}: {quote(a.text)}. One verify pass gave {n_acc + 1} "
                      f"token{'s' * (n_acc > 0)}.", None))
    items.append(("commit", "Commit: keep the accepted path",
                  f"The accepted path ({n_acc} node{'s' * (n_acc != 1)}) and the added token "
                  "join the output. In the target's cache the path's keys and values move "
                  "right after the committed text; the slots of the other "
                  f"{w.gamma - n_acc} nodes are stale and get overwritten. The draft model "
                  "re-reads the new tokens at its next step.", None))
    return items


def _tree_micro_steps(s: StepRecord, w: StepWalk) -> list[MicroStep]:
    """A tree step: the draft grows the tree depth by depth; one target pass scores every
    node; the walk goes down from x_0, trying each node's children in order; the target adds
    one token; the accepted path is kept."""
    verify = ("verify", f"The target scores all {w.gamma} nodes in one pass",
              f"One target pass over x₀ and the {w.gamma} nodes gives p after every node. "
              "A tree mask lets each node attend to the committed text and its own "
              "ancestors only, and siblings share a position, so each node is scored as if "
              "its branch were the only continuation.", None)
    items = [*_tree_drafting(s, w), verify, *_tree_walk(s, w), *_tree_ending(w)]
    return [MicroStep(i, ph, title, text_, pos) for i, (ph, title, text_, pos)
            in enumerate(items)]


DRAFTED = "drafted"  # tree_view: a node proposed, not judged yet


def tree_view(s: StepRecord, w: StepWalk, index: int, root_text: str = "x₀") -> pd.DataFrame:
    """A tree step's ``frames.tree_frame`` as known at micro-step ``index``: nodes appear as
    the draft proposes them ("drafted"), take their verdict when judged, and the added token
    appears with the add phase."""
    m = w.micro[index]
    tree = F.tree_frame(s, root_text)
    order = PHASES.index(m.phase)
    nodes = tree[F.NODE]
    if m.phase == "draft":
        tree = tree[nodes <= (m.position if m.position is not None else -1)]
    if order < PHASES.index("add"):
        tree = tree[tree[F.NODE] < w.gamma]  # the added token comes later
    pending = (tree[F.NODE] >= 0) & (tree[F.NODE] < w.gamma)
    if order < PHASES.index("accept"):
        tree.loc[pending, F.KIND] = DRAFTED
    elif m.phase == "accept":
        final = dict(zip(tree[F.NODE], tree[F.KIND]))
        later = pending & (tree[F.NODE] > (m.position if m.position is not None else -1))
        tree.loc[later, F.KIND] = DRAFTED
        # a node below a rejected (or unreached) one can never be reached, and a sampled
        # child with q = 0 is never judged: faded (∅) at once
        shown = dict(zip(tree[F.NODE], tree[F.KIND]))
        for node, par, q in zip(tree[F.NODE], tree[F.PARENT], tree[F.Q]):
            if shown[node] == DRAFTED and final[node] == "unjudged" and (
                    shown.get(par) in ("rejected", "unjudged")
                    or (w.drawn == "sampled" and q == 0)):
                shown[node] = "unjudged"
        tree[F.KIND] = tree[F.NODE].map(shown)
    return tree
