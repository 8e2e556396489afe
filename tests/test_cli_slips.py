"""The command line against careless input: prompts files that are not files, text that is not
text, an --out that would lose data, trees and top-p that would take the machine or make NaN.
Each refusal is one line and exit code 2, before any model loads unless it needs one."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from specviz import read_traces
from specviz.cli import main
from specviz.cli.output import Output
from specviz.cli.prompts import read_prompts

TINY = ["--target", "embedded:tiny-random-target", "--no-chat"]
RUN = ["run", *TINY, "--max-new-tokens", "3"]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("specviz:")]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _refused(capsys, *args) -> str:
    assert main(list(args)) == 2
    return _one_error_line(capsys)


# ------------------------------------------------------------- prompts files that are not files

def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return path


@pytest.mark.parametrize("make, kind", [
    (lambda d: Path("/dev/zero"), "a character device"),
    (lambda d: Path("/dev/urandom"), "a character device"),
    (_fifo, "a FIFO"),  # no writer: reading it would block for ever
    (_socket, "a socket"),
    (lambda d: d, "a directory"),
    (lambda d: _link(d, Path("/dev/zero")), "a character device"),
    (lambda d: _link(d, _fifo(d)), "a FIFO"),
])
def test_a_prompts_file_that_is_not_a_regular_file_is_refused_unread(tmp_path, capsys, make,
                                                                      kind):
    path = make(tmp_path)
    if not path.exists() and not path.is_symlink():
        pytest.skip(f"no {path} here")
    line = _refused(capsys, *RUN, "--prompts", str(path))
    assert f"cannot read prompts file {path}: it is {kind}" in line, line


def _link(d: Path, target: Path) -> Path:
    link = d / "link.jsonl"
    link.symlink_to(target)
    return link


def test_a_huge_prompts_file_is_refused_without_reading_it(tmp_path, capsys):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:  # sparse: 10 GB that take no disk
        f.truncate(10 * 10**9)
    line = _refused(capsys, *RUN, "--prompts", str(path))
    assert "it holds 10,000 MB; at most 64 MB are read" in line, line


@pytest.mark.parametrize("content, message", [
    (b"\0" * 4096, "line 1: not valid JSON"),
    (b'{"prompt": "a"}\n\xff\n', "not UTF-8 text (byte 16)"),
    (b'{"prompt": "ok \\ud800"}\n', "line 1: the prompt holds a lone surrogate"),
    (b'{"prompt": "a"}\n{"prompt": "\\udfff"}\n', "line 2: the prompt holds a lone surrogate"),
])
def test_prompts_files_of_nuls_bad_bytes_and_lone_surrogates(tmp_path, capsys, content,
                                                              message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    assert message in _refused(capsys, *RUN, "--prompts", str(path))


def test_a_surrogate_pair_escape_is_text(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "smile \\ud83d\\ude00"}\n')
    assert read_prompts(str(path)) == ["smile \U0001F600"]


# ------------------------------------------------------------- text options that are not text

@pytest.mark.parametrize("args, option", [
    (["--prompt", "a\ud800b"], "--prompt"),
    (["--prompt", "hi", "--label", "\udcff"], "--label"),
    (["--prompt", "hi", "--out", "t\udcff.jsonl"], "--out"),
    (["--prompt", "hi", "--target", "\udc80"], "--target"),
])
def test_lone_surrogates_on_the_command_line_are_one_line(tmp_path, capsys, monkeypatch, args,
                                                          option):
    monkeypatch.chdir(tmp_path)
    line = _refused(capsys, "run", "--no-chat", *args)
    assert f"{option} holds bytes that are not UTF-8 text" in line, line
    assert not list(tmp_path.iterdir())


def test_bytes_that_are_not_utf8_in_argv_exit_2_not_1(tmp_path):
    """What a shell passes: raw bytes, which Python turns into lone surrogates."""
    out = subprocess.run([sys.executable, "-m", "specviz", "run", *TINY, "--prompt",
                          b"caf\xe9".decode("utf-8", "surrogateescape")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent)))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("specviz: error: --prompt holds")


# ------------------------------------------------------------- --out: never lose data by a slip

def test_out_never_names_the_prompts_file_however_spelled(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(prompts)
    os.link(prompts, tmp_path / "hard.jsonl")
    for out in ("p.jsonl", "./p.jsonl", "sub/../p.jsonl", str(prompts), "link.jsonl",
                "hard.jsonl"):
        for force in ([], ["--force"]):
            line = _refused(capsys, *RUN, "--prompts", "./p.jsonl", "--out", out, *force)
            assert "is the --prompts file this run reads" in line, line
    assert prompts.read_text() == '{"prompt": "hi"}\n'


def test_out_never_names_the_gguf_file(tmp_path, capsys):
    gguf = tmp_path / "m.gguf.jsonl"
    gguf.write_bytes(b"GGUF")
    line = _refused(capsys, *RUN, "--prompt", "hi", "--gguf", str(gguf), "--out", str(gguf),
                    "--force")
    assert "is the --gguf file this run reads" in line
    assert gguf.read_bytes() == b"GGUF"


def test_an_existing_trace_is_replaced_only_with_force(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert main([*RUN, "--prompt", "one", "--out", str(out)]) == 0
    first = out.read_bytes()
    capsys.readouterr()
    line = _refused(capsys, *RUN, "--prompt", "two", "--out", str(out))
    assert "exists; pass --force to replace it" in line
    assert out.read_bytes() == first
    # a --force run that fails before writing anything leaves the old trace whole
    assert main([*RUN, "--prompt", "ab" * 300, "--out", str(out), "--force"]) == 2
    assert out.read_bytes() == first
    capsys.readouterr()
    assert main([*RUN, "--prompt", "two", "--out", str(out), "--force"]) == 0
    (trace,) = read_traces(out)
    assert trace.run.prompt_text == "two"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial left


def test_force_never_replaces_a_file_that_is_not_a_trace(tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}\n')
    line = _refused(capsys, *RUN, "--prompt", "hi", "--out", str(notes), "--force")
    assert "exists and is not a specviz trace" in line
    assert notes.read_text() == '{"mine": 1}\n'


@pytest.mark.parametrize("name, message", [
    ("t.csv", "not .csv"), ("trace", "not a file without a suffix"),
    ("t.jsonl.gz", "not .gz"),
])
def test_out_suffixes_other_than_jsonl_and_parquet_are_refused(tmp_path, capsys, name,
                                                               message):
    line = _refused(capsys, *RUN, "--prompt", "hi", "--out", str(tmp_path / name))
    assert "specviz writes JSON Lines (.jsonl) or Parquet (.parquet)" in line and message in line
    assert not list(tmp_path.iterdir())


def test_out_special_files(tmp_path, capsys):
    assert "is a block device or a socket" in _refused(
        capsys, *RUN, "--prompt", "hi", "--out", str(_socket(tmp_path)))
    assert "nothing reads this FIFO" in _refused(
        capsys, *RUN, "--prompt", "hi", "--out", str(_fifo(tmp_path)))
    if Path("/dev/null").exists():
        link = tmp_path / "null.parquet"
        link.symlink_to("/dev/null")
        assert "Parquet is written to a regular file only" in _refused(
            capsys, *RUN, "--prompt", "hi", "--out", str(link))
        assert main([*RUN, "--prompt", "hi", "--out", "/dev/null"]) == 0
        assert Path("/dev/null").is_char_device()


def test_two_writers_of_one_file_the_second_is_refused(tmp_path):
    """The name is taken by an exclusive create when the first run starts writing: a second
    run that names the file then is refused, however close in time."""
    from specviz.cli.common import CliError
    out = tmp_path / "t.jsonl"
    first = Output(str(out))
    second = Output(str(out))  # checked before the first one wrote anything
    w = first.open()
    with pytest.raises(CliError, match="exists \\(another run may be writing it\\)"):
        second.open()
    w.close()
    assert first.finish() is False and not out.exists()  # nothing written: no file left


def test_two_forced_writers_each_leave_a_whole_file(tmp_path):
    """With --force each writes its own partial file and the last one in place wins whole."""
    from specviz.traces.records import TraceWriter
    out = tmp_path / "t.jsonl"
    a, b = Output(str(out), force=True), Output(str(out), force=True)
    a.partial = tmp_path / ".a.partial"
    b.partial = tmp_path / ".b.partial"
    with TraceWriter(a.partial) as wa, TraceWriter(b.partial) as wb:
        wa._f.write('{"record": "run", "who": "a"}\n')
        wb._f.write('{"record": "run", "who": "b"}\n')
    assert a.finish() and b.finish()
    assert out.read_text() == '{"record": "run", "who": "b"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_out_parquet_writes_parquet(tmp_path, capsys):
    from specviz.traces.parquet import read_parquet_traces
    out = tmp_path / "t.parquet"
    assert main([*RUN, "--prompt", "hi", "--baseline", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"PAR1"
    assert [t.run.mode for t in read_parquet_traces(out)] == ["speculative", "target-only"]
    assert "exists" in _refused(capsys, *RUN, "--prompt", "hi", "--out", str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


# ------------------------------------------------------------- trees and top-p: bounded at parsing

@pytest.mark.parametrize("tree, message", [
    ("dynamic:16:6:500", "asks for the top 500 children of each node"),
    ("dynamic:16:6:100000", "more than its budget of 16 nodes can keep; at most 16"),
    ("dynamic:64:6:65", "asks for the top 65"),
    ("dynamic:5000:6:5000", "has 5000 nodes; at most 64"),
    ("dynamic:16:17", "is 17 deep; at most 16"),
    ("dynamic:16:6:0", "must be at least 1"),
    ("65", "has 65 nodes"),
    ("9,9", "nodes; at most 64"),
    ("dynamic:x", "cannot read the tree"),
])
def test_trees_are_bounded_with_the_reason(capsys, tree, message):
    line = _refused(capsys, *RUN, "--prompt", "hi", "--drafter", "model", "--tree", tree)
    assert message in line, line


@pytest.mark.parametrize("args, message", [
    (["--top-p", "1e-300", "--temperature", "0.7"], "top-p 1e-300 is too small"),
    (["--top-p", "5e-7"], "use at least 1e-06"),
    (["--top-p", "0"], "top-p must lie in (0, 1]"),
    (["--top-p", "nan"], "top-p must lie in (0, 1]"),
    (["--top-p", "inf"], "top-p must lie in (0, 1]"),
    (["--top-p", "-1"], "top-p must lie in (0, 1]"),
    (["--top-k", "-1"], "top-k must be >= 0"),
    (["--temperature=-inf"], "temperature must be >= 0"),
    (["--temperature", "1e-300"], "too small"),
])
def test_sampling_extremes_that_make_nan_are_refused(capsys, args, message):
    assert message in _refused(capsys, *RUN, "--prompt", "hi", *args)


def test_the_smallest_top_p_runs(tmp_path):
    out = tmp_path / "t.jsonl"
    assert main([*RUN, "--prompt", "hi", "--top-p", "1e-6", "--temperature", "0.7",
                 "--out", str(out)]) == 0
    (trace,) = read_traces(out)
    assert trace.summary.n_steps >= 1


# ------------------------------------------------------------- bench's result files

@pytest.mark.parametrize("flag", ["--json", "--markdown"])
def test_bench_results_never_overwrite_its_prompts_and_are_checked_first(tmp_path, capsys,
                                                                         flag):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    line = _refused(capsys, "bench", *TINY, "--prompts", str(prompts), flag, str(prompts))
    assert f"{flag} {prompts} is the --prompts file the bench reads" in line
    assert prompts.read_text() == '{"prompt": "hi"}\n'
    assert "is a directory" in _refused(capsys, "bench", *TINY, flag, str(tmp_path))
    assert "is empty" in _refused(capsys, "bench", *TINY, flag, " ")


def test_bench_json_and_markdown_not_the_same_file(tmp_path, capsys):
    out = str(tmp_path / "r.txt")
    assert "name the same file" in _refused(capsys, "bench", *TINY, "--json", out,
                                            "--markdown", out)


def test_runs_started_in_the_same_second_get_their_own_default_file(tmp_path, monkeypatch):
    import datetime as dt

    from specviz.cli import output

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(output, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    names = []
    for _ in range(3):
        o = Output(None)
        names.append(str(o.shown))
        o.open().close()  # reserves the name (the file is created exclusively)
    assert names == ["traces/run-20260102-030405.jsonl", "traces/run-20260102-030405-2.jsonl",
                     "traces/run-20260102-030405-3.jsonl"]


def test_python_dash_m_specviz_cli_exists():
    out = subprocess.run([sys.executable, "-m", "specviz.cli", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0 and "run" in out.stdout


def test_prompts_from_standard_input_bounded(monkeypatch, capsys):
    import io

    from specviz.cli import prompts as P
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        b'{"prompt": "one"}\n{"prompt": "two"}\n')))
    assert read_prompts("-") == ["one", "two"]
    monkeypatch.setattr(P, "MAX_PROMPTS_FILE_BYTES", 10)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"prompt": "x"}\n' * 4)))
    line = _refused(capsys, *RUN, "--prompts", "-")
    assert "cannot read prompts from standard input: more than" in line
