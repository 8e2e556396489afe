"""Half precision against the float32 reference: where each method's greedy output first
differs from the float32 target-only output, and the target's top-2 logit gap there.

In bfloat16 or float16 a greedy decode can leave the float32 path by rounding: where the
target's two best tokens are nearly tied, a rounding error of the half-precision pass picks
the other one, and the texts go their own ways from there. That is a near-tie, not a bug; a
gap of a few hundredths of a logit at the first differing position says so. The reference
stays float32 target-only (the exact one). The logits at a position are those of a fresh
pass over the prompt and the common prefix (teacher-forced), in the half-precision target
and in a float32 copy of it.
"""

from __future__ import annotations

from typing import Callable

import torch

from .bench_categories import md_cell

HALF = ("bfloat16", "float16")

# (prompt index, common prefix of the output) -> next-token logits of the target
LogitsFn = Callable[[int, list[int]], torch.Tensor]


def first_difference(reference: list[int], output: list[int]) -> int | None:
    """The first position where ``output`` differs from ``reference``: None where they are
    equal; the shorter one's length where one is a prefix of the other."""
    for k, (a, b) in enumerate(zip(reference, output)):
        if a != b:
            return k
    return None if len(reference) == len(output) else min(len(reference), len(output))


def logit_facts(logits: torch.Tensor, reference_token: int | None,
                output_token: int | None) -> dict:
    """The target's view of one position: its two best tokens and their logit gap, and the
    logits of the reference's and the output's tokens there (None where an output ended)."""
    x = logits.float().flatten()
    top = torch.topk(x, 2)
    facts = {"top1": int(top.indices[0]), "top2": int(top.indices[1]),
             "top2_gap": float(top.values[0] - top.values[1])}
    ref = None if reference_token is None else float(x[reference_token])
    out = None if output_token is None else float(x[output_token])
    facts.update(reference_logit=ref, output_logit=out,
                 reference_minus_output=None if ref is None or out is None else ref - out)
    return facts


def divergences(outputs: dict[str, list[list[int]]], reference: list[list[int]],
                half_logits: LogitsFn, float32_logits: LogitsFn | None,
                decode: Callable[[list[int]], str] = str) -> dict:
    """Per method: how many prompts equal the reference, and for each prompt where it
    differs, the first differing position, the two tokens and the target's logits there in
    half precision and (if ``float32_logits``) in float32. Logits are asked once per
    (prompt, position)."""
    cache: dict[tuple[str, int, int], torch.Tensor] = {}

    def at(kind: str, fn: LogitsFn, i: int, prefix: list[int]) -> torch.Tensor:
        key = (kind, i, len(prefix))
        if key not in cache:
            cache[key] = fn(i, prefix)
        return cache[key]

    report = {}
    for method, outs in outputs.items():
        rows = []
        for i, (ref, out) in enumerate(zip(reference, outs)):
            k = first_difference(ref, out)
            if k is None:
                continue
            r_tok = ref[k] if k < len(ref) else None
            o_tok = out[k] if k < len(out) else None
            row = {"prompt": i, "position": k, "reference_token": r_tok, "output_token": o_tok,
                   "reference_text": None if r_tok is None else decode([r_tok]),
                   "output_text": None if o_tok is None else decode([o_tok]),
                   "half": logit_facts(at("half", half_logits, i, ref[:k]), r_tok, o_tok),
                   "float32": None if float32_logits is None else logit_facts(
                       at("float32", float32_logits, i, ref[:k]), r_tok, o_tok)}
            rows.append(row)
        report[method] = {"prompts": len(outs), "identical": len(outs) - len(rows),
                          "differences": rows}
    return report


def _tok(text: str | None) -> str:
    return "(ended)" if text is None else md_cell(repr(text))


def divergence_markdown(report: dict, dtype: str) -> str:
    """The report as a markdown section: a line per method, a row per differing prompt."""
    lines = [f"Greedy outputs in {dtype} against the float32 target-only output (the exact "
             "reference); at the first differing position, the target's logits from a pass "
             "over the prompt and the common prefix:", ""]
    rows = []
    for method, r in report.items():
        same = r["identical"] == r["prompts"]
        lines.append(f"- {method}: {r['identical']}/{r['prompts']} prompts identical to the "
                     "float32 reference" + (" (no difference)" if same else ""))
        rows += [(method, d) for d in r["differences"]]
    if rows:
        lines += ["", f"| method | prompt | first differing position | reference token | "
                  f"output token | top-2 gap, {dtype} | reference - output, {dtype} | "
                  "top-2 gap, float32 | reference - output, float32 |",
                  "|---|---:|---:|---|---|---:|---:|---:|---:|"]
        for method, d in rows:
            h, f = d["half"], d["float32"] or {}
            lines.append(
                f"| {method} | {d['prompt'] + 1} | {d['position']} | {_tok(d['reference_text'])}"
                f" | {_tok(d['output_text'])} | {_g(h.get('top2_gap'))} | "
                f"{_g(h.get('reference_minus_output'))} | {_g(f.get('top2_gap'))} | "
                f"{_g(f.get('reference_minus_output'))} |")
        lines += ["", "A gap near zero is a near-tie that rounding can flip, not a "
                  "decoding error; float32 stays the reference for losslessness."]
    return "\n".join(lines)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def next_logits(model, device, prompt_ids: list[int], prefix: list[int]) -> torch.Tensor:
    """The model's next-token logits after the prompt and ``prefix`` (one fresh pass)."""
    ids = torch.tensor([list(prompt_ids) + list(prefix)], device=device)
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1].float().cpu()
