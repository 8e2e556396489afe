"""Where the project's shipped files live: one root for each kind of asset."""

from __future__ import annotations

from pathlib import Path

# A checkout: the folder above the package. An installed wheel: specviz/_app, which holds the
# app and its assets laid out as the checkout's top level (pyproject.toml).
_PACKAGE = Path(__file__).resolve().parent
ROOT = _PACKAGE / "_app" if (_PACKAGE / "_app" / "app.py").is_file() else _PACKAGE.parent
APP = ROOT / "app.py"  # the Streamlit app (`specviz app`, `streamlit run app.py`)
ASSETS = ROOT / "assets"
TRACES = ASSETS / "traces"  # bundled example runs; lesson runs under TRACES / "lessons"
MODELS = ASSETS / "models"
PROMPTS = ASSETS / "prompts"
IMAGES = ASSETS / "images"
