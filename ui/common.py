"""The shared sidebar (model pair + decoding parameters), model loading, bundled traces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from specviz import DEFAULT_TARGET, DecodeConfig, ModelSourceError, Trace, TraceError
from specviz.errors import one_line
from specviz.models import custom_sources_allowed, embedded_names, load_pair
from specviz.paths import TRACES
from ui.plain import as_text

TRACES_DIR = TRACES
TRACES_ENV = "SPECVIZ_TRACES_DIR"  # another folder of example traces (tests, deployments)
TINY_TARGET = "embedded:tiny-random-target"
CUSTOM = "custom…"
DEFAULT_DRAFT = "default (the target's shipped draft, if any)"
NO_DRAFT = "none (prompt lookup or early exit)"
AUTO_DRAFTER = "auto"

PRESETS = {
    "story": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "explanation": "Explain in simple words how a refrigerator keeps food cold.",
    "code": "Write a Python function is_palindrome(s) that ignores case and spaces, with a "
            "docstring and two example calls.",
    "summary (repetitive: favours prompt lookup)":
        "Summarise these meeting notes in three sentences, reusing their exact words.\n\n"
        "Notes: The team will ship the new search page on Monday. The new search page loads "
        "results twice as fast. The team will ship the new search page on Monday after the "
        "final review. The final review is on Friday. The new search page loads results "
        "twice as fast because results are cached. The team will ship the new search page "
        "on Monday.",
}


@dataclass(frozen=True)
class Settings:
    """What the sidebar chose: model sources and the decoding parameters."""

    target: str
    draft: str | None  # "default", None (no draft) or a source
    drafter: str  # "auto" (the pair's default) or a drafter name
    gamma: int
    policy: str
    temperature: float
    top_k: int
    top_p: float
    seed: int
    max_new_tokens: int
    chat: bool
    engine: str = "auto"

    def config(self, default_drafter: str) -> DecodeConfig:
        drafter = default_drafter if self.drafter == AUTO_DRAFTER else self.drafter
        return DecodeConfig(drafter=drafter, gamma=self.gamma, policy=self.policy,
                            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                            seed=self.seed, max_new_tokens=self.max_new_tokens,
                            chat=self.chat, engine=self.engine)


def _targets() -> list[str]:
    names = [f"embedded:{n}" for n in embedded_names() if "draft" not in n]
    return names + ([CUSTOM] if custom_sources_allowed() else [])


def _drafts() -> list[str]:
    names = [f"embedded:{n}" for n in embedded_names() if "draft" in n]
    return [DEFAULT_DRAFT, NO_DRAFT, *names] + ([CUSTOM] if custom_sources_allowed() else [])


def _default(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def sidebar_ui() -> Settings:
    """The shared sidebar: model pair and decoding parameters, as plain values."""
    sb = st.sidebar
    sb.header("Model pair")
    targets = _targets()
    _default("target", DEFAULT_TARGET if DEFAULT_TARGET in targets else targets[0])
    target = sb.selectbox("Target (p)", targets, key="target",
                          help="embedded:smollm2-135m-instruct is a real 135M chat model "
                               "(the first load converts it, about a minute). "
                               "embedded:tiny-random-target needs no download; its text is "
                               "gibberish but shows the mechanics at once.")
    if target == CUSTOM:
        target = sb.text_input("Target source", key="target_custom",
                               placeholder="hf:ORG/NAME or /path/to/model").strip()
    _default("draft", DEFAULT_DRAFT)
    draft_choice = sb.selectbox("Draft (q)", _drafts(), key="draft")
    if draft_choice == DEFAULT_DRAFT:
        draft: str | None = "default"
    elif draft_choice == NO_DRAFT:
        draft = None
    elif draft_choice == CUSTOM:
        draft = sb.text_input("Draft source", key="draft_custom",
                              placeholder="hf:ORG/NAME or /path/to/model").strip() or None
    else:
        draft = draft_choice
    if not custom_sources_allowed():
        sb.caption("Custom model sources are turned off on this deployment.")
    _default("drafter", AUTO_DRAFTER)
    drafter = sb.selectbox("Drafter", [AUTO_DRAFTER, "model", "prompt-lookup", "early-exit"],
                           key="drafter", help="auto: the draft model when the pair has one, "
                                               "else prompt lookup.")
    sb.header("Decoding")
    _default("gamma", 4)
    gamma = sb.slider("γ (drafted tokens per step)", 1, 16, key="gamma")
    _default("policy", "fixed")
    policy = sb.selectbox("γ policy", ["fixed", "heuristic", "confidence"], key="policy")
    _default("temperature", 0.0)
    temperature = sb.slider("τ (temperature; 0 = greedy)", 0.0, 2.0, step=0.05,
                            key="temperature")
    _default("top_k", 0)
    top_k = sb.number_input("top-k (0 = off)", 0, 1000, key="top_k")
    _default("top_p", 1.0)
    top_p = sb.slider("top-p", 0.05, 1.0, step=0.05, key="top_p")
    _default("seed", 0)
    seed = sb.number_input("seed", 0, 2**31 - 1, key="seed")
    _default("max_new_tokens", 64)
    max_new = sb.slider("max new tokens", 8, 512, step=8, key="max_new_tokens")
    _default("chat", True)
    chat = sb.checkbox("use the chat template", key="chat")
    _default("engine", "auto")
    engine = sb.selectbox("Engine", ["auto", "eager", "static", "graphs"], key="engine",
                          help="auto: CUDA graphs on a GPU, else transformers' eager forward. "
                               "static: static KV caches without graphs. graphs needs a CUDA "
                               "device and a Llama-family pair.")
    return Settings(target=target, draft=draft, drafter=drafter, gamma=int(gamma),
                    policy=policy, temperature=float(temperature), top_k=int(top_k),
                    top_p=float(top_p), seed=int(seed), max_new_tokens=int(max_new),
                    chat=bool(chat), engine=engine)


def settings() -> Settings:
    """The sidebar's choice for this run of the script (set by app.py)."""
    return st.session_state["settings"]


