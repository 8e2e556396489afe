"""A local model folder whose config.json would allocate far more than its weights hold, or
more than the machine has, is refused before anything is allocated (issue 29, item 14)."""

import json
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specviz.cli import main
from specviz.models import ModelSourceError, guard
from specviz.models.tiny import tiny_model, tiny_tokenizer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model("target").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _variant(src: Path, dst: Path, **config) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **config}))
    return dst


def test_an_honest_folder_and_the_shipped_draft_pass(tiny_folder):
    guard.check_allocation(tiny_folder, torch.float32)
    stored, files = guard.safetensors_params(tiny_folder)
    assert files == 1 and stored == sum(p.numel() for p in tiny_model("target").parameters())
    from specviz.paths import MODELS
    guard.check_allocation(MODELS / "smollm2-draft", torch.float32)


@pytest.mark.parametrize("config, message", [
    # about 8 x 10^9 parameters over a file of kilobytes
    (dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, vocab_size=128256,
          num_attention_heads=32, num_key_value_heads=8, head_dim=128),
     "config.json declares at least"),
    (dict(num_hidden_layers=10**9), "config.json declares at least"),  # never built
    (dict(vocab_size=10**7), "config.json declares at least"),
])
def test_a_config_far_beyond_its_weights_is_refused_before_allocating(
        tiny_folder, tmp_path, capsys, config, message):
    folder = _variant(tiny_folder, tmp_path / "m", **config)
    with pytest.raises(ModelSourceError, match=message):
        guard.check_allocation(folder, torch.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["run", "--target", str(folder), "--draft", "none", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("specviz: error: ") and message in err, err
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, grown_mb


def test_missing_weights_are_counted_on_a_model_built_on_meta(tiny_folder, monkeypatch):
    """The config's numbers can undercount (experts, extra heads): the exact count comes from
    the model built on the meta device, and weights covering too little of it are refused."""
    monkeypatch.setattr(guard, "estimate_params", lambda config: None)
    monkeypatch.setattr(guard, "exact_params", lambda config: 50_000_000)
    with pytest.raises(ModelSourceError, match="makes a model of 50,000,000 parameters"):
        guard.check_allocation(tiny_folder, torch.float32)


def test_exact_params_build_nothing(tiny_folder):
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(tiny_folder)
    assert guard.exact_params(config) == guard.safetensors_params(tiny_folder)[0]


def test_a_model_larger_than_the_memory_available_is_refused(tiny_folder, monkeypatch):
    monkeypatch.setattr(guard, "available_memory", lambda: 1000)
    with pytest.raises(ModelSourceError, match="this machine has .* of memory available"):
        guard.check_allocation(tiny_folder, torch.float32)


@pytest.mark.parametrize("header, message", [
    (struct.pack("<Q", 10**12), "a safetensors header of 1,000,000,000,000 bytes"),
    (b"\x01", "too short"),
    (struct.pack("<Q", 5) + b"nope!", "not a readable safetensors header"),
    (struct.pack("<Q", 30) + b'{"w": {"shape": [-1, 2]}}     ', "has no valid shape"),
])
def test_bad_safetensors_headers_are_one_line(tiny_folder, tmp_path, header, message):
    folder = _variant(tiny_folder, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(header)
    with pytest.raises(ModelSourceError, match=message):
        guard.check_allocation(folder, torch.float32)


def test_the_guard_runs_in_a_fresh_process_within_bounded_memory(tiny_folder, tmp_path):
    """The issue's case end to end: 8e9 declared parameters; the process stays small."""
    folder = _variant(tiny_folder, tmp_path / "m", hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, vocab_size=128256, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=128)
    code = ("import resource, sys; from specviz.cli import main; "
            f"rc = main(['run', '--target', {str(folder)!r}, '--draft', 'none', '--prompt', "
            "'hi']); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "config.json declares" in out.stderr, out.stderr  # the guard refused it
    # KB: the 32 GB were never allocated (the process itself: torch and transformers imported,
    # well under 1 GB on an idle machine; 2.4 GB was seen once under a loaded full run)
    assert int(out.stdout.split()[-1]) < 4_000_000, out.stderr


def test_a_cached_hub_model_is_checked_as_its_snapshot(tiny_folder, tmp_path, monkeypatch):
    import huggingface_hub
    folder = _variant(tiny_folder, tmp_path / "snap", num_hidden_layers=10**6)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, local_files_only: str(folder))
    with pytest.raises(ModelSourceError, match="cannot load org/model: config.json declares"):
        guard.check_allocation("org/model", torch.float32)

    def not_cached(repo, local_files_only):
        raise FileNotFoundError(repo)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    guard.check_allocation("org/model", torch.float32)  # left to the loader, no request
