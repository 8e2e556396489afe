"""The command line: a real run on tiny models, and one-line errors for bad input."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specviz import read_traces
from specviz.cli import main
from specviz.models.tiny import tiny_model, tiny_tokenizer

TINY = ["--target", "embedded:tiny-random-target", "--no-chat"]


def test_run_writes_runs_and_baselines_and_prints_a_summary(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "the cat sat"}\n\n{"prompt": "a dog ran"}\n')
    out = tmp_path / "t.jsonl"
    rc = main(["run", *TINY, "--prompts", str(prompts), "--max-new-tokens", "12",
               "--baseline", "--seed", "5", "--temperature", "0.7", "--out", str(out)])
    assert rc == 0
    traces = read_traces(out)
    assert [t.run.mode for t in traces] == ["speculative", "target-only"] * 2
    assert [t.run.config["seed"] for t in traces] == [5, 5, 6, 6]
    assert all(t.complete and t.summary.n_emitted == 12 for t in traces)
    printed = capsys.readouterr().out
    assert "alpha_hat" in printed and "speedup" in printed and str(out) in printed


@pytest.mark.parametrize("args, message", [
    (["--gamma", "0"], "gamma must be between 1 and 32"),
    (["--gamma", "33"], "gamma must be between 1 and 32"),
    (["--temperature", "-1"], "temperature must be >= 0"),
    (["--top-p", "0"], "top-p must lie in (0, 1]"),
    (["--max-new-tokens", "0"], "max new tokens must be between 1 and"),
    (["--gamma", "x"], "invalid int value"),
    (["--drafter", "oracle"], "invalid choice"),
])
def test_bad_settings_fail_in_one_line(args, message, capsys):
    rc = main(["run", *TINY, "--prompt", "hi", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("specviz: error:") and message in err[0]


def test_unknown_model_and_missing_prompt(capsys):
    assert main(["run", "--target", "no/such/dir", "--prompt", "hi"]) == 2
    assert "unknown model source" in capsys.readouterr().err
    assert main(["run", *TINY]) == 2
    assert "give a prompt" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "cannot read prompts file"),
    ("not json\n", "line 1: not valid JSON"),
    ('{"text": "hi"}\n', "line 1: needs a string field 'prompt'"),
    ("\n", "holds no prompts"),
    (b"\xff\xfe", "cannot read prompts file"),
])
def test_bad_prompts_file(tmp_path, capsys, content, message):
    path = tmp_path / "p.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert main(["run", *TINY, "--prompts", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_prompt_longer_than_the_context(capsys):
    assert main(["run", *TINY, "--prompt", "ab" * 300]) == 2
    assert "context holds 512" in capsys.readouterr().err


def test_mismatched_tokenizers_are_refused(tmp_path, capsys):
    other = tmp_path / "other-draft"
    model = tiny_model("draft", vocab_size=80)
    model.save_pretrained(other)
    tok = tiny_tokenizer()
    tok.add_tokens([f"<x{i}>" for i in range(13)])  # same size as the model, other tokens
    tok.save_pretrained(other)
    assert main(["run", *TINY, "--draft", str(other), "--prompt", "hi"]) == 2
    assert "vocabulary sizes" in capsys.readouterr().err
    model = tiny_model("draft")
    model.save_pretrained(other)
    tok = tiny_tokenizer()
    vocab_json = json.loads(tok.backend_tokenizer.to_str())
    vocab_json["model"]["vocab"] = {k if k != "a" else "A2": v
                                    for k, v in vocab_json["model"]["vocab"].items()}
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(vocab_json)),
                            eos_token="</s>").save_pretrained(other)
    assert main(["run", *TINY, "--draft", str(other), "--prompt", "hi"]) == 2
    assert "tokenizers differ" in capsys.readouterr().err


def test_module_entry_point_never_prints_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "specviz", "run", "--prompts",
                          str(tmp_path / "missing.jsonl")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("specviz: error: cannot read prompts file")


def test_custom_sources_can_be_turned_off(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SPECVIZ_ALLOW_CUSTOM_MODELS", "0")
    tiny_model("target").save_pretrained(tmp_path / "m")
    assert main(["run", "--target", str(tmp_path / "m"), "--prompt", "hi"]) == 2
    assert "custom model sources are turned off" in capsys.readouterr().err


def test_bench_measures_every_method_and_writes_json_and_markdown(tmp_path, capsys):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    rc = main(["bench", *TINY, "--prompt", "the cat sat on the mat", "--max-new-tokens", "10",
               "--repeats", "1", "--engines", "eager,static", "--json", str(js),
               "--markdown", str(md)])
    assert rc == 0
    result = json.loads(js.read_text())
    assert set(result["tokens_per_s"]) == {
        "specviz speculative, eager, tracing on", "specviz speculative, eager, tracing off",
        "specviz target-only, eager", "specviz speculative, static, tracing on",
        "specviz speculative, static, tracing off", "specviz target-only, static",
        "transformers assisted generate", "transformers generate (target only)"}
    assert all(v > 0 for v in result["tokens_per_s"].values())
    assert all(result["greedy_output_equals_target_greedy"].values())
    assert result["hardware"]["cpu_count"] >= 1
    for engine in ("eager", "static"):
        f = result["per_engine"][engine]
        assert f["c"] > 0 and f["v"] > 0 and f["predicted_speedup"] > 0
        assert 0 <= f["step_overhead"] < 1
    assert result["fast_engine"] == "static"
    text = md.read_text()
    assert "| transformers assisted generate |" in text and "| static |" in text
    assert "tokens/s" in capsys.readouterr().out


def test_bench_puts_dtypes_side_by_side_in_one_process(tmp_path, capsys):
    js = tmp_path / "b.json"
    rc = main(["bench", *TINY, "--prompt", "the cat sat on the mat", "--max-new-tokens", "8",
               "--repeats", "1", "--engines", "static", "--no-transformers",
               "--dtype", "float32,bfloat16", "--json", str(js)])
    assert rc == 0
    runs = json.loads(js.read_text())["by_dtype"]
    assert [r["target"]["dtype"] for r in runs] == ["float32", "bfloat16"]
    out = capsys.readouterr().out
    assert "| bfloat16 | static |" in out and "prompts equal to float32 target-only" in out
    assert main(["bench", *TINY, "--prompt", "hi", "--dtype", "float32,int3"]) == 2


def test_bench_compares_the_chain_with_trees(tmp_path, capsys):
    js = tmp_path / "t.json"
    rc = main(["bench", *TINY, "--prompt", "the cat sat on the mat", "--max-new-tokens", "8",
               "--repeats", "1", "--trees", "chain 2-2 dynamic:6:3", "--json", str(js)])
    assert rc == 0, capsys.readouterr().err
    rows = json.loads(js.read_text())["rows"]
    assert list(rows) == ["target-only, static", "chain of 4, static",
                          "static tree 2-2 (6 nodes), static",
                          "dynamic tree, 6 nodes, depth 3, top-4, static"]
    assert all(r["prompts_equal_to_target_only"] == 1 for r in rows.values())
    assert "tokens per verification" in capsys.readouterr().out
    assert main(["bench", *TINY, "--prompt", "hi", "--trees", "chain 9-9"]) == 2  # 90 nodes
    assert "at most 64" in capsys.readouterr().err
    assert main(["run", *TINY, "--prompt", "hi", "--tree", "2,2", "--drafter",
                 "prompt-lookup"]) == 2
    assert "drafted by a drafter with a distribution" in capsys.readouterr().err
    rc = main(["bench", *TINY, "--prompt", "the cat sat", "--max-new-tokens", "6",
               "--repeats", "1", "--drafter", "feature-head", "--trees", "chain 2-2",
               "--json", str(js)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(js.read_text())
    assert result["drafter"] == "feature-head"
    assert result["draft"]["source"] == "embedded:tiny-random-head"
    assert all(r["prompts_equal_to_target_only"] == 1 for r in result["rows"].values())


def test_bench_refuses_graphs_without_cuda_and_unknown_engines(capsys):
    assert main(["bench", *TINY, "--prompt", "hi", "--engines", "warp"]) == 2
    assert "--engines takes eager, static, graphs, static+fused, graphs+fused" in \
        capsys.readouterr().err
    if not torch.cuda.is_available():
        for engines in ("graphs", "eager,graphs+fused"):
            assert main(["bench", *TINY, "--prompt", "hi", "--engines", engines]) == 2
            assert "needs a CUDA device" in capsys.readouterr().err


def test_a_run_that_fails_before_decoding_leaves_no_empty_file(tmp_path):
    out = tmp_path / "t.jsonl"
    assert main(["run", *TINY, "--prompt", "ab" * 300, "--out", str(out)]) == 2
    assert not out.exists()


# ---------------------------------------------------------------- bad input, one line, exit 2

def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("specviz:")]
    assert len(err) == 1, err
    assert "\x1b" not in err[0] and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("args, message", [
    (["--temperature", "1e-45"], "temperature 1e-45 is too small"),
    (["--temperature", "inf"], "temperature must be at most 100, got inf"),
    (["--temperature", "nan"], "temperature must be >= 0, got nan"),
    (["--device", "meta"], "unknown device 'meta'; use auto, cpu, cuda or cuda:N"),
    (["--out", ""], "--out is empty"),
    (["--out", "   "], "--out is empty"),
    (["--target", "hf:../dir"], "is not a Hub id: use hf:ORG/NAME"),
    (["--target", "hf:a/b/c"], "is not a Hub id"),
])
def test_more_bad_settings_fail_in_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["run", *TINY, "--prompt", "hi", *args])
    assert rc == 2
    assert message in _one_error_line(capsys)
    assert not list(tmp_path.rglob("*.jsonl"))  # no file, not even an empty one


def test_usage_hint_names_the_command_once(capsys):
    assert main(["specviz", "--help"]) == 2
    line = _one_error_line(capsys)
    assert line.endswith("(see python -m specviz --help)"), line
    assert main(["run", "--gamma"]) == 2
    assert _one_error_line(capsys).endswith("(see python -m specviz run --help)")


def test_out_is_a_directory(tmp_path, capsys):
    assert main(["run", *TINY, "--prompt", "hi", "--out", str(tmp_path)]) == 2
    assert "is a directory" in _one_error_line(capsys)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_full_disk_is_one_line_and_the_device_is_left_alone(capsys):
    rc = main(["run", *TINY, "--prompt", "hi", "--max-new-tokens", "4", "--out", "/dev/full"])
    assert rc == 2
    assert "cannot write /dev/full: No space left on device" in _one_error_line(capsys)
    assert Path("/dev/full").is_char_device()


@pytest.mark.parametrize("content, message", [
    ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "line 1: not valid JSON (nested"),
    ('{"prompt": "a", "prompt": "b"}\n', "line 1: not valid JSON (the key 'prompt' appears"),
    ('{"prompt": "a"}\n{"prompt": NaN}\n', "line 2: not valid JSON"),
    ('{"prompt": "' + "x" * 1_000_001 + '"}\n', "line 1: the prompt has 1,000,001 characters"),
])
def test_prompts_files_that_break_the_reader(tmp_path, capsys, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    assert main(["run", *TINY, "--prompts", str(path)]) == 2
    line = _one_error_line(capsys)
    assert str(path) in line and message in line, line


def test_prompts_split_on_newlines_only(tmp_path):
    """U+2028 and U+0085 inside a prompt are text (JSON leaves them unescaped), as is an
    escaped \\x1c; \\r\\n ends a line like \\n."""
    from specviz.cli import read_prompts
    path = tmp_path / "p.jsonl"
    path.write_bytes('{"prompt": "one\u2028two\u0085three\\u001cfour"}\r\n{"prompt": "2"}\n'
                     .encode("utf-8"))
    assert read_prompts(str(path)) == ["one\u2028two\u0085three\x1cfour", "2"]


def test_a_huge_prompt_is_refused_before_the_models_load(capsys):
    assert main(["run", *TINY, "--prompt", "x" * 10_000_000]) == 2
    line = _one_error_line(capsys)
    assert "the prompt has 10,000,000 characters; at most 1,000,000" in line


def test_a_prompt_that_cannot_fit_is_refused_before_tokenizing(capsys, monkeypatch):
    """Each of the tiny tokenizer's tokens covers at most 5 characters, its context 512
    tokens: 3000 characters cannot fit, and are refused without being tokenized."""
    from specviz import decoding
    calls = []
    monkeypatch.setattr(decoding, "encode_prompt",
                        lambda *a, **k: calls.append(1) or [1] * 10)
    assert main(["run", *TINY, "--prompt", "ab" * 1500]) == 2
    line = _one_error_line(capsys)
    assert "the prompt has 3,000 characters, so at least 600 tokens" in line, line
    assert "context holds 512" in line and calls == []


def test_custom_sources_switch_fails_closed(monkeypatch, tmp_path, capsys):
    tiny_model("target").save_pretrained(tmp_path / "m")
    for value in ("00", "n", "disabled", "maybe", ""):
        monkeypatch.setenv("SPECVIZ_ALLOW_CUSTOM_MODELS", value)
        assert main(["run", "--target", str(tmp_path / "m"), "--prompt", "hi"]) == 2
        line = _one_error_line(capsys)
        assert f"SPECVIZ_ALLOW_CUSTOM_MODELS={value!r} is not one of" in line, line


def _model_dir(path: Path) -> Path:
    """A tiny model's config and tokenizer, without weights."""
    tiny_model("target").config.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_a_pickled_checkpoint_is_never_opened(tmp_path, capsys):
    """Only safetensors are loaded: a pytorch_model.bin whose unpickling would run code (here:
    create a file) is not touched, and the load fails in one line."""
    import pickle
    model = _model_dir(tmp_path / "m")
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    assert main(["run", "--target", str(model), "--draft", "none", "--prompt", "hi"]) == 2
    line = _one_error_line(capsys)
    assert f"cannot load {model}" in line and "safetensors" in line, line
    assert not marker.exists()


