"""Training a feature-level draft head (specviz.models.feature_head) on target-written sequences.

Per batch the frozen target reads the sequences once (no stored features): its last hidden
states are the head's inputs and its next-token distributions the soft labels. The head is
trained as it drafts, ``depth`` tokens deep (training-time test, as in EAGLE-3): step k reads
its own earlier guesses. Loss per step: the cross-entropy of q against the target's p,
restricted to the head's vocabulary (the most frequent tokens of the data), weighted 0.8^k.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..models.feature_head import FeatureHead, HeadConfig, rotary_tables
from .train import autocast_for, lr_at, make_batches, optimizer_step


def head_vocabulary(seqs: list[np.ndarray], size: int | None, vocab: int,
                    always: tuple[int, ...] = ()) -> list[int] | None:
    """The ``size`` most frequent token ids of the data (plus ``always``), sorted; None for
    the whole vocabulary."""
    if size is None or size >= vocab:
        return None
    counts = np.bincount(np.concatenate(seqs), minlength=vocab)
    top = set(np.argsort(-counts, kind="stable")[:size].tolist()) | set(always)
    return sorted(top)


def target_features(target, ids: torch.Tensor, layers: tuple[int, ...] | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's features (B, T, n H) at hidden states ``layers`` (None: the last) and
    its last hidden states (B, T, H), after the final norm."""
    hs = target.model(input_ids=ids, output_hidden_states=True).hidden_states
    feats = hs[-1] if layers is None else torch.cat([hs[j] for j in layers], dim=-1)
    return feats, hs[-1]