@st.cache_resource(show_spinner=False, max_entries=4)
def get_pair(target: str, draft: str | None, _progress=None):
    """Load a model pair once per process, keyed by its source strings."""
    kwargs = {"progress": _progress} if _progress is not None else {}
    return load_pair(target, draft, **kwargs)


def load_pair_ui(s: Settings):
    """The cached pair for the sidebar's sources, with a progress bar; None (and a message)
    when it cannot be loaded."""
    if not s.target:
        st.error("Give a target model source in the sidebar.")
        return None
    bar = st.empty()

    def progress(message: str, fraction: float | None) -> None:
        bar.progress(min(max(fraction or 0.0, 0.0), 1.0), text=message)

    try:
        with st.spinner(f"Loading {s.target} …"):
            pair = get_pair(s.target, s.draft, _progress=progress)
    except ModelSourceError as e:
        st.error(f"Cannot load the models: {as_text(e)}")
        return None
    except MemoryError:
        st.error("Out of memory while loading the models; choose a smaller pair.")
        return None
    except Exception as e:  # a clear line, never a traceback
        st.error(f"Cannot load the models: {as_text(short_error(e))}")
        return None
    finally:
        bar.empty()
    return pair


def short_error(e: BaseException) -> str:
    return one_line(e)


def bundled_files() -> list[Path]:
    """The example traces, sorted by name: assets/traces/*.jsonl or $SPECVIZ_TRACES_DIR."""
    folder = Path(os.environ.get(TRACES_ENV) or TRACES_DIR)
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


@st.cache_data(show_spinner=False, max_entries=48)  # room for examples + lesson runs (22)
def read_bundled(path: str, mtime: float) -> list[Trace]:
    """A bundled trace file, parsed once per version of the file."""
    from specviz import read_traces
    return read_traces(path)


def load_bundled(path: Path) -> tuple[list[Trace], str | None]:
    """(traces, error message)."""
    try:
        return read_bundled(str(path), path.stat().st_mtime), None
    except TraceError as e:
        return [], str(e)
