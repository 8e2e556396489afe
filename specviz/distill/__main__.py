"""python -m specviz.distill {data,train,pack,all,head,pack-head,eval,speed,qwen-head} ...
(see specviz/distill/__init__.py)"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from ..models import (
    DEFAULT_TARGET,
    DRAFT_ASSET,
    HEAD_ASSET,
    hardware_info,
    load_model,
    load_pair,
)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _target(args):
    dev = torch.device(args.device if args.device != "auto" else
                       ("cuda" if torch.cuda.is_available() else "cpu"))
    t = load_model(args.target, device=dev, dtype=torch.float32, allow_custom=True)
    t.tokenizer.padding_side = "left"
    return t


def cmd_data(args, t=None) -> None:
    from .data import make_data
    t = t or _target(args)
    make_data(t.model, t.tokenizer, args.out, n_self=args.n_self, n_seed=args.n_seed,
              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
              prompt_max_new_tokens=args.prompt_max_new_tokens,
              max_seconds=args.data_seconds, answer_batches=args.answer_batches,
              seed=args.seed, log=_log)


def cmd_train(args, t=None) -> Path:
    from ..models import fetch_smollm2
    from .data import load_data
    from .train import save_draft, train_draft
    t = t or _target(args)
    data_dir = Path(args.data or args.out)
    seqs, _ = load_data(data_dir / "data.npz")
    _log(f"{len(seqs)} sequences, {sum(len(s) for s in seqs)} tokens")
    shape = {k: v for k, v in (("hidden_size", args.hidden), ("num_hidden_layers", args.layers),
                               ("intermediate_size", args.intermediate),
                               ("num_attention_heads", args.heads),
                               ("num_key_value_heads", args.kv_heads)) if v}
    draft, info = train_draft(t.model, seqs, steps=args.steps, max_seconds=args.train_seconds,
                              max_tokens=args.max_tokens, max_len=args.max_len, lr=args.lr,
                              warmup=args.warmup, seed=args.seed, eval_every=args.eval_every,
                              shape=shape, pad_id=int(t.tokenizer.pad_token_id or 2), log=_log)
    info["n_params"] = sum(p.numel() for p in draft.parameters())
    info["hardware"] = hardware_info(next(t.model.parameters()).device)
    info["data"] = str(data_dir / "data.npz")
    tok_dir = fetch_smollm2() if args.target == DEFAULT_TARGET else args.target
    out = save_draft(draft, tok_dir, Path(args.out) / "draft", info)
    meta = data_dir / "data-meta.json"
    if meta.exists():
        (out / "data-meta.json").write_text(meta.read_text())
    _log(f"draft saved in {out}")
    return out


def cmd_head(args, t=None) -> Path:
    from ..models.feature_head import load_head, save_head
    from .data import load_data
    from .head import train_head
    t = t or _target(args)
    data_dirs = [Path(d) for d in (args.data or args.out).split(",") if d.strip()]
    seqs = [s for d in data_dirs for s in load_data(d / "data.npz")[0]]
    _log(f"{len(seqs)} sequences, {sum(len(s) for s in seqs)} tokens")
    init = None
    if args.init:
        device = next(t.model.parameters()).device
        init = load_head(HEAD_ASSET if args.init == "default" else args.init, device,
                         torch.float32)
        _log(f"continuing from the head in {args.init}")
    eos = int(t.tokenizer.convert_tokens_to_ids("<|im_end|>") or 2)
    head, info = train_head(t.model, seqs, vocab_size=args.vocab or None, depth=args.depth,
                            max_seconds=args.train_seconds, max_tokens=args.max_tokens,
                            max_len=args.max_len, lr=args.lr, warmup=args.warmup,
                            seed=args.seed, eval_every=args.eval_every, eos_ids=(eos,),
                            pad_id=int(t.tokenizer.pad_token_id or 2), source=args.target,
                            init=init, log=_log)
    info["n_params"] = sum(p.numel() for p in head.parameters())
    info["hardware"] = hardware_info(next(t.model.parameters()).device)
    info["data"] = ",".join(str(d / "data.npz") for d in data_dirs)
    if args.init:
        info["init"] = str(args.init)
    out = save_head(head, Path(args.out) / "head")
    (out / "train-meta.json").write_text(json.dumps(info, indent=1))
    metas = [json.loads((d / "data-meta.json").read_text()) for d in data_dirs
             if (d / "data-meta.json").exists()]
    if metas:
        (out / "data-meta.json").write_text(json.dumps(_joined(metas), indent=1))
    _log(f"head saved in {out}")
    return out


def _joined(metas: list[dict]) -> dict:
    """Several data folders' metadata as one: counts and seconds added, the rest the
    first's, and each folder's own under ``parts``."""
    if len(metas) == 1:
        return metas[0]
    keys = ("n_sequences", "n_tokens", "n_answer_tokens", "n_self_prompts", "n_seed_prompts",
            "seconds_self_prompts", "seconds_total")
    total = {k: round(sum(m.get(k, 0) for m in metas), 1) if k.startswith("seconds")
             else sum(m.get(k, 0) for m in metas) for k in keys}
    return {**metas[0], **total, "parts": metas}


def cmd_pack_head(args) -> None:
    from .card import pack_head
    dest = pack_head(args.head or Path(args.out) / "head", args.dest)
    _log(f"packed into {dest}")


def cmd_pack(args) -> None:
    from .card import pack
    dest = pack(args.draft or Path(args.out) / "draft", args.dest)
    _log(f"packed into {dest}")


def cmd_all(args) -> None:
    t = _target(args)
    cmd_data(args, t)
    args.data = args.out
    cmd_train(args, t)
    if not args.no_pack:
        cmd_pack(args)


def _pair_and_heldout(args):
    """The pair under evaluation and the first n held-out prompts of each category."""
    from .prompts import CATEGORIES, load_heldout
    if args.threads:
        torch.set_num_threads(args.threads)
    head = getattr(args, "head", "default")
    draft = None if getattr(args, "drafter", "model") == "feature-head" else args.draft
    pair = load_pair(args.target, draft, device=args.device, allow_custom=True, head=head)
    rows = load_heldout()
    prompts = [r for c in CATEGORIES for r in [x for x in rows if x["category"] == c]
               [:args.n_per_category]]
    return pair, prompts


def cmd_eval(args) -> None:
    from .evaluate import markdown_table, run_eval
    pair, prompts = _pair_and_heldout(args)
    temps = tuple(float(x) for x in args.temperatures.split(","))
    load_before = os.getloadavg()
    res = run_eval(pair, prompts, temperatures=temps, gamma=args.gamma,
                   max_new_tokens=args.max_new_tokens, seed=args.seed, log=_log,
                   drafter=args.drafter)
    res["hardware"] = hardware_info(pair.device)
    res["load_average_1_5_15min"] = {"before": load_before, "after": os.getloadavg()}
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["draft"] = pair.head_info if args.drafter == "feature-head" else pair.draft_info
    res["drafter"] = args.drafter
    res["command"] = "python -m specviz.distill " + " ".join(sys.argv[1:])
    table = markdown_table(res)
    print(table)
    print(f"c = {res['c']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))


def cmd_speed(args) -> None:
    from .evaluate import measure_speedup
    pair, prompts = _pair_and_heldout(args)
    load_before = os.getloadavg()
    res = {}
    for gamma in (int(g) for g in args.gammas.split(",")):
        res[f"gamma={gamma}"] = measure_speedup(
            pair, prompts, temperature=args.temperature, gamma=gamma,
            max_new_tokens=args.max_new_tokens, repeats=args.repeats, seed=args.seed, log=_log,
            drafter=args.drafter)
        _log(f"gamma {gamma}: median speedup {res[f'gamma={gamma}']['speedup_median']:.2f}, "
             f"median c {res[f'gamma={gamma}']['c_median']:.3f}")
    res.update(hardware=hardware_info(pair.device), drafter=args.drafter,
               draft=pair.head_info if args.drafter == "feature-head" else pair.draft_info,
               load_average_1_5_15min={"before": load_before, "after": os.getloadavg()},
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               command="python -m specviz.distill " + " ".join(sys.argv[1:]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))


def _common(p) -> None:
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)


def _data_opts(p) -> None:
    p.add_argument("--n-self", type=int, default=24576, help="self-written prompts asked")
    p.add_argument("--n-seed", type=int, default=None, help="seed prompts (default all)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--prompt-max-new-tokens", type=int, default=64)
    p.add_argument("--data-seconds", type=float, default=None,
                   help="stop answering after this many seconds")
    p.add_argument("--answer-batches", type=int, default=11,
                   help="answer batches to run (the shipped draft: 11 of 12); 0 = all")


def _train_opts(p) -> None:
    p.add_argument("--steps", type=int, default=2600)
    p.add_argument("--train-seconds", type=float, default=None,
                   help="fix the step count after 20 steps so training fits this budget")
    p.add_argument("--max-tokens", type=int, default=32768, help="tokens per batch")
    p.add_argument("--max-len", type=int, default=384)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=500)
    for k in ("hidden", "layers", "intermediate", "heads", "kv-heads"):
        p.add_argument(f"--{k}", type=int, default=None)


def _measure_opts(p, n_per_category: int) -> None:
    """What ``eval`` and ``speed`` share: the models and the prompts."""
    _common(p)
    p.add_argument("--draft", default="embedded:smollm2-draft")
    p.add_argument("--drafter", default="model", choices=["model", "feature-head"])
    p.add_argument("--head", default="default", help="feature head source (default: shipped)")
    p.add_argument("--n-per-category", type=int, default=n_per_category)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)


def _draft_parsers(sub) -> None:
    """data, train, pack and all: the separate draft model."""
    p = sub.add_parser("data", help="the target writes prompts and answers")
    _common(p)
    _data_opts(p)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_data)
    p = sub.add_parser("train", help="distil a draft from the target on DATA/data.npz")
    _common(p)
    _train_opts(p)
    p.add_argument("--data", default=None, help="folder with data.npz (default: --out)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("pack", help="copy a trained draft into assets with its model card")
    p.add_argument("--draft", default=None, help="trained draft folder (default OUT/draft)")
    p.add_argument("--out", default="artifacts/distill")
    p.add_argument("--dest", default=str(DRAFT_ASSET))
    p.set_defaults(fn=cmd_pack)
    p = sub.add_parser("all", help="data, train and pack in one process")
    _common(p)
    _data_opts(p)
    _train_opts(p)
    p.add_argument("--out", required=True)
    p.add_argument("--draft", default=None)
    p.add_argument("--dest", default=str(DRAFT_ASSET))
    p.add_argument("--no-pack", action="store_true")
    p.set_defaults(fn=cmd_all, data=None)


def _head_parsers(sub) -> None:
    """head and pack-head: the feature-level draft head."""
    p = sub.add_parser("head", help="train a feature-level draft head on DATA/data.npz")
    _common(p)
    p.add_argument("--data", default=None,
                   help="folder(s) with data.npz, comma-separated (default: --out)")
    p.add_argument("--out", required=True)
    p.add_argument("--init", default=None, metavar="HEAD",
                   help="continue training this head (a trained head's folder, or 'default' "
                        "for the shipped one; its vocabulary is kept) instead of a new one")
    p.add_argument("--train-seconds", type=float, default=450.0)
    p.add_argument("--vocab", type=int, default=16384,
                   help="the head's vocabulary: the most frequent tokens (0 = all)")
    p.add_argument("--depth", type=int, default=3, help="draft tokens trained as drafted")
    p.add_argument("--max-tokens", type=int, default=16384, help="tokens per batch")
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.set_defaults(fn=cmd_head)
    p = sub.add_parser("pack-head", help="copy a trained head into assets with its model card")
    p.add_argument("--head", default=None, help="trained head folder (default OUT/head)")
    p.add_argument("--out", default="artifacts/distill")
    p.add_argument("--dest", default=str(HEAD_ASSET))
    p.set_defaults(fn=cmd_pack_head)


def _measure_parsers(sub) -> None:
    """eval and speed: what a draft gains on held-out prompts."""
    p = sub.add_parser("eval", help="alpha, accepted length, c and speedup on held-out prompts")
    _measure_opts(p, n_per_category=4)
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--temperatures", default="0,0.7,1.0")
    p.add_argument("--json", default=None, help="write the full result here")
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("speed", help="speedup over target-only in interleaved pairs")
    _measure_opts(p, n_per_category=1)
    p.add_argument("--gammas", default="4")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    p.set_defaults(fn=cmd_speed)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m specviz.distill", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _draft_parsers(sub)
    _head_parsers(sub)
    _measure_parsers(sub)
    from .qwen_head import add_parser
    add_parser(sub)
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "answer_batches", None) == 0:
        args.answer_batches = None
    if getattr(args, "train_seconds", None) is not None:
        args.steps = None  # the budget decides the step count
    try:
        args.fn(args)
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