def target_labels(final: torch.Tensor, lm_head: torch.Tensor, subset: torch.Tensor | None,
                  chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """From the last hidden states (..., H): p over the head's vocabulary (..., V_head),
    float32, normalised over the whole vocabulary, and the target's argmax (...,). Rows go
    through the output layer ``chunk`` at a time (a 151,936-token vocabulary is large)."""
    flat = final.reshape(-1, final.shape[-1])
    ps, args = [], []
    for rows in flat.split(chunk):
        logits = torch.nn.functional.linear(rows, lm_head.to(rows.dtype)).float()  # (n, V)
        args.append(logits.argmax(-1))
        if subset is None:
            ps.append(torch.softmax(logits, dim=-1))
        else:
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            ps.append((logits.index_select(-1, subset) - lse).exp())
    shape = final.shape[:-1]
    return torch.cat(ps).view(*shape, -1), torch.cat(args).view(shape)


def _batch_targets(target, ids: torch.Tensor, subset: torch.Tensor | None,
                   layers: tuple[int, ...] | None = None):
    """The target's features (B, T, n H), its p over the head's vocabulary (B, T, V_head)
    and its argmax (B, T)."""
    feats, final = target_features(target, ids, layers)
    p, p_argmax = target_labels(final, target.lm_head.weight, subset)
    return feats.float(), p, p_argmax


def _losses(head, target, ids, mask, subset, depth: int, out_w: torch.Tensor, given=None):
    """Per-step soft cross-entropy and agreement (argmax q == argmax p) over the valid rows.
    ``given``: the target's (features, p, argmax) for the batch, if already at hand."""
    if given is None:
        with torch.no_grad():
            given = _batch_targets(target, ids, subset, head.cfg.feature_layers)
    f, p, p_arg = given
    emb = target.model.embed_tokens.weight
    T = ids.shape[1] - 1
    cos, sin = rotary_tables(target, T)
    hs = head.unrolled(f[:, :-1], F.embedding(ids[:, 1:], emb).float(), cos.float(),
                       sin.float(), depth)
    labels, lab_arg = p[:, 1:], p_arg[:, 1:]  # row i predicts t_{i+2}: p at position i+1
    valid = mask[:, 1:] & mask[:, :-1]
    rows = torch.arange(T, device=ids.device)
    losses, agree = [], []
    for k, h in enumerate(hs):
        m = valid & (rows >= k)[None, :]
        logq = F.log_softmax(F.linear(h, out_w), dim=-1)  # (B, T, V_head)
        ce = -(labels * logq).sum(-1)
        n = m.float().sum().clamp_min(1)
        losses.append((ce * m).sum() / n)
        q_arg = logq.argmax(-1)
        q_arg = subset[q_arg] if subset is not None else q_arg
        agree.append(((q_arg == lab_arg) & m).float().sum() / n)
    return losses, agree


def train_head(target, seqs: list[np.ndarray], *, vocab_size: int | None = 16384,
               depth: int = 3, max_seconds: float = 420.0, max_tokens: int = 16384,
               max_len: int = 256, lr: float = 1e-3, warmup: int = 100,
               weight_decay: float = 0.0, seed: int = 0, val_fraction: float = 0.02,
               eval_every: int = 250, eos_ids: tuple[int, ...] = (), pad_id: int = 2,
               source: str = "", init: FeatureHead | None = None,
               intermediate: int | None = None, feature_layers: tuple[int, ...] | None = None,
               cache: bool = False, log=print) -> tuple[FeatureHead, dict]:
    """Train a head for ``target`` on ``seqs`` (token arrays) for ``max_seconds``; from
    ``init`` (a trained head of this target, its vocabulary kept) if given, so that training
    can go on over several sessions and new data. A new head may have a smaller MLP
    (``intermediate``) and read several layers (``feature_layers``); ``cache`` computes the
    target's features once (``specviz.distill.features``) instead of in every batch."""
    device = target.model.embed_tokens.weight.device
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order = list(range(len(seqs)))
    rng.shuffle(order)
    n_val = max(1, int(len(seqs) * val_fraction))
    val = [seqs[i] for i in order[:n_val]]
    train = [seqs[i] for i in order[n_val:]]
    vocab = target.config.vocab_size
    if init is not None:
        head = _continued(init, target, device)
    else:
        head = _new_head(target, head_vocabulary(train, vocab_size, vocab, eos_ids), source,
                         device, intermediate, feature_layers)
    ids_kept = head.cfg.vocab_ids
    subset = head.vocab_ids.to(device) if ids_kept is not None else None
    out_w = head.out_weight(target.lm_head.weight).detach().float()
    autocast = autocast_for(device)
    t0 = time.perf_counter()
    batches, val_batches = _sources(target, head, train, val, cache, max_tokens, max_len,
                                    pad_id, rng, subset, autocast, log)
    step, epoch, history = _train_loop(head, target, batches, val_batches, subset, out_w,
                                       autocast, t0, max_seconds=max_seconds, lr=lr,
                                       warmup=warmup, weight_decay=weight_decay, depth=depth,
                                       eval_every=eval_every, log=log)
    train_tokens = int(sum(len(s) for s in train))
    info = {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "epochs": epoch,
            "depth": depth, "lr": lr, "max_tokens": max_tokens, "max_len": max_len,
            "train_sequences": len(train), "train_tokens": train_tokens,
            "val_sequences": len(val), "vocab": len(ids_kept) if ids_kept else vocab,
            "final": history[-1] if history else {}, "history": history}
    if cache:
        info["feature_cache"] = True
    head.cfg.info.update({k: v for k, v in info.items() if k != "history"})
    return head.eval(), info


def _sources(target, head, train, val, cache: bool, max_tokens: int, max_len: int,
             pad_id: int, rng: random.Random, subset, autocast, log):
    """The training batches (an endless iterator of (epoch, (ids, mask, given))) and the
    validation batches; ``given`` is None where the target reads each batch itself."""
    if not cache:
        val_batches = [(ids, mask, None)
                       for ids, mask in make_batches(val, max_tokens, max_len, pad_id, rng)]
        batches = ((e, (ids, mask, None))
                   for e, (ids, mask) in _epochs(train, max_tokens, max_len, pad_id, rng))
        return batches, val_batches
    from .features import FeatureStore, fits_on_device
    layers, lm_head = head.cfg.feature_layers, target.lm_head.weight
    if not fits_on_device(target, train + val, layers, max_len, log):
        return _sources(target, head, train, val, False, max_tokens, max_len, pad_id, rng,
                        subset, autocast, log)
    store = FeatureStore(target, train, layers, max_tokens=max_tokens, max_len=max_len,
                         autocast=autocast, log=log)
    val_store = FeatureStore(target, val, layers, max_tokens=max_tokens, max_len=max_len,
                             autocast=autocast, log=log)
    return store.epochs(rng, subset, lm_head), val_store.all_batches(subset, lm_head)


def _train_loop(head, target, batches, val_batches, subset, out_w, autocast, t0: float, *,
                max_seconds: float, lr: float, warmup: int, weight_decay: float, depth: int,
                eval_every: int, log) -> tuple[int, int, list[dict]]:
    """Steps until ``max_seconds`` (since ``t0``) have passed; the learning rate warms up,
    then follows a cosine over the clock. Returns (steps, epochs, validation history)."""
    device = out_w.device
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.95))
    weights = [0.8 ** k for k in range(depth)]
    step, epoch, history = 0, 0, []
    for epoch, (ids, mask, given) in batches:
        frac = (time.perf_counter() - t0) / max_seconds  # the schedule follows the clock
        if frac >= 1.0:
            break
        rate = (lr_at(step, 10 ** 9, lr, warmup) if step < warmup else
                lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))))
        ids, mask = ids.to(device), mask.to(device)
        with autocast():
            losses, _ = _losses(head, target, ids, mask, subset, depth, out_w, given)
        loss = sum(w * x for w, x in zip(weights, losses))
        optimizer_step(opt, loss, head.parameters(), rate)
        step += 1
        if step % eval_every == 0:
            ev = evaluate_head(head, target, val_batches, subset, depth, out_w, autocast)
            ev.update(step=step, seconds=round(time.perf_counter() - t0, 1),
                      epoch=epoch, loss=round(float(loss.detach()), 4))
            history.append(ev)
            log(f"step {step}: " + ", ".join(
                f"{k} {v}" for k, v in ev.items() if k != "step"))
    ev = evaluate_head(head, target, val_batches, subset, depth, out_w, autocast)
    ev.update(step=step, seconds=round(time.perf_counter() - t0, 1), epoch=epoch)
    history.append(ev)
    log(f"final, step {step}: " + ", ".join(f"{k} {v}" for k, v in ev.items() if k != "step"))
    return step, epoch, history


