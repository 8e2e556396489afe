"""The race: its data (texts as text, speeds, a headline the measurement carries), its player
(no HTML from a model, no network) rendered on the Live page twice, and played in Chromium;
the Live page's verdict withheld when a fake clock makes the rounds disagree."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from specviz.measure import NO_DIFFERENCE, Round, Speedup
from specviz.teaching.race import default_speed, headline, race_data
from tests._traces import tiny_runs

RLO = "\u202e"


@pytest.fixture(scope="module")
def runs():
    return tiny_runs()


def _hostile(trace):
    """The trace with its first three steps' first tokens replaced by markup and a bidi
    override."""
    bad = ["<b>x</b>", f"ab{RLO}cd", "</script><img src=x onerror=alert(1)>"]
    steps = list(trace.steps)
    for i, text in enumerate(bad):
        s = steps[i]
        steps[i] = dataclasses.replace(s, emitted_text=[text, *s.emitted_text[1:]])
    return dataclasses.replace(trace, steps=tuple(steps))


def _sp(*pairs):
    return Speedup(tuple(Round(a, b) for a, b in pairs))


def test_race_data_keeps_texts_as_text_and_times_from_the_trace(runs):
    spec, base = _hostile(runs["greedy"]), runs["greedy-base"]
    d = race_data(spec, base, _sp((20, 10), (22, 10), (21, 10)))
    left, right = d["sides"]
    assert left["name"] == "speculative" and right["name"] == "target alone"
    assert [t for t, _ in left["steps"]] == [s.t_end_s for s in spec.steps if s.emitted_text]
    assert sum(len(toks) for _, toks in left["steps"]) == spec.summary.n_emitted
    assert {k for _, toks in right["steps"] for _, k in toks} == {"target"}
    first = [txt for _, toks in left["steps"][:3] for txt, _ in toks]
    assert "ab\\u202ecd" in first and RLO not in json.dumps(d, ensure_ascii=False)
    assert d["headline"].startswith("Speculative decoding is 2.10× as fast")
    assert d["speed"] in d["speeds"]


@pytest.mark.parametrize("speedup, said", [
    (None, "No speed-up measured"),
    (_sp((20, 10)), "one unrepeated sample: no verdict"),
    (_sp((12, 10), (8, 10), (11, 10)), "No measurable difference on this machine"),
    (_sp((8, 10), (7.5, 10), (8.2, 10)), "slower here: 0.80×"),
])
def test_headline_says_no_more_than_the_measurement(speedup, said):
    assert said in headline(speedup)
    assert (speedup is not None and speedup.verdict == NO_DIFFERENCE) == \
        ("No measurable" in headline(speedup))


def test_default_speed_makes_a_race_watchable():
    assert default_speed(10.0) == 1.0  # real time when it already lasts a while
    assert default_speed(0.5) == 0.1  # a GPU's half second in slow motion: 5 s
    assert default_speed(120.0) == 4.0


def test_player_writes_tokens_as_text_and_fetches_nothing(runs):
    from ui.race import race_html
    page = race_html(race_data(_hostile(runs["greedy"]), runs["greedy-base"], None))
    assert "innerHTML" not in page and "http" not in page
    data = re.search(r"id='race-data'>(.*?)</script>", page, re.S).group(1)
    assert "<" not in data and json.loads(data)["sides"][0]["steps"]
    assert "<img" not in page and "</b>" not in page.split("race-data")[1]


def test_race_plays_in_chromium(tmp_path, runs):
    from tests._browser import ARGS, CHROMIUM, playwright_or_skip
    sync_api = playwright_or_skip()
    from ui.race import race_html
    spec, base = _hostile(runs["greedy"]), runs["greedy-base"]
    data = race_data(spec, base, _sp((20, 10), (22, 10), (21, 10)))
    data["speed"] = 4.0  # a quick race
    path = Path(tmp_path) / "race.html"
    path.write_text(race_html(data))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        page.goto(path.as_uri())
        assert page.locator("body").get_attribute("data-state") == "ready"
        assert page.locator("#text0 span").count() == 0
        page.locator("#play").click()
        page.wait_for_selector("body[data-state='done']", timeout=60_000)
        shown = page.locator("body").get_attribute("data-shown")
        assert shown == f"{spec.summary.n_emitted},{base.summary.n_emitted}"
        text = page.locator("#text0").inner_text()
        assert "<b>x</b>" in text and "ab\\u202ecd" in text  # as text, the override shown
        assert page.locator("#text0 b, #text0 img").count() == 0
        assert "done in" in page.locator("#done0").inner_text()
        page.locator("#play").click()  # replay: starts over
        page.wait_for_selector("body[data-state='done']", timeout=60_000)
        browser.close()


# ---------------------------------------------------------------- the Live page

def _live_app():
    from tests.test_app import _live
    return _live(max_new=12)


def test_live_race_renders_on_two_identical_runs():
    from tests.test_app import _html, _no_failure, _run
    at = _live_app()
    results = [_run(at), _run(at)]
    _no_failure(at)
    for r in results:
        assert r["speedup"].n == 3 and r["base"].run.baseline_of == r["spec"].run.run_id
    # the race's medians are the last-run line's numbers, labelled as medians of the rounds
    sp, page = results[1]["speedup"], _html(at)
    assert (f'data-medians="{round(sp.spec_tokens_per_s, 3)},'
            f'{round(sp.base_tokens_per_s, 3)}"') in page
    assert (f"at {sp.spec_tokens_per_s:.1f} tokens/s, the target alone "
            f"{sp.base_tokens_per_s:.1f} (medians of 3 rounds)") in page
    assert results[0]["spec"].summary.output_token_ids == \
        results[1]["spec"].summary.output_token_ids
    page = _html(at)
    assert 'class="specviz-race"' in page and 'data-tokens="12,12"' in page
    assert any(c.proto.spec and "Tokens emitted vs wall time" in c.proto.spec
               and '"target alone: 12 tokens in' in c.proto.spec for c in at.get("plotly_chart"))
    assert any(m.label == "speedup" for m in at.metric)


def test_live_withholds_the_verdict_when_the_rounds_disagree(monkeypatch):
    """A fake clock: the speculative run takes 0.5 s, 2 s, 0.9 s, the target alone 1 s each
    round: 2.0×, 0.5×, 1.1× -- no measurable difference, no bottleneck named."""
    import specviz.measure as M
    from tests.test_app import _no_failure, _run
    from tests.test_measure import _FakeClock
    clock = _FakeClock([0.5, 2.0, 0.9], [1.0, 1.0, 1.0])
    monkeypatch.setattr(M, "_decoders", clock.decoders)
    at = _live_app()
    r = _run(at)
    _no_failure(at)
    assert r["speedup"].verdict == NO_DIFFERENCE
    assert any("No measurable difference on this machine" in i.value for i in at.info)
    assert not any("Slower than the target alone" in w.value for w in at.warning)
    assert not any("Limited by" in str(m.value) for m in at.markdown)


def test_why_line_names_a_reason_only_when_the_rounds_agree():
    from specviz.teaching.race import why_line
    agree, noisy = _sp((20, 10), (21, 10), (22, 10)), _sp((12, 10), (8, 10), (11, 10))
    assert "the difference is noise" in why_line(noisy, 2.5, 0.6, "Limited by x")
    assert why_line(agree, 2.5, 0.6) == (
        "Why: 2.50 tokens per target pass (α̂ = 0.60), and a step (its drafts and one verify "
        "pass) costs less than that many tokens of the target alone.")  # no claim on v alone
    slow = _sp((8, 10), (7.5, 10), (8.2, 10))
    assert why_line(slow, 1.2, 0.1, "Limited by acceptance.") == "Why: Limited by acceptance."
    assert "tree step costs more" in why_line(slow, 1.2, 0.1, tree=True)
    assert why_line(_sp((8, 10)), 1.2, 0.1, "Limited by x") == ""  # one sample: no reason


def test_a_long_live_run_measures_a_shorter_baseline_and_says_so(monkeypatch):
    import ui.live
    from tests.test_app import _html, _no_failure, _run
    monkeypatch.setattr(ui.live, "BASE_SAMPLE", 8)  # "long": more than 8 tokens
    at = _live_app()
    at.number_input(key="rounds").set_value(2)
    r = _run(at)
    _no_failure(at)
    assert r["spec"].summary.n_emitted == 12 and r["base"].summary.n_emitted == 8
    assert r["speedup"].n == 2
    assert any("measured on its first 8 tokens" in c.value for c in at.caption)
    assert 'data-tokens="12,8"' in _html(at)


# ------------------------------------------------- the lanes' rates against the last-run line

def test_lanes_say_which_round_plays_and_give_each_sides_median(runs):
    """The lanes replay the median round: their tokens/s are that round's, which can differ
    from each side's median over the rounds (what the last-run line gives): both are said,
    each labelled. Rounds 1.2a/1.1b, a/b, 1.3a/1.5b: the median speed-up is round 2's,
    the medians are 1.2a and 1.1b."""
    from ui.race import race_html
    spec, base = runs["greedy"], runs["greedy-base"]
    a, b = spec.summary.tokens_per_s, base.summary.tokens_per_s
    sp = _sp((1.2 * a, 1.1 * b), (a, b), (1.3 * a, 1.5 * b))
    d = race_data(spec, base, sp)
    left, right = d["sides"]
    assert left["tokens_per_s"] == round(a, 3) and right["tokens_per_s"] == round(b, 3)
    assert left["median_tokens_per_s"] == round(sp.spec_tokens_per_s, 3) == round(1.2 * a, 3)
    assert right["median_tokens_per_s"] == round(sp.base_tokens_per_s, 3) == round(1.1 * b, 3)
    assert d["replay"].startswith("Replaying round 2 of 3 (the median speed-up)")
    page = race_html(d)
    assert f"3-round median: {1.2 * a:.1f} tokens/s" in page
    assert f"3-round median: {1.1 * b:.1f} tokens/s" in page
    assert "Replaying round 2 of 3" in page
    # one sample, or none: no medians, no replay line
    for one in (None, _sp((a, b))):
        d = race_data(spec, base, one)
        assert d["replay"] == "" and "median_label" not in d["sides"][0]
