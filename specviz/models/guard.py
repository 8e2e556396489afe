"""What a model folder would allocate, checked before anything is allocated.

``from_pretrained`` builds the model that ``config.json`` describes and then fills it from the
weights; a weight the files lack is allocated and initialized at random. So a config that
declares 8 billion parameters beside a safetensors file of a few kilobytes takes 32 GB of
memory, and a public app would let any visitor do that. Before a load:

1. the safetensors headers are read (no tensor data; a header over 100 MB is refused) and
   their parameters counted (a Hub model: its snapshot in the local cache; one not cached
   yet is not checked, since the guard makes no request);
2. the config's size is estimated from its numbers (layers, widths, vocabulary) without
   building anything: far more than the weights hold is refused at once;
3. otherwise the model is built on the ``meta`` device (no memory) and its parameters
   counted exactly: the weights must cover them (``MIN_COVERED``);
4. what the parameters take in the requested dtype must fit the memory this machine (or its
   container) has available now, and on a GPU its free memory.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from . import ModelSourceError  # the package defines it before this module is imported

MAX_HEADER_BYTES = 100_000_000  # as the safetensors library itself allows
MIN_COVERED = 0.9  # the weights must hold this share of the config's parameters
MEMORY_SHARE = 0.9  # of the memory available now, what one model may take


def safetensors_params(folder: Path) -> tuple[int, int]:
    """(parameters, files) of the *.safetensors files in ``folder``, from their headers."""
    total, files = 0, 0
    for path in sorted(folder.glob("*.safetensors")):
        files += 1
        try:
            with open(path, "rb") as f:
                raw = f.read(8)
                if len(raw) < 8:
                    raise ModelSourceError(f"{path.name} is not a safetensors file (too short)")
                (n,) = struct.unpack("<Q", raw)
                if n > MAX_HEADER_BYTES:
                    raise ModelSourceError(f"{path.name} has a safetensors header of {n:,} "
                                           f"bytes; at most {MAX_HEADER_BYTES:,} are read")
                header = json.loads(f.read(n))
        except ModelSourceError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise ModelSourceError(f"{path.name}: not a readable safetensors header "
                                   f"({type(e).__name__})") from None
        if not isinstance(header, dict):
            raise ModelSourceError(f"{path.name}: not a readable safetensors header")
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if not isinstance(shape, list) or not all(
                    isinstance(d, int) and d >= 0 for d in shape):
                raise ModelSourceError(f"{path.name}: tensor {name[:60]!r} has no valid shape")
            count = 1
            for d in shape:
                count *= d
            total += count
    return total, files


def _get(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def estimate_params(config) -> int | None:
    """A lower bound on a decoder's parameters from its config's numbers (embeddings, and per
    layer two h x h attention matrices and two h x intermediate MLP matrices); None when the
    config does not name them."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    h = _get(text, "hidden_size", "n_embd", "d_model")
    layers = _get(text, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _get(text, "vocab_size")
    if h is None or layers is None or vocab is None:
        return None
    inter = _get(text, "intermediate_size", "n_inner", "ffn_dim", default=4 * h) or 4 * h
    return max(vocab, 0) * max(h, 0) + max(layers, 0) * (2 * h * h + 2 * h * inter)


def exact_params(config) -> int:
    """The config's parameters, counted on a model built on the meta device (no memory);
    shared (tied) parameters once."""
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return sum(p.numel() for p in model.parameters())


def available_memory() -> int | None:
    """Bytes of memory available now: MemAvailable, or less where a cgroup limit says so."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            left = int(limit) - used
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def check_allocation(folder: str | os.PathLike, dtype: torch.dtype,
                     device: torch.device | str = "cpu") -> None:
    """Refuse (ModelSourceError, one line: "cannot load FOLDER: why") a local model folder
    whose config would allocate far more than its safetensors weights hold, or more than
    this machine can hold, before anything is allocated. A folder without config.json or
    weights is left to the loader."""
    try:
        if Path(folder).is_dir():
            _check(Path(folder), dtype, device)
        else:
            _check_hub(str(folder), dtype, device)
    except ModelSourceError as e:
        raise ModelSourceError(f"cannot load {folder}: {e}") from None


def _check_hub(repo: str, dtype: torch.dtype, device: torch.device | str) -> None:
    """A Hub model in the local cache: its snapshot, checked as a folder. One not cached yet is
    left to the loader (the guard makes no request: the loader first tries the cache alone,
    and an unreachable Hub must fail fast)."""
    from huggingface_hub import snapshot_download
    try:
        cached = Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not (completely) in the cache, or not a Hub id
        return
    _check(cached, dtype, device)


def _check(folder: Path, dtype: torch.dtype, device: torch.device | str) -> None:
    if not (folder / "config.json").is_file():
        return
    stored, files = safetensors_params(folder)
    if files == 0:
        return  # the loader says there are no safetensors weights
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False,
                                            local_files_only=True)
    except Exception:
        return  # the loader reports a broken config in its own words
    _judge(config, stored, dtype, device)


def _judge(config, stored: int, dtype: torch.dtype, device: torch.device | str) -> None:
    """The config against ``stored`` parameters of weights and the memory available."""
    estimate = estimate_params(config)
    if estimate is not None and estimate > stored / MIN_COVERED + 1_000_000:
        raise ModelSourceError(
            f"config.json declares at least {estimate:,} parameters but the weights hold "
            f"{stored:,}; the rest would be allocated and filled at random, so the model "
            "is not loaded")
    n = exact_params(config)
    if n > stored / MIN_COVERED + 1_000_000:
        raise ModelSourceError(
            f"config.json makes a model of {n:,} parameters but the weights hold {stored:,} "
            f"(less than {MIN_COVERED:.0%}); the rest would be filled at random, so the "
            "model is not loaded")
    need = n * torch.empty((), dtype=dtype).element_size()
    avail = available_memory()
    if avail is not None and need > MEMORY_SHARE * avail:
        raise ModelSourceError(f"the model takes {_gb(need)} in {str(dtype)[6:]}; this "
                               f"machine has {_gb(avail)} of memory available")
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        if need > MEMORY_SHARE * free:
            raise ModelSourceError(f"the model takes {_gb(need)} in {str(dtype)[6:]}; "
                                   f"{device} has {_gb(free)} free")