def test_a_bad_safetensors_header_is_one_line(tmp_path, capsys):
    model = _model_dir(tmp_path / "m")
    (model / "model.safetensors").write_bytes(b"\xff" * 8 + b"\x1b[31mnot json\x1b[0m")
    assert main(["run", "--target", str(model), "--draft", "none", "--prompt", "hi"]) == 2
    assert f"cannot load {model}" in _one_error_line(capsys)


def test_the_hub_offline_fails_fast_in_one_line(tmp_path):
    """This machine cannot reach the Hub: the command says so within seconds, in one line,
    without a screen of retry warnings."""
    import time
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"))  # an empty cache
    env.pop("HF_HUB_OFFLINE", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "specviz", "run", "--target",
                          "hf:HuggingFaceTB/SmolLM2-135M", "--prompt", "hi"],
                         capture_output=True, text=True, env=env, timeout=120)
    took = time.perf_counter() - t
    if "Hub cannot be reached" not in out.stderr:
        pytest.skip("the Hub is reachable from this machine")
    assert out.returncode == 2
    errors = [x for x in out.stderr.splitlines() if not x.strip().startswith("loading")]
    assert len(errors) == 1 and errors[0].startswith("specviz: error: cannot load hf:"), \
        out.stderr
    assert took < 30, took


