"""The int8 draft (``--draft-int8``): its products, its exactness on the tiny qwen2 pair and
the real embedded pair, and where it is refused."""

from __future__ import annotations

import pytest
import torch

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines import int8_draft
from specviz.engines.int8_draft import Int8Linear
from specviz.models import ModelSourceError

pytestmark = pytest.mark.skipif(not int8_draft.available(),
                                reason="no weight-only int8 kernel in this torch")

TARGET, DRAFT = "embedded:tiny-random-qwen2-target", "embedded:tiny-random-qwen2-draft"
PROMPT = "def add(a, b):"


@pytest.fixture(scope="module")
def pair():
    return load_pair(TARGET, DRAFT, device="cpu", draft_int8=True)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [(1, 1), (1, 5), (2, 3)])
def test_int8_products_are_close_to_float32(bias, rows):
    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 40, bias=bias)
    q = Int8Linear(lin)
    x = torch.randn(*rows, 96)
    want, got = lin(x), q(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    # int8 weights (per-row scale) and bfloat16 activations: about 1 % of the output's scale
    assert (got - want).abs().max() <= 0.03 * want.abs().max()
    assert torch.allclose(q(x), q(x))
    assert (q.dequantized() - lin.weight).abs().max() <= lin.weight.abs().max() / 127


def test_the_draft_is_quantised_and_says_so(pair):
    linears = [m for m in pair.draft.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears and any(isinstance(m, Int8Linear) for m in pair.draft.modules())
    assert not any(isinstance(m, Int8Linear) for m in pair.target.modules())
    assert pair.draft_info["dtype"].startswith("int8 weights")
    assert 0 < pair.draft_info["weight_bytes"]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_an_int8_draft_keeps_the_output_exact(pair, temperature):
    """Greedy: the target's own text. Sampled: seeded runs repeat (the chi-square tests of
    the verifier cover any q, this one included)."""
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=20, chat=False,
                       temperature=temperature, top_k=20 if temperature else 0)
    spec = speculative_decode(pair, PROMPT, cfg)
    assert spec.run.hardware["engine"]["path"] == "eager"
    assert len(spec.summary.output_token_ids) == 20
    if temperature == 0.0:
        base = target_only_decode(pair, PROMPT, cfg)
        assert spec.summary.output_token_ids == base.summary.output_token_ids
    else:
        again = speculative_decode(pair, PROMPT, cfg)
        assert spec.summary.output_token_ids == again.summary.output_token_ids


def test_the_static_engine_refuses_it_in_one_line(pair):
    cfg = DecodeConfig(drafter="model", gamma=3, max_new_tokens=8, chat=False,
                       engine="static")
    with pytest.raises(ValueError, match="eager engine only"):
        speculative_decode(pair, PROMPT, cfg)
    # other drafters on the same pair still use the static engine
    head = speculative_decode(pair, PROMPT, DecodeConfig(drafter="early-exit", gamma=3,
                                                          max_new_tokens=8, chat=False,
                                                          early_exit_layers=2,
                                                          engine="static"))
    assert head.run.hardware["engine"]["path"] == "static"


def test_no_draft_no_int8():
    with pytest.raises(ModelSourceError, match="needs a draft model"):
        load_pair(TARGET, None, device="cpu", draft_int8=True)


@pytest.mark.parametrize("argv,needle", [
    (["run", "--draft", "none", "--draft-int8"], "needs a draft model"),
    (["run", "--draft-int8", "--engine", "static"], "eager engine only"),
])
def test_cli_refusals_are_one_line(argv, needle, capsys):
    from specviz.cli import main
    code = main(argv + ["--target", TARGET, "--device", "cpu", "--prompt", "hi",
                        "--max-new-tokens", "4"] + (["--draft", DRAFT] if "none" not in argv
                                                    else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and needle in err[-1] and err[-1].startswith("specviz: error: ")


def test_the_real_embedded_pair_with_an_int8_draft_twice():
    """The 135M pair as a user runs it (`specviz run --draft-int8`), twice in one process."""
    real = load_pair(device="cpu", draft_int8=True)
    cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=24)
    base = target_only_decode(real, "Write a haiku about the sea.", cfg)
    for _ in range(2):
        spec = speculative_decode(real, "Write a haiku about the sea.", cfg)
        assert spec.summary.output_token_ids == base.summary.output_token_ids
        assert spec.summary.alpha_hat is not None and spec.summary.alpha_hat > 0.3


def test_a_token_tree_with_an_int8_draft_runs_eager_and_exact(pair):
    cfg = DecodeConfig(drafter="model", max_new_tokens=16, chat=False, tree="2,2,1")
    spec = speculative_decode(pair, PROMPT, cfg)
    base = target_only_decode(pair, PROMPT, DecodeConfig(max_new_tokens=16, chat=False))
    assert spec.run.hardware["engine"] == {**spec.run.hardware["engine"], "path": "eager",
                                           "why": "an int8 draft runs on the eager engine only"}
    assert spec.summary.output_token_ids == base.summary.output_token_ids


def test_the_overview_names_an_int8_draft(tmp_path):
    """A recorded run says its draft was int8 (the trace keeps the draft's dtype) and the
    Overview's pair comparison names it so: its cost is not the float draft's."""
    from specviz.cli import main
    from specviz.teaching import pairs
    from specviz.traces.records.jsonl import read_traces
    out = tmp_path / "int8.jsonl"
    assert main(["run", "--target", TARGET, "--draft", DRAFT, "--draft-int8", "--device", "cpu",
                 "--prompt", PROMPT, "--no-chat", "--max-new-tokens", "8", "--baseline",
                 "--rounds", "1", "--out", str(out)]) == 0
    traces = read_traces(out)
    assert traces[0].run.draft["dtype"].startswith("int8 weights")
    run = pairs.pair_run(str(out), 0, traces[0], traces)
    assert run is not None and run.draft.endswith(" (int8 weights)")
    assert pairs.pair_name(run).endswith("tiny-random-qwen2-draft (int8 weights)")


def test_live_page_int8_draft_on_the_real_pair_twice_then_refused_on_static():
    """The Live page's "Draft with int8 weights" box: two Runs on the real embedded pair, each
    exact and recorded as int8; with the static engine, one "Not run" line."""
    from tests.test_app import REAL, _html, _live, _run
    at = _live(REAL)
    at.checkbox(key="draft_int8").check()
    at.selectbox(key="drafter").set_value("model")
    at.checkbox(key="with_baseline").check()
    at.number_input(key="rounds").set_value(1)
    for _ in range(2):
        r = _run(at)
        assert r["error"] is None, r["error"]
        assert r["spec"].run.draft["dtype"].startswith("int8 weights")
        assert r["spec"].summary.output_token_ids == r["base"].summary.output_token_ids
    assert not at.error, [e.value for e in at.error]
    assert "draft default (int8 weights) · drafter model" in _html(at)  # the last-run line
    at.selectbox(key="engine").set_value("static")
    _run(at)
    assert any("eager engine only" in e.value and e.value.startswith("Not run: ")
               for e in at.error)
    assert "Not run (refused before it began)" in _html(at)
