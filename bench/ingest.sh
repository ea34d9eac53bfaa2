#!/usr/bin/env bash
# Ingest benchmark: Postdesk (release build, fresh data folder, every 250 durable) against
# Postfix's smtp-sink in the same run, with the same smtp-source load; then 250 latency
# from bench/loadgen.py (half the messages thread into earlier tickets) and peak RSS.
# Prints RESULT lines; ratios are Postdesk / smtp-sink.
#
# Env: MSGS=10000 LEN=4096 CONCS="1 20" REPS=3 PORT=2599 PD_PORT=2598
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${MSGS:-10000}; LEN=${LEN:-4096}; CONCS=${CONCS:-"1 20"}; REPS=${REPS:-3}
PORT=${PORT:-2599}; PD_PORT=${PD_PORT:-2598}; PD_HTTP=${PD_HTTP:-8598}
SOURCE=/usr/sbin/smtp-source
log() { echo "[ingest] $*" >&2; }

cargo build --release -q
BIN=target/release/postdesk

# smtp-sink figures (installs postfix's tools without starting the daemon).
ceiling=$(MSGS=$MSGS LEN=$LEN CONCS=$CONCS REPS=$REPS PORT=$PORT ../shared/bench/smtp_ceiling.sh | grep '^RESULT')
echo "$ceiling"
value() { sed -E "s/.* $1=([0-9]+)\[.*/\1/" <<<"$ceiling"; }

WORK=$(mktemp -d); PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$WORK"' EXIT

start() { # fresh data folder, limits off so the load is not rate-limited
  stop; rm -rf "$WORK/data"
  POSTDESK_LOG=warn POSTDESK_CONNECTIONS_PER_MINUTE=0 POSTDESK_MESSAGES_PER_MINUTE=0 \
  POSTDESK_MESSAGES_PER_SENDER_PER_MINUTE=0 \
    "$BIN" --data "$WORK/data" serve --smtp "127.0.0.1:$PD_PORT" --http "127.0.0.1:$PD_HTTP" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PD_HTTP/healthz" >/dev/null && return; sleep 0.1; done
  log "postdesk did not start"; exit 1
}
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }

run_source() { # conc, extra options -> msg/s
  local conc=$1; shift; local t TIMEFORMAT=%R
  t=$( { time "$SOURCE" "$@" -s "$conc" -m "$MSGS" -l "$LEN" -f a@x.test -t support@localhost "127.0.0.1:$PD_PORT" >/dev/null; } 2>&1 )
  awk -v n="$MSGS" -v t="$t" 'BEGIN{ printf "%.0f", n/t }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{printf "%d", a[int((NR+1)/2)]}'; }

declare -A PD RSS
for c in $CONCS; do
  for mode in new keepalive; do
    rs=()
    for _ in $(seq "$REPS"); do
      start
      if [ $mode = keepalive ]; then r=$(run_source "$c" -d); else r=$(run_source "$c"); fi
      rs+=("$r"); RSS[$mode$c]=$(peak_rss_mb)
      log "postdesk c=$c $mode: $r msg/s, peak RSS ${RSS[$mode$c]} MB"
    done
    PD[$mode$c]=$(median "${rs[@]}")
  done
done
stop

line="RESULT postdesk_ingest msgs=$MSGS len=$LEN reps=$REPS unit=msg/s(median)"
for c in $CONCS; do
  sink=$(value "discard_c$c"); keep=$(value "keepalive_c$c"); dumpd=$(value "dumpd_c$c")
  line+=" c$c=${PD[new$c]} c${c}_keepalive=${PD[keepalive$c]}"
  line+=" ratio_c${c}_vs_sink=$(awk -v a="${PD[new$c]}" -v b="$sink" 'BEGIN{printf "%.2f", a/b}')"
  line+=" ratio_c${c}_vs_sink_d=$(awk -v a="${PD[new$c]}" -v b="$dumpd" 'BEGIN{printf "%.2f", a/b}')"
  line+=" ratio_c${c}_keepalive_vs_sink=$(awk -v a="${PD[keepalive$c]}" -v b="$keep" 'BEGIN{printf "%.2f", a/b}')"
  line+=" rss_c${c}_mb=${RSS[new$c]}"
done
echo "$line"

# 250 latency with half the messages threading into earlier tickets.
start
python3 bench/loadgen.py --port "$PD_PORT" --messages "$MSGS" --concurrency 20 --size "$LEN" --reuse
log "peak RSS after the latency run: $(peak_rss_mb) MB"
