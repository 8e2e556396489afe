"""The distillation pieces on tiny random models (fast, CPU), and the shipped draft."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from specviz.decoding import encode_prompt
from specviz.distill.data import generate_batch
from specviz.distill.prompts import (
    CATEGORIES,
    chat_text,
    load_heldout,
    seed_prompts,
    self_prompt_prefix,
    starter_list,
)
from specviz.distill.train import (
    draft_config,
    init_draft,
    kl_loss,
    lr_at,
    make_batches,
    train_draft,
)
from specviz.models import DRAFT_ASSET, HEAD_ASSET
from specviz.models.tiny import tiny_model, tiny_tokenizer

CHATML = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
          "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
TINY_SHAPE = {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64,
              "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16}


@pytest.fixture(scope="module")
def tok():
    t = tiny_tokenizer()
    t.chat_template = CHATML
    return t


def test_heldout_set_is_separate_from_training_prompts():
    held = load_heldout()
    cats = [r["category"] for r in held]
    assert set(cats) == set(CATEGORIES) and min(cats.count(c) for c in CATEGORIES) >= 4
    seeds = seed_prompts()
    assert {p["category"] for p in seeds} == set(CATEGORIES)
    assert not {r["prompt"] for r in held} & {p["prompt"] for p in seeds}
    assert seed_prompts(0) == seed_prompts(0)  # fixed seed, same order


def test_chat_text_matches_the_decoder_prompt(tok):
    text = chat_text(tok, "hi there")
    assert tok(text, add_special_tokens=False)["input_ids"] == encode_prompt(tok, "hi there",
                                                                             True)
    assert chat_text(tok, "hi", "yes") == text.replace("hi there", "hi") + "yes"


def test_self_prompt_prefix_opens_a_user_turn(tok):
    prefix = self_prompt_prefix(tok, "Explain")
    assert prefix.endswith("<s>user\nExplain")
    starters = starter_list(8)
    assert [s["category"] for s in starters[:4]] == list(CATEGORIES)


def test_generate_batch_left_pads_and_cuts_at_eos(tok):
    model = tiny_model("target")
    texts = ["ab", "hello world"]
    enc, new = generate_batch(model, tok, texts, temperature=0.0, max_new_tokens=6,
                              eos_id=2, seed=0)
    assert [len(e) for e in enc] == [2, 11]
    for row in new:
        assert 1 <= len(row) <= 6 and (2 not in row[:-1])
    # each row's greedy continuation is what the unpadded model gives alone
    alone = generate_batch(model, tok, texts[:1], temperature=0.0, max_new_tokens=6,
                           eos_id=2, seed=0)[1][0]
    assert alone == new[0]


def test_make_batches_pads_right_within_the_token_budget():
    seqs = [np.arange(n) + 3 for n in (5, 7, 3, 9, 4, 12)]
    batches = make_batches(seqs, max_tokens=20, max_len=10, pad_id=2, rng=random.Random(0))
    assert sum(int(m.sum()) for _, m in batches) == sum(min(len(s), 10) for s in seqs)
    for ids, mask in batches:
        assert ids.shape == mask.shape and ids.shape[1] <= 10
        assert ids.numel() <= 20 or ids.shape[0] == 1
        assert (ids[~mask] == 2).all()
        assert mask[:, 0].all()  # right padding: every row starts with a token


def test_kl_loss_is_zero_for_equal_logits_and_ignores_masked_positions():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 5, 11, generator=g)
    q = torch.randn(2, 5, 11, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert kl_loss(p, p, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(q, p, mask).item() > 0
    mask[:, 3:] = False
    q2 = q.clone()
    q2[:, 3:] = 100.0  # masked positions do not count
    assert kl_loss(q2, p, mask).item() == pytest.approx(kl_loss(q, p, mask).item())


def test_init_draft_projects_the_target_embedding():
    target = tiny_model("target")
    cfg = draft_config(target.config, **TINY_SHAPE)
    draft = init_draft(target, cfg, seed=0)
    assert cfg.vocab_size == target.config.vocab_size and cfg.tie_word_embeddings
    emb = draft.get_input_embeddings().weight
    assert emb.shape == (target.config.vocab_size, 32)
    assert draft.lm_head.weight.data_ptr() == emb.data_ptr()  # tied
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1) and lr_at(100, 100, 1.0, 10) == \
        pytest.approx(0.1)


def test_distillation_loss_decreases_on_a_tiny_run():
    target = tiny_model("target")
    g = np.random.default_rng(0)
    seqs = [g.integers(3, target.config.vocab_size, size=int(g.integers(8, 24)))
            for _ in range(40)]
    draft, info = train_draft(target, seqs, steps=40, max_tokens=256, max_len=32, lr=1e-2,
                              warmup=5, seed=0, val_fraction=0.2, eval_every=1000,
                              shape=TINY_SHAPE, log=lambda m: None)
    assert info["steps"] == 40
    assert info["val_final"]["kl"] < 0.8 * info["val_start"]["kl"]
    assert all(not p.requires_grad for p in target.parameters())


@pytest.mark.skipif(not (DRAFT_ASSET / "config.json").exists(), reason="no shipped draft")
def test_shipped_draft_is_a_small_standard_causal_lm():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    weights = DRAFT_ASSET / "model.safetensors"
    assert weights.stat().st_size <= 25_000_000
    model = AutoModelForCausalLM.from_pretrained(DRAFT_ASSET, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(DRAFT_ASSET, local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == 49152 == len(tok)
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2 == model.config.eos_token_id
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 49152) and torch.isfinite(logits).all()
    card = (DRAFT_ASSET / "README.md").read_text()
    assert "apache-2.0" in card.lower() and "SmolLM2" in card
    meta = json.loads((DRAFT_ASSET / "train-meta.json").read_text())
    assert meta["steps"] > 0 and meta["seed"] == 0


def test_shipped_cards_are_what_the_metadata_renders():
    """The model cards in assets/ come from their folders' metadata (cards/*.md filled in),
    so a card never states a number its metadata does not hold."""
    from specviz.distill.card import head_card, model_card
    assert model_card(DRAFT_ASSET) == (DRAFT_ASSET / "README.md").read_text()
    assert head_card(HEAD_ASSET) == (HEAD_ASSET / "README.md").read_text()


def test_distill_package_does_not_import_streamlit():
    code = ("import sys, specviz.distill.__main__, specviz.distill.card, "
            "specviz.distill.evaluate, specviz.distill.data, specviz.distill.train; "
            "assert 'streamlit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[1])


def test_feature_head_trains_saves_and_gets_its_card(tmp_path):
    """A few seconds of head training on the tiny target: it runs, is saved with its
    metadata, loads as a pair's head, drafts losslessly, and its model card renders."""
    from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
    from specviz.distill.card import pack_head
    from specviz.distill.head import train_head
    from specviz.models.feature_head import save_head
    pair = load_pair("embedded:tiny-random-target", head=None)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(3, 70, size=int(rng.integers(20, 60))) for _ in range(100)]
    head, info = train_head(pair.target, seqs, vocab_size=40, depth=2, max_seconds=3,
                            max_tokens=1024, max_len=48, eval_every=10 ** 6)
    assert info["steps"] > 0 and info["vocab"] >= 40 and "agree_2" in info["final"]
    folder = save_head(head, tmp_path / "head")
    (folder / "train-meta.json").write_text(json.dumps({**info, "n_params": 1}))
    packed = pack_head(folder, tmp_path / "packed")
    assert "feature-level draft head" in (packed / "README.md").read_text()
    trained = load_pair("embedded:tiny-random-target", head=str(packed))
    cfg = DecodeConfig(drafter="feature-head", max_new_tokens=24, chat=False)
    assert speculative_decode(trained, "abc abc", cfg).summary.output_token_ids == \
        target_only_decode(trained, "abc abc", cfg).summary.output_token_ids


