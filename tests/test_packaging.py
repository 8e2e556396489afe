"""specviz installs as a Python tool: the wheel builds, installs into a fresh virtual
environment, and from there (not from the checkout) `specviz --help`, a short `specviz run` on
the tiny models, the shipped assets and the app's first page work; `specviz app` serves."""

import ast
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# what the wheel is built from: the tracked top level it needs (a copy, so that the build's
# own folders never land in the shared checkout)
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "app.py", "specviz", "ui", "app_pages",
           "assets", ".streamlit"]


def test_every_package_of_the_checkout_is_in_the_wheel():
    """pyproject.toml lists the packages (the app's folders are mapped under specviz._app):
    a new subpackage of specviz must be added there, or the installed tool lacks it."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "specviz").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapped == {"specviz._app": ".", "specviz._app.ui": "ui",
                      "specviz._app.app_pages": "app_pages"}


def test_the_pinned_requirements_fall_in_the_declared_ranges():
    """requirements.txt (what the README installs) pins versions inside pyproject's ranges."""
    from packaging.requirements import Requirement
    declared = {Requirement(r).name: Requirement(r) for r in
                PYPROJECT["project"]["dependencies"]
                + PYPROJECT["project"]["optional-dependencies"]["app"]}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, version = line.split("==")
        if name in declared:
            assert declared[name].specifier.contains(version), (name, version)


def test_the_console_script_is_the_cli_main():
    assert PYPROJECT["project"]["scripts"] == {"specviz": "specviz.cli:main"}
    tree = ast.parse((ROOT / "specviz" / "cli" / "parser.py").read_text())
    commands = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and n.targets[0].id == "COMMANDS")
    assert {"run", "fetch", "bench_command", "app"} <= set(commands)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment (system site-packages for torch & co., no download) with
    the wheel installed without dependencies; yields (bin folder, clean env, work dir)."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "images")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                    "print(b.build_wheel(sys.argv[1]))", str(wheels)],
                   cwd=src, env=env, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("specviz-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   env=env, check=True, capture_output=True, timeout=300)
    work = tmp / "work"  # away from the checkout: nothing of it on sys.path
    work.mkdir()
    return venv / "bin", env, work


def _run(cmd, installed, timeout=300):
    bin_dir, env, work = installed
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_package_runs_from_the_wheel(installed):
    bin_dir, env, work = installed
    out = _run([str(bin_dir / "specviz"), "--help"], installed)
    assert out.returncode == 0 and "run" in out.stdout and "app" in out.stdout, out.stderr
    # the library and its assets come from the virtual environment, not the checkout
    probe = ("import specviz, specviz.paths as P, specviz.teaching.lessons as L; "
             "from specviz.models import embedded_names; "
             "print(specviz.__file__); print(P.APP.is_file()); "
             "print(len(list(P.TRACES.glob('*.jsonl'))), len(list((P.TRACES / 'lessons')"
             ".glob('*.jsonl')))); print('smollm2-draft' in embedded_names()); "
             "print((P.MODELS / 'smollm2-feature-head' / 'model.safetensors').is_file()); "
             "print(len(L.LESSONS))")
    out = _run([str(bin_dir / "python"), "-c", probe], installed)
    assert out.returncode == 0, out.stderr
    where, app, traces, draft, head, lessons = out.stdout.split("\n")[:6]
    assert where.startswith(str(bin_dir.parent)) and str(ROOT) not in where
    assert app == "True" and draft == "True" and head == "True"
    n_traces, n_lesson_traces = map(int, traces.split())
    assert n_traces >= 5 and n_lesson_traces >= 5 and int(lessons) >= 5
    out = _run([str(bin_dir / "specviz"), "run", "--target", "embedded:tiny-random-target",
                "--no-chat", "--prompt", "hi", "--max-new-tokens", "3", "--out", "t.jsonl"],
               installed)
    assert out.returncode == 0, out.stderr
    assert "trace written to t.jsonl" in out.stdout
    assert (work / "t.jsonl").read_text().count('"record":"step"') >= 1


APPTEST = """
import sys
from streamlit.testing.v1 import AppTest
from specviz.paths import APP
assert "{root}" not in str(APP), APP
at = AppTest.from_file(str(APP), default_timeout=240)
for _ in range(2):  # two runs, as a visitor's reruns
    at.run()
    assert not at.exception, [e.value for e in at.exception]
print(at.title[0].value)
"""


def test_the_installed_app_shows_its_first_page(installed):
    bin_dir, env, work = installed
    out = _run([str(bin_dir / "python"), "-c", APPTEST.format(root=ROOT)], installed)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].startswith("specviz: speculative decoding")


def test_specviz_app_serves_the_installed_app(installed):
    bin_dir, env, work = installed
    port = _free_port()
    proc = subprocess.Popen([str(bin_dir / "specviz"), "app", "--port", str(port),
                             "--server.address", "127.0.0.1"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            raise AssertionError("specviz app did not answer in 120 s")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert b"<title>" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_every_third_party_import_is_declared():
    """What specviz and the app import is in pyproject's dependencies (or the app extra), so
    that an installed tool does not fail on an import the checkout happened to have."""
    from packaging.requirements import Requirement
    dist = {"yaml": "pyyaml"}  # import name -> distribution name, where they differ
    optional = {"triton"}  # the GPU kernels' compiler: comes with CUDA builds of torch
    declared = {Requirement(r).name.lower().replace("-", "_") for r in
                PYPROJECT["project"]["dependencies"]
                + PYPROJECT["project"]["optional-dependencies"]["app"]}
    imported = set()
    for folder in ("specviz", "ui", "app_pages"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third = {m for m in imported if m not in sys.stdlib_module_names} - {"specviz", "ui",
                                                                          "app_pages"}
    missing = {dist.get(m, m) for m in third - optional} - declared
    assert not missing, f"declare in pyproject.toml: {sorted(missing)}"
