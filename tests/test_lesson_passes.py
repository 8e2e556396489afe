"""Lesson 15 (a small target and a large one): its numbers come from the newest valid data
file and change with it, its claims hold on the shipped file, its quiz gives nothing away to
a blind guesser, its exercise grades, its figure tells the lines apart without colour; and
scripts/measure_passes.py's logic on a tiny model."""

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from specviz.teaching import lessons as L
from specviz.teaching.lessons import content as C
from specviz.teaching.lessons import pass_costs as PC
from specviz.teaching.lessons import runs as R

ROOT = Path(__file__).resolve().parent.parent
NUMBER = L.ORDER.index("pass-costs") + 1


def _script():
    spec = importlib.util.spec_from_file_location("measure_passes",
                                                  ROOT / "scripts" / "measure_passes.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["measure_passes"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def files():
    return R.load_files(PC.FILES)


@pytest.fixture(scope="module")
def nums(files):
    return PC.numbers(files)


@pytest.fixture
def data_copy(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(PC.DATA_DIR, folder)
    return folder


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


# ---------------------------------------------------------------- the data and the text


def test_the_lesson_is_registered_and_reads_its_trace_and_data(nums):
    lesson = L.lesson(NUMBER)
    assert lesson.slug == "pass-costs" and L.files_of(lesson) == PC.FILES
    path, data = PC.newest()
    assert nums["data_file"] == path.name and PC.read_data(path) == data
    assert {p["target"] for p in data["pairs"]} >= {PC.SMALL, PC.LARGE}
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"specviz.teaching.lessons" = ["*.yaml", "data/*.json"]' in pyproject  # shipped


def test_numbers_are_the_data_files_own(nums):
    _, data = PC.newest()
    large = {p["target"]: p for p in data["pairs"]}[PC.LARGE]
    one = large["passes"]["1"]["median_ms"]
    assert nums["l_t1"] == one
    assert nums["l_v5"] == pytest.approx(large["passes"]["5"]["median_ms"] / one)
    assert nums["l_c"] == pytest.approx(large["draft_pass"]["median_ms"] / one)
    assert nums["l_floor"] == pytest.approx(large["weight_bytes"] / large["bandwidth_gbs"] / 1e6)
    e = (1 - nums["l_alpha"] ** 5) / (1 - nums["l_alpha"])
    assert nums["l_speed4"] == pytest.approx(e / (4 * nums["l_c"] + nums["l_v5"]))
    assert nums["s_alpha"] == pytest.approx(R.judged_alpha(R.load_files(PC.FILES)[PC.FILES[0]]))


def test_an_edited_data_file_changes_the_text(files, data_copy):
    before = PC.numbers(files, data_copy)
    path = data_copy / before["data_file"]

    def faster(data):  # a newer, idle measurement with another one-token pass
        data.update(provisional=False, loaded=False, date="2099-01-01T00:00:00+00:00",
                    rounds=7, load_before=[0.1, 0.1, 0.1], load_after=[0.2, 0.1, 0.1])
        for p in data["pairs"]:
            p["hardware"] = "a test machine"
        big = next(p for p in data["pairs"] if p["target"] == PC.LARGE)
        big["passes"]["1"]["median_ms"] = 2.5

    new = data_copy / "passes-cuda-20990101.json"
    shutil.copy(path, new)
    _rewrite(new, faster)
    after = PC.numbers(files, data_copy)
    assert after["data_file"] == new.name and after["l_t1"] == 2.5
    text_before = C.filled(L.lesson(NUMBER), before).explanation
    text_after = C.filled(L.lesson(NUMBER), after).explanation
    assert f"{before['l_t1']:,.4g} ms" in text_before and "took 2.5 ms" in text_after
    assert f"{after['l_speed4']:.2f}×" in text_after and after["l_speed4"] != before["l_speed4"]
    assert "same machine" in text_after and "provisional" not in text_after
    assert "7 interleaved rounds" in text_after


def test_the_newest_valid_file_is_read_and_a_broken_one_skipped(data_copy):
    path, data = PC.newest(data_copy)
    broken = data_copy / "passes-cpu-20990101.json"  # newer, but one pair missing
    shutil.copy(path, broken)
    _rewrite(broken, lambda d: d.update(pairs=d["pairs"][:1], provisional=False,
                                        date="2099-01-01"))
    with pytest.raises(PC.PassDataError, match="no pair with target"):
        PC.read_data(broken)
    assert PC.newest(data_copy)[0] == path
    busy = data_copy / "passes-cpu-20990102.json"  # measured on a busy machine: ranked last
    shutil.copy(path, busy)
    _rewrite(busy, lambda d: d.update(provisional=False, loaded=True, date="2099-01-02"))
    assert PC.newest(data_copy)[0] == path
    (data_copy / "passes-bad.json").write_text("{", encoding="utf-8")
    assert PC.newest(data_copy)[0] == path
    for p in data_copy.glob("passes-*.json"):
        p.unlink()
    with pytest.raises(PC.PassDataError, match="no valid passes"):
        PC.newest(data_copy)


def test_claims_hold_on_the_shipped_data_and_fail_on_contradicting_numbers(nums):
    assert all(PC.checks(nums).values()), PC.checks(nums)
    lesson = L.lesson(NUMBER)
    assert set(PC.checks(nums)) == {k for k, _ in lesson.claims}
    assert not PC.checks({**nums, "l_ratio": nums["s_ratio"] + 1})["small_further_from_floor"]
    assert not PC.checks({**nums, "s_c": nums["l_c"] + 0.1})["small_draft_cheaper"]
    assert not PC.checks({**nums, "l_free4": nums["s_free4"] - 0.1})["large_free_draft_higher"]


def test_what_limits_a_pass_is_said_from_its_ratio_to_the_floor():
    assert "far above its floor (17.0 times)" in PC.regime("X", 17.0, 1 / 17)
    assert "within 3 times its floor (2.0 times): reading the weights takes 50%" in \
        PC.regime("X", 2.0, 0.5)
    assert "no bound" in PC.regime("X", 0.5, 2.0)  # a bandwidth measured too low


def test_how_v_grows_is_said_from_the_passes_the_file_holds():
    assert "passes over 1 and 5 tokens only" in PC.v_curve("X", {1: 1.0, 5: 1.2})
    flat = PC.v_curve("X", {1: 1.0, 2: 1.05, 3: 1.08, 5: 1.3, 9: 1.2, 17: 2.0})
    assert "up to T = 3" in flat and "reached 2.00 (at T = 17)" in flat
    assert "v was 1.50 already at T = 2" in PC.v_curve("X", {1: 1.0, 2: 1.5, 3: 1.6})


def test_the_text_says_when_the_pairs_ran_on_different_machines(nums):
    text = C.filled(L.lesson(NUMBER), nums).explanation
    if nums["same_machine"]:
        assert "same machine" in text
    else:
        assert "different machines" in text and "its own floor" in text
    if nums["provisional"]:
        assert "provisional" in text


# ---------------------------------------------------------------- quiz and exercise

_RULES_FROM = ROOT / "tests" / "test_lessons.py"


def test_the_quiz_gives_nothing_away_to_a_blind_guesser(nums):
    sys.path.insert(0, str(_RULES_FROM.parent))
    from test_lessons import _blind_rules
    quiz = C.filled(L.lesson(NUMBER), nums).quiz
    texts = [o.text for o in quiz.options]
    key = [o.correct for o in quiz.options].index(True)
    for rule, scores in _blind_rules(quiz.question, texts).items():
        best = [i for i, s in enumerate(scores) if s == max(scores)]
        assert (key in best) / len(best) <= 1 / len(texts), rule  # no better than a guess
    assert max(map(len, texts)) <= 1.35 * min(map(len, texts))
    assert len({o.feedback for o in quiz.options}) == 4


def test_the_exercise_takes_the_right_answer_and_refuses_two_usual_mistakes(nums):
    ex = next(e for e in L.lesson(NUMBER).exercises if isinstance(e, L.Numeric))
    right = float(nums[ex.answer])
    assert L.grade_numeric(ex, nums, right) == (True, None)
    assert L.grade_numeric(ex, nums, round(right, 2))[0]  # the two decimals asked for
    assert not L.grade_numeric(ex, nums, right * (1 + 3 * ex.tolerance))[0]
    assert len(ex.mistakes) == 2
    for name, feedback in ex.mistakes:
        ok, said = L.grade_numeric(ex, nums, float(nums[name]))
        assert not ok and said == feedback, name
    worked = next(e for e in C.filled(L.lesson(NUMBER), nums).exercises if e.key == ex.key)
    assert f"{right:.2f}×" in worked.worked


# ---------------------------------------------------------------- the figure


def test_the_figure_draws_each_target_and_its_floor_apart_without_colour(nums):
    from specviz.figures import pass_views
    _, data = PC.newest()
    fig = pass_views.fig_pass_times(PC.passes_frame(data))
    assert len(fig.data) == 4 and fig.layout.yaxis.type == "log"
    dashes = {t.line.dash for t in fig.data}
    assert len(dashes) == 4  # every line its own dash
    points = [t for t in fig.data if "pass" in t.name and "floor" not in t.name]
    assert len({t.marker.symbol for t in points}) == 2
    floors = [t for t in fig.data if "floor" in t.name]
    assert {round(t.y[0], 6) for t in floors} == {round(nums["s_floor"], 6),
                                                  round(nums["l_floor"], 6)}
    assert any(f"floor {nums['l_floor']:.3g} ms" in t.name for t in floors)


# ---------------------------------------------------------------- scripts/measure_passes.py


def _tiny_pair(device: torch.device):
    """The tiny target and draft, loaded in float32 on ``device``."""
    from specviz.models import load_model
    return tuple(load_model(f"embedded:tiny-random-{k}", device=device, dtype=torch.float32)
                 for k in ("target", "draft"))


def test_measure_passes_on_a_tiny_model():
    mp = _script()
    cpu = torch.device("cpu")
    t, d = _tiny_pair(cpu)
    assert mp.engine_for(t.model, cpu) == "eager"
    ids = mp.prompt_ids(t.tokenizer, cpu)
    rows = (1, 2, 3)
    passes = {"target": mp.Passes(t.model, ids, "eager", max(rows)),
              mp.DRAFT_KEY: mp.Passes(d.model, ids, "eager", 1)}
    # a pass over T tokens after the prefill gives the logits a whole forward gives there
    logits = passes["target"].run(3)()
    new = (torch.arange(3) * 7 + 3) % t.model.config.vocab_size
    with torch.inference_mode():
        full = t.model(torch.cat([ids, new])[None]).logits[0, -3:]
    assert torch.allclose(logits, full, atol=1e-4)
    order = [("target", r) for r in rows] + [(mp.DRAFT_KEY, 1)]
    times = mp.interleaved(passes, order, 2, cpu)
    assert all(len(v) == 2 and min(v) > 0 for v in times.values())
    rec = mp.pair_record("embedded:tiny-random-target", "embedded:tiny-random-draft", t.model,
                         d.model, times, rows, "eager", cpu, 10.0, "test cpu")
    assert rec["v"]["1"] == 1.0 and rec["c"] > 0 and rec["passes"]["2"]["n"] == 2
    assert rec["weight_bytes"] == sum(p.numel() * 4 for p in t.model.parameters())
    assert rec["floor_ms"] == pytest.approx(rec["weight_bytes"] / 10e9 * 1e3)
    assert rec["target_layers"] == t.model.config.num_hidden_layers
    assert mp.copy_bandwidth(cpu, mib=4, repeats=2) > 0
    assert mp.read_bandwidth(cpu, mib=4, repeats=2) > 0


def test_measure_passes_refuses_a_busy_machine_and_names_gpus(monkeypatch, capsys):
    mp = _script()
    monkeypatch.setattr(mp.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    with pytest.raises(mp.MeasureError, match="busy"):
        mp.measure(torch.device("cpu"), [], (1,), 1, "cmd")
    assert mp.main(["--device", "cpu", "--pair", "embedded:tiny-random-target"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the machine is busy")
    assert mp.nominal_bandwidth("NVIDIA H200") == 4800
    assert mp.nominal_bandwidth("NVIDIA H100 80GB HBM3") == 3350
    assert mp.nominal_bandwidth("a GPU nobody knows") is None
    assert mp.parse_pairs(["embedded:tiny-random-target"]) == [
        ("embedded:tiny-random-target", "embedded:tiny-random-draft")]


def test_the_provisional_file_is_rebuilt_from_the_committed_benches(tmp_path):
    mp = _script()
    out = tmp_path / "passes-cuda-provisional.json"
    assert mp.main(["--from-bench", "--out", str(out)]) == 0
    data = PC.read_data(out)
    assert data["provisional"] and "its own machine" in data["note"]
    assert len({p["hardware"] for p in data["pairs"]}) == 2
    for target, src in data["sources"].items():
        assert all((ROOT / s.split(":")[0]).is_file() for s in src.values()
                   if s.startswith("docs/")), target
    shipped = json.loads((PC.DATA_DIR / "passes-cuda-provisional-20261207.json").read_text())
    assert shipped["pairs"] == data["pairs"]  # the shipped file is what the script makes
    acc = json.loads((tmp_path / "acceptance.json").read_text())
    assert acc == json.loads((PC.DATA_DIR / "acceptance.json").read_text())
    assert math.isclose(acc[PC.LARGE]["alpha"], PC.acceptance()["alpha"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_measure_passes_replays_graphed_passes_on_cuda():
    mp = _script()
    gpu = torch.device("cuda")
    t, d = _tiny_pair(gpu)
    assert mp.engine_for(t.model, gpu) == "graphs"
    ids = mp.prompt_ids(t.tokenizer, gpu)
    passes = {"target": mp.Passes(t.model, ids, "graphs", 5),
              mp.DRAFT_KEY: mp.Passes(d.model, ids, "graphs", 1)}
    order = [("target", r) for r in (1, 5)] + [(mp.DRAFT_KEY, 1)]
    times = mp.interleaved(passes, order, 2, gpu)
    assert all(len(v) == 2 and min(v) > 0 for v in times.values())
    eager = mp.Passes(t.model, ids, "eager", 5).run(5)()
    graphed = passes["target"].lm.forward(*_rows(ids, 5, t.model), logits="all")
    assert torch.allclose(eager, graphed, atol=1e-3)
    rec = mp.pair_record("t", "d", t.model, d.model, times, (1, 5), "graphs", gpu, 3350.0,
                         torch.cuda.get_device_name(gpu))
    assert rec["engine"] == "graphs" and rec["v"]["5"] > 0


def _rows(ids, n, model):
    """The ids and positions of a pass over n tokens after the prompt, as Passes builds them."""
    new = (torch.arange(n, device=ids.device) * 7 + 3) % model.config.vocab_size
    return new, torch.arange(ids.shape[0], ids.shape[0] + n, device=ids.device)
