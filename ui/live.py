"""The Live page's runs: the decoder works in a thread of its own, and the page script paints
what it has made so far at a steady rate, so painting never holds decoding up.

Each paint costs the same however long the run is: new steps are turned into text spans and
timeline rows once (append-only), the text shows its last ``LIVE_TOKENS`` pieces and the
timeline its last ``LIVE_STEPS`` steps, as small HTML (a class per token kind); the whole run
is drawn, with every figure, once it ends.

Stop sets an event the decoder reads between two steps (``should_stop``): the run ends
cleanly and keeps its steps. A rerun of the page (any click) does not stop a run: the next
run of the page goes on painting it. A session that ends while the page paints stops its run.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from specviz import (
    DecodeConfig,
    DecodeError,
    RunRecord,
    StepRecord,
    SummaryRecord,
    Trace,
    speculative_decode,
)
from specviz import figures as G
from specviz.errors import one_line
from specviz.measure import ROUNDS, measure_speedup
from specviz.traces import frames as F
from ui.browser import browser_store
from ui.common import TORCH_THREAD

FRAME_S = 0.5  # the live view repaints this often
LIVE_TOKENS = 300  # text pieces the live text shows (the whole text once the run ends)
LIVE_STEPS = 12  # steps the live timeline shows
HISTORY = 8  # runs kept per session (the Theory page plots them)
MAX_ROUNDS = 9  # rounds a Live measurement may take
BASE_SAMPLE = 256  # a longer run's target-only rounds decode this many tokens (said so)


class Collector:
    """Receives each record as the decoder makes it (the TraceWriter interface), so a run
    that is stopped or fails still leaves its finished steps behind. Written by the decoding
    thread, read by the page: list appends and reads are atomic."""

    def __init__(self) -> None:
        self.run: RunRecord | None = None
        self.steps: list[StepRecord] = []
        self.summary: SummaryRecord | None = None
        self.t_start: float | None = None  # when the decode's clock started (its run record)

    def elapsed(self) -> float:
        """Seconds since this decode started (0 before): each part's own rate, not counted
        from the Run click (a baseline starts after the speculative run)."""
        return 0.0 if self.t_start is None else time.perf_counter() - self.t_start

    def write(self, record) -> None:
        if isinstance(record, RunRecord):
            self.t_start = time.perf_counter()
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
class LiveRun:
    """One Run of the Live page: the speculative decode alone, or (with a baseline) a
    measurement: both paths warmed up, then ``rounds`` rounds of speculative and target-only
    decodes alternated (specviz.measure)."""

    prompt: str
    cfg: DecodeConfig
    with_baseline: bool
    settings: str = ""  # the settings of the run, in words
    rounds: int = ROUNDS
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    parts: list[tuple[str, Collector]] = field(default_factory=list)  # (label, records)
    progress: tuple[str, float] = ("starting", 0.0)  # what runs now, fraction done
    error: str | None = None


def live_store() -> dict:
    """This session's live results, in a plain dict kept in session_state (the decoding
    thread writes its result here, without touching Streamlit). Keys: run (the LiveRun in
    progress, or None), result, history."""
    if "live_store" not in st.session_state:  # per browser: a reload finds the last result
        st.session_state.live_store = browser_store(
            lambda: {"run": None, "result": None, "history": []})
    return st.session_state.live_store


def busy(store: dict) -> LiveRun | None:
    """The run of this session that is still decoding, if any."""
    run = store.get("run")
    return run if run is not None and not run.done.is_set() else None


def _guarded(fn, failed: list) -> tuple[object, str | None]:
    """(what ``fn()`` returns, None), or (None, its error as one line): never a traceback.
    A DecodeError's partial trace goes into ``failed``."""
    try:
        return fn(), None
    except DecodeError as e:
        failed.append(e.partial)
        return None, str(e)
    except ValueError as e:
        return None, str(e)
    except MemoryError:
        return None, "out of memory; try fewer tokens or a smaller pair"
    except Exception as e:  # a clear line, never a traceback
        return None, one_line(e)


