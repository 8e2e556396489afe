"""The Live page's settings (model pair + a DecodeConfig), model loading, bundled traces."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import streamlit as st

from specviz import DEFAULT_TARGET, DecodeConfig, ModelSourceError, Trace, TraceError
from specviz.errors import one_line
from specviz.limits import APP_MAX_NEW_TOKENS, GAMMA_MAX, GAMMA_MIN, TOP_K_MAX
from specviz.measure import ROUNDS
from specviz.models import (
    ALLOW_CUSTOM_ENV,
    GGUF_SOURCES,
    custom_sources_allowed,
    default_draft_for,
    embedded_drafts,
    embedded_targets,
    fetch_embedded,
    is_ready,
)
from specviz.paths import TRACES
from ui import browser
from ui.plain import as_text

TRACES_DIR = TRACES
TRACES_ENV = "SPECVIZ_TRACES_DIR"  # another folder of example traces (tests, deployments)
CUSTOM = "custom…"
DEFAULT_DRAFT = "default (the target's shipped draft, if any)"
NO_DRAFT = "none (prompt lookup or early exit)"
AUTO = "auto"

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

# Sampling presets: settings under which the 135M target still writes sensible text. A high
# temperature with the whole vocabulary (top-p 1, top-k off) lets the small model wander
# into its long tail; top-k and top-p cut that tail off.
SAMPLING = {
    "greedy (τ = 0: the target's top token)": dict(temperature=0.0, top_k=0, top_p=1.0),
    "sampled, focused (τ = 0.6, top-k 40, top-p 0.9)": dict(temperature=0.6, top_k=40,
                                                            top_p=0.9),
    "sampled, varied (τ = 0.8, top-k 40, top-p 0.9)": dict(temperature=0.8, top_k=40,
                                                           top_p=0.9),
}

BASE = DecodeConfig()  # every default the settings start from
# the DecodeConfig fields the page sets (widget key = field name); the rest keep BASE's value
FIELDS = ("gamma", "policy", "temperature", "top_k", "top_p", "seed", "max_new_tokens", "chat",
          "engine", "tree", "early_exit_layers")
EARLY_EXIT_MAX = 64  # layers the page lets early exit keep (the load checks the target's own)
EARLY_EXIT_HELP = (
    "Used by the early-exit drafter only (Drafter: early-exit): the target's first N layers "
    "draft, read out through its own output layer. Each draft costs about N / (the "
    "target's layers) of a target step, and the layers were not trained to be read out "
    "early. On SmolLM2-135M (30 layers) they rarely agree with the target: α̂ 0.03 with 4 "
    "layers (the default), 0.01-0.07 with 8 (the bundled runs, 0.28-0.49x), 0.15 with 16 "
    "(one run of 48 tokens). So on this pair early exit shows the idea but does not pay at "
    "any N: for a gain, use the draft model (Drafter: model) or, on repetitive text, prompt "
    "lookup. It pays on targets trained for early exit (LayerSkip), whose first layers "
    "agree much more often.")
# the draft shapes the Live page offers: DecodeConfig.tree -> label
TREES = {"": "chain of γ drafts",
         "2,2,1": "static tree 2-2-1 (10 nodes)",
         "3,2,1": "static tree 3-2-1 (15 nodes)",
         "dynamic:16:6": "dynamic tree, 16 nodes (EAGLE-2)",
         "dynamic:32:6": "dynamic tree, 32 nodes (EAGLE-2)",
         "dynamic:64:7:8": "dynamic tree, 64 nodes, top-8 (EAGLE-2)"}
# The Live page's inputs, kept for the session while other pages show (Streamlit forgets a
# widget's value on a page run that does not draw it)
KEPT = ("prompt", "preset", "sampling_preset", "with_baseline", "rounds", "target", "draft",
        "drafter", "target_custom", "draft_custom", *FIELDS)


def keep_settings() -> None:
    """Hold on to the Live page's inputs across pages and across a reload of the browser
    (run before any page draws): a fresh session takes them from the address, and the
    address follows the session's (ui.browser)."""
    defaults, checks = _address_defaults(), _address_checks()
    browser.restore(defaults, checks)
    for key in KEPT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    browser.remember(defaults)


def _address_defaults() -> dict:
    """The settings the address may hold, with their defaults (custom model sources are
    never put there: a link must not choose which files the server loads)."""
    targets = _targets()
    return {"prompt": PRESETS["story"], "preset": next(iter(PRESETS)),
            "sampling_preset": next(iter(SAMPLING)), "with_baseline": True, "rounds": ROUNDS,
            "target": DEFAULT_TARGET if DEFAULT_TARGET in targets else targets[0],
            "draft": DEFAULT_DRAFT, "drafter": AUTO,
            **{name: getattr(BASE, name) for name in FIELDS}}


