"""Training data written by the target itself.

Two stages, both batched ``generate`` calls of the target (left padding):
1. self-written prompts: the target gets its chat template up to a user turn (optionally a
   starter such as "Explain") and writes the user message, sampled at temperature 1.0;
2. answers: every prompt (self-written ones and the seed prompts of ``prompts.py``) is put
   through the chat template and answered at one of the temperatures 0, 0.7 or 1.0.

Saved as ``data.npz``: ``tokens`` (uint16, or uint32 for a vocabulary over 65,536; all
sequences back to back), ``offsets`` (n+1,),
``n_prompt`` (n,) prompt tokens per sequence, ``temperature`` (n,), ``category`` (n,) and
``source`` (n,); and ``data-meta.json`` with counts, settings, hardware and time.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from .prompts import (
    CATEGORIES,
    chat_text,
    code_prompts,
    load_heldout,
    seed_prompts,
    self_prompt_prefix,
    starter_list,
)

TEMPERATURES = (0.0, 0.7, 1.0)


@torch.inference_mode()
def generate_batch(model, tokenizer, texts: list[str], *, temperature: float,
                   max_new_tokens: int, eos_id: int, seed: int) -> tuple[list[list[int]],
                                                                         list[list[int]]]:
    """Left-padded batched generation. Returns (prompt ids, new ids) per text; new ids end at
    the first ``eos_id`` (kept) or at ``max_new_tokens``."""
    device = next(model.parameters()).device
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(e) for e in enc)
    ids = torch.full((len(enc), width), eos_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, width - len(e):] = torch.tensor(e)
        mask[i, width - len(e):] = 1
    torch.manual_seed(seed)
    kw = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 \
        else dict(do_sample=False)
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                         max_new_tokens=max_new_tokens, eos_token_id=eos_id,
                         pad_token_id=eos_id, **kw)  # (B, T + new)
    new = out[:, width:].tolist()
    cut = []
    for row in new:
        if eos_id in row:
            row = row[: row.index(eos_id) + 1]
        cut.append(row)
    return enc, cut


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def self_written_prompts(model, tokenizer, n: int, *, batch_size: int, max_new_tokens: int,
                         eos_id: int, seed: int, log=print, code_share: float | None = None
                         ) -> list[dict]:
    """n user messages written by the target from its own chat template (finished ones
    only, de-duplicated): [{"prompt", "category", "source": "self"}]."""
    starters = starter_list(n, seed, code_share)
    out, seen = [], set()
    for b, chunk in enumerate(_batches(starters, batch_size)):
        texts = [self_prompt_prefix(tokenizer, s["starter"]) for s in chunk]
        _, new = generate_batch(model, tokenizer, texts, temperature=1.0,
                                max_new_tokens=max_new_tokens, eos_id=eos_id,
                                seed=seed * 1000 + b)
        for s, ids in zip(chunk, new):
            if not ids or ids[-1] != eos_id:
                continue  # unfinished user message
            body = tokenizer.decode(ids[:-1], skip_special_tokens=True)
            prompt = (s["starter"] + body).strip()
            if len(prompt.split()) < 3 or prompt in seen or "<|im_" in prompt:
                continue
            seen.add(prompt)
            out.append({"prompt": prompt, "category": s["category"], "source": "self"})
        log(f"self-written prompts: batch {b + 1}, {len(out)} kept")
    return out


def _answer_groups(prompts: list[dict], batch_size: int, rng: random.Random) -> list:
    """Each prompt gets a temperature in turn (after a shuffle); batches of one temperature
    and similar prompt length, in a fixed shuffled order: [(temperature, prompts)]."""
    rng.shuffle(prompts)
    for i, p in enumerate(prompts):
        p["temperature"] = TEMPERATURES[i % len(TEMPERATURES)]
    groups = []
    for temp in TEMPERATURES:
        rows = sorted((p for p in prompts if p["temperature"] == temp),
                      key=lambda p: len(p["prompt"]))
        groups += [(temp, chunk) for chunk in _batches(rows, batch_size)]
    rng.shuffle(groups)
    return groups


def _save_sequences(out_dir: Path, seqs: list, rows: list[dict], tokenizer) -> np.ndarray:
    """data.npz (the token sequences, their prompt lengths and each prompt's settings) and
    samples.jsonl (the first 200 answers as text); returns all tokens."""
    tokens = np.array([t for e, n in seqs for t in e + n], dtype=np.int64)
    # uint16 holds a 49,152-token vocabulary; a larger one (Qwen's 151,936) needs uint32
    tokens = tokens.astype(np.uint16 if tokens.size == 0 or tokens.max() < 1 << 16
                           else np.uint32)
    lengths = np.array([len(e) + len(n) for e, n in seqs], dtype=np.int64)
    np.savez_compressed(out_dir / "data.npz", tokens=tokens,
                        offsets=np.concatenate([[0], np.cumsum(lengths)]),
                        n_prompt=np.array([len(e) for e, _ in seqs], dtype=np.int32),
                        temperature=np.array([p["temperature"] for p in rows],
                                             dtype=np.float32),
                        category=np.array([p["category"] for p in rows]),
                        source=np.array([p["source"] for p in rows]))
    with open(out_dir / "samples.jsonl", "w") as f:
        for (_, n), p in list(zip(seqs, rows))[:200]:
            f.write(json.dumps({**p, "answer": tokenizer.decode(n)}) + "\n")
    return tokens


def make_data(model, tokenizer, out_dir: str | Path, *, n_self: int = 8192,
              n_seed: int | None = None, batch_size: int = 512, max_new_tokens: int = 192,
              prompt_max_new_tokens: int = 64, max_seconds: float | None = None,
              answer_batches: int | None = None, seed: int = 0, log=print,
              code_share: float | None = None, eos_token: str = "<|im_end|>") -> dict:
    """Write data.npz and data-meta.json into out_dir; returns the meta dict.

    Answering stops after ``answer_batches`` batches (a fixed cut, reproducible) or once
    ``max_seconds`` have passed since the start (a time cap, recorded in the meta). With
    ``code_share`` (a coder target) that share of the self-written prompts asks for code,
    and the seed prompts gain ``prompts.code_prompts``."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eos_id = int(tokenizer.convert_tokens_to_ids(eos_token))
    prompts, t_prompts = _training_prompts(model, tokenizer, n_self, n_seed, batch_size,
                                           prompt_max_new_tokens, eos_id, seed, log,
                                           code_share, t0)
    groups = _answer_groups(prompts, batch_size, random.Random(seed))
    seqs, rows, stopped_early, n_done = _answer(model, tokenizer, groups, max_new_tokens,
                                                eos_id, seed, log, answer_batches,
                                                max_seconds, t0)
    tokens = _save_sequences(out_dir, seqs, rows, tokenizer)
    from ..models import hardware_info
    meta = {
        "n_sequences": len(seqs), "n_tokens": int(tokens.size),
        "n_answer_tokens": int(sum(len(n) for _, n in seqs)),
        "n_self_prompts": sum(p["source"] == "self" for p in rows),
        "n_seed_prompts": sum(p["source"] == "seed" for p in rows),
        "per_category": {c: sum(p["category"] == c for p in rows) for c in CATEGORIES},
        "per_temperature": {str(t): sum(p["temperature"] == t for p in rows)
                            for t in TEMPERATURES},
        "settings": {"n_self": n_self, "n_seed": n_seed, "batch_size": batch_size,
                     "max_new_tokens": max_new_tokens,
                     "prompt_max_new_tokens": prompt_max_new_tokens,
                     "max_seconds": max_seconds, "answer_batches": answer_batches,
                     "seed": seed, **({"code_share": code_share} if code_share is not None
                                      else {})},
        "answer_batches_done": n_done, "answer_batches_planned": len(groups),
        "stopped_early": stopped_early,
        "seconds_self_prompts": round(t_prompts, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
        "hardware": hardware_info(next(model.parameters()).device),
    }
    (out_dir / "data-meta.json").write_text(json.dumps(meta, indent=1))
    log(f"data: {meta['n_sequences']} sequences, {meta['n_tokens']} tokens, "
        f"{meta['seconds_total']} s")
    return meta


def _training_prompts(model, tokenizer, n_self: int, n_seed: int | None, batch_size: int,
                      prompt_max_new_tokens: int, eos_id: int, seed: int, log,
                      code_share: float | None, t0: float) -> tuple[list[dict], float]:
    """The prompts to answer (self-written, then the seed prompts; none of the held-out
    ones) and the seconds since ``t0`` when the self-written ones were done."""
    heldout = {r["prompt"] for r in load_heldout()}
    prompts = self_written_prompts(model, tokenizer, n_self, batch_size=batch_size,
                                   max_new_tokens=prompt_max_new_tokens, eos_id=eos_id,
                                   seed=seed, log=log, code_share=code_share) if n_self else []
    t_prompts = time.perf_counter() - t0
    seeds = seed_prompts(seed)
    if code_share is not None:
        seeds = seeds + code_prompts(seed)
        random.Random(seed).shuffle(seeds)
    prompts += seeds[:n_seed] if n_seed is not None else seeds
    return [p for p in prompts if p["prompt"] not in heldout], t_prompts


def _answer(model, tokenizer, groups, max_new_tokens: int, eos_id: int, seed: int, log,
            answer_batches: int | None, max_seconds: float | None, t0: float):
    """The target's answers, batch by batch, until the batches, the batch cut or the time
    budget (from ``t0``) run out: (sequences, their prompt rows, stopped early, batches)."""
    seqs, rows, stopped_early, n_done = [], [], False, 0
    for b, (temp, chunk) in enumerate(groups):
        if answer_batches is not None and b >= answer_batches:
            log(f"stopping after {b} of {len(groups)} answer batches (answer_batches)")
            break
        if max_seconds is not None and b and time.perf_counter() - t0 > max_seconds:
            stopped_early = True
            log(f"time budget reached after {b} of {len(groups)} answer batches")
            break
        texts = [chat_text(tokenizer, p["prompt"]) for p in chunk]
        enc, new = generate_batch(model, tokenizer, texts, temperature=temp,
                                  max_new_tokens=max_new_tokens, eos_id=eos_id,
                                  seed=seed * 1000 + 500 + b)
        seqs += zip(enc, new)
        rows += chunk
        n_done += 1
        log(f"answers: batch {b + 1}/{len(groups)} (T={temp}), {len(seqs)} sequences, "
            f"{time.perf_counter() - t0:.0f} s")
    return seqs, rows, stopped_early, n_done


def load_data(path: str | Path) -> tuple[list[np.ndarray], dict]:
    """data.npz -> (list of token arrays (int64), fields)."""
    z = np.load(path)
    off = z["offsets"]
    tokens = z["tokens"].astype(np.int64)
    seqs = [tokens[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    return seqs, {k: z[k] for k in z.files if k not in ("tokens", "offsets")}