def _writer_for(run: LiveRun):
    """Each decode of the run gets a new part (a Collector the page paints)."""
    def writer(part: str, i: int) -> Collector:
        box = Collector()
        label = part if run.rounds == 1 else f"{part} · round {i + 1} of {run.rounds}"
        run.parts.append((label, box))
        return box
    return writer


def _set_progress(run: LiveRun):
    def hear(what: str, fraction: float) -> None:
        run.progress = (what, fraction)
    return hear


def _measure(pair, run: LiveRun) -> dict:
    """The run's decodes; the result the page shows (spec, base, speedup, error, note)."""
    if not run.with_baseline:
        box = Collector()
        run.parts.append(("speculative", box))
        out, error = _guarded(lambda: speculative_decode(
            pair, run.prompt, run.cfg, should_stop=run.stop.is_set, writer=box,
            label="speculative"), [])
        spec = out if out is not None else box.trace()
        return {"spec": spec, "base": None, "speedup": None, "error": error, "note": None}
    failed: list = []
    m, error = _guarded(lambda: measure_speedup(
        pair, run.prompt, run.cfg, rounds=run.rounds, base_tokens=BASE_SAMPLE,
        writer_for=_writer_for(run),
        should_stop=run.stop.is_set, on_progress=_set_progress(run), label="speculative"),
        failed)
    if m is None:  # failed part way: the speculative steps so far, no speed-up
        spec = next((box.trace() for label, box in run.parts
                     if label.startswith("speculative")), None)
        if spec is None and failed and failed[0] is not None and \
                failed[0].run.mode == "speculative":
            spec = failed[0]  # it failed while warming up: those steps
        return {"spec": spec, "base": None, "speedup": None, "error": error, "note": None}
    note = None
    if m.base is None and m.spec is not None:
        note = ("Stopped during the measurement: no speed-up and no identical-output check "
                "for this run.")
    return {"spec": m.spec, "base": m.base, "speedup": m.speedup, "error": None,
            "note": note, "base_tokens": m.base_tokens}


def _work(pair, run: LiveRun, store: dict) -> None:
    """The decoding thread: decode (or measure), then hand the traces to the page."""
    try:
        result = {**_measure(pair, run), "settings": run.settings}
        store["result"] = result
        if result["spec"] is not None and result["spec"].steps:
            store["history"] = (store["history"] + [result])[-HISTORY:]
    except Exception as e:  # never leave the page waiting on a thread that died
        store["result"] = {"spec": None, "base": None, "speedup": None,
                           "error": one_line(e), "settings": run.settings, "note": None}
    finally:
        run.done.set()


def start(pair, prompt: str, cfg: DecodeConfig, with_baseline: bool,
          settings: str = "", rounds: int = ROUNDS) -> LiveRun:
    """Start a run in its own thread; the session's store receives its result."""
    store = live_store()
    old = busy(store)
    if old is not None:  # one run per session: a new Run ends the one before
        old.stop.set()
        old.done.wait()
    run = LiveRun(prompt, cfg, with_baseline, settings, rounds)
    store["run"] = run
    TORCH_THREAD.submit(_work, pair, run, store)  # where the models were loaded
    return run


