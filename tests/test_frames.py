"""Traces -> tidy frames: exact numbers on a hand-made trace, consistency on real runs."""

import numpy as np
import pytest

from specviz.traces import frames as F
from tests._traces import handmade_trace, tiny_runs


@pytest.fixture(scope="module")
def hand():
    return handmade_trace()


def test_steps_frame(hand):
    s = F.steps_frame(hand)
    assert list(s.columns) == F.STEP_COLUMNS
    assert s[F.N_ACCEPTED].tolist() == [2, 3, 0]
    assert s[F.N_EVALUATED].tolist() == [3, 3, 1]
    assert s[F.N_EMITTED].tolist() == [3, 4, 1]
    assert s[F.TOKENS_CUM].tolist() == [3, 7, 8]
    assert s[F.ALL_ACCEPTED].tolist() == [False, True, False]
    assert s[F.OVERHEAD_MS].tolist() == pytest.approx([1.0] * 3)
    assert s[F.T_START_S].tolist() == pytest.approx([0.0, 0.014, 0.028])


def test_drafts_frame_statuses(hand):
    d = F.drafts_frame(hand)
    assert list(d.columns) == F.DRAFT_COLUMNS
    assert d[F.STATUS].tolist() == ["accepted", "accepted", "rejected",
                                    "accepted", "accepted", "accepted",
                                    "rejected", "unjudged", "unjudged"]
    assert np.isnan(d[F.U].iloc[7])  # never judged: no draw
    assert d[F.ACCEPT_PROB].iloc[0] == pytest.approx(1.0)
    assert d[F.ACCEPT_PROB].iloc[2] == pytest.approx(0.2)


def test_tokens_frame_reading_order(hand):
    t = F.tokens_frame(hand)
    assert list(t.columns) == F.TOKEN_COLUMNS
    step0 = t[t[F.STEP] == 0]
    assert step0[F.KIND].tolist() == ["accepted", "accepted", "rejected", "resampled"]
    assert step0[F.COL].tolist() == [0, 1, 2, 3]  # the target's token after the drafts
    emitted = t[t[F.EMITTED]].sort_values(F.OUT_INDEX)
    assert emitted[F.TOKEN_ID].tolist() == hand.summary.output_token_ids
    assert emitted[F.OUT_INDEX].tolist() == list(range(8))
    assert t[t[F.STEP] == 1][F.KIND].tolist()[-1] == "bonus"


def test_position_and_length_frames(hand):
    pos = F.position_frame(hand)
    alpha = 5 / 7  # accepted / judged
    assert hand.summary.alpha_hat == pytest.approx(alpha)
    assert pos[F.N_JUDGED].tolist() == [3, 2, 2]
    assert pos[F.N_ACCEPTED_AT].tolist() == [2, 2, 1]
    assert pos[F.RATE_DRAFTED].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert pos[F.PRED_DRAFTED].tolist() == pytest.approx([alpha, alpha ** 2, alpha ** 3])
    lengths = F.accepted_length_frame(hand)
    assert lengths[F.COUNT].tolist() == [1, 0, 1, 1]
    assert lengths[F.PRED_FRACTION].sum() == pytest.approx(1.0)
    assert lengths[F.PRED_FRACTION].iloc[0] == pytest.approx(1 - alpha)


def test_topk_frame_residual(hand):
    k = F.topk_frame(hand, 0, 2)
    assert list(k.columns) == F.TOPK_COLUMNS
    assert k[F.IS_DRAFTED].sum() == 1
    assert k[F.RESIDUAL].sum() == pytest.approx(1.0)
    drafted = k[k[F.IS_DRAFTED]].iloc[0]
    assert drafted[F.P] == pytest.approx(0.1) and drafted[F.Q] == pytest.approx(0.5)
    assert drafted[F.RESIDUAL] == 0.0  # p < q: nothing left for the correction


def test_runs_frame_and_baseline():
    runs = tiny_runs()
    traces = list(runs.values())
    table = F.runs_frame(traces, ["x"] * len(traces))
    assert list(table.columns) == F.RUN_COLUMNS
    assert table[F.MODE].tolist() == ["speculative", "target-only"] * 2
    assert F.baseline_for(runs["sampled"], traces) is runs["sampled-base"]
    assert F.baseline_for(runs["greedy"], traces) is runs["greedy-base"]
    assert F.baseline_for(runs["greedy-base"], traces) is None


@pytest.mark.parametrize("name", ["sampled", "greedy", "sampled-base"])
def test_frames_agree_with_the_summary(name):
    trace = tiny_runs()[name]
    t = F.tokens_frame(trace)
    out = t[t[F.EMITTED]].sort_values(F.OUT_INDEX)[F.TOKEN_ID].tolist()
    assert out == trace.summary.output_token_ids
    s = F.steps_frame(trace)
    assert int(s[F.TOKENS_CUM].iloc[-1]) == trace.summary.n_emitted
    if name == "sampled-base":
        assert set(t[F.KIND]) == {"target"}
        assert F.drafts_frame(trace).empty


def test_greedy_output_matches_target_only():
    runs = tiny_runs()
    a = runs["greedy"].summary.output_token_ids
    b = runs["greedy-base"].summary.output_token_ids
    assert F.first_divergence(a, b) is None


def test_first_divergence():
    assert F.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert F.first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert F.first_divergence([1, 2], [1, 2, 3]) == 2


def test_engine_summary_says_where_and_how_a_run_ran(hand):
    import dataclasses
    from pathlib import Path

    from specviz import read_traces
    gpu = read_traces(Path(__file__).resolve().parent.parent / "assets" / "traces"
                      / "h200-smollm2-draft-greedy-graphs.jsonl")[0]
    assert F.engine_summary(gpu) == ("Ran on cuda (NVIDIA H200): static KV caches, CUDA "
                                     "graphs on (CUDA device).")
    hw = {"device": "cpu", "cpu": "AMD EPYC",
          "engine": {"path": "eager", "cuda_graphs": False, "static_cache": False,
                     "why": "no CUDA device"}}
    cpu = dataclasses.replace(hand, run=dataclasses.replace(hand.run, hardware=hw))
    assert F.engine_summary(cpu) == ("Ran on cpu (AMD EPYC): transformers' eager forward, "
                                     "CUDA graphs off (no CUDA device).")
    hw = {"device": "cuda", "gpu": "NVIDIA H200",
          "engine": {"path": "graphs", "row_kernel": True, "why": "token tree, CUDA device"}}
    tree = dataclasses.replace(hand, run=dataclasses.replace(hand.run, hardware=hw))
    assert F.engine_summary(tree) == ("Ran on cuda (NVIDIA H200): static KV caches, CUDA graphs "
                                      "on, few-row products on the Triton kernel (token tree, "
                                      "CUDA device).")
    hw["engine"]["fused"] = True
    fused = dataclasses.replace(hand, run=dataclasses.replace(hand.run, hardware=hw))
    assert F.engine_summary(fused).endswith("few-row products on the Triton kernel, layers and "
                                            "tree drafts compiled (fused) (token tree, CUDA "
                                            "device).")
    old = dataclasses.replace(hand, run=dataclasses.replace(hand.run, hardware={}))
    assert "engine not recorded" in F.engine_summary(old)
