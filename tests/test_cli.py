"""The command line: a real run on tiny models, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest
import torch

from specviz import read_traces
from specviz.cli import main
from specviz.tiny import tiny_model, tiny_tokenizer

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


def test_bench_refuses_graphs_without_cuda_and_unknown_engines(capsys):
    assert main(["bench", *TINY, "--prompt", "hi", "--engines", "warp"]) == 2
    assert "--engines takes eager, static and graphs" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", *TINY, "--prompt", "hi", "--engines", "graphs"]) == 2
        assert "needs a CUDA device" in capsys.readouterr().err


def test_a_run_that_fails_before_decoding_leaves_no_empty_file(tmp_path):
    out = tmp_path / "t.jsonl"
    assert main(["run", *TINY, "--prompt", "ab" * 300, "--out", str(out)]) == 2
    assert not out.exists()
