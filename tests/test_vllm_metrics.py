"""vLLM's spec-decode counters read from Prometheus text, in the format its server writes
(prometheus_client's text exposition: a counter ``X`` as ``X_total`` and ``X_created``,
labels model_name and engine, the per-position counter with a ``position`` label)."""

from __future__ import annotations

import math

import pytest

from specviz.runs import vllm as V

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def scrape(drafts, draft_tokens, accepted, per_pos, *, engine="0", model=MODEL, extra="",
           positions=None) -> str:
    """A /metrics page as vLLM (V1 engine) writes it, other metrics around the spec-decode
    ones."""
    labels = f'model_name="{model}",engine="{engine}"'
    out = ["# HELP vllm:num_requests_running Number of requests in model execution batches.",
           "# TYPE vllm:num_requests_running gauge",
           f"vllm:num_requests_running{{{labels}}} 3.0",
           "# HELP python_gc_objects_collected_total Objects collected during gc",
           "# TYPE python_gc_objects_collected_total counter",
           'python_gc_objects_collected_total{generation="0"} 1234.0']
    for name, doc, value in (("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.",
                              drafts),
                             ("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.",
                              draft_tokens),
                             ("vllm:spec_decode_num_accepted_tokens",
                              "Number of accepted tokens.", accepted)):
        out += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter",
                f"{name}_total{{{labels}}} {float(value)}",
                f"# HELP {name}_created {doc}", f"# TYPE {name}_created gauge",
                f"{name}_created{{{labels}}} 1.7650204e+09"]
    name = "vllm:spec_decode_num_accepted_tokens_per_pos"
    out += [f"# HELP {name}_total Accepted tokens per draft position.",
            f"# TYPE {name}_total counter"]
    for i, v in enumerate(per_pos):
        if positions is None or i in positions:
            out.append(f'{name}_total{{{labels},position="{i}"}} {float(v)}')
    return "\n".join(out) + "\n" + extra


def test_one_scrape_gives_totals_alpha_per_position_and_tokens_per_step():
    s = V.parse_scrape(scrape(100, 400, 250, [80, 65, 55, 50]))
    assert s.problems == [] and s.models == [MODEL] and s.other_metrics == 2
    (st,) = V.totals(s)
    assert st.gamma == 4 and st.drafts == 100 and st.engines == 1
    assert st.alpha_by_position == pytest.approx([0.8, 65 / 80, 55 / 65, 50 / 55])
    assert st.rate_by_position == pytest.approx([0.8, 0.65, 0.55, 0.5])
    # judged: 250 accepted + the 100 - 50 drafts that had a rejection
    assert st.alpha_hat == pytest.approx(250 / 300)
    assert st.mean_accepted_length == pytest.approx(3.5)
    assert st.acceptance_rate == pytest.approx(250 / 400)
    assert st.drafts_per_s is None and st.notes == ()


def test_two_scrapes_give_the_interval_and_drafts_per_second():
    a = V.parse_scrape(scrape(100, 400, 250, [80, 65, 55, 50]), "a")
    b = V.parse_scrape(scrape(300, 1200, 650, [230, 180, 130, 110]), "b")
    (st,) = V.interval(a, b, seconds=20)
    assert st.drafts == 200 and st.accepted == 400 and st.interval_s == 20
    assert st.drafts_per_s == pytest.approx(10.0)
    assert st.alpha_by_position == pytest.approx([150 / 200, 115 / 150, 75 / 115, 60 / 75])
    assert st.mean_accepted_length == pytest.approx(3.0)
    assert st.alpha_hat == pytest.approx(400 / (400 + 200 - 60))


def test_a_counter_reset_between_scrapes_counts_from_the_restart():
    a = V.parse_scrape(scrape(1000, 4000, 2500, [800, 650, 550, 500]))
    b = V.parse_scrape(scrape(50, 200, 120, [40, 35, 25, 20]))  # the server restarted
    (st,) = V.interval(a, b, seconds=30)
    assert st.drafts == 50 and st.accepted == 120
    assert st.alpha_by_position[0] == pytest.approx(0.8)
    assert len(st.notes) == 1 and "reset" in st.notes[0] and "\n" not in st.notes[0]


def test_missing_positions_are_said_and_alpha_stops_there():
    s = V.parse_scrape(scrape(100, 400, 250, [80, 65, 55, 50], positions={0, 1, 3}))
    (st,) = V.totals(s)
    assert st.alpha_by_position[:2] == pytest.approx([0.8, 65 / 80])
    assert st.alpha_by_position[2] is None and st.alpha_by_position[3] is None
    assert st.alpha_hat is None  # judged positions unknown without every position
    assert st.mean_accepted_length == pytest.approx(3.5)  # from the totals, still known
    assert any("position(s) 2 missing" in n for n in st.notes)
    # a position in the second scrape only is no interval: left out, said
    a = V.parse_scrape(scrape(100, 400, 250, [80, 65, 55, 50], positions={0, 1, 2}))
    b = V.parse_scrape(scrape(200, 800, 500, [160, 130, 110, 100]))
    (st,) = V.interval(a, b, seconds=10)
    assert len(st.alpha_by_position) == 3
    assert any("position 3 is in the second scrape only" in n for n in st.notes)


