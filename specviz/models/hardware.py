"""The device and dtype a pair runs on, and what a run records about the machine."""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path

import torch

from ..errors import clean
from .sources import ModelSourceError

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
