"""A feature head for a qwen2 target (Qwen2.5-Coder-1.5B-Instruct's shape, made tiny): features
from several layers, a smaller MLP, a reduced vocabulary and packed weights; the head drafter
stays exact on every engine that runs the target; the replayed α̂ is the decoder's; the packed
head for the 1.5B's shapes fits the size limit; and the GPU script runs end to end in its tiny
mode."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.distill.agreement import draft_counts, head_counts, target_pass
from specviz.distill.head import _new_head, train_head
from specviz.distill.qwen_head import tiny_qwen2
from specviz.models import feature_head as fh
from specviz.models.feature_head import (
    HeadConfig,
    default_feature_layers,
    load_head,
    packed_nbytes,
    save_head,
)
from tests.test_feature_head import _first_tokens, _p_first
from tests.test_verify import chi_square_pvalue

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "the cat sat on the mat and the cat sat"
# the head's reduced vocabulary (q is zero elsewhere): low ids and what the tiny qwen2 target
# writes early on after PROMPT (so that drafts can be right), not what it writes later
VOCAB_IDS = tuple(range(3, 45)) + (112, 234)


def _llama_with_biases():
    """Qwen2's layer as the static engine runs it: a Llama with q/k/v (and o) biases."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(5)
    m = LlamaForCausalLM(LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        attention_bias=True, rope_theta=1e6, bos_token_id=1, eos_token_id=2, pad_token_id=2,
        tie_word_embeddings=False))
    with torch.no_grad():
        m.lm_head.weight.mul_(8.0)
        m.lm_head.weight[:3] = 0.0
    return m.eval()


def _pair(target, layers, vocab_ids=VOCAB_IDS, seed: int = 0):
    """The tiny pair's tokenizer with ``target`` and a (perturbed, fresh) head reading
    ``layers``, MLP width 96 (the target's: 128)."""
    base = load_pair("embedded:tiny-random-target", device="cpu")
    torch.manual_seed(seed)
    head = _new_head(target, vocab_ids, "tiny", torch.device("cpu"), 96, layers)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return dataclasses.replace(base, target=target, head=head.eval(), draft=None)


@pytest.fixture(scope="module")
def qwen():
    return tiny_qwen2(0)


@pytest.mark.parametrize("layers", [None, (1, 2, 4)])
def test_head_drafter_on_a_qwen2_target_is_lossless(qwen, layers):
    pair = _pair(qwen, layers)
    assert pair.head.cfg.intermediate == 96 and pair.head.feature_width == 64 * (
        3 if layers else 1)
    base = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=30, chat=False))
    for gamma in (1, 4):
        trace = speculative_decode(pair, PROMPT, DecodeConfig(
            drafter="feature-head", gamma=gamma, max_new_tokens=30, chat=False))
        assert trace.summary.output_token_ids == base.summary.output_token_ids
        assert trace.summary.n_accepted > 0
        assert all(t in VOCAB_IDS for s in trace.steps for t in s.drafted_ids)


@pytest.mark.parametrize("kind", ["qwen2", "llama with biases"])
def test_static_engine_reads_the_same_layers_as_transformers(kind):
    """Several layers' features on the static engine (a qwen2 model, and a Llama with Qwen2's
    biases): the static pass writes what transformers' hidden states hold, so both engines
    draft alike, chains and trees."""
    pair = _pair(tiny_qwen2(0) if kind == "qwen2" else _llama_with_biases(), (0, 2, 4))
    cfg = DecodeConfig(drafter="feature-head", gamma=3, max_new_tokens=30, chat=False)
    runs = {e: speculative_decode(pair, PROMPT, dataclasses.replace(cfg, engine=e))
            for e in ("eager", "static")}
    base = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=30, chat=False))
    for trace in runs.values():
        assert trace.summary.output_token_ids == base.summary.output_token_ids
    assert [s.drafted_ids for s in runs["eager"].steps] == \
        [s.drafted_ids for s in runs["static"].steps]
    tree = speculative_decode(pair, PROMPT, dataclasses.replace(
        cfg, engine="static", tree="2,2,1"))
    assert tree.summary.output_token_ids == base.summary.output_token_ids


def test_sampled_runs_follow_p_with_a_reduced_vocabulary(qwen):
    pair = _pair(qwen, (1, 2, 4))
    p = _p_first(pair)
    keep = p > 0.01

    def binned(x):
        return torch.cat([x[keep], x[~keep].sum()[None]])

    exact = _first_tokens(pair, "exact", 800)
    wrong = _first_tokens(pair, "correction-from-p", 800)
    assert chi_square_pvalue(binned(exact), binned(p)) > 1e-3
    assert chi_square_pvalue(binned(wrong), binned(p)) < 1e-6


