"""Plotly figures of specviz: one figure per function, each from a tidy DataFrame.

No Streamlit here; pages call these and draw what comes back. Every ``fig_*`` function
returns a figure whose strings are text (``plain``, imported first, wraps them).
"""

from . import plain  # noqa: F401  (first: the names below are the wrapped functions)
from .race_views import fig_race
from .text import (
    colored_text_html,
    legend_html,
    live_css,
    live_spans,
    live_timeline_html,
    live_timeline_row,
    text_block_html,
    token_spans,
)
from .theme import (
    CHAIN_ACCEPT,
    KIND_COLORS,
    KIND_LABELS,
    KIND_MARKS,
    Q_ZERO_LABEL,
    Q_ZERO_MARK,
    TREE_ACCEPT,
    TREE_ACCEPT_NOTE,
    apply_theme,
    kind_name,
    layout,
    show_token,
    themed,
    unjudged_why,
)
from .theory_views import (
    fig_expected_tokens,
    fig_speedup_surface,
    fig_speedup_vs_gamma,
    fig_what_if,
)
from .toy_views import fig_toy_convergence, fig_toy_distribution
from .trace_views import (
    fig_acceptance_heatmap,
    fig_accepted_length,
    fig_compare_positions,
    fig_compare_speed,
    fig_gap_shares,
    fig_latency,
    fig_position_acceptance,
    fig_timeline,
    fig_tokens_vs_time,
    fig_verify_inspector,
    fig_wall_clock,
)
from .tree_views import fig_tree_step

__all__ = [
    "KIND_COLORS", "KIND_LABELS", "KIND_MARKS", "apply_theme", "colored_text_html",
    "fig_accepted_length", "fig_acceptance_heatmap", "fig_compare_positions",
    "fig_compare_speed", "fig_expected_tokens", "fig_gap_shares", "fig_latency",
    "fig_position_acceptance", "fig_race", "fig_speedup_surface", "fig_speedup_vs_gamma",
    "fig_timeline",
    "fig_tokens_vs_time", "fig_toy_convergence", "fig_toy_distribution", "fig_tree_step",
    "fig_verify_inspector", "fig_wall_clock", "fig_what_if", "kind_name", "layout",
    "legend_html", "live_css", "live_spans", "live_timeline_html", "live_timeline_row",
    "show_token", "text_block_html", "themed", "token_spans", "unjudged_why",
    "CHAIN_ACCEPT", "Q_ZERO_LABEL", "Q_ZERO_MARK", "TREE_ACCEPT", "TREE_ACCEPT_NOTE",
]
