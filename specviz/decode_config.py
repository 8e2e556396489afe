"""What decides a run besides the models and the prompt (DecodeConfig, with its checks), and
the error a run that fails part way raises (DecodeError, with the steps that finished)."""

from __future__ import annotations

from dataclasses import dataclass

from .core.drafters import DRAFTERS
from .core.policies import POLICIES
from .core.sampling import Sampling
from .core.tree import TREE_RULES
from .core.tree_decoder import TreeShape, parse_tree
from .core.verify import RULES
from .engines.static import ENGINES
from .limits import (
    GAMMA_MAX,
    GAMMA_MIN,
    MAX_NEW_TOKENS_MAX,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    TOP_ALTERNATIVES_MAX,
)
from .traces.records import Trace


@dataclass(frozen=True)
class DecodeConfig:
    """Everything that decides a run besides the models and the prompt."""

    drafter: str = "model"  # model | feature-head | prompt-lookup | early-exit
    gamma: int = 4
    policy: str = "fixed"  # fixed | heuristic | confidence
    confidence_threshold: float = 0.4
    early_exit_layers: int = 4
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    max_new_tokens: int = 64
    chat: bool = True
    top_alternatives: int = 5  # top-k of p and q recorded per drafted position
    trace_detail: bool = True  # False: no per-step records (for measuring tracing cost)
    verifier: str = "exact"  # or a deliberately wrong rule of verify.RULES, for teaching
    engine: str = "auto"  # auto (CUDA graphs on a GPU, else eager) | eager | static | graphs
    tree: str = ""  # "" a chain of gamma drafts; "3,2,1" or "dynamic:16:6:4" a token tree

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_k, self.top_p)

    @property
    def tree_shape(self) -> TreeShape | None:
        """The token tree each step drafts; None for a chain. Raises ValueError if unreadable."""
        return parse_tree(self.tree)

    def check(self) -> None:
        """Raise ValueError with a one-line message for out-of-range settings."""
        if self.drafter not in DRAFTERS:
            raise ValueError(f"unknown drafter {self.drafter!r}; choose from "
                             f"{', '.join(DRAFTERS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose from "
                             f"{', '.join(POLICIES)}")
        if not GAMMA_MIN <= self.gamma <= GAMMA_MAX:
            raise ValueError(f"gamma must be between {GAMMA_MIN} and {GAMMA_MAX}, "
                             f"got {self.gamma}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if 0 < self.temperature < TEMPERATURE_MIN:
            raise ValueError(f"temperature {self.temperature:g} is too small: logits divided "
                             "by it can overflow and turn the probabilities into NaN; use 0 "
                             f"(greedy) or at least {TEMPERATURE_MIN}")
        if self.temperature > TEMPERATURE_MAX:
            raise ValueError(f"temperature must be at most {TEMPERATURE_MAX:g}, got "
                             f"{self.temperature:g} (beyond it every distribution is "
                             "practically uniform)")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must lie in (0, 1], got {self.top_p}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_MAX:
            raise ValueError(f"max new tokens must be between 1 and {MAX_NEW_TOKENS_MAX}, "
                             f"got {self.max_new_tokens}")
        if not 0 <= self.confidence_threshold <= 1:
            raise ValueError("confidence threshold must lie in [0, 1], got "
                             f"{self.confidence_threshold}")
        if self.early_exit_layers < 1:
            raise ValueError(f"early-exit layers must be >= 1, got {self.early_exit_layers}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        if self.verifier not in RULES and not (self.tree and self.verifier in TREE_RULES):
            raise ValueError(f"unknown verifier {self.verifier!r}; choose from "
                             f"{', '.join(RULES)}")
        if self.tree_shape is not None:
            if self.drafter not in ("model", "early-exit", "feature-head"):
                raise ValueError("token trees are drafted by a drafter with a distribution "
                                 "q (the 'model', 'early-exit' or 'feature-head' drafter), "
                                 f"not by {self.drafter!r}")
            if self.policy != "fixed":
                raise ValueError("a token tree has its own shape; the γ policies apply to "
                                 "chains (use policy 'fixed')")
            if self.verifier not in TREE_RULES:
                raise ValueError(f"token trees are verified by the rules "
                                 f"{', '.join(TREE_RULES)}, not {self.verifier!r}")
        if not 1 <= self.top_alternatives <= TOP_ALTERNATIVES_MAX:
            raise ValueError(f"top alternatives must be between 1 and {TOP_ALTERNATIVES_MAX}, "
                             f"got {self.top_alternatives}")


class DecodeError(RuntimeError):
    """A run failed part way; ``partial`` holds the trace of the steps that finished."""

    def __init__(self, message: str, partial: Trace | None):
        super().__init__(message)
        self.partial = partial
