"""GGUF -> a plain float32 transformers model directory, one tensor at a time.

transformers can load a GGUF itself, but then de-quantises every tensor before it says a word,
holds the whole model twice and keeps a quantizer that ``save_pretrained`` refuses. Here the
config and tokenizer come from transformers' own GGUF readers, and the tensors are
de-quantised one by one with transformers' name mapping and tensor processors (the same
values ``from_pretrained(gguf_file=...)`` gives), written to safetensors shards as they come,
with the progress reported per tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

Progress = Callable[[str, float | None], None]
SHARD_BYTES = 1 << 30  # ~1 GiB per safetensors shard: memory stays near one shard


def _quiet(message: str, fraction: float | None = None) -> None:
    pass


def convert_gguf(gguf_path: Path, out: Path, progress: Progress = _quiet,
                 span: tuple[float, float] = (0.0, 1.0), label: str = "converting") -> dict:
    """Write ``out`` (config, generation config, tokenizer, safetensors shards) from one GGUF
    file; returns a summary (architecture, tensors, parameters). ``progress`` is called per
    tensor with fractions inside ``span``."""
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    meta, config, tok = _config_and_tokenizer(gguf_path, progress, span, label)
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(config)
    wanted = dict(shell.state_dict())
    architecture = meta["config"].get("model_type", config.model_type)
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=meta["config"])
    mapping = get_gguf_hf_weights_map(shell, processor)
    tensors = list(GGUFReader(str(gguf_path)).tensors)
    out.mkdir(parents=True, exist_ok=True)
    shards, weight_map, n_params = _write_shards(tensors, processor, mapping, meta, wanted,
                                                 out, progress, span, label)
    missing = [k for k in wanted if k not in weight_map
               and not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing:
        raise ValueError(f"the GGUF holds no tensor for {missing[0]} (and {len(missing) - 1} "
                         "more)")
    _name_shards(out, shards, weight_map, wanted)
    config.architectures = [type(shell).__name__]
    _save_configs(out, config, tok)
    return {"architecture": type(shell).__name__, "tensors": len(tensors),
            "n_params": n_params, "shards": len(shards)}


def _config_and_tokenizer(gguf_path: Path, progress: Progress, span: tuple[float, float],
                          label: str):
    """The GGUF's metadata, its transformers config (ending the chat at <|im_end|>, with no
    quantizer) and its tokenizer."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    lo, hi = span
    folder, name = str(gguf_path.parent), gguf_path.name
    progress(f"{label}: reading the GGUF's configuration", lo)
    meta = load_gguf_checkpoint(str(gguf_path), return_tensors=False)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    n_vocab = int(getattr(config, "vocab_size", 0) or 0)
    progress(f"{label}: building the tokenizer from the GGUF's {n_vocab:,} tokens (up to a "
             "minute or two for a large vocabulary)", lo + 0.01 * (hi - lo))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    progress(f"{label}: tokenizer ready; de-quantising the tensors", lo + 0.02 * (hi - lo))
    # the GGUF's tokenizer may name <|im_start|> as end of sequence; the chat ends with <|im_end|>
    if "<|im_end|>" in tok.get_vocab():
        tok.eos_token = "<|im_end|>"
        tok.pad_token = "<|im_end|>"
    for key in ("quantization_config", "_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    config.eos_token_id = tok.eos_token_id
    config.pad_token_id = tok.pad_token_id
    return meta, config, tok


def _write_shards(tensors: list, processor, mapping: dict, meta: dict,
                  wanted: dict[str, torch.Tensor], out: Path, progress: Progress,
                  span: tuple[float, float], label: str) -> tuple[list[str], dict, int]:
    """De-quantise the tensors one by one into float32 safetensors shards of about
    SHARD_BYTES: (the shard files in order, tensor name -> its shard, parameters written)."""
    import numpy as np
    from gguf import dequantize
    from safetensors.torch import save_file

    lo, hi = span
    shard: dict[str, torch.Tensor] = {}
    shard_bytes, shards, weight_map, n_params = 0, [], {}, 0

    def flush() -> None:
        nonlocal shard, shard_bytes
        if not shard:
            return
        file = f"model-{len(shards) + 1:05d}.safetensors"
        save_file(shard, str(out / file), metadata={"format": "pt"})
        shards.append(file)
        weight_map.update({k: file for k in shard})
        shard, shard_bytes = {}, 0

    for i, tensor in enumerate(tensors):
        weights = dequantize(tensor.data, tensor.tensor_type)
        result = processor.process(weights=weights, name=tensor.name,
                                   tensor_key_mapping=mapping, parsed_parameters=meta)
        if result.name in mapping and mapping[result.name] in wanted:
            key = mapping[result.name]
            t = torch.from_numpy(np.array(result.weights, dtype=np.float32, order="C"))
            if tuple(t.shape) != tuple(wanted[key].shape):
                raise ValueError(f"GGUF tensor {tensor.name} has shape {tuple(t.shape)}; "
                                 f"the model expects {tuple(wanted[key].shape)} for {key}")
            shard[key] = t
            shard_bytes += t.numel() * 4
            n_params += t.numel()
            if shard_bytes >= SHARD_BYTES:
                flush()
        progress(f"{label}: tensor {i + 1}/{len(tensors)} ({tensor.name}, "
                 f"{tensor.tensor_type.name})",
                 lo + (hi - lo) * (0.02 + 0.98 * (i + 1) / len(tensors)))
    flush()
    return shards, weight_map, n_params


def _name_shards(out: Path, shards: list[str], weight_map: dict,
                 wanted: dict[str, torch.Tensor]) -> None:
    """One shard: model.safetensors; several: numbered "-of-" with their index file."""
    if len(shards) == 1:
        (out / shards[0]).rename(out / "model.safetensors")
        return
    total = sum(wanted[k].numel() * 4 for k in weight_map)
    renamed = {}
    for j, file in enumerate(shards):
        new = f"model-{j + 1:05d}-of-{len(shards):05d}.safetensors"
        (out / file).rename(out / new)
        renamed[file] = new
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total},
         "weight_map": {k: renamed[v] for k, v in sorted(weight_map.items())}}, indent=1))


def _save_configs(out: Path, config, tok) -> None:
    """The config, a generation config that stops where the chat's turn ends, the tokenizer."""
    from transformers import GenerationConfig

    config.save_pretrained(out)
    gen = GenerationConfig.from_model_config(config)
    # a chat model ends its turn with <|im_end|>; Qwen's also stop at <|endoftext|>
    end = tok.get_vocab().get("<|endoftext|>")
    gen.eos_token_id = ([tok.eos_token_id, end] if config.model_type == "qwen2" and
                        end is not None and end != tok.eos_token_id else tok.eos_token_id)
    gen.pad_token_id = tok.pad_token_id
    gen.save_pretrained(out)
    tok.save_pretrained(out)