def test_head_training_continues_from_a_saved_head_on_new_data(tmp_path):
    """``--init``: training starts from a saved head (its vocabulary kept), on data from
    several folders; at a learning rate of 0 the head comes back as it went in. A head of
    another target's shape is refused in one line, and so is a missing head on the CLI."""
    from specviz import load_pair
    from specviz.distill.__main__ import main
    from specviz.distill.head import train_head
    from specviz.models.feature_head import FeatureHead, HeadConfig, load_head, save_head
    pair = load_pair("embedded:tiny-random-target", head=None)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(3, 70, size=int(rng.integers(20, 60))) for _ in range(60)]
    first, _ = train_head(pair.target, seqs, vocab_size=40, depth=2, max_seconds=2,
                          max_tokens=1024, max_len=48, eval_every=10 ** 6)
    folder = save_head(first, tmp_path / "first")
    init = load_head(folder, torch.device("cpu"), torch.float32)
    more = [rng.integers(3, 70, size=30) for _ in range(40)]
    again, info = train_head(pair.target, more, depth=2, max_seconds=1, max_tokens=1024,
                             max_len=48, eval_every=10 ** 6, lr=0.0,
                             init=load_head(folder, torch.device("cpu"), torch.float32))
    assert again.cfg.vocab_ids == first.cfg.vocab_ids and info["steps"] > 0
    for k, v in init.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    other = FeatureHead(HeadConfig(**{**vars(init.cfg), "hidden": init.cfg.hidden * 2}))
    with pytest.raises(ValueError, match="another target"):
        train_head(pair.target, more, max_seconds=1, init=other)

    for name, part in (("a", seqs[:30]), ("b", more)):
        (tmp_path / name).mkdir()
        np.savez_compressed(tmp_path / name / "data.npz",
                            tokens=np.concatenate(part).astype(np.uint16),
                            offsets=np.concatenate([[0], np.cumsum([len(x) for x in part])]))
    with pytest.raises(SystemExit) as stop:
        main(["head", "--target", "embedded:tiny-random-target", "--out", str(tmp_path / "c"),
              "--data", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--init", str(tmp_path / "none"),
              "--train-seconds", "1"])
    assert stop.value.code == 2
    main(["head", "--target", "embedded:tiny-random-target", "--out", str(tmp_path / "c"),
          "--data", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--init", str(folder),
          "--train-seconds", "1", "--max-tokens", "1024", "--max-len", "48"])
    meta = json.loads((tmp_path / "c" / "head" / "train-meta.json").read_text())
    assert meta["init"] == str(folder) and meta["data"].count("data.npz") == 2
    assert meta["train_sequences"] + meta["val_sequences"] == 30 + 40
    from specviz.distill.card import pack_head
    for name, n in (("a", 30), ("b", 40)):
        (tmp_path / name / "data-meta.json").write_text(json.dumps(
            {"n_sequences": n, "n_tokens": 10 * n, "seconds_total": 1.5, "hardware": {}}))
    main(["head", "--target", "embedded:tiny-random-target", "--out", str(tmp_path / "d"),
          "--data", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--init", str(folder),
          "--train-seconds", "1", "--max-tokens", "1024", "--max-len", "48"])
    data = json.loads((tmp_path / "d" / "head" / "data-meta.json").read_text())
    assert (data["n_sequences"], data["n_tokens"], len(data["parts"])) == (70, 700, 2)
    card = (pack_head(tmp_path / "d" / "head", tmp_path / "packed") / "README.md").read_text()
    assert "70 sequences, 700 tokens" in card and "went on from an earlier head" in card
