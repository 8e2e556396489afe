"""The walkthrough's widgets: which trace and run, presenter mode, autoplay, and the player
that replays one step a micro-step at a time (an st.fragment: stepping reruns only it)."""

from __future__ import annotations

import time

import streamlit as st

from specviz import Trace
from specviz import figures as G
from specviz.figures import show_token
from specviz.figures import walkthrough_views as V
from specviz.teaching import walkthrough as W
from specviz.traces import frames as F
from ui.common import bundled_files, load_bundled
from ui.live import live_store
from ui.plain import as_text, visible_frame
from ui.uploads import MAX_UPLOAD_MB, UPLOAD_TYPES, read_upload, upload_label

LIVE = "Last live run (this session)"
UPLOAD = "Upload a trace file…"
SPEEDS = {"slow (4 s)": 4.0, "normal (2 s)": 2.0, "fast (1 s)": 1.0, "very fast (0.5 s)": 0.5}
PRESENTER_CSS = """<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"] { display: none !important; }
.stMainBlockContainer, .block-container { max-width: 100% !important; padding-top: 1rem; }
.st-key-wt_stage .wt-narration { font-size: 1.45rem !important; line-height: 1.4 !important; }
.st-key-wt_stage .wt-strip { font-size: 1.7rem !important; line-height: 1.8 !important; }
.st-key-wt_stage .wt-phases span { font-size: 1.15rem !important; }
.st-key-wt_stage button p, .st-key-wt_stage label p { font-size: 1.2rem !important; }
.st-key-wt_stage [data-testid="stCaptionContainer"] { font-size: 1.05rem !important; }
h1 { font-size: 1.8rem !important; padding: 0 !important; }
</style>"""
PRESENTER_FONT = 20  # figure font size in presenter mode
# presenter mode, a chain step: the narration beside the figures (1024×768 keeps the main
# figure above the fold), each figure at most this tall
PRESENTER_COLUMNS = [5, 6]
PRESENTER_HEIGHT = 380
PRESENTER_FOOT = 130  # px under a presenter figure's plot: tick labels, axis title, legend


def _reset_position() -> None:
    st.session_state.wt_step = 0
    st.session_state.wt_micro = 0
    st.session_state.wt_playing = False


def _init_state() -> None:
    for key, value in (("wt_step", 0), ("wt_micro", 0), ("wt_playing", False),
                       ("wt_last_tick", 0.0), ("wt_presenter", False),
                       ("wt_speed", "normal (2 s)")):
        if key not in st.session_state:
            st.session_state[key] = value


def _live_trace() -> Trace | None:
    result = live_store()["result"]
    spec = result["spec"] if result else None
    return spec if spec is not None and spec.steps else None


def trace_source_ui() -> tuple[list[Trace], str] | None:
    """Where the runs come from: this session's last live run, a bundled trace, or an
    upload (validated by ui.uploads). None, with a message, when nothing is there yet."""
    _init_state()
    live = _live_trace()
    options = ([LIVE] if live is not None else []) + [f.name for f in bundled_files()] \
        + [UPLOAD]
    if st.session_state.get("wt_source") not in options:
        st.session_state.wt_source = options[0]
    source = st.selectbox("Trace", options, key="wt_source", on_change=_reset_position,
                          help="The last run of *Live decoding*, an example trace shipped "
                               "with specviz, or a trace file of your own.")
    if source == LIVE:
        return [live], "live"
    if source == UPLOAD:
        up = st.file_uploader(upload_label("Trace file"), type=UPLOAD_TYPES, key="wt_upload",
                              max_upload_size=MAX_UPLOAD_MB, on_change=_reset_position)
        if up is None:
            st.info("Upload a trace (the Live page's download, `python -m specviz run --out`, "
                    "or `write_traces`), or run one on *Live decoding*: its last run appears "
                    "here.")
            return None
        traces, error = read_upload(up.name, up.getvalue())
        if error:
            st.error(f"Cannot open this file. {as_text(error)}")
            return None
        return traces, up.name
    files = {f.name: f for f in bundled_files()}
    traces, error = load_bundled(files[source])
    if error:
        st.error(f"Cannot open this trace. {as_text(error)}")
        return None
    return traces, source


def run_picker_ui(traces: list[Trace], source: str) -> Trace | None:
    """A speculative run of the file; target-only runs have nothing to walk through."""
    runs = [t for t in traces if W.is_walkable(t)]
    skipped = sum(F.is_target_only(t) for t in traces)
    if not runs:
        st.info(f"{as_text(source)} holds no speculative run with steps"
                + (f" (only {skipped} target-only run{'s' if skipped != 1 else ''}: the target "
                   "decodes alone, one token per step, so no draft is proposed, verified or "
                   "rejected)" if skipped else "")
                + ". Choose another trace.")
        return None
    labels = [f"{i + 1}. {F.run_name(t)} · {t.run.prompt_text[:40]!r}" for i, t in
              enumerate(runs)]
    if st.session_state.get("wt_run") not in labels:
        st.session_state.wt_run = labels[0]
    pick = st.selectbox("Run", labels, key="wt_run", on_change=_reset_position)
    if skipped:
        st.caption(f"{skipped} target-only run{'s' if skipped != 1 else ''} of this file "
                   "not listed: nothing is drafted there.")
    return runs[labels.index(pick)]


