#!/usr/bin/env bash
# Import benchmark: `postdesk import` of a 100,000-message mbox (postdesk-fill's messages,
# bench/import_mbox.py) into a fresh data folder, against postdesk-fill's spool-and-pipeline
# run of the same messages, interleaved. Prints each run and RESULT with medians and ratio.
#
# Env: TICKETS=20000 EVENTS=5 REPS=3
set -euo pipefail
cd "$(dirname "$0")/.."
TICKETS=${TICKETS:-20000}; EVENTS=${EVENTS:-5}; REPS=${REPS:-3}
cargo build --release -q
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
python3 bench/import_mbox.py "$WORK/bench.mbox" "$TICKETS" "$EVENTS"
secs() { local s e; s=$(date +%s.%N); "$@" >"$WORK/out" 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{printf "%.1f", e-s}'; }
imports=(); fills=()
for rep in $(seq "$REPS"); do
  rm -rf "$WORK/data"
  target/release/postdesk --data "$WORK/data" org add bench --name Bench --address bench@localhost >/dev/null
  imports+=("$(secs target/release/postdesk --data "$WORK/data" import --org bench "$WORK/bench.mbox")")
  echo "import $rep: ${imports[-1]} s: $(tail -1 "$WORK/out" | head -c 200)"
  rm -rf "$WORK/data"
  fills+=("$(secs target/release/postdesk-fill "$WORK/data" "$TICKETS" "$EVENTS")")
  echo "fill $rep: ${fills[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mi=$(median "${imports[@]}"); mf=$(median "${fills[@]}")
awk -v i="$mi" -v f="$mf" -v n=$((TICKETS * EVENTS)) 'BEGIN{printf "RESULT import messages=%d import_s=%.1f (%.0f/s) fill_s=%.1f (%.0f/s) ratio=%.2f\n", n, i, n/i, f, n/f, f/i}'
