#!/usr/bin/env bash
# Runs scripts/gpu/tree_probe.py detached; writes $SV/probe/log and $SV/probe/DONE.
set -uo pipefail
source scripts/gpu/env.sh
own_tree probe
{ date -u; python3 scripts/gpu/tree_probe.py 8 16,65; date -u; } >"$SV/probe/log" 2>&1
touch "$SV/probe/DONE"