def presenter_ui() -> bool:
    """Presenter mode: large type, no sidebar. Returns whether it is on."""
    _init_state()
    on = st.toggle("Presenter mode", key="wt_presenter",
                   help="Large type for a projector; hides the sidebar (turn it off to get "
                        "the sidebar and the page list back).")
    if on:
        st.html(PRESENTER_CSS)
    return on


def _play_pause() -> None:
    ss = st.session_state
    ss.wt_playing = not ss.wt_playing
    ss.wt_last_tick = time.monotonic()


def autoplay_ui() -> float | None:
    """Play / Pause and the speed. Returns the seconds between micro-steps while playing,
    else None. (Both controls rerun the whole page, which starts or stops the timer.)"""
    _init_state()
    c1, c2 = st.columns([1, 2])
    playing = st.session_state.wt_playing
    c1.button("⏸ Pause" if playing else "▶ Autoplay", key="wt_play", on_click=_play_pause,
              help="Step through the micro-steps on a timer; stops by itself at the end of "
                   "the run.")
    speed = c2.select_slider("Speed", list(SPEEDS), key="wt_speed",
                             label_visibility="collapsed")
    return SPEEDS[speed] if playing else None


def _move(trace: Trace, delta: int) -> None:
    ss = st.session_state
    ss.wt_step, ss.wt_micro = W.neighbour(trace, ss.wt_step, ss.wt_micro, delta)
    ss.wt_last_tick = time.monotonic()  # a click while playing restarts the timer's count


def _jump() -> None:
    """Go to the step typed in the field, then empty the field (the caption says where the
    player is; a number left there would read as the current step)."""
    ss = st.session_state
    if ss.get("wt_jump") is not None:
        ss.wt_step, ss.wt_micro = int(ss.wt_jump), 0
    ss.wt_jump = None


def _tick(trace: Trace, interval: float) -> None:
    """One autoplay step, when the timer (not some other rerun) brought us here."""
    ss = st.session_state
    now = time.monotonic()
    if now - ss.wt_last_tick < 0.8 * interval:
        return
    if W.is_last(trace, ss.wt_step, ss.wt_micro):
        ss.wt_playing = False
        st.rerun()  # a full rerun drops the fragment's timer
    _move(trace, 1)


def player_ui(trace: Trace, interval: float | None, presenter: bool = False) -> None:
    """The player: previous / next (← / → keys), jump to a step, and the current micro-step
    (phase, token strip, narration, figures). Reruns on its own every ``interval`` seconds
    while autoplay is on."""
    st.fragment(run_every=interval)(_player)(trace, interval, presenter)


def _player(trace: Trace, interval: float | None, presenter: bool) -> None:
    ss = st.session_state
    n_steps = len(trace.steps)
    if not 0 <= ss.wt_step < n_steps:
        ss.wt_step, ss.wt_micro = 0, 0
    if interval is not None and ss.wt_playing:
        _tick(trace, interval)
    walk = W.walk_step(trace, ss.wt_step)
    ss.wt_micro = min(max(ss.wt_micro, 0), len(walk.micro) - 1)
    m = walk.micro[ss.wt_micro]
    with st.container(key="wt_stage"):
        c1, c2, c3, c4, c5 = st.columns([1.3, 1.0, 1.3, 0.8, 1.9], vertical_alignment="bottom")
        c1.button("◀ Previous", key="wt_prev", shortcut="Left", on_click=_move,
                  args=(trace, -1), disabled=ss.wt_step == 0 and ss.wt_micro == 0)
        c2.button("Next ▶", key="wt_next", shortcut="Right", on_click=_move, args=(trace, 1),
                  disabled=W.is_last(trace, ss.wt_step, ss.wt_micro), type="primary")
        # the field holds the step to jump to, empty otherwise, and is emptied only by its
        # callback: a value written by the script during a fragment rerun can be sent back
        # stale by the browser
        if (ss.get("wt_jump") or 0) > n_steps - 1:
            ss.wt_jump = None
        c3.number_input("Jump to step", 0, n_steps - 1, value=None, key="wt_jump",
                        on_change=_jump, placeholder=f"0 – {n_steps - 1}",
                        help=f"Type a step and press Enter. Steps are numbered 0 to "
                             f"{n_steps - 1}, as in the trace.")
        c4.button("Go", key="wt_go", on_click=_jump)
        c5.caption(f"Step {walk.step} of {n_steps - 1} · micro-step {m.index + 1} of "
                   f"{len(walk.micro)} · "
                   + (f"tree of {walk.gamma} nodes · " if walk.parents is not None
                      else f"γ = {walk.gamma} · ")
                   + ("greedy" if walk.greedy else "sampled")
                   + f" · drafter {as_text(walk.drafter)}"
                   + (" · autoplay on" if ss.wt_playing else ""))
        st.html(V.phase_bar_html(m.phase))
        beside = presenter and walk.parents is None  # a tree's figure needs the full width
        text, figures = st.columns(PRESENTER_COLUMNS) if beside else (st.container(),) * 2
        with text:
            st.html(V.token_strip_html(W.strip_tokens(walk, m.index)))
            st.html(V.narration_html(m.title, m.narration))
            if m.phase == "verify" and walk.positions:
                st.dataframe(visible_frame(W.verify_table(trace, walk)), hide_index=True)
        with figures:
            _figures_ui(trace, walk, m, presenter)


