"""The guarantee that every figure of this package shows the strings of traces and models as
text: each ``fig_*`` function of every module of specviz/figures is wrapped, once, at import,
so that the figure it returns has gone through ``theme.plain_figure`` (Plotly would otherwise
draw the HTML in a run's label or a token: links, and fetches through CSS). Imported first by
``specviz.figures``; tests/test_escape.py checks that no figure function escapes it.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import plotly.graph_objects as go

from .theme import plain_figure

_NOT_FIGURES = {"__init__", "plain", "theme", "text"}


def plain(fn):
    """``fn`` whose figure comes back through plain_figure (other values as they are)."""
    if getattr(fn, "__plain__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        return plain_figure(out) if isinstance(out, go.Figure) else out

    wrapper.__plain__ = True
    return wrapper


def guard(module: ModuleType) -> None:
    """Wrap every ``fig_*`` function of ``module`` with ``plain``, in the module itself."""
    for name, fn in list(vars(module).items()):
        if name.startswith("fig_") and callable(fn):
            setattr(module, name, plain(fn))


FIGURE_MODULES = tuple(
    importlib.import_module(f"{__package__}.{m.name}")
    for m in pkgutil.iter_modules([str(Path(__file__).parent)])
    if m.name not in _NOT_FIGURES)
for _module in FIGURE_MODULES:
    guard(_module)
