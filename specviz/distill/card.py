"""The shipped draft's folder: weights, tokenizer files and a model card from measured
metadata (data-meta.json, train-meta.json written by the data and train steps)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..models import DRAFT_ASSET

CARDS = Path(__file__).parent / "cards"  # the cards' text, with {fields} from the metadata

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
    """The draft model's card (cards/draft.md), from its config and the measured metadata."""
    cfg, tm, dm, fields = _measured(folder)
    settings, v0, v1 = dm.get("settings", {}), tm.get("val_start", {}), tm.get("val_final", {})
    fields.update(
        {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                             "num_attention_heads", "num_key_value_heads", "intermediate_size")},
        head_dim=cfg.get("head_dim", "?"), dtype=cfg.get("dtype", cfg.get("torch_dtype", "?")),
        per_category=_kv(dm.get("per_category")), per_temperature=_kv(dm.get("per_temperature")),
        max_new_tokens=settings.get("max_new_tokens", "?"),
        kl_start=_f(v0.get("kl")), kl_final=_f(v1.get("kl")),
        top1_start=_f(v0.get("top1_agreement")), top1_final=_f(v1.get("top1_agreement")),
        **_some(dm, "n_answer_tokens"),
        **_some(tm, "weight_decay", "lr", "warmup", "steps", "max_tokens_per_batch", "max_len",
                "train_tokens_seen", "epochs", "seed"))
    return _fill("draft.md", fields)


def _measured(folder: str | Path) -> tuple[dict, dict, dict, dict]:
    """A packed folder's config, train and data metadata, and the fields both cards show."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tm, dm = _load(folder / "train-meta.json"), _load(folder / "data-meta.json")
    size = (folder / "model.safetensors").stat().st_size
    hw_t, hw_d = tm.get("hardware", {}), dm.get("hardware", {})
    fields = dict(size=size, size_mb=f"{size / 1e6:.1f}",
                  data_seconds=dm.get("seconds_total", "?"), data_hardware=_where(hw_d),
                  train_seconds=tm.get("seconds", "?"), train_hardware=_where(hw_t),
                  torch=hw_t.get("torch", "?"), transformers=hw_t.get("transformers", "?"),
                  **_some(dm, "n_self_prompts", "n_seed_prompts", "n_sequences", "n_tokens"),
                  **_some(tm, "n_params", "val_sequences"))
    return cfg, tm, dm, fields


def _some(meta: dict, *keys: str) -> dict:
    return {k: meta.get(k, "?") for k in keys}


def _where(hardware: dict) -> str:
    return hardware.get("gpu", hardware.get("cpu", "?"))


def _fill(template: str, fields: dict) -> str:
    return (CARDS / template).read_text().format_map(fields)


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
    """The feature head's card (cards/head.md), from its config and the measured metadata."""
    cfg, tm, dm, fields = _measured(folder)
    final = tm.get("final", {})
    agree = ", ".join(f"{final[k]:.3f}" for k in sorted(final) if k.startswith("agree_"))
    fields.update(
        {k: cfg[k] for k in ("hidden", "n_heads", "n_kv", "head_dim", "intermediate",
                             "vocab_size")},
        width_in=2 * cfg["hidden"], agree=agree or "?", continued=_continued(tm),
        vocab=len(cfg["vocab_ids"]) if cfg.get("vocab_ids") else cfg["vocab_size"],
        vocab_coverage=final.get("vocab_coverage", "?"),
        **_some(tm, "depth", "lr", "steps", "max_tokens", "max_len", "epochs", "train_tokens"))
    return _fill("head.md", fields)


QWEN_HEAD_KEEP = HEAD_KEEP + ("eval-meta.json",)


def pack_qwen_head(head_dir: str | Path, dest: str | Path) -> Path:
    """Copy a trained head of the Qwen2.5-Coder-1.5B target into ``dest`` with its README.md."""
    return _pack(head_dir, dest, QWEN_HEAD_KEEP, qwen_head_card)


def eval_table(rows: list[dict]) -> str:
    """The held-out evaluation's rows (``specviz.distill.qwen_head``) as a Markdown table."""
    if not rows:
        return "(not evaluated)"
    lines = ["| category | texts | drafter | α̂ | tokens per verification | first position |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['category']} | {r['texts']} | {r['drafter']} | "
                     f"{r['alpha_hat']:.3f} | {r['tokens_per_verification']:.2f} | "
                     f"{r['first_position']:.3f} |")
    return "\n".join(lines)


def qwen_head_card(folder: str | Path) -> str:
    """The Qwen head's card (cards/qwen-head.md), from its config and measured metadata."""
    cfg, tm, dm, fields = _measured(folder)
    em = _load(Path(folder) / "eval-meta.json")
    final = tm.get("final", {})
    agree = ", ".join(f"{final[k]:.3f}" for k in sorted(final) if k.startswith("agree_"))
    layers = cfg.get("feature_layers")
    features = (f"hidden states {', '.join(map(str, layers))} of the target's "
                f"{tm.get('target_layers', '?')} (0 the embeddings, the last after the final "
                f"norm), each RMS-normalised and fused to width {cfg['hidden']}"
                if layers else "the target's last hidden state (after the final norm)")
    fields.update(
        {k: cfg[k] for k in ("hidden", "n_heads", "n_kv", "head_dim", "intermediate",
                             "vocab_size")},
        width_in=2 * cfg["hidden"], agree=agree or "?", features=features,
        packing=("int8 matrices with a bfloat16 scale per row" if cfg.get("packing") == "int8"
                 else "bfloat16"),
        vocab=len(cfg["vocab_ids"]) if cfg.get("vocab_ids") else cfg["vocab_size"],
        vocab_coverage=final.get("vocab_coverage", "?"), gamma=em.get("gamma", "?"),
        eval_table=eval_table(em.get("rows", [])),
        **_some(tm, "depth", "lr", "steps", "max_tokens", "max_len", "epochs", "train_tokens"))
    return _fill("qwen-head.md", fields)
