#!/usr/bin/env bash
# Ingest on each engine: smtp-source at c=20 against Postfix's smtp-sink (the ceiling),
# Postdesk on sled, Postdesk on PostgreSQL with one node, and with two nodes (two
# smtp-source at c=10, one per node, started together). Every 250 is durable: the private
# PostgreSQL runs with fsync on (DURABLE=1). All of it on this one machine: the nodes and
# the database share its cores, so two nodes show the cost of sharing a database, not
# the capacity of two machines. Prints RESULT lines (msg/s, medians of REPS runs).
#
# Env: MSGS=10000 LEN=4096 REPS=3
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${MSGS:-10000}; LEN=${LEN:-4096}; REPS=${REPS:-3}
SOURCE=/usr/sbin/smtp-source
cargo build --release -q
BIN=target/release/postdesk
log() { echo "[nodes] $*" >&2; }

ceiling=$(MSGS=$MSGS LEN=$LEN CONCS=20 REPS=$REPS PORT=2599 ../shared/bench/smtp_ceiling.sh | grep '^RESULT')
echo "$ceiling"
sink=$(sed -E 's/.* discard_c20=([0-9]+)\[.*/\1/' <<<"$ceiling")

WORK=$(mktemp -d); PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PIDS=(); }
PG=$(mktemp -d)  # its own folder: PostgreSQL runs as another user, who must reach it
trap 'stop; scripts/private-postgres stop "$PG" 2>/dev/null; rm -rf "$WORK" "$PG"' EXIT
DURABLE=1 scripts/private-postgres start "$PG" > "$WORK/url"
URL=$(cat "$WORK/url")

node() { # name smtp http [database url]
  local data="$WORK/$1"
  POSTDESK_LOG=warn POSTDESK_DATABASE_URL="${4:-}" POSTDESK_CONNECTIONS_PER_MINUTE=0 \
  POSTDESK_MESSAGES_PER_MINUTE=0 POSTDESK_MESSAGES_PER_SENDER_PER_MINUTE=0 \
    "$BIN" --data "$data" serve --smtp "127.0.0.1:$2" --http "127.0.0.1:$3" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$3/healthz" >/dev/null && return; sleep 0.1; done
  log "node $1 did not start: $(tail -3 "$WORK/$1.log")"; exit 1
}
fresh() { # a new schema of the private database for each run
  local schema=run$RANDOM$RANDOM
  psql -q "$URL" -c "CREATE SCHEMA $schema" >/dev/null
  echo "$URL?options=-c%20search_path%3D$schema"
}
timed() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'; }
source_to() { "$SOURCE" -s "$1" -m "$2" -l "$LEN" -f a@x.test -t support@localhost "127.0.0.1:$3" >/dev/null; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{printf "%d", a[int((NR+1)/2)]}'; }

# Free ports, asked of the system (another program may hold fixed ones).
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
S1=$(port); H1=$(port); S2=$(port); H2=$(port)
sled=(); one=(); two=()
for rep in $(seq "$REPS"); do
  rm -rf "$WORK"/n*
  node n1 "$S1" "$H1"
  sled+=("$(awk -v n="$MSGS" -v t="$(timed source_to 20 "$MSGS" "$S1")" 'BEGIN{printf "%.0f", n/t}')")
  stop; rm -rf "$WORK"/n*
  db=$(fresh)
  node n1 "$S1" "$H1" "$db"
  one+=("$(awk -v n="$MSGS" -v t="$(timed source_to 20 "$MSGS" "$S1")" 'BEGIN{printf "%.0f", n/t}')")
  stop; rm -rf "$WORK"/n*
  db=$(fresh)
  node n1 "$S1" "$H1" "$db"; node n2 "$S2" "$H2" "$db"
  both() { source_to 10 $((MSGS / 2)) "$S1" & local a=$!; source_to 10 $((MSGS / 2)) "$S2"; wait $a; }
  two+=("$(awk -v n="$MSGS" -v t="$(timed both)" 'BEGIN{printf "%.0f", n/t}')")
  stop
  log "run $rep: sled ${sled[-1]}, postgres one node ${one[-1]}, two nodes ${two[-1]} msg/s"
done
s=$(median "${sled[@]}"); o=$(median "${one[@]}"); t=$(median "${two[@]}")
awk -v s="$s" -v o="$o" -v t="$t" -v k="$sink" -v m="$MSGS" 'BEGIN{
  printf "RESULT nodes_ingest msgs=%d c=20 unit=msg/s(median) smtp_sink=%d sled=%d postgres_1_node=%d postgres_2_nodes=%d ratio_sled_vs_sink=%.2f ratio_pg1_vs_sink=%.2f ratio_pg2_vs_sink=%.2f ratio_pg1_vs_sled=%.2f ratio_pg2_vs_pg1=%.2f\n",
  m, k, s, o, t, s/k, o/k, t/k, o/s, t/o }'
