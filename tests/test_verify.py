"""The verifier on fixed toy p and q: sampled output follows p; greedy keeps argmax matches."""

import pytest
import torch

from specviz.core.sampling import Sampling, logits_to_probs, sample
from specviz.core.verify import verify_greedy, verify_sampled

# (gamma + 1, vocab) target and (gamma, vocab) draft distributions that disagree a lot
P = torch.tensor([[0.40, 0.30, 0.15, 0.10, 0.04, 0.01],
                  [0.05, 0.05, 0.10, 0.20, 0.30, 0.30],
                  [0.10, 0.50, 0.10, 0.10, 0.10, 0.10],
                  [0.25, 0.25, 0.20, 0.10, 0.10, 0.10]])
Q = torch.tensor([[0.05, 0.05, 0.05, 0.60, 0.15, 0.10],
                  [0.30, 0.30, 0.10, 0.10, 0.10, 0.10],
                  [0.10, 0.10, 0.50, 0.10, 0.10, 0.10]])
GAMMA = 3


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square goodness of fit; returns the p-value."""
    n = counts.sum()
    expected = probs * n
    stat = ((counts - expected) ** 2 / expected).sum()
    dof = probs.numel() - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2), stat / 2))


def simulate(rule: str, n_steps: int, with_q: bool = True, seed: int = 0):
    """Run n_steps verification steps; tally the first emitted token of each step and the
    acceptance count."""
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(P.shape[1])
    accepted = 0
    for _ in range(n_steps):
        if with_q:
            drafted = sample(Q, g)  # (gamma,)
            v = verify_sampled(drafted, P, Q, g, rule=rule)
        else:  # a drafter without q: always proposes token 3, then 4, then 5
            drafted = torch.tensor([3, 4, 5])
            v = verify_sampled(drafted, P, None, g, rule=rule)
        n = int(v.n_accepted)
        tok = int(drafted[0]) if n > 0 else int(v.next_token)
        first[tok] += 1
        accepted += n
    return first, accepted


N_STEPS = 8_000


def test_exact_rule_emits_tokens_distributed_as_p():
    counts, _ = simulate("exact", N_STEPS)
    assert chi_square_pvalue(counts, P[0]) > 1e-3


def test_exact_rule_without_q_is_still_exact():
    counts, _ = simulate("exact", N_STEPS, with_q=False, seed=1)
    assert chi_square_pvalue(counts, P[0]) > 1e-3


@pytest.mark.parametrize("rule", ["correction-from-p", "accept-high-q"])
def test_wrong_verifier_is_caught_by_the_same_test(rule):
    """Negative control: the same chi-square test rejects a deliberately wrong verifier."""
    counts, _ = simulate(rule, N_STEPS)
    assert chi_square_pvalue(counts, P[0]) < 1e-6


def test_buggy_verifier_accepts_more_than_the_exact_one():
    _, exact = simulate("exact", 4000, seed=2)
    _, buggy = simulate("accept-high-q", 4000, seed=2)
    assert buggy > exact


def test_bonus_token_follows_p_at_position_gamma_plus_one():
    g = torch.Generator().manual_seed(3)
    same = Q.clone()
    p_eq = torch.cat([Q, P[3:]])  # p == q on drafted positions: every draft is accepted
    counts = torch.zeros(P.shape[1])
    for _ in range(8000):
        drafted = sample(same, g)
        v = verify_sampled(drafted, p_eq, same, g)
        assert int(v.n_accepted) == GAMMA
        counts[int(v.next_token)] += 1
    assert chi_square_pvalue(counts, P[3]) > 1e-3


def test_accept_prob_is_min_one_p_over_q_and_accepted_is_a_prefix():
    g = torch.Generator().manual_seed(4)
    drafted = torch.tensor([0, 3, 2])
    v = verify_sampled(drafted, P, Q, g)
    expect = torch.clamp(P[torch.arange(3), drafted] / Q[torch.arange(3), drafted], max=1)
    assert torch.allclose(v.accept_prob, expect)
    acc = v.accepted.tolist()
    assert acc == sorted(acc, reverse=True)
    assert int(v.n_accepted) == sum(acc)
    assert torch.allclose(v.beta, torch.minimum(P[:3], Q).sum(-1))


def test_greedy_keeps_argmax_matches_then_adds_the_target_choice():
    drafted = torch.tensor([0, 4, 0])  # argmax of P rows: 0, 4 (first of ties), 1
    v = verify_greedy(drafted, P, Q)
    assert v.accepted.tolist() == [True, True, False]
    assert int(v.next_token) == 1
    v = verify_greedy(torch.tensor([0, 4, 1]), P, Q)
    assert int(v.n_accepted) == 3 and int(v.next_token) == 0  # bonus: argmax of P[3]


def test_top_k_and_top_p_filter_and_renormalise():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    p = logits_to_probs(logits, Sampling(1.0, top_k=2))
    assert torch.allclose(p, torch.tensor([0.5, 0.2, 0, 0, 0]) / 0.7)
    p = logits_to_probs(logits, Sampling(1.0, top_p=0.8))  # 0.5 + 0.2 < 0.8: keep three
    assert torch.allclose(p, torch.tensor([0.5, 0.2, 0.15, 0, 0]) / 0.85)
    p = logits_to_probs(logits, Sampling(0.5))
    assert torch.allclose(p, torch.softmax(logits / 0.5, -1))
    assert torch.allclose(logits_to_probs(logits, Sampling(0.0)), torch.softmax(logits, -1))


def test_sample_follows_probs():
    g = torch.Generator().manual_seed(5)
    probs = torch.tensor([0.1, 0.6, 0.3])
    draws = sample(probs.expand(30000, 3).contiguous(), g)
    counts = torch.bincount(draws, minlength=3).float()
    assert chi_square_pvalue(counts, probs) > 1e-3


def test_greedy_accept_high_q_is_wrong_and_exact_is_not():
    """The teaching rule keeps a draft the target would not choose when q >= 0.5."""
    p = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])  # (gamma+1, V): argmax 1 then 0
    q = torch.tensor([[0.8, 0.1, 0.1]])  # draft is confident in token 0
    drafted = torch.tensor([0])
    exact = verify_greedy(drafted, p, q)
    wrong = verify_greedy(drafted, p, q, rule="accept-high-q")
    assert int(exact.n_accepted) == 0 and int(exact.next_token) == 1
    assert int(wrong.n_accepted) == 1 and int(wrong.next_token) == 0
    with pytest.raises(ValueError, match="unknown verifier rule"):
        verify_greedy(drafted, p, q, rule="nope")
