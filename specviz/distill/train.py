"""Distillation of a small Llama draft (q) from the target (p).

Loss: forward KL(p || q) at every position of the target-written sequences, the target's
distribution computed on the fly in the same process (no stored logits). The draft shares
the target's tokenizer; its tied embedding starts as the projection of the target's
embedding onto its top right-singular vectors.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DRAFT_SHAPE = {"hidden_size": 192, "num_hidden_layers": 3, "intermediate_size": 1024,
               "num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 64}


def draft_config(target_config, **shape):
    """A LlamaConfig for the draft: the target's vocabulary, special ids, rope and norm
    settings with a smaller shape (DRAFT_SHAPE, overridden by ``shape``)."""
    from transformers import LlamaConfig
    s = {**DRAFT_SHAPE, **shape}
    tc = target_config
    rope = getattr(tc, "rope_parameters", None) or {"rope_type": "default",
                                                     "rope_theta": getattr(tc, "rope_theta",
                                                                           10000.0)}
    return LlamaConfig(vocab_size=tc.vocab_size, max_position_embeddings=min(
        tc.max_position_embeddings, 8192), rms_norm_eps=tc.rms_norm_eps,
        bos_token_id=tc.bos_token_id, eos_token_id=tc.eos_token_id,
        pad_token_id=tc.pad_token_id, tie_word_embeddings=True, rope_parameters=dict(rope),
        hidden_act="silu", **s)


@torch.no_grad()
def init_draft(target, config, seed: int = 0):
    """A fresh draft whose embedding (vocab, hidden) is the target's (vocab, d) embedding
    projected on its top ``hidden`` right-singular vectors, rescaled to the init std."""
    from transformers import LlamaForCausalLM
    torch.manual_seed(seed)
    draft = LlamaForCausalLM(config)
    emb = target.get_input_embeddings().weight.detach().float().cpu()  # (V, d)
    h = config.hidden_size
    if h <= emb.shape[1]:
        _, _, vt = torch.linalg.svd(emb, full_matrices=False)  # vt (d, d)
        proj = emb @ vt[:h].T  # (V, h)
        proj *= config.initializer_range / proj.std()
        draft.get_input_embeddings().weight.copy_(proj)
    draft.tie_weights()
    return draft


def kl_loss(q_logits: torch.Tensor, p_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Forward KL(p_target || q_draft) per position, averaged over mask.

    q_logits, p_logits (B, T, V); mask (B, T) bool."""
    log_q = F.log_softmax(q_logits.float(), dim=-1)
    log_p = F.log_softmax(p_logits.float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, T)
    m = mask.float()
    return (kl * m).sum() / m.sum().clamp_min(1)