@pytest.mark.parametrize("packing", ["bfloat16", "int8"])
def test_packed_head_loads_back_and_drafts_alike(qwen, tmp_path, monkeypatch, packing):
    monkeypatch.setattr(fh, "_INT8_MIN_NUMEL", 1024)  # the tiny head's matrices go int8 too
    pair = _pair(qwen, (1, 2, 4))
    folder = save_head(pair.head, tmp_path / packing, packing)
    size = (folder / "model.safetensors").stat().st_size
    assert size <= packed_nbytes(pair.head.cfg, packing) <= size + 128
    back = load_head(folder, torch.device("cpu"), torch.float32)
    assert back.cfg == pair.head.cfg
    for k, v in pair.head.state_dict().items():  # bfloat16: 3 digits; int8: 1 / 254 of a row
        tol = 1e-2 if packing == "bfloat16" else 2e-2
        assert (back.state_dict()[k] - v).abs().max() <= tol * max(v.abs().max(), 1e-3), k
    again = load_head(folder, torch.device("cpu"), torch.float32)
    for k, v in back.state_dict().items():  # loading is deterministic
        assert torch.equal(again.state_dict()[k], v)
    packed = dataclasses.replace(pair, head=back)
    cfg = DecodeConfig(drafter="feature-head", gamma=3, max_new_tokens=24, chat=False)
    a = speculative_decode(pair, PROMPT, cfg).summary
    b = speculative_decode(packed, PROMPT, cfg).summary
    assert a.output_token_ids == b.output_token_ids
    assert abs(a.n_accepted - b.n_accepted) <= 2


def test_shipped_files_for_the_15b_fit_the_limit():
    """The 1.5B's shapes (hidden 1536, 12 / 2 heads of 128, 151,936 tokens, 28 layers) with
    the pipeline's defaults: computed from the shapes, no weights made."""
    L = 28
    cfg = HeadConfig(1536, 12, 2, 128, 1536, 1e-6, 151936, tuple(range(32768)),
                     feature_layers=default_feature_layers(L))
    assert cfg.feature_layers == (2, 14, 28)
    assert packed_nbytes(cfg) <= 50_000_000
    assert packed_nbytes(cfg, "int8") <= 26_000_000
    big = dataclasses.replace(cfg, intermediate=8960)  # the target's own MLP width: too big
    assert packed_nbytes(big) > 50_000_000 and packed_nbytes(big, "int8") > 50_000_000
    config_json = len(json.dumps(list(range(151936 - 32768, 151936)))) + 1000
    assert packed_nbytes(cfg) + config_json <= 64_000_000


def test_replayed_alpha_is_the_decoders(qwen):
    """α̂ replayed from one teacher-forced pass (specviz.distill.agreement) equals what greedy
    speculative decoding counted: the same drafts kept and steps made (the decoder judges
    one position fewer on the run's last step)."""
    pair = _pair(qwen, (1, 2, 4))
    pair = dataclasses.replace(pair, draft=tiny_qwen2(0, drift=0.003))
    for drafter in ("feature-head", "model"):
        trace = speculative_decode(pair, PROMPT, DecodeConfig(
            drafter=drafter, gamma=4, max_new_tokens=30, chat=False))
        s, n = trace.summary, len(trace.run.prompt_token_ids)
        tp = target_pass(qwen, list(trace.run.prompt_token_ids) + list(s.output_token_ids),
                         pair.head.cfg.feature_layers)
        c = (head_counts(pair.head, qwen, tp, n, 4) if drafter == "feature-head" else
             draft_counts(pair.draft, tp, n, 4))
        assert (c["accepted"], c["steps"]) == (s.n_accepted, s.n_steps), drafter
        assert c["accepted"] > 0


def test_training_a_multi_layer_head_with_the_feature_store(qwen):
    """The feature store gives the losses the target's own pass gives (same batch), and a
    short run with it trains a head that reads several layers."""
    from specviz.distill.features import FeatureStore
    from specviz.distill.head import _losses
    from specviz.distill.train import autocast_for
    rng = np.random.default_rng(0)
    seqs = [rng.integers(3, 60, size=int(rng.integers(10, 30))) for _ in range(12)]
    head = _pair(qwen, (1, 4)).head
    subset = head.vocab_ids
    out_w = head.out_weight(qwen.lm_head.weight).float()
    store = FeatureStore(qwen, seqs, (1, 4), max_tokens=4096, max_len=64,
                         autocast=autocast_for(torch.device("cpu")), log=lambda m: None)
    (ids, mask, given), = store.all_batches(subset, qwen.lm_head.weight)
    with torch.no_grad():
        a, _ = _losses(head, qwen, ids, mask, subset, 2, out_w, given)
        b, _ = _losses(head, qwen, ids, mask, subset, 2, out_w)
    for x, y in zip(a, b):
        assert abs(float(x) - float(y)) < 5e-2 * abs(float(y))  # features kept in bfloat16
    trained, info = train_head(qwen, seqs * 4, vocab_size=30, depth=2, max_seconds=2,
                               max_tokens=1024, max_len=48, eval_every=10 ** 6,
                               intermediate=80, feature_layers=(1, 4), cache=True)
    assert trained.cfg.feature_layers == (1, 4) and trained.cfg.intermediate == 80
    assert info["steps"] > 0 and info["feature_cache"] and "agree_2" in info["final"]


