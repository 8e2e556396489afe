"""The bench per prompt category, and half precision against the float32 reference."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from specviz.cli import main
from specviz.cli.bench_categories import Sample, categories_markdown, category_figures, groups
from specviz.cli.bench_divergence import (
    divergence_markdown,
    divergences,
    first_difference,
    logit_facts,
)

TINY = ["--target", "embedded:tiny-random-target", "--no-chat"]
ROOT = Path(__file__).resolve().parents[1]


def _trace(accepted: int, judged: int, emitted: int, steps: int):
    return SimpleNamespace(
        steps=[SimpleNamespace(n_evaluated=judged)],
        summary=SimpleNamespace(n_accepted=accepted, n_emitted=emitted, n_steps=steps))


def test_groups_and_figures_per_category_from_constructed_samples():
    assert groups(None, 3) == {"all": [0, 1, 2]}
    assert groups([None, None], 2) == {"all": [0, 1]}
    assert groups(["code", None, "chat", "code"], 4) == {
        "code": [0, 3], "(no category)": [1], "chat": [2], "all": [0, 1, 2, 3]}
    samples = []
    for r in range(2):  # prompt 0 is code, prompt 1 chat; base 10 tokens/s everywhere
        for i in range(2):
            samples.append(Sample("base", r, i, 10, 1.0))
            fast = 30 if i == 0 else 12 + r  # code 3x; chat 1.2x then 1.3x
            samples.append(Sample("spec", r, i, fast, 1.0,
                                  _trace(8 if i == 0 else 2, 8 if i == 0 else 4, fast, 10)))
    per = category_figures(samples, ["code", "chat"], 2, {"base": None, "spec": "base"})
    assert list(per) == ["code", "chat", "all"]
    code, chat, every = (per[g]["methods"]["spec"] for g in ("code", "chat", "all"))
    assert code["speedup"] == pytest.approx(3.0) and code["alpha_hat"] == pytest.approx(1.0)
    assert code["tokens_per_verification"] == pytest.approx(3.0)
    assert chat["speedup_per_repeat"] == pytest.approx([1.2, 1.3])
    assert (chat["speedup_min"], chat["speedup_max"]) == pytest.approx((1.2, 1.3))
    assert chat["alpha_hat"] == pytest.approx(0.5)
    assert every["tokens_per_s"] == pytest.approx((60 + 25) / 4)
    assert every["alpha_hat"] == pytest.approx(20 / 24)
    assert per["all"]["methods"]["base"]["speedup"] is None
    assert per["chat"]["prompts"] == 1
    text = categories_markdown(per, 2)
    assert "| chat | 1 | spec | 12.50 | 1.25x (1.20–1.30) | base | 0.500 | 1.25 |" in text
    assert "| a\\|b |" in categories_markdown({"a|b": per["all"]}, 2)  # escaped cell


def test_divergence_report_from_constructed_outputs_and_logits():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 7]) == 2  # the reference ended first
    facts = logit_facts(torch.tensor([0.0, 5.0, 4.99, 1.0]), 2, 1)
    assert (facts["top1"], facts["top2"]) == (1, 2)
    assert facts["top2_gap"] == pytest.approx(0.01, abs=1e-5)
    assert facts["reference_minus_output"] == pytest.approx(-0.01, abs=1e-5)
    asked = []

    def half(i, prefix):  # a near-tie at the first difference: 2 barely above 1
        asked.append((i, tuple(prefix)))
        return torch.tensor([0.0, 3.0, 3.02, 0.0])

    def full(i, prefix):  # float32 leans the other way, by a little
        return torch.tensor([0.0, 3.01, 3.0, 0.0])
    reference = [[1, 1, 1], [3, 3]]
    outputs = {"target-only": [[1, 2, 2], [3, 3]], "speculative": [[1, 2, 0], [3, 3]]}
    rep = divergences(outputs, reference, half, full, decode=lambda t: f"<{t[0]}>")
    assert asked == [(0, (1,))]  # one pass per (prompt, position), shared by the methods
    assert rep["target-only"]["identical"] == 1 and rep["target-only"]["prompts"] == 2
    d = rep["speculative"]["differences"][0]
    assert (d["prompt"], d["position"], d["reference_token"], d["output_token"]) == (0, 1, 1, 2)
    assert d["half"]["top2_gap"] == pytest.approx(0.02, abs=1e-5)
    assert d["float32"]["top1"] == 1 and d["float32"]["reference_minus_output"] > 0
    text = divergence_markdown(rep, "bfloat16")
    assert "- target-only: 1/2 prompts identical to the float32 reference" in text
    assert "| speculative | 1 | 1 | '&lt;1>' | '&lt;2>' | 0.0200 | -0.0200 | 0.0100 | 0.0100 |" \
        in text
    same = divergence_markdown(divergences({"m": [[1]]}, [[1]], half, None), "float16")
    assert "1/1 prompts identical to the float32 reference (no difference)" in same
    assert "| m |" not in same


def test_bench_per_category_and_half_precision_against_float32(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "the cat sat on the mat", "category": "story"}\n'
                       '{"prompt": "def add(a, b):", "category": "code"}\n'
                       '{"prompt": "the dog ran", "category": "story"}\n')
    f32, half, md = tmp_path / "f32.json", tmp_path / "bf16.json", tmp_path / "bf16.md"
    common = [*TINY, "--prompts", str(prompts), "--max-new-tokens", "6", "--engines",
              "static", "--no-transformers", "--drafter", "model"]
    assert main(["bench", *common, "--repeats", "2", "--json", str(f32)]) == 0
    r = json.loads(f32.read_text())
    per = r["per_category"]
    assert list(per) == ["story", "code", "all"]
    assert [per[g]["prompts"] for g in per] == [2, 1, 3]
    spec = "specviz speculative, static, tracing on"
    for g in per:
        f = per[g]["methods"][spec]
        assert f["baseline"] == "specviz target-only, static"
        assert len(f["speedup_per_repeat"]) == 2 and f["tokens_per_verification"] >= 1
    assert per["all"]["methods"][spec]["tokens_per_s"] == pytest.approx(r["tokens_per_s"][spec])
    assert per["all"]["methods"][spec]["alpha_hat"] == pytest.approx(
        r["per_engine"]["static"]["alpha_hat"])
    out = capsys.readouterr().out
    assert "| code | 1 | specviz speculative, static, tracing on |" in out
    assert "float32 reference" not in out  # float32 is the reference itself

    assert main(["bench", *common, "--repeats", "1", "--dtype", "bfloat16",
                 "--float32-reference", str(f32), "--json", str(half), "--markdown",
                 str(md)]) == 0
    h = json.loads(half.read_text())
    ref = r["outputs"]["specviz target-only, static"]
    assert h["float32_reference"]["outputs"] == ref
    report = h["divergence_from_float32"]
    assert set(report) == set(h["outputs"])
    for method, rep in report.items():  # each difference is where the outputs first part
        assert rep["identical"] + len(rep["differences"]) == 3
        for d in rep["differences"]:
            k, o = d["position"], h["outputs"][method][d["prompt"]]
            assert o[:k] == ref[d["prompt"]][:k] and d["half"]["top2_gap"] >= 0
            assert d["float32"] is not None
    assert "against the float32 target-only output" in md.read_text()

    assert main(["bench", *common, "--dtype", "bfloat16", "--float32-reference",
                 str(prompts)]) == 2
    assert "cannot read --float32-reference" in capsys.readouterr().err
    assert main(["bench", *common, "--dtype", "bfloat16", "--float32-reference", str(f32),
                 "--json", str(f32)]) == 2
    assert "is the --float32-reference file the bench reads" in capsys.readouterr().err


def test_bench_pairs_report_puts_the_runs_side_by_side(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench_pairs_report import to_markdown
    finally:
        sys.path.pop(0)
    per = {"code": {"prompts": 1, "methods": {
        "specviz target-only, eager": {"tokens_per_s": 10.0, "speedup": None,
                                       "alpha_hat": None, "tokens_per_verification": None},
        "specviz speculative, eager, tracing off": {
            "tokens_per_s": 20.0, "speedup": 2.0, "speedup_per_repeat": [1.9, 2.1],
            "alpha_hat": None, "tokens_per_verification": None},
        "specviz speculative, eager, tracing on": {
            "tokens_per_s": 19.0, "speedup": 1.9, "alpha_hat": 0.9,
            "tokens_per_verification": 3.5}}}}
    run = {"name": "p, float32: target-only, draft model", "rc": 0, "load_before": [1, 1, 1],
           "load_after": [1, 1, 1], "wall_s": 3.0,
           "result": {"target": {"dtype": "float32"}, "engines": ["eager"],
                      "tokens_per_s": {}, "per_category": per, "markdown": "(its tables)"}}
    failed = {"name": "p, bfloat16: token trees", "rc": 2, "error": "specviz: refused"}
    parted = {"prompt": 0, "position": 3, "half": {"top2_gap": 0.0156},
              "float32": {"top2_gap": 0.0071}}
    half = {**run, "name": "p, bfloat16: draft model", "result": {
        **run["result"], "target": {"dtype": "bfloat16"}, "divergence_from_float32": {
            "specviz target-only, eager": {"prompts": 2, "identical": 1,
                                           "differences": [parted]},
            "specviz speculative, eager, tracing on": {"prompts": 2, "identical": 1,
                                                       "differences": [parted]},
            "specviz speculative, eager, tracing off": {"prompts": 2, "identical": 1,
                                                        "differences": [parted]}}}}
    hw = {"cpu": "x", "torch_threads": 2, "torch": "t", "transformers": "u"}
    text = to_markdown({"date": "d", "command": "c", "hardware": hw, "engines": "eager",
                        "load_start": [1, 1, 1], "load_end": [2, 2, 2], "pairs": {"p": {
                            "target": "T", "draft": "D", "head": None,
                            "notes": ["no feature head for T here"],
                            "runs": [run, failed, half]}}})
    assert "| float32 | code (1) | draft model (eager) | 20.00 | 2.00x (1.90–2.10) | 0.900 " \
           "| 3.50 |" in text
    assert "- no feature head for T here" in text
    assert "- failed: p, bfloat16: token trees: specviz: refused" in text
    assert ("- p, bfloat16: draft model: specviz target-only, eager / specviz speculative, "
            "eager, tracing on: 1/2 identical to float32 target-only. First differences: "
            "prompt 1 at token 3, top-2 gap 0.016 (0.007 in float32)") in text
    assert "| bfloat16 | code (1) | draft model (eager) |" in text


def test_half_precision_bench_decodes_its_own_float32_reference(tmp_path):
    js = tmp_path / "b.json"
    args = ["bench", *TINY, "--prompt", "the cat sat", "--max-new-tokens", "4", "--repeats",
            "1", "--engines", "eager", "--no-transformers", "--drafter", "model", "--dtype",
            "bfloat16", "--json", str(js)]
    assert main(args) == 0
    r = json.loads(js.read_text())
    assert "decoded in this bench" in r["float32_reference"]["source"]
    assert len(r["float32_reference"]["outputs"]) == 1
    assert list(r["per_category"]) == ["all"]  # a prompt without a category
    assert main([*args, "--no-float32-reference"]) == 0
    assert "divergence_from_float32" not in json.loads(js.read_text())
