"""The decoding core: the algorithm (draft, verify, accept, commit), the verifier, the
drafters, the draft-length policies, sampling, and the run's device state."""
