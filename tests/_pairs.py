"""The embedded pair for tests that need the real models: loaded, or the test skipped where
the embedded target is not available."""

import pytest

from specviz import load_pair
from specviz.models import ModelSourceError

TARGET, DRAFT = "embedded:smollm2-135m-instruct", "embedded:smollm2-draft"


def embedded_pair(*sources: str, device: str | None = None):
    """``load_pair(*sources, device=device)`` (default: the embedded target alone), or skip."""
    try:
        return load_pair(*(sources or (TARGET,)), **({"device": device} if device else {}))
    except ModelSourceError as e:
        pytest.skip(f"embedded target not available here: {e}")
