"""Toy lab: the real verifier reproduces p; the buggy rules (negative controls) do not."""

import numpy as np
import pytest

import specviz.core.verify
from specviz.teaching import toy

P = [0.45, 0.25, 0.15, 0.10, 0.05]
Q = [0.10, 0.55, 0.15, 0.10, 0.10]


def test_uses_the_real_verifier():
    assert toy.verify_sampled is specviz.core.verify.verify_sampled


def test_exact_rule_reproduces_p():
    res = toy.simulate(P, Q, gamma=3, n_steps=3000, seed=1)
    assert res.tv_distance < 0.03
    assert res.acceptance_rate == pytest.approx(toy.overlap(P, Q), abs=0.03)
    assert res.history[toy.N_TOKENS].iloc[-1] == res.n_emitted
    assert res.distribution_frame()[toy.EMPIRICAL].sum() == pytest.approx(1.0)


def test_correction_from_p_breaks_the_distribution():
    res = toy.simulate(P, Q, gamma=3, n_steps=3000, rule="correction-from-p", seed=1)
    assert res.tv_distance > 0.08


def test_accept_high_q_accepts_more_and_is_wrong():
    exact = toy.simulate(P, Q, gamma=3, n_steps=3000, seed=2)
    buggy = toy.simulate(P, Q, gamma=3, n_steps=3000, rule="accept-high-q", seed=2)
    assert buggy.acceptance_rate > exact.acceptance_rate + 0.2
    assert buggy.tv_distance > 0.15


def test_checks_inputs():
    with pytest.raises(ValueError):
        toy.normalise([0, 0, 0])
    with pytest.raises(ValueError):
        toy.normalise([0.5, -0.1])
    with pytest.raises(ValueError):
        toy.simulate(P, Q[:3])
    with pytest.raises(ValueError):
        toy.simulate(P, Q, rule="nope")
    assert toy.normalise([2, 2]) == pytest.approx(np.array([0.5, 0.5]))