def _address_checks() -> dict:
    """What a setting read back from the address must satisfy (the widgets' options and
    ranges), so an edited link cannot break the page."""
    from specviz.core.policies import POLICIES
    from specviz.decoding import DRAFTERS, ENGINES
    from ui.live import MAX_ROUNDS

    def within(lo, hi):
        return lambda v: lo <= v <= hi

    return {"prompt": lambda v: 0 < len(v) <= browser.MAX_PROMPT_CHARS,
            "preset": PRESETS.__contains__, "sampling_preset": SAMPLING.__contains__,
            "rounds": within(1, MAX_ROUNDS),
            "target": lambda v: v in _targets() and v != CUSTOM,
            "draft": lambda v: v in _drafts() and v != CUSTOM,
            "drafter": lambda v: v in (AUTO, *DRAFTERS), "engine": lambda v: v in ENGINES,
            "policy": lambda v: v in POLICIES, "tree": TREES.__contains__,
            "gamma": within(GAMMA_MIN, GAMMA_MAX), "temperature": within(0.0, 2.0),
            "top_k": within(0, TOP_K_MAX), "top_p": within(0.05, 1.0),
            "seed": within(0, 2**31 - 1),
            "max_new_tokens": lambda v: 8 <= v <= APP_MAX_NEW_TOKENS and v % 8 == 0,
            "early_exit_layers": within(1, EARLY_EXIT_MAX)}


@dataclass(frozen=True)
class Settings:
    """What a Run uses: the model sources and a DecodeConfig (its drafter possibly "auto":
    the pair's default, known once the pair is loaded)."""

    target: str
    draft: str | None  # "default", None (no draft) or a source
    decode: DecodeConfig
    draft_int8: bool = False  # the draft model's linear layers in int8 (CPU, eager)

    def config(self, default_drafter: str) -> DecodeConfig:
        """The DecodeConfig of the run, "auto" resolved to the pair's default drafter."""
        if self.decode.drafter == AUTO:
            return replace(self.decode, drafter=default_drafter)
        return self.decode

    def describe(self) -> str:
        """One line naming every setting of the run."""
        d = self.decode
        shape = TREES.get(d.tree, d.tree) if d.tree else f"γ = {d.gamma} ({d.policy})"
        int8 = " (int8 weights)" if self.draft_int8 else ""
        return (f"target {self.target} · draft {self.draft or 'none'}{int8} · "
                f"drafter {d.drafter} "
                f"· {shape} · τ = {d.temperature:g} · top-k {d.top_k} · "
                f"top-p {d.top_p:g} · seed {d.seed} · max {d.max_new_tokens} tokens · "
                f"engine {d.engine}" + ("" if d.chat else " · no chat template"))


def app_custom_sources() -> bool:
    """Custom model sources (hf: ids, folders on the server) in the app only where the
    deployment turns them on: SPECVIZ_ALLOW_CUSTOM_MODELS=1 (true, yes, on). Unset, they are
    off here (fail closed); the CLI, run by the machine's own user, allows them when unset."""
    return os.environ.get(ALLOW_CUSTOM_ENV) is not None and custom_sources_allowed()


def _is_custom(source: str | None) -> bool:
    return source not in (None, "default") and not str(source).startswith("embedded:")


def _targets() -> list[str]:
    return embedded_targets() + ([CUSTOM] if app_custom_sources() else [])


def _drafts() -> list[str]:
    return [DEFAULT_DRAFT, NO_DRAFT, *embedded_drafts()] + (
        [CUSTOM] if app_custom_sources() else [])


