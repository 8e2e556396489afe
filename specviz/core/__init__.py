"""The decoding core: the algorithm (draft, verify, accept, commit), the verifier, the
drafters, the draft-length policies, sampling, and the run's device state.

This file imports nothing heavy: the names below are read by the trace loader too."""

DRAFTERS = ("model", "feature-head", "prompt-lookup", "early-exit")  # the drafter kinds
