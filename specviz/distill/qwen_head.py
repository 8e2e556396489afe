"""A feature head for Qwen2.5-Coder-1.5B-Instruct in one time-bounded run (data, training,
held-out evaluation, packing), for one GPU: ``python -m specviz.distill qwen-head GGUF_DIR OUT``
(``scripts/gpu/qwen_head.sh``). ``--tiny`` runs the same on tiny random qwen2 models in
seconds, on the CPU, so that a test can check it end to end.

What it writes into OUT: ``head/`` (the packed head with its card: config.json,
model.safetensors, README.md and the metadata), ``summary.json`` and ``summary.md`` (each
stage's time, the data and training counts, α̂ per held-out category for the head, the 0.5B
draft model and the head's variants: float32 as trained, bfloat16 and int8 as packed, and
with the whole vocabulary, which is what each packing choice costs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

TARGET_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DRAFT_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SOURCE = "embedded:qwen2.5-coder-1.5b-instruct"
MAX_FILE_BYTES = 50_000_000  # a shipped file
TINY_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
               "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
               "{% endif %}")


class Clock:
    """Seconds since the start, against a total budget."""

    def __init__(self, total: float):
        self.t0, self.total = time.perf_counter(), total

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.total - self.elapsed()


def _log(msg: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')}] {msg} (load {load:.1f})", flush=True)


def tiny_qwen2(seed: int, vocab: int = 300, layers: int = 4, drift: float = 0.0):
    """A tiny random qwen2 model (q/k/v biases, 2 key-value heads, rope θ 1e6); ``drift``
    perturbs it (a draft that agrees often, not always)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, rope_theta=1e6, bos_token_id=1,
                      eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
        model.lm_head.weight[:3] = 0.0
        for w in model.parameters():
            w.add_(drift * torch.randn_like(w))
    torch.random.set_rng_state(state)
    return model.eval()


def load_models(gguf_dir: str | None, device: torch.device, tiny: bool,
                scratch: Path | None = None):
    """(target, draft, tokenizer): tiny random qwen2 models, or the two GGUFs of
    ``gguf_dir`` de-quantised to float32: converted tensor by tensor into ``scratch`` by the
    project's converter (``specviz.models.gguf``), or, without it, by transformers."""
    if tiny:
        from ..models.tiny import tiny_tokenizer
        tok = tiny_tokenizer()
        tok.chat_template = TINY_CHATML
        return (tiny_qwen2(0).to(device), tiny_qwen2(0, layers=2, drift=0.02).to(device), tok)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = Path(gguf_dir)
    names = _present(folder, scratch)
    try:
        from ..models.gguf import convert_gguf
    except ImportError:
        convert_gguf = None
    if convert_gguf is not None and scratch is not None:
        sources = []
        for name in names:
            dest = Path(scratch) / name.removesuffix(".gguf")
            if not (dest / "config.json").exists():
                convert_gguf(folder / name, dest, progress=_every_tenth(name))
            sources.append((str(dest), {}))
    else:
        sources = [(str(folder), {"gguf_file": name}) for name in names]
    tok = AutoTokenizer.from_pretrained(sources[0][0], **sources[0][1])
    if "<|im_end|>" in tok.get_vocab():  # the chat's turns end there
        tok.eos_token = tok.pad_token = "<|im_end|>"
    models = [AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32,
                                                   **kw).to(device).eval()
              for src, kw in sources]
    for m in models:
        m.requires_grad_(False)
        m.generation_config.pad_token_id = tok.pad_token_id
    return models[0], (models[1] if len(models) > 1 else None), tok


def _present(folder: Path, scratch: Path | None) -> list[str]:
    """The GGUFs to load: the target's, which must be there (as a file or converted), and
    the draft's where it is (without it the evaluation leaves the draft model out)."""
    def there(name: str) -> bool:
        return (folder / name).is_file() or (
            scratch is not None and (Path(scratch) / name.removesuffix(".gguf")
                                     / "config.json").exists())
    if not there(TARGET_GGUF):
        raise ValueError(f"{folder / TARGET_GGUF} is missing")
    if not there(DRAFT_GGUF):
        _log(f"{folder / DRAFT_GGUF} is missing: no draft model to compare with")
        return [TARGET_GGUF]
    return [TARGET_GGUF, DRAFT_GGUF]