class _Painter:
    """What the live view has of one part of a run: compact text spans and timeline rows
    of its last steps (append-only, bounded), running counts. ``add`` costs what the new
    steps cost; ``html`` what the bounded window costs."""

    def __init__(self, target_only: bool, tree: bool = False) -> None:
        self.target_only, self.tree = target_only, tree
        self.spans: deque[str] = deque(maxlen=LIVE_TOKENS)
        self.recent: deque[str] = deque(maxlen=LIVE_STEPS)  # timeline rows, HTML
        self.n_steps = self.n_tokens = self.n_spans = self.n_accepted = self.n_judged = 0

    def add(self, steps: list[StepRecord]) -> None:
        if not steps:
            return
        rows = F.step_tokens_frame(steps, self.target_only, self.n_tokens)
        spans = G.live_spans(rows)
        self.spans.extend(spans)
        self.n_spans += len(spans)
        for _, df in rows.groupby(F.STEP, sort=False):
            self.recent.append(G.live_timeline_row(df))
        self.n_steps += len(steps)
        self.n_tokens += sum(len(s.emitted_ids) for s in steps)
        self.n_accepted += sum(s.n_accepted for s in steps)
        self.n_judged += sum(s.n_evaluated for s in steps)

    def html(self, label: str, elapsed_s: float) -> str:
        """The running numbers, the live text (its last pieces) and the timeline of the last
        steps, as one piece of HTML."""
        alpha = f" · running α̂ = {self.n_accepted / self.n_judged:.2f}" if self.n_judged \
            else ""
        status = (f'<div class="sv-status"><b>{label}</b>: step {self.n_steps} · '
                  f"{self.n_tokens} tokens{alpha} · {self.n_tokens / max(elapsed_s, 1e-9):.1f}"
                  " tokens/s (running)</div>")
        kinds = ("target",) if self.target_only else (
            ("accepted", "resampled", "bonus") if self.tree else  # a tree's accepted path
            ("accepted", "resampled", "bonus", "rejected", "unjudged"))
        shown = ("the accepted path of each step's tree" if self.tree else
                 "draft positions 1…γ")
        lead = ('<span style="color:#888">… (earlier text left out while the run goes on) '
                "… </span>" if self.n_spans > len(self.spans) else "")
        return (status + G.legend_html(kinds, tree=self.tree) + G.live_css()
                + G.text_block_html(list(self.spans), lead)
                + f'<div style="margin-top:0.8em;font-weight:600">Token timeline: the last '
                  f"{LIVE_STEPS} steps ({shown}, then the target's token)</div>"
                + G.live_timeline_html(list(self.recent)))


def watch(run: LiveRun, slot) -> None:
    """Paint ``run`` into ``slot`` every FRAME_S seconds until it ends: one HTML element
    with the running numbers, the text and the timeline. (One small HTML update per frame
    is the cheapest thing for the browser to draw; a Markdown element updated at this rate
    costs it several times more CPU, which a decoder sharing the machine feels.) A rerun
    (any click) interrupts this at a paint and lets the run go on; the end of the session
    stops it."""
    painters: dict[str, _Painter] = {}
    tree = run.cfg.tree_shape is not None
    try:
        while not run.done.wait(FRAME_S):
            if not run.parts:
                what = run.progress[0] if run.progress[1] > 0 or run.with_baseline else ""
                slot.caption(f"Starting … {what} (a run of another session goes first)"
                             if not what else f"Measuring: {what} …")
                continue
            label, box = run.parts[-1]
            if label not in painters:
                painters[label] = _Painter(label.startswith("baseline"), tree=tree)
            p = painters[label]
            p.add(box.steps[p.n_steps:len(box.steps)])
            slot.html(_progress_html(run) + p.html(label, box.elapsed()))
    except StopException:  # the session is closing (or the app stops): end the decode
        run.stop.set()
        raise


def _progress_html(run: LiveRun) -> str:
    """A bar with the measurement's progress (rounds done), above the live view."""
    if not run.with_baseline:
        return ""
    what, frac = run.progress
    pct = int(round(100 * frac))
    return (f'<div class="sv-progress" style="margin-bottom:0.4em">Measuring the speed-up: '
            f"{html.escape(what)} ({pct} % done; both paths warmed up, then {run.rounds} "
            "rounds of each, alternated)"
            f'<div style="height:8px;background:#eee;border-radius:4px">'
            f'<div style="height:8px;width:{pct}%;background:#0072B2;border-radius:4px">'
            "</div></div></div>")


def stop_current() -> None:
    """The Stop button's callback: ask this session's running decode to end after its
    current step."""
    run = busy(live_store())
    if run is not None:
        run.stop.set()
