#!/usr/bin/env bash
# The Streamlit app on the GPU machine (its wheels carried in .whl/ and .whl-extra/plotly/,
# installed by `part.sh wheels` then `part.sh plotly`; see docs/benchmarks.md): the AppTest
# suite on CUDA (auto = graphs engine, the embedded pair, two Runs in a row and a second
# session), then the Live page's tokens/s against `specviz run` (scripts/bench_live.py
# --no-browser). Runs detached; writes $SV/app/log and $SV/app/DONE. Usage: bash scripts/gpu/app_on_gpu.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree app
{
  date -u
  python3 -c "import streamlit, plotly; print('streamlit', streamlit.__version__, 'plotly', plotly.__version__)"
  echo "+ pytest tests/test_app.py"
  python3 -m pytest -q -p no:cacheprovider tests/test_app.py 2>&1 | tail -25
  echo "+ bench_live --no-browser"
  python3 scripts/bench_live.py --no-browser --tokens 64 512 --repeats 3 --json "$res/live.json"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
