"""A chain step as micro-steps, with narration from its own numbers: draft (one per drafted
token) -> verify (one target pass) -> accept (one per judged position) -> add (the correction
from norm(max(0, p - q)) or the bonus token) -> commit (the caches are cut back).

Notation: p = target distribution, q = draft distribution. No streamlit here.
"""

from __future__ import annotations

import numpy as np

from ..traces import frames as F
from ..traces.records import StepRecord, Trace
from .walk_records import (
    ACCEPTED,
    BONUS,
    REJECTED,
    RESAMPLED,
    RESIDUAL,
    UNJUDGED,
    MicroStep,
    Position,
    StepWalk,
    _top,
    num,
    quote,
)


def _micro_steps(trace: Trace, s: StepRecord, w: StepWalk) -> list[MicroStep]:
    items: list[tuple[str, str, str, int | None]] = []
    lookup = w.drafter == "prompt-lookup"
    # 1. draft
    if not w.positions:
        why = ("prompt lookup found no earlier match of the last tokens" if lookup else
               "the draft length for this step is 0 (too few tokens left, or the policy "
               "asked for none)")
        items.append(("draft", "Nothing drafted",
                      f"The drafter proposes nothing in this step: {why}. The target will "
                      "add one token on its own, as in ordinary decoding.", None))
    for x in w.positions:
        items.append(("draft", f"Draft token {x.pos + 1} of {w.gamma}",
                      _draft_text(s, w, x), x.pos))
    # 2. verify
    title = "The target scores every draft in one pass" if w.positions else \
        "The target's one pass"
    items.append(("verify", title, _verify_text(s, w), None))
    # 3. accept
    for x in w.positions:
        if x.status == UNJUDGED:
            break
        items.append(("accept", f"Judge position {x.pos + 1}", _accept_text(s, w, x), x.pos))
    # 4. add
    items.append(("add", _add_title(w), _add_text(trace, s, w), w.n_accepted
                  if w.n_accepted < w.gamma else None))
    # 5. commit
    items.append(("commit", "Commit: cut the caches back", _commit_text(w), None))
    return [MicroStep(i, ph, title, text, pos) for i, (ph, title, text, pos)
            in enumerate(items)]


def _draft_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    if w.drafter == "prompt-lookup":
        return (f"Prompt lookup copies {quote(x.text)}: it followed an earlier occurrence of "
                "the last few tokens. It has no distribution, so the verifier treats the "
                "proposal as certain: q is one-hot on it (q = 1).")
    if w.drafter == "feature-head":
        return _head_text(s, w, x)
    who = "The draft model" if w.drafter == "model" else "The early-exit draft (the " \
        "target's first layers)"
    how = "takes its most likely token" if w.greedy else "samples from q"
    text = _proposal(s, x, f"{who} {how}")
    if x.pos + 1 < w.gamma:
        text += " It feeds this token back in to draft the next one."
    return text


def _head_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    """A feature head's draft: what it reads and what it proposes."""
    n = w.cache.committed_before
    if x.pos == 0:
        reads = (f"The feature head reads the target's own last hidden state at position "
                 f"{n - 2} (computed by the target's previous pass, not a new one) with the "
                 f"embedding of the last committed token, guesses the target's hidden state "
                 f"at position {n - 1}, and turns that guess into q with the target's own "
                 "output layer.")
    else:
        reads = ("The target has not read the previous draft yet, so there is no hidden "
                 "state of it: the head feeds back its own guess of that hidden state, with "
                 "the embedding of the token it just drafted, and guesses the next one.")
    how = "It takes q's most likely token" if w.greedy else "It samples from q"
    return _proposal(s, x, f"{reads} {how}")


def _proposal(s: StepRecord, x: Position, lead: str) -> str:
    """``lead``, then the drafted token with its q and q's top choices at its position."""
    top = _top(s.q_top_texts[x.pos] if s.q_top_texts else None,
               s.q_top_probs[x.pos] if s.q_top_probs else None)
    text = f"{lead}: {quote(x.text)} with q = {num(x.q)}."
    if top:
        text += f" q's top choices here: {top}."
    return text


