#!/usr/bin/env bash
# Web benchmark: a store pre-filled as received mail through the spool and the pipeline
# (100k tickets, 500k messages by default), the time to start the server on it, then wrk
# against the API's ticket list and a ticket with its events, and the web UI's ticket
# list, ticket page and dashboard (signed in), then the ticket export (CSV) of every
# ticket. Prints RESULT lines (req/s and p99 latency, resident memory after each phase and
# its peak; the export's time and the server's memory while it streams). A fresh fill is first served once
# until the notifier has sent what the mail would have caused (the warm-up).
# With POSTGRES=1 the warmed store is moved into a private PostgreSQL (fsync on) with
# `postdesk migrate-store` (its time is a RESULT line) and the server runs on that.
# Env: TICKETS=100000 EVENTS=5 DUR=10s CONNS=20 HTTP=8597 SMTP=2597 KEEP=DIR (reuse a fill)
#      POSTGRES=1
set -euo pipefail
cd "$(dirname "$0")/.."
TICKETS=${TICKETS:-100000}; EVENTS=${EVENTS:-5}; DUR=${DUR:-10s}; CONNS=${CONNS:-20}
HTTP=${HTTP:-8597}; SMTP=${SMTP:-2597}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p postdesk -p postdesk-bench
DATA=${KEEP:-$(mktemp -d)/data}
if [ ! -d "$DATA/db" ]; then
  target/release/postdesk-fill "$DATA" "$TICKETS" "$EVENTS"
  # A store that old has long sent its acknowledgements: let the notifier do that first,
  # so the measured runs do not share the machine with it.
  warm=$(date +%s)
  POSTDESK_LOG=warn target/release/postdesk --data "$DATA" serve --smtp "127.0.0.1:$SMTP" --http "127.0.0.1:$HTTP" >/dev/null 2>&1 &
  WARM=$!
  prev=-1
  while :; do
    sleep 10
    n=$(find "$DATA/outbox" -type f 2>/dev/null | wc -l)
    if [ "$n" -gt 0 ] && [ "$n" = "$prev" ]; then break; fi
    prev=$n
  done
  kill $WARM; wait $WARM 2>/dev/null || true
  echo "RESULT web_warmup seconds=$(( $(date +%s) - warm )) outbox_mails=$n"
fi
if [ "${POSTGRES:-0}" = 1 ]; then
  PG=$(mktemp -d)
  trap 'scripts/private-postgres stop "$PG" 2>/dev/null; rm -rf "$PG"' EXIT
  URL=$(DURABLE=1 scripts/private-postgres start "$PG")
  s=$(date +%s.%N)
  target/release/postdesk --data "$DATA" migrate-store --to "$URL" > "$PG/moved.txt"
  head -1 "$PG/moved.txt"
  echo "RESULT web_migrate_store seconds=$(echo "$(date +%s.%N) - $s" | bc) tickets=$TICKETS events=$((TICKETS * EVENTS)) db_bytes=$(psql -qAt "$URL" -c "SELECT pg_database_size(current_database())")"
  export POSTDESK_DATABASE_URL=$URL
fi
target/release/postdesk --data "$DATA" staff add bench@localhost --name Bench --role admin >/dev/null 2>&1 || true
TOKEN=$(target/release/postdesk --data "$DATA" token create bench@localhost)
LINK=$(target/release/postdesk --data "$DATA" staff link bench@localhost | sed 's|^http://[^/]*||')
start=$(date +%s.%N)
POSTDESK_LOG=warn target/release/postdesk --data "$DATA" serve --smtp "127.0.0.1:$SMTP" --http "127.0.0.1:$HTTP" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; [ -n "${PG:-}" ] && { scripts/private-postgres stop "$PG"; rm -rf "$PG"; }' EXIT
until curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null; do sleep 0.02; done
echo "RESULT web_start seconds=$(echo "$(date +%s.%N) - $start" | bc) tickets=$TICKETS events=$((TICKETS * EVENTS))"
# Resident memory now, and the highest so far (the peak is while sled opens the store).
rss() { awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "rss=%.0fMB peak_rss=%.0fMB", r/1024, h/1024}' /proc/$PID/status; }
echo "RESULT web_started $(rss)"
COOKIE=$(curl -s -o /dev/null -D - "http://127.0.0.1:$HTTP$LINK" | awk -F'[ ;]' 'tolower($1)=="set-cookie:" {print $2}')
bench() { # name path
  local out; out=$(wrk -t2 -c"$CONNS" -d"$DUR" --latency -H "Authorization: Bearer $TOKEN" -H "Cookie: $COOKIE" "http://127.0.0.1:$HTTP$2")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "RESULT web $1 req_per_s=$rps p99=$p99 $(rss)"
}
bench ticket_list "/api/v1/tickets?limit=50"
bench ticket_list_filtered "/api/v1/tickets?limit=50&type=bug"
bench ticket "/api/v1/tickets/$((TICKETS / 2))"
bench page_ticket_list "/desk"
bench page_ticket "/desk/tickets/$((TICKETS / 2))"
bench page_dashboard "/dashboard"
# The 100k-ticket export, streamed: its time, size, and the server's resident memory at
# its highest while it ran (sampled every 50 ms) against before it.
export_csv() { # name path
  local before high=0 s e bytes rows
  before=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$PID/status)
  ( while kill -0 $PID 2>/dev/null; do awk '/VmRSS/ {print int($2/1024)}' /proc/$PID/status; sleep 0.05; done ) > /tmp/postdesk-export-rss.$$ &
  local sampler=$!
  s=$(date +%s.%N)
  curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP$2" -o /tmp/postdesk-export.$$
  e=$(date +%s.%N)
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null || true
  high=$(sort -n /tmp/postdesk-export-rss.$$ | tail -1)
  bytes=$(stat -c %s /tmp/postdesk-export.$$); rows=$(($(wc -l < /tmp/postdesk-export.$$) - 1))
  rm -f /tmp/postdesk-export.$$ /tmp/postdesk-export-rss.$$
  echo "RESULT web $1 seconds=$(echo "$e - $s" | bc) rows=$rows bytes=$bytes rss_before=${before}MB rss_high=${high}MB"
}
export_csv export_tickets "/api/v1/exports/tickets.csv"
export_csv export_tickets_filtered "/api/v1/exports/tickets.csv?type=bug&status=open"
echo "RESULT web_end $(rss)"