def make_batches(seqs: list[np.ndarray], max_tokens: int, max_len: int, pad_id: int,
                 rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded batches of similar-length sequences, about max_tokens each, shuffled.

    Returns [(ids (B, T) long, mask (B, T) bool)]."""
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    batches, cur = [], []
    for i in order:
        n = min(len(seqs[i]), max_len)
        if cur and n * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    out = []
    for b in batches:
        width = min(max(len(seqs[i]) for i in b), max_len)
        ids = torch.full((len(b), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(b), width), dtype=torch.bool)
        for r, i in enumerate(b):
            s = torch.from_numpy(np.asarray(seqs[i][:width], dtype=np.int64))
            ids[r, :len(s)] = s
            mask[r, :len(s)] = True
        out.append((ids, mask))
    rng.shuffle(out)
    return out


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    f = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))


@torch.no_grad()
def evaluate_kl(target, draft, batches, device, autocast) -> dict:
    """Mean KL and top-1 agreement (argmax q == argmax p) over batches."""
    draft.eval()
    tot_kl = tot_agree = tot_n = 0.0
    for ids, mask in batches:
        ids, mask = ids.to(device), mask.to(device)
        p = target(input_ids=ids).logits
        with autocast():
            q = draft(input_ids=ids).logits
        n = mask.sum().item()
        tot_kl += kl_loss(q, p, mask).item() * n
        tot_agree += ((q.argmax(-1) == p.argmax(-1)) & mask).sum().item()
        tot_n += n
    draft.train()
    return {"kl": tot_kl / max(tot_n, 1), "top1_agreement": tot_agree / max(tot_n, 1)}


def autocast_for(device: torch.device):
    """The training forward's autocast: bfloat16 on CUDA, none elsewhere."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return lambda: torch.autocast("cpu", enabled=False)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params, lr: float) -> None:
    """One update at learning rate ``lr``: gradients of ``loss``, clipped to norm 1."""
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def _draft_optimizer(draft, lr: float, weight_decay: float, device: torch.device):
    """AdamW; no weight decay on norms and biases."""
    decay = [p for n, p in draft.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in draft.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                             betas=(0.9, 0.98), fused=device.type == "cuda")


def _split(seqs: list[np.ndarray], val_fraction: float, max_tokens: int, max_len: int,
           pad_id: int, rng: random.Random) -> tuple[list, list, int]:
    """Validation and training batches (a shuffled ``val_fraction`` of the sequences held out,
    at least one when there are two or more), and the number held out."""
    idx = list(range(len(seqs)))
    rng.shuffle(idx)
    n_val = max(1, int(len(idx) * val_fraction)) if len(idx) > 1 else 0
    val = make_batches([seqs[i] for i in idx[:n_val]], max_tokens, max_len, pad_id, rng)
    train = make_batches([seqs[i] for i in idx[n_val:]], max_tokens, max_len, pad_id, rng)
    return val, train, n_val


def _steps_for(max_seconds: float, t0: float, device: torch.device, log) -> int:
    """After 20 timed steps: how many fit ``max_seconds`` (with 8 % to spare)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    per = (time.perf_counter() - t0) / 20
    total = max(21, int(max_seconds / (per * 1.08)))
    log(f"{per * 1e3:.0f} ms/step -> {total} steps for {max_seconds:.0f} s")
    return total


def _allow_tf32(device: torch.device) -> None:
    """TensorFloat-32 matrix products on a CUDA device (the training's speed, not its dtype)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _draft_step(target, draft, opt, ids: torch.Tensor, mask: torch.Tensor, device,
                autocast, lr: float) -> tuple[torch.Tensor, int]:
    """One optimiser step of the draft on a batch, KL(p || q) over the mask's positions:
    (the loss, the number of positions it counted)."""
    ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
    with torch.no_grad():
        p_logits = target(input_ids=ids).logits  # (B, T, V)
    with autocast():
        q_logits = draft(input_ids=ids).logits  # (B, T, V)
    loss = kl_loss(q_logits, p_logits, mask)
    del p_logits, q_logits
    optimizer_step(opt, loss, draft.parameters(), lr)
    return loss, int(mask.sum())


def train_draft(target, seqs: list[np.ndarray], *, steps: int | None = None,
                max_seconds: float | None = None, max_tokens: int = 32768, max_len: int = 384,
                lr: float = 2e-3, warmup: int = 100, weight_decay: float = 0.01,
                seed: int = 0, val_fraction: float = 0.02, eval_every: int = 500,
                shape: dict | None = None, pad_id: int = 2, log=print):
    """Train a draft on ``seqs`` (token arrays) against ``target``.

    The number of steps is ``steps``, or, given ``max_seconds`` instead, fixed after 20 timed
    steps so the run fits the budget (the count is returned for an exact re-run).
    Returns (draft, info dict)."""
    device = next(target.parameters()).device
    torch.manual_seed(seed)
    rng = random.Random(seed)
    target.eval().requires_grad_(False)
    _allow_tf32(device)
    autocast = autocast_for(device)
    draft = init_draft(target, draft_config(target.config, **(shape or {})), seed)
    draft = draft.to(device).train()
    val, train, n_val = _split(seqs, val_fraction, max_tokens, max_len, pad_id, rng)
    opt = _draft_optimizer(draft, lr, weight_decay, device)
    total, history, step, epoch, n_tokens = steps or 10 ** 9, [], 0, 0, 0
    t0 = time.perf_counter()
    first = evaluate_kl(target, draft, val, device, autocast) if val else {}
    log(f"start: val {first}")
    while step < total:
        for ids, mask in train:
            if step >= total:
                break
            loss, n_mask = _draft_step(target, draft, opt, ids, mask, device, autocast,
                                       lr_at(step, total, lr, warmup))
            step += 1
            n_tokens += n_mask
            if step == 20 and steps is None and max_seconds is not None:
                total = _steps_for(max_seconds, t0, device, log)
            if step % 50 == 0 or step == 1:
                log(f"step {step}/{total if total < 10 ** 9 else '?'} epoch {epoch} "
                    f"loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} "
                    f"{time.perf_counter() - t0:.0f} s")
            if val and (step % eval_every == 0):
                history.append({"step": step, **evaluate_kl(target, draft, val, device,
                                                             autocast)})
                log(f"step {step}: val {history[-1]}")
        epoch += 1
        if steps is None and max_seconds is None:
            break
    final = evaluate_kl(target, draft, val, device, autocast) if val else {}
    log(f"final: val {final}")
    info = {"steps": step, "epochs": round(step / max(1, len(train)), 2),
            "train_tokens_seen": n_tokens,
            "train_sequences": len(seqs) - n_val, "val_sequences": n_val,
            "batches_per_epoch": len(train), "max_tokens_per_batch": max_tokens,
            "max_len": max_len, "lr": lr, "warmup": warmup, "weight_decay": weight_decay,
            "seed": seed, "shape": {**DRAFT_SHAPE, **(shape or {})},
            "val_start": first, "val_final": final, "val_history": history,
            "seconds": round(time.perf_counter() - t0, 1)}
    return draft.eval(), info


def save_draft(draft, tokenizer_dir: str | Path, out: str | Path, info: dict,
               dtype: torch.dtype = torch.bfloat16) -> Path:
    """Save the draft (bfloat16 safetensors, tied embedding), the target's tokenizer files,
    a generation config and train-meta.json into ``out``."""
    import shutil
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    draft = draft.to("cpu", dtype=dtype)
    draft.generation_config.eos_token_id = draft.config.eos_token_id
    draft.generation_config.pad_token_id = draft.config.pad_token_id
    draft.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "chat_template.jinja"):
        src = Path(tokenizer_dir) / name
        if src.exists():
            shutil.copy(src, out / name)
    (out / "train-meta.json").write_text(json.dumps(info, indent=1))
    return out