def _default(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def init_settings() -> None:
    """Give every settings widget its starting value once per session: the DecodeConfig
    defaults (greedy, γ = 4, …), the embedded target with its shipped draft."""
    targets = _targets()
    _default("target", DEFAULT_TARGET if DEFAULT_TARGET in targets else targets[0])
    _default("draft", DEFAULT_DRAFT)
    _default("drafter", AUTO)
    _default("draft_int8", False)
    _default("with_baseline", True)  # a Run measures its speed-up unless told not to
    _default("rounds", ROUNDS)
    for name in FIELDS:
        _default(name, getattr(BASE, name))
    if st.session_state.max_new_tokens > APP_MAX_NEW_TOKENS:
        st.session_state.max_new_tokens = APP_MAX_NEW_TOKENS


def use_sampling_preset(name: str) -> None:
    """Set τ, top-k and top-p from a sampling preset (a widget callback: before the form)."""
    for key, value in SAMPLING[name].items():
        st.session_state[key] = value


def settings_ui() -> Settings:
    """The settings of a Run, drawn inside the Live page's form (so a Run reads them all at
    the click, exactly as shown): model pair, drafter, engine, and the DecodeConfig fields
    a user sets. Widget defaults come from DecodeConfig; limits from specviz.limits."""
    init_settings()
    target, draft_choice = _pair_ui()
    t_custom, d_custom = _custom_sources_ui()
    _drafting_ui()
    _sampling_ui()
    ss = st.session_state
    decode = replace(BASE, drafter=ss.drafter, **{name: ss[name] for name in FIELDS})
    if draft_choice == DEFAULT_DRAFT:
        draft: str | None = "default"
    elif draft_choice == NO_DRAFT:
        draft = None
    elif draft_choice == CUSTOM:
        draft = d_custom or None
    else:
        draft = draft_choice
    return Settings(target=t_custom if target == CUSTOM else target, draft=draft,
                    decode=decode, draft_int8=bool(ss.draft_int8 and draft is not None))


INT8_HELP = ("The draft model's linear layers stored as int8 (one scale per row): on a "
             "CPU it reads a quarter of the bytes, so a drafted token costs less; the output "
             "is unchanged (the target verifies every token), acceptance may drop a little. "
             "CPU and the eager engine only. On the 1.5B pair over 24 prompts, one bench run on "
             "a 2-core CPU: 1.21-1.24x instead of 0.99-1.01x (docs/qwen.md).")

DRAFT_HELP = ("default: the draft shipped with the target, if any "
              "(embedded:smollm2-draft for embedded:smollm2-135m-instruct, "
              "embedded:qwen2.5-coder-0.5b-instruct for embedded:qwen2.5-coder-1.5b-instruct). "
              "none: no draft model, for prompt lookup or early exit.")


def _pair_ui() -> tuple[str, str]:
    """Target and draft, a row each (their names are long: half a row at 1024 px cut them),
    then drafter, engine and the draft's shape; returns the target's and the draft's
    choice."""
    from specviz.decoding import DRAFTERS, ENGINES
    target = st.selectbox("Target (p)", _targets(), key="target",
                          help="embedded:smollm2-135m-instruct is a real 135M chat model "
                               "(the first load converts it, about a minute). "
                               "embedded:qwen2.5-coder-1.5b-instruct (Qwen, Apache-2.0) "
                               "with its 0.5B sibling as draft is the pair where "
                               "speculative decoding pays (first load: a 1.6 GB download "
                               "and 5-10 minutes of conversion; 9.6 GB of memory). "
                               "embedded:tiny-random-target needs no download; its text is "
                               "gibberish but shows the mechanics at once.")
    draft_choice = st.selectbox("Draft (q)", _drafts(), key="draft", help=DRAFT_HELP)
    st.checkbox("Draft with int8 weights (CPU)", key="draft_int8", help=INT8_HELP)
    c = st.columns(3)
    c[0].selectbox("Drafter", [AUTO, *DRAFTERS], key="drafter",
                   help="auto: the drafter measured fastest for the pair and device: the "
                        "feature head on a GPU or in half precision, the draft model on a "
                        "CPU in float32 (whichever the pair has), else prompt lookup.")
    c[1].selectbox("Engine", list(ENGINES), key="engine",
                   help="auto: CUDA graphs on a GPU, else transformers' eager forward. "
                        "static: static KV caches without graphs. graphs needs a CUDA "
                        "device and a Llama-family pair.")
    c[2].selectbox("Draft shape", list(TREES), format_func=TREES.__getitem__, key="tree",
                   help="A chain drafts γ tokens in a row. A token tree drafts several "
                        "continuations and the target checks them all in one pass (a tree "
                        "mask): a static tree has a fixed number of children per depth; a "
                        "dynamic tree grows where the draft is confident. Trees are drafted "
                        "by the draft model or the feature head (not by prompt lookup) and "
                        "run on the static engine (graphed on a GPU); γ and its policy apply "
                        "to chains.")
    return target, draft_choice


def _custom_sources_ui() -> tuple[str, str]:
    """The custom target and draft sources, where this deployment allows them."""
    if not app_custom_sources():
        st.caption("Custom model sources are turned off on this deployment.")
        return "", ""
    with st.expander("Custom model sources (used when Target or Draft is custom…)"):
        t_custom = st.text_input("Target source", key="target_custom",
                                 placeholder="hf:ORG/NAME or /path/to/model").strip()
        d_custom = st.text_input("Draft source", key="draft_custom",
                                 placeholder="hf:ORG/NAME or /path/to/model").strip()
    return t_custom, d_custom


def _drafting_ui() -> None:
    """γ, its policy, the length and early exit's layer count (four to a row, short labels:
    they read at 1024 px)."""
    from specviz.core.policies import POLICIES
    c = st.columns(4)
    c[0].slider("γ (drafts per step)", GAMMA_MIN, GAMMA_MAX, key="gamma")
    c[1].selectbox("γ policy", list(POLICIES), key="policy")
    c[2].slider("max new tokens", 8, APP_MAX_NEW_TOKENS, step=8, key="max_new_tokens")
    c[3].number_input("early-exit layers", 1, EARLY_EXIT_MAX, key="early_exit_layers",
                      help=EARLY_EXIT_HELP)


def _sampling_ui() -> None:
    """τ, top-k, top-p, the seed, the chat template."""
    c = st.columns(4)
    c[0].slider("τ (0 = greedy)", 0.0, 2.0, step=0.05, key="temperature",
                help="The temperature: 0 decodes greedily (the top token).")
    c[1].number_input("top-k (0 = off)", 0, TOP_K_MAX, key="top_k")
    c[2].slider("top-p", 0.05, 1.0, step=0.05, key="top_p")
    c[3].number_input("seed", 0, 2**31 - 1, key="seed")
    st.checkbox("chat template", key="chat",
                help="Wrap the prompt in the target's chat template.")


@st.cache_resource(show_spinner="Loading the models …", max_entries=4)
def get_pair(target: str, draft: str | None, draft_int8: bool = False):
    """Load a model pair once per process, keyed by its source strings. Draws nothing (a
    cached function that draws fails when Streamlit replays it): the slow first step, the
    conversion of the embedded target, reports its progress in ``load_pair_ui``."""
    from transformers.utils import logging as hf_logging

    from specviz.models import load_pair
    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the server log
    pair = in_torch_thread(partial(load_pair, draft_int8=draft_int8), target, draft)
    quiet_tokenizer(pair.tokenizer)
    return pair


# One thread for the server's model work, loading and decoding. On a CPU, torch runs its
# parallel work in OpenMP thread pools, one pool per thread that starts parallel work; once
# two threads hold pools there are more pool threads than cores, the pools stop spinning
# between operations and every small operation pays a wake-up: a decode in a second thread
# ran at 20 tokens/s where the thread that had loaded the models ran it at 31 (2-core Xeon).
TORCH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="specviz-torch")


