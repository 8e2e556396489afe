"""Tiny randomly initialised models and a character tokenizer, made in memory.

They need no download, so tests and offline demos of the machinery can run anywhere. Their
text is gibberish; what they show is the mechanics, not language.
"""

from __future__ import annotations

import string

import torch

TINY_CHARS = string.ascii_letters + string.digits + " .,!?'-\n"
SPECIALS = ["<unk>", "<s>", "</s>"]


def tiny_tokenizer():
    """A character-level fast tokenizer over TINY_CHARS (vocabulary of 64 + 3 specials)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {t: i for i, t in enumerate(SPECIALS + list(TINY_CHARS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", pad_token="</s>")
    return tok


def tiny_config(role: str = "target", vocab_size: int | None = None,
                n_layers: int | None = None, family: str = "llama"):
    """The config of a tiny model: a Llama, or a Qwen2 (q/k/v biases, rope θ 1e6)."""
    from transformers import LlamaConfig, Qwen2Config
    vocab = vocab_size or len(SPECIALS) + len(TINY_CHARS)
    layers = n_layers or (4 if role == "target" else 1)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                  pad_token_id=2, tie_word_embeddings=False)
    if family == "qwen2":
        return Qwen2Config(**common, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                           use_sliding_window=False)
    if family != "llama":
        raise ValueError(f"unknown tiny model family {family!r}")
    return LlamaConfig(**common)


def tiny_model(role: str = "target", seed: int | None = None, vocab_size: int | None = None,
               n_layers: int | None = None, family: str = "llama") -> torch.nn.Module:
    """A small random model, fixed seeds: 'target' (4 layers) or 'draft' (1 layer), a Llama
    or (``family="qwen2"``) a Qwen2, whose q/k/v biases are random too (not zero as
    initialised), so that a forward pass that dropped them would show."""
    from transformers import AutoModelForCausalLM
    cfg = tiny_config(role, vocab_size, n_layers, family)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed if seed is not None else 1234)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        # sharper logits than the default init, so greedy choices are not near-ties, and
        # special tokens (end of sequence) scored 0, so runs are not cut short at once
        model.lm_head.weight.mul_(8.0)
        model.lm_head.weight[: len(SPECIALS)] = 0.0
        for name, w in model.named_parameters():
            if name.endswith("_proj.bias"):
                w.copy_(0.5 * torch.randn_like(w))
        if role == "draft":
            # the draft starts from the target's own first layers, embeddings and head
            # (an early exit of it), then drifts a little: it agrees often, not always
            target = tiny_model("target", seed=seed, vocab_size=vocab_size, family=family)
            model.load_state_dict(target.state_dict(), strict=False)
            for w in model.parameters():
                w.add_(0.003 * torch.randn_like(w))
    torch.random.set_rng_state(gen_state)
    return model.eval()


def tiny_head(target: torch.nn.Module, seed: int = 4321) -> torch.nn.Module:
    """A random feature-level draft head for a tiny target (specviz.models.feature_head): it drafts
    poorly, but through every code path of a trained one."""
    from .feature_head import FeatureHead, HeadConfig
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    head = FeatureHead(HeadConfig.for_target(target, source="embedded:tiny-random-target"))
    with torch.no_grad():
        # start near "the next feature is this one": q then follows the target somewhat
        head.fc.weight.zero_()
        head.fc.weight[:, : head.cfg.hidden] = torch.eye(head.cfg.hidden)
        head.fc.bias.zero_()
        head.norm.copy_(target.model.norm.weight)
    torch.random.set_rng_state(gen_state)
    return head.eval()