# ---------------------------------------------------------------- Ctrl-C

class _Stderr:
    """The lines a running command writes to its standard error, read as they come."""

    def __init__(self, proc):
        import threading
        self.lines: list[str] = []
        self._proc = proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 240.0) -> None:
        """Until a line holding ``text`` was written."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self._proc.poll() is not None:
                raise AssertionError(f"the command ended early: {''.join(self.lines)}")
            time.sleep(0.05)
        self._proc.kill()
        raise AssertionError(f"{text!r} never written: {''.join(self.lines)}")

    def text(self) -> str:
        self._reader.join(timeout=30)
        return "".join(self.lines)


def test_ctrl_c_ends_the_command_and_keeps_the_finished_work(tmp_path):
    """A real SIGINT to a real `python -m specviz run` on the real embedded pair, with several
    prompts and a measured baseline, while the first round's speculative run decodes: that
    run stops after its step and is saved with its summary; no baseline and no further prompt
    starts; exit code 130; no speedup printed."""
    import signal
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Write a long story about a lighthouse keeper."}\n'
                       '{"prompt": "Explain how rain forms."}\n')
    out = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "specviz", "run", "--prompts", str(prompts), "--baseline",
         "--max-new-tokens", "400", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, SPECVIZ_TEST_THREADS="1"))
    err = _Stderr(proc)
    err.wait_for("round 1 of 3: speculative")
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()  # until the command exits (its stderr goes to the reader)
    proc.wait(timeout=120)
    stderr = err.text()
    assert proc.returncode == 130, stderr
    traces = read_traces(out)
    assert len(traces) == 1  # neither the baseline nor the second prompt started
    trace = traces[0]
    assert trace.run.mode == "speculative" and trace.complete
    assert trace.summary.stop_reason == "stopped"
    assert trace.summary.n_emitted < 400
    assert "x " not in stdout.split("speedup", 1)[1] and "stopped" in stdout
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_ctrl_c_during_the_baseline_prints_no_speedup(tmp_path):
    """Interrupted in the first round's target-only run: the round's finished speculative run
    is kept, the measurement is not (no speedup from a stopped run against a finished one)."""
    import signal
    out = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "specviz", "run", "--prompt", "Tell me about the sea.",
         "--baseline", "--max-new-tokens", "40", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = _Stderr(proc)
    err.wait_for("round 1 of 3: target alone")
    proc.send_signal(signal.SIGINT)
    stdout = proc.stdout.read()  # until the command exits (its stderr goes to the reader)
    proc.wait(timeout=120)
    stderr = err.text()
    assert proc.returncode == 130, stderr
    (spec,) = read_traces(out)
    assert spec.run.mode == "speculative" and spec.summary.stop_reason != "stopped"
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] == ["1"]]
    assert [r[1] for r in rows] == ["speculative"] and rows[0][-2] == "-", stdout
    assert "Traceback" not in stderr


def test_the_summary_shows_no_speedup_for_a_stopped_run(capsys):
    from specviz.cli import _print_summary
    from tests._traces import tiny_runs
    runs = tiny_runs()
    spec, base = runs["greedy"], runs["greedy-base"]
    _print_summary([(0, "speculative", spec), (0, "target-only", base)], Path("x"))
    assert "x  " in capsys.readouterr().out.splitlines()[1]  # matched runs: a speedup
    stopped = dataclasses.replace(
        base, summary=dataclasses.replace(base.summary, stop_reason="stopped"))
    _print_summary([(0, "speculative", spec), (0, "target-only", stopped)], Path("x"))
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[-2] == "-", row


def test_bench_fuses_the_layers_only_for_its_fused_engines():
    """An engine named with "+fused" runs with the static engine's layers compiled; the
    others, and everything after, run without."""
    from specviz.cli.bench import _with_fusion
    from specviz.engines.static import fused_layers
    seen = []
    _with_fusion("static+fused", lambda: seen.append(fused_layers()))()
    _with_fusion("static", lambda: seen.append(fused_layers()))()
    assert seen == [True, False] and not fused_layers()
