"""α̂ of a head and of a draft model from one teacher-forced pass over the target's own text.

Greedy speculative decoding emits the target's greedy text, so its steps can be replayed on
that text without decoding: a step that starts with P tokens committed drafts x_P, x_P+1, ...
and keeps them up to the first that differs from the target's argmax. What a drafter would
propose there is known from passes over the whole text:

- the draft model, fed the true tokens, proposes at position t its argmax after x_<t; while
  its drafts are right it is fed exactly those tokens, so its k-th draft of a step is right
  iff it agrees at each of the positions P..P+k-1;
- the head drafts x_P from row P-2 (the target's features f_P-2 and the token x_P-1) and each
  later draft from its own guess one row on (``FeatureHead.unrolled``: step k at row P-2+k).

Counted as in the decoder's summaries: per step, the drafts kept (accepted) and the positions
judged (accepted, plus the first rejected one if any); α̂ = accepted / judged, tokens per
verification = (accepted + 1) per step. Only the answer's positions count (P past the
prompt).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models.feature_head import rotary_tables


def replay(match: np.ndarray, gamma: int) -> dict:
    """Greedy steps over a text: ``match[s, k]`` says whether the (k+1)-th draft of a step
    starting at answer position s is the target's token (n, gamma). Returns counts."""
    n = match.shape[0]
    s = accepted = judged = steps = 0
    while s < n:
        room = min(gamma, n - s)
        k = 0
        while k < room and match[s, k]:
            k += 1
        accepted += k
        judged += min(k + 1, room) if room else 0
        steps += 1
        s += k + 1
    return {"accepted": accepted, "judged": judged, "steps": steps, "tokens": n}


def pooled(counts: list[dict]) -> dict:
    """α̂, tokens per verification and first-position agreement over several texts."""
    tot = {k: sum(c[k] for c in counts) for k in ("accepted", "judged", "steps", "tokens",
                                                  "first_right", "first_n")}
    return {"alpha_hat": round(tot["accepted"] / max(tot["judged"], 1), 4),
            "tokens_per_verification": round(tot["tokens"] / max(tot["steps"], 1), 3),
            "first_position": round(tot["first_right"] / max(tot["first_n"], 1), 4),
            "texts": len(counts), "positions": tot["tokens"]}


@torch.inference_mode()
def target_pass(target, ids: list[int], layers) -> dict:
    """The target over a whole text: its features (T, n H) and argmax (T,) per row."""
    x = torch.tensor([ids], device=target.model.embed_tokens.weight.device)
    hs = target.model(input_ids=x, output_hidden_states=True).hidden_states
    feats = hs[-1] if layers is None else torch.cat([hs[j] for j in layers], dim=-1)
    arg = F.linear(hs[-1], target.lm_head.weight).argmax(-1)
    return {"ids": x[0], "feats": feats[0], "arg": arg[0]}


def _answer_matches(right: torch.Tensor, n_prompt: int) -> np.ndarray:
    """right (gamma, T): whether the (k+1)-th draft of a step starting at position P is
    right -> match[s, k] for the answer's positions s = P - n_prompt."""
    return right[:, n_prompt:].T.cpu().numpy()


@torch.inference_mode()
def head_counts(head, target, tp: dict, n_prompt: int, gamma: int,
                out_ids: torch.Tensor | None = None) -> dict:
    """Replayed greedy counts of ``head`` on one text (``target_pass``'s result);
    ``out_ids`` the vocabulary q spans (default: the head's own)."""
    ids, feats, arg = tp["ids"], tp["feats"], tp["arg"]
    T = ids.shape[0]
    emb = target.model.embed_tokens.weight
    w = head.fc.weight
    cos, sin = rotary_tables(target, T - 1)
    hs = head.unrolled(feats[None, :-1].to(w.dtype), emb[ids[1:]][None].to(w.dtype),
                       cos.to(w.dtype), sin.to(w.dtype), gamma)
    vocab = out_ids if out_ids is not None else (
        head.vocab_ids.to(ids.device) if head.cfg.vocab_ids is not None else None)
    out_w = target.lm_head.weight if vocab is None else target.lm_head.weight[vocab]
    right = torch.zeros(gamma, T, dtype=torch.bool, device=ids.device)
    for k, h in enumerate(hs):  # step k at row r drafts x_{r+2} (depth k+1 of P = r+2-k)
        guess = F.linear(h[0].float(), out_w.float()).argmax(-1)  # (T-1,)
        guess = guess if vocab is None else vocab[guess]
        rows = torch.arange(T - 1, device=ids.device)
        P = rows + 2 - k
        ok = (P >= 2) & (rows + 2 < T)
        hit = guess[ok] == arg[(rows + 1)[ok]]
        right[k, P[ok]] = hit
    match = _answer_matches(right, n_prompt)
    c = replay(match, gamma)
    c.update(first_right=int(match[:, 0].sum()), first_n=int(match.shape[0]))
    return c


@torch.inference_mode()
def draft_counts(draft, tp: dict, n_prompt: int, gamma: int) -> dict:
    """Replayed greedy counts of a draft model on one text."""
    ids, arg = tp["ids"], tp["arg"]
    logits = draft(input_ids=ids[None]).logits[0]  # (T, V)
    agree = logits.argmax(-1)[:-1] == arg[:-1]  # position t+1: after x_<=t
    T = ids.shape[0]
    right = torch.zeros(gamma, T, dtype=torch.bool, device=ids.device)
    for k in range(gamma):  # depth k+1 of a step starting at P drafts x_{P+k}
        right[k, 1:T - k] = agree[k:]
    match = _answer_matches(right, n_prompt)
    c = replay(match, gamma)
    c.update(first_right=int(match[:, 0].sum()), first_n=int(match.shape[0]))
    return c
