"""The float32 reference of a half-precision bench: the float32 target-only greedy outputs
(from a float32 run earlier in the same bench, or decoded here by a float32 copy of the
target) and that copy's logits at the positions where a half-precision output leaves them."""

from __future__ import annotations

import argparse
from dataclasses import replace

from .bench_divergence import HALF, divergence_markdown, divergences, next_logits
from .common import load_for


class Float32Reference:
    """One per bench process; the float32 copy is loaded only when first needed."""

    def __init__(self, args, prompts: list[str]):
        self.args, self.prompts = args, prompts
        self.outputs: list[list[int]] | None = None
        self.source = ""
        self._pair = None

    def take(self, outputs: list[list[int]], source: str) -> None:
        """A float32 target-only run of this bench gave the reference."""
        self.outputs, self.source = [list(o) for o in outputs], source

    def pair(self):
        if self._pair is None:
            ns = {**vars(self.args), "dtype": "float32", "draft": "none", "drafter": None,
                  "draft_int8": False}
            self._pair = load_for(argparse.Namespace(**ns), self.prompts)
        return self._pair

    def reference(self, cfg) -> list[list[int]]:
        if self.outputs is None:
            from ..decoding import target_only_decode
            ref_cfg = replace(cfg, engine="eager", trace_detail=False, tree="",
                              drafter="prompt-lookup")
            self.take([target_only_decode(self.pair(), p, ref_cfg).summary.output_token_ids
                       for p in self.prompts],
                      "float32 target-only, eager engine (a float32 copy of the target, "
                      "decoded in this bench)")
        return self.outputs

    def attach(self, result: dict, pair, cfg) -> None:
        """Add the divergence report of ``result`` (a half-precision run on ``pair``) to its
        JSON ("float32_reference", "divergence_from_float32") and its markdown."""
        from ..decoding import encode_prompt
        ref = self.reference(cfg)
        ids = [encode_prompt(pair.tokenizer, p, cfg.chat) for p in self.prompts]

        def half(i: int, prefix: list[int]):
            return next_logits(pair.target, pair.device, ids[i], prefix)

        def full(i: int, prefix: list[int]):
            p32 = self.pair()
            return next_logits(p32.target, p32.device, ids[i], prefix)
        report = divergences(result["outputs"], ref, half, full,
                             lambda t: pair.tokenizer.decode(t))
        result["float32_reference"] = {"source": self.source, "outputs": ref}
        result["divergence_from_float32"] = report
        result["markdown"] += "\n\n" + divergence_markdown(report, result["target"]["dtype"])


def reference_for(args, prompts: list[str], dtypes: list[str]) -> Float32Reference | None:
    """A reference where the bench runs a half dtype greedily and it was not turned off;
    from --float32-reference FILE where given."""
    if getattr(args, "no_float32_reference", False) or args.temperature != 0:
        return None
    if not any(d in HALF for d in dtypes):
        return None
    ref = Float32Reference(args, prompts)
    if getattr(args, "float32_reference", None):
        ref.take(*_from_file(args.float32_reference, prompts, args.max_new_tokens))
    return ref


def _from_file(path: str, prompts: list[str], max_new_tokens: int
               ) -> tuple[list[list[int]], str]:
    """The target-only outputs of a float32 bench's JSON (run_bench's or run_tree_bench's)."""
    import json

    from .common import CliError
    try:
        r = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read --float32-reference {path}: {e}") from None
    runs = r.get("by_dtype", [r]) if isinstance(r, dict) else []
    run = next((x for x in runs if isinstance(x, dict) and
                x.get("target", {}).get("dtype") == "float32"), None)
    if run is None or run.get("temperature") != 0:
        raise CliError(f"--float32-reference {path} holds no greedy float32 bench")
    if run.get("prompts") != len(prompts) or run.get("max_new_tokens") != max_new_tokens:
        raise CliError(f"--float32-reference {path} measured {run.get('prompts')} prompts "
                       f"of {run.get('max_new_tokens')} tokens; this bench: {len(prompts)} of "
                       f"{max_new_tokens}")
    outs = run.get("outputs") or {}
    name = next((m for m in outs if m.startswith(("specviz target-only", "target-only"))
                 and not m.endswith("(untraced)")), None)
    if name is None:
        raise CliError(f"--float32-reference {path} has no target-only outputs")
    return outs[name], f"float32 {name}, from {path}"