def _chart(slot, fig, key: str, presenter: bool) -> None:
    """Draw a figure; in presenter mode with large type (Streamlit's own chart theme would
    reset the font sizes, so it is left out there)."""
    if presenter:  # the legend at the figure's foot, under the axis title: rows of large
        # type never cover the title or the tick labels
        fig.update_layout(font_size=PRESENTER_FONT, title_font_size=PRESENTER_FONT + 2,
                          legend_font_size=PRESENTER_FONT - 4,
                          legend=dict(orientation="h", x=0, xanchor="left", yref="container",
                                      y=0, yanchor="bottom"), margin_t=50)
        fig.update_xaxes(tickfont_size=PRESENTER_FONT)
        fig.update_yaxes(tickfont_size=PRESENTER_FONT)
        fig.update_annotations(font_size=PRESENTER_FONT)  # a tree's node labels
        if fig.layout.height:  # room for the larger type (a tree's rows of labels, legend)
            grow = PRESENTER_FONT / 14
            fig.update_layout(height=int(fig.layout.height * grow),
                              margin_b=max(int((fig.layout.margin.b or 40) * grow),
                                           PRESENTER_FOOT))
    slot.plotly_chart(fig, key=key, theme=None if presenter else "streamlit")


def _figures_ui(trace: Trace, walk: W.StepWalk, m: W.MicroStep, presenter: bool) -> None:
    if walk.parents is not None:  # a tree step: the tree as known at this micro-step
        fig = G.fig_tree_step(W.tree_view(trace.steps[walk.step], walk, m.index,
                                          F.last_committed_text(trace, walk.step)),
                              title=None, greedy=walk.greedy)
        _chart(st, fig, "wt_fig_tree", presenter)
        return
    probs = V.fig_step_probabilities(W.positions_frame(walk, m.index), walk.greedy,
                                     walk.has_q)
    other, note = _second_figure(trace, walk, m)
    if not presenter:  # the acceptance test on the left, the position's detail beside it
        left, right = st.columns([3, 2])
        _chart(left, probs, "wt_fig_probs", presenter)
        if other is not None:
            _chart(right, other[0], other[1], presenter)
        if note:
            right.caption(note)
        return
    # presenter mode: stacked beside the narration, the one this phase is about first
    first = m.phase in ("verify", "accept") or other is None
    order = [(probs, "wt_fig_probs"), other] if first else [other, (probs, "wt_fig_probs")]
    for i, (fig, key) in enumerate(filter(None, order)):
        if not i:  # the first one above the fold; the next keeps its height (its labels)
            fig.update_layout(height=min(fig.layout.height or PRESENTER_HEIGHT,
                                         PRESENTER_HEIGHT) * 14 // PRESENTER_FONT)
        _chart(st, fig, key, presenter)
    if note:
        st.caption(note)


def _second_figure(trace: Trace, walk: W.StepWalk, m: W.MicroStep
                   ) -> tuple[tuple | None, str | None]:
    """The figure beside the drafted positions, (figure, key) or None, and a note: the
    caches at verify and commit, else the recorded top-k at the micro-step's position."""
    if m.phase in ("verify", "commit"):
        return (V.fig_cache_lengths(W.cache_frame(walk.cache)), "wt_fig_cache"), None
    topk = W.topk_view(trace, walk, m.index)
    if topk is None or topk.empty:
        return None, ("The figure on the right shows the recorded top-k alternatives at the "
                      "position being drafted or judged.")
    x = walk.positions[m.position]
    what = {"draft": "q's top-k", "accept": "top-k of q and p", "add": "top-k and residual"}
    title = f"Position {x.pos + 1} ({show_token(x.text)}): {what.get(m.phase, 'top-k')}"
    added = walk.added.kind if walk.added is not None else "resampled"
    note = ("Residual over the recorded top-k only: an approximation of "
            "norm(max(0, p − q)); the decoder drew from the full distributions."
            if m.phase == "add" and not walk.greedy else None)
    return (V.fig_topk_alternatives(topk, title, added), "wt_fig_topk"), note
