"""Running a decode inside a Streamlit script: steps stream into placeholders as they are
verified; Stop ends the run between steps and keeps the partial trace."""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from specviz import (
    DecodeConfig,
    DecodeError,
    RunRecord,
    StepRecord,
    SummaryRecord,
    Trace,
    speculative_decode,
    target_only_decode,
)
from specviz import figures as G
from specviz import frames as F
from specviz.errors import one_line

PAINT_EVERY_S = 0.25
LIVE_WINDOW = 24


class Collector:
    """Receives each record as the decoder makes it (the TraceWriter interface), so a run
    that is interrupted still leaves its finished steps behind."""

    def __init__(self) -> None:
        self.run: RunRecord | None = None
        self.steps: list[StepRecord] = []
        self.summary: SummaryRecord | None = None

    def write(self, record) -> None:
        if isinstance(record, RunRecord):
            self.run = record
        elif isinstance(record, StepRecord):
            self.steps.append(record)
        elif isinstance(record, SummaryRecord):
            self.summary = record

    def trace(self) -> Trace | None:
        if self.run is None:
            return None
        return Trace(self.run, tuple(self.steps), self.summary).with_summary()


@dataclass
class Outcome:
    trace: Trace | None
    error: str | None = None
    interrupted: ScriptControlException | None = None  # a rerun asked for during the run


def stream(pair, prompt: str, cfg: DecodeConfig, *, target_only: bool, label: str,
           status, text_slot, timeline_slot) -> Outcome:
    """Decode, painting the colored text, the timeline and running stats while it runs.

    A click anywhere in the app (the Stop button included) makes Streamlit interrupt this
    script at its next drawing call; that interruption is caught here, turned into
    ``should_stop`` (the decoder ends cleanly between steps) and handed back to be re-raised
    once the trace is safe. (With ``runner.fastReruns``, Streamlit starts the next run at
    once, in parallel: ``wait_for_stopped_run`` makes it wait for this trace.)
    """
    box = Collector()
    pending: list[ScriptControlException] = []
    last = [0.0]
    t0 = time.perf_counter()

    def paint(final: bool = False) -> None:
        trace = box.trace()
        if trace is None or not trace.steps:
            return
        tokens = F.tokens_frame(trace)
        n_tok = int(tokens[F.EMITTED].sum())
        alpha = F.trace_alpha(trace)
        rate = n_tok / max(time.perf_counter() - t0, 1e-9)
        status.markdown(f"**{label}**: step {len(trace.steps)} · {n_tok} tokens · "
                        + (f"running α̂ = {alpha:.2f} · " if alpha is not None else "")
                        + f"{rate:.1f} tokens/s")
        text_slot.html(G.legend_html(("target",) if target_only else
                                     ("accepted", "resampled", "bonus", "rejected"))
                       + G.colored_text_html(tokens))
        recent = tokens[tokens[F.STEP] >= len(trace.steps) - LIVE_WINDOW]
        timeline_slot.plotly_chart(G.fig_timeline(recent),
                                   key=f"live_tl_{label}_{len(trace.steps)}_{final}")

    def on_step(rec: StepRecord) -> None:
        now = time.perf_counter()
        if pending or now - last[0] < PAINT_EVERY_S:
            return
        last[0] = now
        try:
            paint()
        except ScriptControlException as e:  # Stop (or any click): end between steps
            pending.append(e)

    decode = target_only_decode if target_only else speculative_decode
    error = None
    try:
        decode(pair, prompt, cfg, on_step=on_step, should_stop=lambda: bool(pending),
               writer=box, label=label)
    except DecodeError as e:
        error = str(e)
    except ValueError as e:
        error = str(e)
    except MemoryError:
        error = "out of memory; try fewer tokens or a smaller pair"
    except Exception as e:  # a clear line, never a traceback
        error = one_line(e)
    if not pending:
        try:
            paint(final=True)
        except ScriptControlException as e:
            pending.append(e)
    return Outcome(box.trace(), error, pending[0] if pending else None)


def live_store() -> dict:
    """This session's live results, in a plain dict kept in session_state.

    A run that Streamlit is stopping can no longer touch ``st.session_state`` (every access
    re-raises the stop), but it can still put its trace into this dict, which the next run
    of the same session reads. Keys: busy (a decode is in progress), result, history.
    """
    if "live_store" not in st.session_state:
        st.session_state.live_store = {"busy": False, "result": None, "history": []}
    return st.session_state.live_store


def wait_for_stopped_run(store: dict, timeout_s: float = 120.0) -> None:
    """If a decode of this session is still finishing (it was just stopped), wait for it,
    so that its partial trace is shown rather than lost."""
    if not store["busy"]:
        return
    deadline = time.perf_counter() + timeout_s
    with st.spinner("Finishing the stopped run's last step …"):
        while store["busy"] and time.perf_counter() < deadline:
            time.sleep(0.1)
