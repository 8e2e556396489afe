"""Draft-length policies: how many tokens to draft in the next step."""

from __future__ import annotations

from ..limits import GAMMA_MAX

POLICIES = ("fixed", "heuristic", "confidence")


class FixedGamma:
    """Always gamma tokens."""

    def __init__(self, gamma: int):
        self.gamma = gamma

    stop_below: float | None = None

    def next_gamma(self) -> int:
        return self.gamma

    def update(self, drafted: int, accepted: int) -> None:
        pass


class HeuristicGamma(FixedGamma):
    """+2 after a step whose drafts were all accepted, -1 otherwise (transformers' assisted
    generation schedule), kept within 1..GAMMA_MAX."""

    def update(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        step = 2 if accepted == drafted else -1
        self.gamma = max(1, min(GAMMA_MAX, self.gamma + step))


class ConfidenceGamma(FixedGamma):
    """Draft up to gamma tokens, stopping after one whose top draft probability is below the
    threshold (for drafters without probabilities this is the fixed policy)."""

    def __init__(self, gamma: int, threshold: float):
        super().__init__(gamma)
        self.stop_below = threshold


def make_policy(name: str, gamma: int, threshold: float = 0.4) -> FixedGamma:
    if name == "fixed":
        return FixedGamma(gamma)
    if name == "heuristic":
        return HeuristicGamma(gamma)
    if name == "confidence":
        return ConfidenceGamma(gamma, threshold)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