def test_gpu_script_runs_end_to_end_in_its_tiny_mode(tmp_path):
    """scripts/gpu/qwen_head.sh --tiny: data, training, evaluation (head variants against
    the draft model), packing with the card, a real decoding check; what comes back fits the
    device tool's limits (at most 8 files of at most 16 MiB)."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(ROOT)}
    args = ["--tiny", "--device", "cpu", "--reserve", "1", "--n-self", "0", "--batch-size",
            "8", "--max-new-tokens", "16", "--max-tokens", "1024", "--max-len", "48",
            "--vocab", "40", "--intermediate", "96", "--n-per-category", "1",
            "--eval-tokens", "12", "--check-prompts", "1", "--check-tokens", "8",
            "--eval-every", "1000000"]
    done = subprocess.run(["bash", "scripts/gpu/qwen_head.sh", "", "3", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert {"log.txt", "summary.json", "summary.md", "head.tar.part00"} <= set(files)
    assert len(files) <= 8 and all((out / f).stat().st_size <= 16 << 20 for f in files)
    s = json.loads((out / "summary.json").read_text())
    assert s["head"]["largest_file_ok"] and s["data"]["n_sequences"] > 0
    drafters = {r["drafter"] for r in s["eval"]}
    assert {"head, float32 (as trained)", "head, bfloat16 (packed)", "head, int8 (packed)",
            "head, float32, whole vocabulary", "draft model (0.5B)"} <= drafters
    assert {r["category"] for r in s["eval"]} == {"chat", "story", "explanation", "code",
                                                 "all"}
    assert [c["identical"] for c in s["lossless_check"]] == [True]
    subprocess.run(f"cat {out}/head.tar.part* | tar -xf - -C {tmp_path}", shell=True,
                   check=True)
    head = load_head(tmp_path / "head", torch.device("cpu"), torch.float32)
    assert head.cfg.feature_layers == (2, 4) and head.cfg.intermediate == 96
    card = (tmp_path / "head" / "README.md").read_text()
    assert "Qwen" in card and "Apache" in card and "{" not in card.split("---")[2]
    assert "Feature head for Qwen2.5-Coder" in (out / "summary.md").read_text()


def test_data_keeps_token_ids_of_a_large_vocabulary(tmp_path):
    """Qwen's 151,936 tokens do not fit uint16: the data file keeps them whole."""
    from specviz.distill.data import _save_sequences, load_data
    from specviz.models.tiny import tiny_tokenizer
    seqs = [([5, 151_935], [70_000, 2]), ([1], [3])]
    rows = [{"temperature": 0.0, "category": "code", "source": "seed", "prompt": "a"}] * 2
    _save_sequences(tmp_path, seqs, rows, tiny_tokenizer())
    back, _ = load_data(tmp_path / "data.npz")
    assert [b.tolist() for b in back] == [[5, 151_935, 70_000, 2], [1, 3]]


def test_shipped_qwen_head_card_is_what_its_metadata_renders():
    """Once the head is shipped (assets/models/qwen2.5-coder-1.5b-feature-head): its card is
    the template filled from its metadata, and its files fit the limits."""
    from specviz.distill.card import qwen_head_card
    asset = ROOT / "assets" / "models" / "qwen2.5-coder-1.5b-feature-head"
    if not (asset / "config.json").exists():
        pytest.skip("the Qwen head is not shipped yet")
    assert qwen_head_card(asset) == (asset / "README.md").read_text()
    sizes = [p.stat().st_size for p in asset.iterdir()]
    assert max(sizes) <= 50_000_000 and sum(sizes) <= 64_000_000


def test_qwen_head_command_refuses_a_folder_without_the_ggufs(tmp_path, capsys):
    from specviz.distill.__main__ import main
    for argv in (["qwen-head", str(tmp_path), str(tmp_path / "out")],
                 ["qwen-head", str(tmp_path / "out")]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err


def test_the_draft_gguf_is_optional_the_target_is_not(tmp_path):
    """Without the 0.5B's GGUF (or its converted folder) only the target is loaded and the
    evaluation leaves the draft model out; without the target's, a one-line refusal."""
    from specviz.distill.qwen_head import DRAFT_GGUF, TARGET_GGUF, _present
    scratch = tmp_path / "models"
    scratch.mkdir()
    (tmp_path / TARGET_GGUF).write_bytes(b"")
    assert _present(tmp_path, scratch) == [TARGET_GGUF]
    (scratch / DRAFT_GGUF.removesuffix(".gguf")).symlink_to(tmp_path / "gone")  # dangling
    assert _present(tmp_path, scratch) == [TARGET_GGUF]
    (tmp_path / DRAFT_GGUF).write_bytes(b"")
    assert _present(tmp_path, scratch) == [TARGET_GGUF, DRAFT_GGUF]
    (tmp_path / TARGET_GGUF).unlink()
    converted = scratch / TARGET_GGUF.removesuffix(".gguf")
    converted.mkdir()
    (converted / "config.json").write_text("{}")
    assert _present(tmp_path, scratch) == [TARGET_GGUF, DRAFT_GGUF]
    converted.joinpath("config.json").unlink()
    with pytest.raises(ValueError, match="missing"):
        _present(tmp_path, scratch)