def _every_tenth(name: str):
    """A converter's progress callback that logs at every tenth of the way."""
    seen = set()

    def progress(message: str, fraction: float | None = None) -> None:
        tenth = int((fraction or 0.0) * 10)
        if tenth not in seen:
            seen.add(tenth)
            _log(f"converting {name}: {tenth * 10} %")
    return progress


def make_qwen_data(target, tok, out: Path, args, seconds: float, device) -> dict:
    """The target writes prompts and answers for ``seconds``."""
    from .data import make_data
    writer = target  # on a GPU a bfloat16 copy writes (rounding aside, the same p)
    if device.type == "cuda":
        import copy
        writer = copy.deepcopy(target).to(torch.bfloat16)
    try:
        return make_data(writer, tok, out, n_self=args.n_self, n_seed=None,
                         batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                         prompt_max_new_tokens=args.prompt_max_new_tokens,
                         max_seconds=seconds, answer_batches=None, seed=args.seed, log=_log,
                         code_share=args.code_share, eos_token=_eos_token(tok))
    finally:
        del writer
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _eos_token(tok) -> str:
    return "<|im_end|>" if "<|im_end|>" in tok.get_vocab() else tok.eos_token


def heldout_texts(target, tok, n_per_category: int, max_new_tokens: int, device
                  ) -> list[dict]:
    """The held-out prompts (n per category) answered greedily by the target in float32:
    [{"category", "prompt", "ids", "n_prompt"}]."""
    from .data import generate_batch
    from .prompts import CATEGORIES, chat_text, load_heldout
    rows = load_heldout()
    chosen = [r for c in CATEGORIES for r in [x for x in rows if x["category"] == c]
              [:n_per_category]]
    eos = int(tok.convert_tokens_to_ids(_eos_token(tok)))
    enc, new = generate_batch(target, tok, [chat_text(tok, r["prompt"]) for r in chosen],
                              temperature=0.0, max_new_tokens=max_new_tokens, eos_id=eos,
                              seed=0)
    return [{**r, "ids": e + n, "n_prompt": len(e)} for r, e, n in zip(chosen, enc, new)]


def evaluate(target, draft, heads: dict, texts: list[dict], gamma: int) -> list[dict]:
    """Replayed greedy α̂ (``specviz.distill.agreement``) per category and overall, for
    each head variant in ``heads`` ({name: (head, out_ids or None)}) and the draft model."""
    from .agreement import draft_counts, head_counts, pooled, target_pass
    counts: dict[str, list] = {}
    for t in texts:
        layers = {h.cfg.feature_layers for h, _ in heads.values()}
        passes = {lay: target_pass(target, t["ids"], lay) for lay in layers}
        for name, (head, out_ids) in heads.items():
            c = head_counts(head, target, passes[head.cfg.feature_layers], t["n_prompt"],
                            gamma, out_ids)
            counts.setdefault(name, []).append((t["category"], c))
        if draft is not None:
            tp = next(iter(passes.values()))
            counts.setdefault("draft model (0.5B)", []).append(
                (t["category"], draft_counts(draft, tp, t["n_prompt"], gamma)))
    rows = []
    cats = list(dict.fromkeys(t["category"] for t in texts)) + ["all"]
    for name, per in counts.items():
        for cat in cats:
            sel = [c for k, c in per if cat in ("all", k)]
            if sel:
                rows.append({"drafter": name, "category": cat, **pooled(sel)})
    return rows


def head_variants(head, folder: Path, device) -> dict:
    """The trained head (float32), as packed in bfloat16 and in int8 (loaded back), and with
    the target's whole vocabulary: {name: (head, out_ids)}."""
    from ..models.feature_head import load_head, save_head
    out = {"head, float32 (as trained)": (head, None)}
    for packing in ("bfloat16", "int8"):
        save_head(head, folder / packing, packing)
        out[f"head, {packing} (packed)"] = (load_head(folder / packing, device,
                                                      torch.float32), None)
    if head.cfg.vocab_ids is not None:
        full = torch.arange(head.cfg.vocab_size, device=device)
        out["head, float32, whole vocabulary"] = (head, full)
    return out


