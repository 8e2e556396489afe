"""The verifier: which drafted tokens the target keeps, and the one token it adds.

Notation: p = target, q = draft. Exact speculative sampling (Leviathan et al. 2023; Chen et al.
2023): accept drafted x with probability min(1, p(x)/q(x)); at the first rejection draw the
correction from norm(max(0, p - q)); if every draft is accepted draw a bonus token from p at
position gamma + 1. Greedy: keep drafts while each equals the target's argmax.

A drafter without probabilities (prompt lookup) proposes its token with certainty, i.e.
q = one-hot(x). Then min(1, p/q) = p(x) and the residual is p with x removed: still exact.
That case is handled here and nowhere else.

Everything stays on the tensors' device: no host synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .sampling import sample

RULES = ("exact", "correction-from-p", "accept-high-q")


@dataclass(frozen=True)
class Verdict:
    """Tensors on the model device; gamma = number of drafted tokens."""

    accepted: torch.Tensor  # (gamma,) bool, a prefix of True then False
    n_accepted: torch.Tensor  # () int64
    accept_prob: torch.Tensor  # (gamma,) float32: min(1, p/q), or argmax match under greedy
    u: torch.Tensor | None  # (gamma,) uniform draws; None under greedy
    next_token: torch.Tensor  # () int64: the correction or the bonus token
    p_tok: torch.Tensor  # (gamma,) p of each drafted token
    q_tok: torch.Tensor | None  # (gamma,) q of each drafted token; None without q
    beta: torch.Tensor | None  # (gamma,) sum_x min(p, q); None without q or under greedy


def _prefix(ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma,) bool -> (accepted prefix mask, its length)."""
    keep = torch.cumprod(ok.to(torch.int64), dim=0).bool()
    return keep, keep.sum()


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown verifier rule {rule!r}; choose from {', '.join(RULES)}")


def verify_greedy(drafted: torch.Tensor, p_probs: torch.Tensor,
                  q_probs: torch.Tensor | None, rule: str = "exact") -> Verdict:
    """drafted (gamma,), p_probs (gamma+1, vocab), q_probs (gamma, vocab) or None.

    ``rule`` "accept-high-q" is the deliberately wrong verifier of ``verify_sampled``: it also
    keeps a draft whose q is at least 0.5. ("correction-from-p" is the exact rule here: the
    greedy correction is p's argmax either way.)
    """
    _check_rule(rule)
    gamma = drafted.shape[0]
    target_choice = torch.argmax(p_probs, dim=-1)  # (gamma+1,)
    ok = drafted == target_choice[:gamma]
    q_tok = None if q_probs is None else q_probs.gather(-1, drafted[:, None]).squeeze(-1)
    if rule == "accept-high-q" and q_tok is not None:
        ok = ok | (q_tok >= 0.5)
    accepted, n = _prefix(ok)
    p_tok = p_probs[:gamma].gather(-1, drafted[:, None]).squeeze(-1)
    nxt = target_choice.index_select(0, n.view(1))[0]  # no host read of n
    return Verdict(accepted, n, ok.float(), None, nxt, p_tok, q_tok, None)


def verify_sampled(drafted: torch.Tensor, p_probs: torch.Tensor, q_probs: torch.Tensor | None,
                   generator: torch.Generator | None, rule: str = "exact", *,
                   u: torch.Tensor | None = None, e: torch.Tensor | None = None) -> Verdict:
    """Exact speculative sampling over gamma drafted tokens.

    drafted (gamma,), p_probs (gamma+1, vocab), q_probs (gamma, vocab) or None (q one-hot).
    ``rule`` other than "exact" is a deliberately wrong verifier, kept for teaching and as a
    negative control in tests: "correction-from-p" draws the correction from p instead of the
    residual; "accept-high-q" also accepts every token whose q is at least 0.5.
    ``u`` (gamma,) uniforms and ``e`` (vocab,) Exp(1) noise may be given pre-drawn (the
    CUDA-graph engine draws them outside its graphs); else they come from ``generator``.
    """
    _check_rule(rule)
    gamma, vocab = drafted.shape[0], p_probs.shape[-1]
    if q_probs is None:
        q_probs = torch.nn.functional.one_hot(drafted, vocab).to(p_probs.dtype)  # (gamma, V)
        has_q = False
    else:
        has_q = True
    p_tok = p_probs[:gamma].gather(-1, drafted[:, None]).squeeze(-1)  # (gamma,)
    q_tok = q_probs.gather(-1, drafted[:, None]).squeeze(-1)  # (gamma,)
    accept_prob = torch.clamp(p_tok / q_tok.clamp_min(1e-30), max=1.0)
    if u is None:
        u = torch.rand(gamma, generator=generator, device=p_probs.device)
    ok = u < accept_prob
    if rule == "accept-high-q":
        ok = ok | (q_tok >= 0.5)
    accepted, n = _prefix(ok)
    # the distribution of the next token: residual at the first rejection, or p at gamma
    idx = torch.clamp(n, max=gamma - 1) if gamma else n
    if gamma:
        at = idx.view(1)  # index on the device: no host read of n
        p_n, q_n = p_probs.index_select(0, at)[0], q_probs.index_select(0, at)[0]  # (V,)
        residual = torch.clamp(p_n - q_n, min=0.0) if rule != "correction-from-p" else p_n
        mass = residual.sum()
        residual = torch.where(mass > 0, residual / mass.clamp_min(1e-30), p_n)
        dist = torch.where(n < gamma, residual, p_probs[gamma])
    else:
        dist = p_probs[0]
    nxt = sample(dist, generator, e)
    beta = torch.minimum(p_probs[:gamma], q_probs).sum(-1) if has_q else None
    return Verdict(accepted, n, accept_prob, u, nxt, p_tok, q_tok if has_q else None, beta)
