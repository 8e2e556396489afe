#!/usr/bin/env bash
# Wait for FILE to appear (at most SECONDS), printing the tail of LOG now and then.
# Usage: bash scripts/gpu/wait.sh FILE SECONDS LOG
end=$((SECONDS + $2))
while [[ ! -e $1 && $SECONDS -lt $end ]]; do sleep 15; tail -n 2 "$3" 2>/dev/null; done
tail -n 25 "$3"
[[ -e $1 ]] && echo "ready: $1" || echo "still running"