def test_nan_negative_unknown_and_malformed_lines_are_one_line_each_and_the_rest_is_read():
    extra = "\n".join([
        f'vllm:spec_decode_num_draft_tokens_total{{model_name="{MODEL}",engine="1"}} NaN',
        f'vllm:spec_decode_num_drafts_total{{model_name="{MODEL}",engine="1"}} -5.0',
        f'vllm:spec_decode_new_counter_total{{model_name="{MODEL}",engine="0"}} 7.0',
        f'vllm:spec_decode_new_counter_total{{model_name="{MODEL}",engine="1"}} 7.0',
        'vllm:spec_decode_num_drafts_total{model_name="x",engine="0" 3',
        f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{model_name="{MODEL}",'
        'engine="0",position="first"} 3.0',
        f'vllm:spec_decode_num_accepted_tokens_total{{model_name="{MODEL}",engine="1"}} +Inf',
    ])
    s = V.parse_scrape(scrape(100, 400, 250, [80, 65, 55, 50], extra=extra), "m.txt")
    assert len(s.problems) == 6, s.problems
    assert all("\n" not in p and p.startswith("m.txt") for p in s.problems)
    text = " | ".join(s.problems)
    for word in ("is NaN", "negative (-5)", "unknown metric vllm:spec_decode_new_counter",
                 "not a Prometheus sample", "no position", "is +Inf"):
        assert word in text, word
    (st,) = V.totals(s)  # the good samples all read
    assert st.drafts == 100 and st.alpha_hat == pytest.approx(250 / 300)


def test_engines_are_summed_and_models_kept_apart():
    text = scrape(100, 400, 250, [80, 65, 55, 50], engine="0") + \
        scrape(50, 200, 100, [40, 30, 20, 10], engine="1") + \
        scrape(10, 40, 10, [5, 3, 1, 1], model="other")
    stats = {s.model: s for s in V.totals(V.parse_scrape(text))}
    assert set(stats) == {MODEL, "other"}
    assert stats[MODEL].drafts == 150 and stats[MODEL].engines == 2
    assert stats[MODEL].alpha_by_position[0] == pytest.approx(120 / 150)


def test_timestamps_give_the_interval_and_shorter_drafts_are_said():
    a = V.parse_scrape(scrape(100, 300, 250, [80, 65, 55, 50]).replace(
        "} 100.0", "} 100.0 1700000000000"))
    b = V.parse_scrape(scrape(200, 600, 500, [160, 130, 110, 100]).replace(
        "} 200.0", "} 200.0 1700000010000"))
    (st,) = V.interval(a, b)
    assert st.interval_s == pytest.approx(10.0) and st.drafts_per_s == pytest.approx(10.0)
    assert any("lower bound" in n for n in st.notes)  # 3 tokens a draft, 4 positions


def test_names_without_the_total_suffix_and_bad_input():
    text = scrape(100, 400, 250, [80, 65, 55, 50]).replace("_total{", "{")
    (st,) = V.totals(V.parse_scrape(text))
    assert st.drafts == 100
    with pytest.raises(V.ScrapeError, match="at most"):
        V.parse_scrape("x" * (V.MAX_SCRAPE_CHARS + 1))
    with pytest.raises(V.ScrapeError, match="after the first"):
        V.interval(V.parse_scrape(scrape(1, 4, 1, [1])), V.parse_scrape(scrape(2, 8, 2, [2])),
                   seconds=-3)
    assert V.totals(V.parse_scrape("# nothing here\nup 1\n")) == []
    (st,) = V.totals(V.parse_scrape(scrape(0, 0, 0, [0, 0])))
    assert st.alpha_hat is None and st.mean_accepted_length is None
    assert math.isclose(st.drafts, 0)


def _cli(argv: list[str]) -> int:
    from specviz.cli.parser import build_parser  # the command's own parser (main() also
    args = build_parser().parse_args(argv)       # imports transformers: slow for a test)
    return args.func(args)


def test_cli_reads_two_scrapes(tmp_path, capsys):
    from specviz.cli import CliError
    a, b = tmp_path / "a.prom", tmp_path / "b.prom"
    a.write_text(scrape(100, 400, 250, [80, 65, 55, 50]))
    b.write_text(scrape(300, 1200, 650, [230, 180, 130, 110], extra="vllm:spec_decode_x 1\n"))
    assert _cli(["runs", "--vllm", str(a), str(b), "--interval", "20"]) == 0
    out, err = capsys.readouterr()
    assert "drafts 200" in out and "drafts/s 10.0" in out and "1: 0.750" in out
    assert "unknown metric vllm:spec_decode_x" in err and err.count("\n") == 1
    with pytest.raises(CliError, match="cannot read"):
        _cli(["runs", "--vllm", str(tmp_path / "missing.prom")])