def _verify_text(s: StepRecord, w: StepWalk) -> str:
    c = w.cache
    tail = c.target_fed - w.gamma
    fed = (f"It feeds {c.target_fed} token{'s' if c.target_fed != 1 else ''}: "
           + (f"the whole prompt ({c.prompt} tokens, the prefill)" if c.target_before == 0
              else f"the {tail} committed token{'s' if tail != 1 else ''} not yet in its cache")
           + (f" and the {w.gamma} draft{'s' if w.gamma != 1 else ''}." if w.gamma else "."))
    if not w.positions:
        return "The target runs one forward pass, as in ordinary decoding. " + fed
    ps = "; ".join(f"p({quote(x.text)}) = {num(x.p)}" for x in w.positions)
    text = (f"The target runs one forward pass over all {w.gamma} drafted positions, plus one "
            f"position after them. {fed} It gives {ps}.")
    if w.greedy:
        text += (" (Greedy decoding: p and q are shown as the plain softmax; only the "
                 "target's most likely token decides.)")
    return text


def _accept_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    verdict = "accepted" if x.status == ACCEPTED else "rejected"
    head = f"Position {x.pos + 1}, {quote(x.text)}: "
    if w.greedy:
        top_text = s.p_top_texts[x.pos][0] if s.p_top_texts and s.p_top_texts[x.pos] else None
        top_p = s.p_top_probs[x.pos][0] if s.p_top_probs and s.p_top_probs[x.pos] else None
        if x.status == ACCEPTED:
            text = head + (f"it is the target's most likely token (p = {num(x.p)}), so greedy "
                           "decoding keeps it: accepted.")
        elif top_text is not None:
            text = head + (f"the target's most likely token is {quote(top_text)} "
                           f"(p = {num(top_p)}), not this one (p = {num(x.p)}): rejected.")
        else:
            text = head + f"it is not the target's most likely token (p = {num(x.p)}): rejected."
    else:
        u = "–" if x.u is None else num(x.u)
        cmp = "<" if x.status == ACCEPTED else "≥"
        if not w.has_q:
            rule = (f"q is one-hot, so it is kept with probability min(1, p/1) = p = "
                    f"{num(x.accept_prob)}")
        elif x.accept_prob >= 1.0:
            rule = (f"p = {num(x.p)} ≥ q = {num(x.q)}, so it is kept with probability "
                    f"min(1, p/q) = 1")
        else:
            rule = (f"it is kept with probability min(1, p/q) = min(1, {num(x.p)}/{num(x.q)}) "
                    f"= {num(x.accept_prob)}")
        side = "below" if x.status == ACCEPTED else "not below"
        text = (head + rule + f"; the draw u = {u} is {side} that (u {cmp} "
                f"{num(x.accept_prob)}): {verdict}.")
    later = [p for p in w.positions if p.status == UNJUDGED]
    if x.status == REJECTED and later:
        names = ", ".join(quote(p.text) for p in later)
        text += (f" The draft{'s' if len(later) > 1 else ''} after it ({names}) "
                 f"{'are' if len(later) > 1 else 'is'} never judged: "
                 f"{'they' if len(later) > 1 else 'it'} followed a rejected token.")
    return text


def _add_title(w: StepWalk) -> str:
    if w.added is None:
        return "Nothing added: the run ended"
    return "The correction" if w.added.kind == RESAMPLED else "The bonus token"


