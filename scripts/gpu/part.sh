#!/usr/bin/env bash
# One part of the embedded target's GGUF (.carry/pN, made by ../shared/tools/gpu-carry-prep)
# into /tmp/sv/parts; after the third, the GGUF is put together, the carried wheels (.carry/whl,
# and the app's in .whl when carried) installed
# and the target converted once. Usage: bash scripts/gpu/part.sh N
set -euo pipefail
source scripts/gpu/env.sh
mkdir -p "$SV/parts"
cp .carry/p"$1"/* "$SV/parts/"
ls -l "$SV/parts"
if [[ $1 == 3 ]]; then
  cat "$SV"/parts/part00 "$SV"/parts/part01 "$SV"/parts/part02 > "$SPECVIZ_GGUF"
  sha256sum "$SPECVIZ_GGUF"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SV/site" .carry/whl/*.whl $(ls .whl/*.whl 2>/dev/null)
  python3 -m specviz fetch --gguf "$SPECVIZ_GGUF"
fi
