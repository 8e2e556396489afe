#!/usr/bin/env bash
# Runs scripts/gpu/skinny_probe.py then scripts/gpu/step_profile.py detached; writes
# $SV/skinny/log and $SV/skinny/DONE.
set -uo pipefail
source scripts/gpu/env.sh
own_tree skinny
{ date -u; run python3 scripts/gpu/skinny_probe.py 8; date -u
  run python3 scripts/gpu/step_profile.py; date -u; } >"$res/log" 2>&1
touch "$res/DONE"