def lossless_check(target, tok, head, texts: list[dict], n: int, max_new_tokens: int,
                   device) -> list[dict]:
    """Real speculative decoding with the packed head on ``n`` held-out prompts (greedy,
    the engine the pair runs on): output identical to target-only?"""
    from ..decoding import DecodeConfig, speculative_decode, target_only_decode
    from ..models import ModelPair
    eos = int(tok.convert_tokens_to_ids(_eos_token(tok)))
    pair = ModelPair(target=target, tokenizer=tok, device=device,
                     target_info={"source": SOURCE,
                                  "n_layers": target.config.num_hidden_layers},
                     eos_ids=[eos], context_length=4096, head=head,
                     head_info={"source": "packed head"})
    cfg = DecodeConfig(drafter="feature-head", gamma=4, max_new_tokens=max_new_tokens)
    out = []
    for t in texts[:: max(1, len(texts) // max(n, 1))][:n]:
        s = speculative_decode(pair, t["prompt"], cfg)
        b = target_only_decode(pair, t["prompt"], cfg)
        out.append({"category": t["category"], "identical": s.summary.output_token_ids ==
                    b.summary.output_token_ids, "alpha_hat": s.summary.alpha_hat,
                    "engine": s.run.hardware.get("engine", {}).get("path"),
                    "tokens_per_s": s.summary.tokens_per_s,
                    "target_only_tokens_per_s": b.summary.tokens_per_s})
        _log(f"lossless check ({t['category']}): {out[-1]}")
    return out


def _train(target, tok, seqs, args, seconds: float):
    from ..models.feature_head import default_feature_layers
    from .head import train_head
    L = target.config.num_hidden_layers
    layers = (None if args.layers == "last" else default_feature_layers(L)
              if args.layers == "default" else tuple(int(x) for x in args.layers.split(",")))
    eos = int(tok.convert_tokens_to_ids(_eos_token(tok)))
    _log(f"training for {seconds:.0f} s on {len(seqs)} sequences (layers {layers}, MLP "
         f"{args.intermediate}, vocabulary {args.vocab or 'all'})")
    head, info = train_head(
        target, seqs, vocab_size=args.vocab or None, depth=args.depth, max_seconds=seconds,
        max_tokens=args.max_tokens, max_len=args.max_len, lr=args.lr, warmup=args.warmup,
        seed=args.seed, eval_every=args.eval_every, eos_ids=(eos,),
        pad_id=int(tok.pad_token_id if tok.pad_token_id is not None else eos),
        source=SOURCE, intermediate=args.intermediate, feature_layers=layers,
        cache=target.device.type == "cuda", log=_log)
    info["target_layers"] = L
    return head, info


def run(args) -> dict:
    """The whole run; returns the summary (also written to OUT/summary.json and .md). A
    failure in the evaluation or the decoding check is recorded, and the head still packed."""
    from ..models import hardware_info
    from .data import load_data
    clock, device = Clock(args.seconds), _device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "work"
    stages: dict[str, float] = {}
    load0 = os.getloadavg()

    def mark(stage: str) -> None:
        stages[stage] = round(clock.elapsed() - sum(stages.values()), 1)

    _log(f"start on {device}, budget {args.seconds:.0f} s")
    target, draft, tok = load_models(args.gguf_dir, device, args.tiny, work / "models")
    target.requires_grad_(False)
    mark("load")
    meta = _data(target, tok, work / "data", args, clock, device)
    seqs, _ = load_data(work / "data" / "data.npz")
    mark("data")
    if args.data_only:
        _log(f"data only: {len(seqs)} sequences in {work / 'data'}")
        return {"stages_s": stages, "data": meta}
    head, info = _train(target, tok, seqs, args, max(1.0, clock.left() - args.reserve))
    info.update(n_params=sum(p.numel() for p in head.parameters()),
                hardware=hardware_info(device), data=str(work / "data" / "data.npz"))
    mark("train")
    torch.backends.cuda.matmul.allow_tf32 = False  # evaluation and check in full float32
    errors, rows, texts = {}, [], []
    try:
        texts = heldout_texts(target, tok, args.n_per_category, args.eval_tokens, device)
        rows = evaluate(target, draft, head_variants(head, work / "variants", device), texts,
                        args.gamma)
    except Exception as e:  # recorded: the head is packed all the same
        errors["evaluate"] = f"{type(e).__name__}: {e}"
        _log(f"evaluation failed: {errors['evaluate']}")
    mark("evaluate")
    packed = _pack(head, info, meta, rows, args, work, out)
    mark("pack")
    checks = []
    if args.check_prompts and texts:
        try:
            from ..models.feature_head import load_head
            checks = lossless_check(target, tok, load_head(packed, device, torch.float32),
                                    texts, args.check_prompts, args.check_tokens, device)
        except Exception as e:
            errors["check"] = f"{type(e).__name__}: {e}"
            _log(f"decoding check failed: {errors['check']}")
    mark("check")
    summary = _summary(args, clock, stages, device, load0, meta, info, packed, rows, checks,
                       errors)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    _log(f"done in {summary['total_s']} s: {out}")
    return summary


def _data(target, tok, folder: Path, args, clock: Clock, device) -> dict:
    """The training data: written now for its share of the budget (all of what is left with
    ``--data-only``), or, with ``--reuse-data``, what an earlier run left in ``folder``."""
    if args.reuse_data and (folder / "data.npz").is_file():
        _log(f"reusing the data in {folder}")
        return json.loads((folder / "data-meta.json").read_text())
    share = 1.0 if args.data_only else args.data_share
    return make_qwen_data(target, tok, folder, args,
                          max(1.0, share * (clock.left() - args.reserve)), device)


def _device(name: str) -> torch.device:
    device = torch.device(name if name != "auto" else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return device


def _pack(head, info: dict, meta: dict, rows: list[dict], args, work: Path, out: Path
          ) -> Path:
    """The trained head saved with its metadata, then packed with its card into OUT/head."""
    from ..models.feature_head import save_head
    from .card import pack_qwen_head
    trained = save_head(head, work / "head", args.packing)
    (trained / "train-meta.json").write_text(json.dumps(info, indent=1))
    (trained / "data-meta.json").write_text(json.dumps(meta, indent=1))
    (trained / "eval-meta.json").write_text(json.dumps(
        {"gamma": args.gamma, "eval_tokens": args.eval_tokens, "rows": rows,
         "how": "teacher-forced replay of greedy steps (specviz.distill.agreement)"}, indent=1))
    return pack_qwen_head(trained, out / "head")


def _summary(args, clock, stages, device, load0, meta, info, packed: Path, rows, checks,
             errors) -> dict:
    from ..models import hardware_info
    sizes = {p.name: p.stat().st_size for p in sorted(packed.iterdir())}
    config = json.loads((packed / "config.json").read_text())
    return {"stages_s": stages, "total_s": round(clock.elapsed(), 1), "budget_s": args.seconds,
            "device": hardware_info(device), "load_average_start": load0,
            "load_average_end": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tiny": args.tiny,
            "data": {k: meta.get(k) for k in ("n_sequences", "n_tokens", "n_answer_tokens",
                                              "per_category", "stopped_early")},
            "train": {k: v for k, v in info.items() if k != "history"},
            "head": {"config": {k: v for k, v in config.items() if k not in ("vocab_ids",
                                                                            "info")},
                     "files": sizes, "largest_file_ok": max(sizes.values()) <= MAX_FILE_BYTES,
                     "total_bytes": sum(sizes.values())},
            "gamma": args.gamma, "eval": rows, "lossless_check": checks, "errors": errors,
            "command": "python -m specviz.distill qwen-head " + " ".join(args.argv)}


def summary_markdown(s: dict) -> str:
    """The run's summary as Markdown."""
    from .card import eval_table
    t, h = s["train"], s["head"]
    lines = [f"# Feature head for Qwen2.5-Coder-1.5B-Instruct ({s['date']})", "",
             f"Device: {s['device'].get('gpu', s['device'].get('cpu', '?'))}; total "
             f"{s['total_s']} s of a {s['budget_s']} s budget; stages (s): "
             + ", ".join(f"{k} {v}" for k, v in s["stages_s"].items()) + ".", "",
             f"Data: {s['data']['n_sequences']} sequences, {s['data']['n_tokens']} tokens "
             f"(per category: {s['data']['per_category']}).", "",
             f"Training: {t.get('steps')} steps, {t.get('epochs')} epochs, "
             f"{t.get('n_params')} parameters; validation {t.get('final')}.", "",
             f"Head: {h['config']}; files {h['files']} (each ≤ 50 MB: "
             f"{h['largest_file_ok']}).", "",
             f"## Held-out prompts, greedy, replayed at γ = {s['gamma']}", "",
             eval_table(s["eval"]), ""]
    if s["lossless_check"]:
        lines += ["## Real speculative decoding with the packed head", "",
                  "| category | identical to target-only | α̂ | engine | tokens/s | "
                  "target-only tokens/s |", "|---|---|---:|---|---:|---:|"]
        lines += [f"| {c['category']} | {c['identical']} | {c['alpha_hat'] or 0:.3f} | "
                  f"{c['engine']} | {c['tokens_per_s']:.1f} | "
                  f"{c['target_only_tokens_per_s']:.1f} |" for c in s["lossless_check"]]
    if s["errors"]:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in s["errors"].items())]
    lines += ["", f"Command: `{s['command']}`", ""]
    return "\n".join(lines)


def add_parser(sub) -> None:
    """The ``qwen-head`` subcommand of ``python -m specviz.distill``."""
    p = sub.add_parser("qwen-head", help="data, training, evaluation and packing of a "
                       "feature head for Qwen2.5-Coder-1.5B-Instruct in one timed run")
    p.add_argument("gguf_dir", nargs="?", default=None,
                   help=f"folder holding {TARGET_GGUF} and {DRAFT_GGUF}")
    p.add_argument("out", help="where the packed head and the summary go")
    p.add_argument("--tiny", action="store_true", help="tiny random qwen2 models (a test)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=470.0, help="the whole run's budget")
    p.add_argument("--reserve", type=float, default=60.0,
                   help="seconds kept for evaluation, packing and the check")
    p.add_argument("--data-share", type=float, default=0.55,
                   help="share of the time after loading spent writing data")
    p.add_argument("--work", default=None, help="scratch folder (default OUT/work)")
    p.add_argument("--data-only", action="store_true",
                   help="write the training data into WORK/data and stop")
    p.add_argument("--reuse-data", action="store_true",
                   help="train on the data an earlier --data-only run left in WORK/data")
    p.add_argument("--n-self", type=int, default=4096)
    p.add_argument("--code-share", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--prompt-max-new-tokens", type=int, default=64)
    p.add_argument("--layers", default="default",
                   help="'default' (2, L/2, L), 'last', or hidden-state indices a,b,c")
    p.add_argument("--intermediate", type=int, default=1536,
                   help="the head's MLP width (the target's: 8960)")
    p.add_argument("--vocab", type=int, default=32768, help="the head's vocabulary (0 = all)")
    p.add_argument("--packing", default="bfloat16", choices=["bfloat16", "int8"])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=16384)
    p.add_argument("--max-len", type=int, default=384)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--n-per-category", type=int, default=6)
    p.add_argument("--eval-tokens", type=int, default=128)
    p.add_argument("--check-prompts", type=int, default=2)
    p.add_argument("--check-tokens", type=int, default=48)
    p.set_defaults(fn=_cmd)


def _cmd(args) -> None:
    import sys
    if not args.tiny and not args.gguf_dir:
        raise ValueError("give the folder holding the two GGUFs, or --tiny")
    args.argv = sys.argv[2:]
    run(args)