def _epochs(train: list[np.ndarray], max_tokens: int, max_len: int, pad_id: int,
            rng: random.Random) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """(epochs completed, batch), epoch after epoch, each epoch's batches shuffled anew."""
    for epoch in itertools.count():
        batches = make_batches(train, max_tokens, max_len, pad_id, rng)
        if not batches:
            return
        for batch in batches:
            yield epoch, batch


def _new_head(target, ids_kept, source: str, device, intermediate: int | None = None,
              feature_layers: tuple[int, ...] | None = None) -> FeatureHead:
    """A fresh head over the vocabulary ``ids_kept``, starting as "the next feature is like
    this one" under the target's norm (with several layers: like the last one read)."""
    cfg = HeadConfig.for_target(target, ids_kept, source, intermediate=intermediate,
                                feature_layers=feature_layers)
    head = FeatureHead(cfg).to(device)
    H = cfg.hidden
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.weight[:, :H] = torch.eye(H)
        head.fc.bias.zero_()
        head.norm.copy_(target.model.norm.weight.float())
        if cfg.n_features > 1:
            torch.nn.init.normal_(head.fuse.weight, std=0.01)
            head.fuse.weight[:, -H:] += torch.eye(H, device=head.fuse.weight.device)
    return head


def _continued(init: FeatureHead, target, device) -> FeatureHead:
    """``init`` as a float32 head to train on, checked against the target's shape."""
    want = HeadConfig.for_target(target)
    fields = ("hidden", "n_heads", "n_kv", "head_dim", "vocab_size")
    bad = [f for f in fields if getattr(init.cfg, f) != getattr(want, f)]
    layers = init.cfg.feature_layers or ()
    if layers and layers[-1] > target.config.num_hidden_layers:
        bad.append("feature_layers")
    if bad:
        raise ValueError(f"the head to continue from was made for another target (its "
                         f"{', '.join(bad)} differ)")
    return init.to(device=device, dtype=torch.float32).train()


@torch.no_grad()
def evaluate_head(head, target, batches, subset, depth, out_w, autocast) -> dict:
    """Mean agreement with the target's argmax at each draft depth, and the share of the
    target's argmax tokens inside the head's vocabulary."""
    head.eval()
    sums = np.zeros(depth)
    n_b = 0
    covered = total = 0
    for ids, mask, given in batches:
        ids, mask = ids.to(out_w.device), mask.to(out_w.device)
        with autocast():
            if given is None:
                given = _batch_targets(target, ids, subset, head.cfg.feature_layers)
            _, agree = _losses(head, target, ids, mask, subset, depth, out_w, given)
        sums += np.array([float(a) for a in agree])
        n_b += 1
        if subset is not None:
            arg = given[2][mask]
            covered += int(torch.isin(arg, subset).sum())
            total += int(arg.numel())
    head.train()
    out = {f"agree_{k + 1}": round(float(x / max(n_b, 1)), 4) for k, x in enumerate(sums)}
    if total:
        out["vocab_coverage"] = round(covered / total, 4)
    return out
