# Sourced by the other scripts in this folder: where the embedded target, its cache and the
# extra wheels live on the offline GPU machine (under /tmp, which outlasts one command there).
export SV=/tmp/sv
export SPECVIZ_CACHE=$SV/cache
export SPECVIZ_GGUF=$SV/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH=$SV/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
mkdir -p "$SV"
