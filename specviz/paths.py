"""Where the project's shipped files live: one root for each kind of asset."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
TRACES = ASSETS / "traces"  # bundled example runs; lesson runs under TRACES / "lessons"
MODELS = ASSETS / "models"
PROMPTS = ASSETS / "prompts"
IMAGES = ASSETS / "images"