def _add_text(trace: Trace, s: StepRecord, w: StepWalk) -> str:
    a = w.added
    if a is None:
        last = s.emitted_text[-1] if s.emitted_text else ""
        return (f"The accepted tokens end with {quote(last)}, where the run stopped (end of "
                "sequence or the end of the run): no token is added.")
    if a.kind == BONUS and not w.positions:
        how = "p's most likely token" if w.greedy else "drawn from p"
        return (f"With nothing drafted the target adds one token, {how}: {quote(a.text)}. "
                "This step costs a full target pass for one token.")
    if a.kind == BONUS:
        how = "p's most likely token there" if w.greedy else "drawn from p there"
        return (f"All {w.gamma} drafts were accepted. The target's pass also scored the "
                f"position after them, so it adds a bonus token for free, {how}: "
                f"{quote(a.text)} ({w.gamma + 1} tokens from one target pass; p at that "
                "position is not recorded in the trace).")
    pos = w.n_accepted
    x = w.positions[pos]
    if w.greedy:
        top = s.p_top_probs[pos][0] if s.p_top_probs and s.p_top_probs[pos] else None
        return (f"In place of the rejected {quote(x.text)} the target adds its own most likely "
                f"token at position {pos + 1}: {quote(a.text)}"
                + (f" (p = {num(top)})." if top is not None else "."))
    topk = F.topk_frame(trace, s.step, pos)
    row = topk[topk[F.TOKEN_ID] == a.token_id]
    head = (f"The correction {quote(a.text)} is drawn from the residual norm(max(0, p − q)) at "
            f"position {pos + 1}, which puts no weight on tokens the draft over-proposed "
            f"({quote(x.text)} among them).")
    if not w.has_q:
        p_y = float(row[F.P].iloc[0]) if len(row) and np.isfinite(row[F.P].iloc[0]) else None
        text = head + (f" With q one-hot the residual is p without {quote(x.text)}, "
                       "renormalised: p(y) / (1 − p(x))")
        if p_y is not None and x.p < 1:
            text += (f", here {num(p_y)} / (1 − {num(x.p)}) = {num(p_y / (1 - x.p))} for "
                     f"{quote(a.text)}.")
        else:
            text += f"; {quote(a.text)} is outside the recorded top-k of p."
        return text
    if len(row):
        r = row.iloc[0]
        q = f"q = {num(r[F.Q])}" if np.isfinite(r[F.Q]) else "q outside its recorded top-k"
        pq = f"p = {num(r[F.P])}, {q}"
        text = head + (f" For {quote(a.text)}: {pq}; its share of the residual, computed from "
                       f"the recorded top-k only, is about {num(float(r[RESIDUAL]))}.")
    else:
        text = head + f" {quote(a.text)} is outside the recorded top-k of p and q."
    return text + (" Only the top-k of p and q are recorded, so the residual shown is an "
                   "approximation; the decoder used the full distributions.")


def _commit_text(w: StepWalk) -> str:
    c = w.cache
    n_new = c.committed_after - c.committed_before
    text = (f"Before the step {c.committed_before} tokens were committed ({c.prompt} prompt + "
            f"{c.committed_before - c.prompt} generated). After the verify pass the target's "
            f"cache held {c.target_after_verify} positions. This step commits {n_new} "
            f"token{'s' if n_new != 1 else ''} (n = {c.committed_after}); the target cache "
            f"keeps {c.target_kept}: every committed token but the last, which the next "
            "pass feeds")
    dropped = c.target_dropped
    what = "the rejected draft" + (" and the drafts after it" if dropped > 1 else "")
    text += (f", and drops {dropped} position{'s' if dropped != 1 else ''} ({what})."
             if dropped else "; it drops nothing.")
    if c.draft_kept is not None and not w.positions:
        text += (f" The draft model drafted nothing, so it did not run: its cache still "
                 f"holds {c.draft_kept} positions, as before the step (only the run's last "
                 "token is left to generate, and the target adds it alone).")
    elif c.draft_kept is not None:
        text += (f" The draft's cache held {c.draft_after_drafting} after drafting (the "
                 f"committed tokens and every draft but the last) and keeps {c.draft_kept}")
        text += (f", dropping {c.draft_dropped}." if c.draft_dropped else ".")
        text += (" It keeps every committed token but the last two, which its next pass "
                 "re-reads: after a step whose drafts were all kept, the last draft and the "
                 "bonus token are new to it.")
    elif w.drafter == "prompt-lookup":
        text += " Prompt lookup keeps no cache: it only searches the committed tokens."
    elif w.drafter == "feature-head":
        text += (" The feature head now reads the target's hidden states of the committed "
                 "tokens, which this verify pass has just computed, so its next draft starts "
                 "from the target's own view of the text.")
    return text