def in_torch_thread(fn, *args):
    """fn(*args) run in the models' thread; waits for it (after any run decoding there)."""
    return TORCH_THREAD.submit(fn, *args).result()


def quiet_tokenizer(tok) -> None:
    """Turn off the clean-up of tokenization spaces where transformers ignores it anyway
    (BPE tokenizers), so that decoding text does not warn in the server log. The decoded
    text is unchanged."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        tok.clean_up_tokenization_spaces = False


def _prepare_embedded(target: str, draft: str | None = "default") -> None:
    """Fetch and convert the embedded target (and its draft) on first use, with a progress
    bar per part downloaded and per tensor converted (outside the cache: a cached function
    must not draw)."""
    draft = default_draft_for(target) if draft == "default" else draft
    names = [s.split(":", 1)[1] for s in (target, draft) if s and s.startswith("embedded:")]
    todo = [n for n in names if n in GGUF_SOURCES and not is_ready(n)]
    if not todo:
        return
    bar = st.empty()

    def progress(message: str, fraction: float | None) -> None:
        bar.progress(min(max(fraction or 0.0, 0.0), 1.0), text=message)

    try:
        for name in todo:
            fetch_embedded(name, progress=progress)
    finally:
        bar.empty()


def load_pair_ui(s: Settings):
    """The cached pair for the settings' sources (the first load shows its progress); None,
    with a message, when it cannot be loaded."""
    if not s.target:
        st.error("Give a target model source (Custom model sources).")
        return None
    custom = [x for x in (s.target, s.draft) if _is_custom(x)]
    if custom and not app_custom_sources():  # whatever the session state holds
        st.error("Custom model sources are turned off on this deployment; choose an "
                 "embedded model.")
        return None
    try:
        _prepare_embedded(s.target, s.draft)
        return get_pair(s.target, s.draft, s.draft_int8)
    except ModelSourceError as e:
        if custom:  # one message whatever the reason: no word on which server folders exist
            print(f"specviz: custom model source refused: {one_line(e)}", file=sys.stderr)
            st.error(f"Cannot load the models: {as_text(', '.join(custom))} cannot be loaded "
                     "here. Give a model folder with config.json and safetensors weights, or "
                     "hf:ORG/NAME.")
            return None
        st.error(f"Cannot load the models: {as_text(e)}")
    except MemoryError:
        st.error("Out of memory while loading the models; choose a smaller pair.")
    except Exception as e:  # a clear line, never a traceback
        st.error(f"Cannot load the models: {as_text(one_line(e))}")
    return None


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
