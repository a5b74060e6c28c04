#!/usr/bin/env bash
# Two postdesk nodes on one PostgreSQL database against one node (issue 17).
#
#   bench/two_nodes.sh [--postgres postgres://postgres@127.0.0.1:5432/postgres]
#                      [--messages 6000] [--senders 16] [--runs 3] [--size 4000]
#
# Each run uses a fresh database:
#   one node   loadgen offers MESSAGES to node one as fast as it accepts;
#   two nodes  two loadgens offer MESSAGES/2 each to node one and node two at
#              once; the rate is all messages over the wall time of both;
#   cross-node 5 IMAP clients in IDLE on node one while mail arrives at node
#              two at 50 msg/s for 20 s (TEAMGEN, examples/teamgen.rs): the
#              time from node two's 250 to node one's EXISTS.
# Prints one line per run and the medians. Both nodes, PostgreSQL and the
# load generators share this machine: on 2 cores the nodes compete for the
# same CPU, so the ratio says what the shared database costs, not what two
# machines would give.
#
# Builds nothing: `cargo build --release --bin postdesk --example loadgen
# --example teamgen` first.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=postgres://postgres@127.0.0.1:5432/postgres MESSAGES=6000 SENDERS=16 RUNS=3 SIZE=4000
while [ $# -gt 0 ]; do case "$1" in --postgres) PG=$2; shift 2;; --messages) MESSAGES=$2; shift 2;;
  --senders) SENDERS=$2; shift 2;; --runs) RUNS=$2; shift 2;; --size) SIZE=$2; shift 2;;
  *) echo "bad arg $1" >&2; exit 2;; esac; done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${POSTDESK_BIN:-$TARGET/release/postdesk}
LOADGEN=${LOADGEN_BIN:-$TARGET/release/examples/loadgen}
TEAMGEN=$(realpath -m "${TEAMGEN:-$TARGET/release/examples/teamgen}")
for b in "$BIN" "$LOADGEN" "$TEAMGEN"; do [ -x "$b" ] || { echo "build first: $b" >&2; exit 2; }; done
WORK=$(mktemp -d /tmp/postdesk-two.XXXXXX)
DB=postdesk_two_nodes_bench
BASE=${PG%/*}
DB_URL="$BASE/$DB?sslmode=disable"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap 'cleanup; rm -rf "$WORK"' EXIT

# Ports: node one 14025/14143/14080, node two 14125/14243/14180.
config() { # name smtp imap http
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$WORK/$1"
database_url = "$DB_URL"
[smtp]
listen = "127.0.0.1:$2"
verify = "off"
max_connections = 200
[submission]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:$4"
[imap]
listen = "127.0.0.1:$3"
tls_listen = "127.0.0.1:0"
max_connections_per_agent = 200
[autoreply]
enabled = false
[[queue]]
name = "support"
address = "support@support.test"
TOML
}
config one 14025 14143 14080
config two 14125 14243 14180

start() { # name
  "$BIN" --config "$WORK/$1/postdesk.toml" serve > "$WORK/$1/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do grep -q "IMAP" "$WORK/$1/serve.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "node $1 did not start:" >&2; cat "$WORK/$1/serve.log" >&2; exit 1
}
fresh() {
  cleanup; PIDS=()
  psql -q "$PG" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" > /dev/null
  start one; start two
  echo bench-password | "$BIN" --config "$WORK/one/postdesk.toml" agent add bench@support.test \
    --name Bench --queue support --password-stdin > /dev/null
}
rate() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["per_second"])'; }

ONE=() TWO=() CROSS=()
for run in $(seq 1 "$RUNS"); do
  fresh
  one=$("$LOADGEN" --addr 127.0.0.1:14025 --to support@support.test --senders "$SENDERS" \
        --messages "$MESSAGES" --size "$SIZE" --json | rate)
  fresh
  start_ns=$(date +%s%N)
  "$LOADGEN" --addr 127.0.0.1:14025 --to support@support.test --senders $((SENDERS / 2)) \
    --messages $((MESSAGES / 2)) --size "$SIZE" --json > "$WORK/a.json" &
  a=$!
  "$LOADGEN" --addr 127.0.0.1:14125 --to support@support.test --senders $((SENDERS / 2)) \
    --messages $((MESSAGES / 2)) --size "$SIZE" --json > "$WORK/b.json" &
  b=$!
  wait $a $b
  end_ns=$(date +%s%N)
  two=$(python3 -c "print(round($MESSAGES / (($end_ns - $start_ns) / 1e9), 1))")
  cross=$("$TEAMGEN" --smtp-port 14125 --imap-port 14143 --user bench@support.test \
    --password bench-password --mailbox Unassigned --to support@support.test --clients 5 \
    --rate 50 --seconds 20 --label cross-node)
  p99=$(echo "$cross" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get("notify_p99_ms"), d.get("notify_p50_ms"), d.get("seen_share", d.get("seen")))')
  echo "run $run: one node $one msg/s; two nodes $two msg/s; cross-node EXISTS p99/p50 ms, seen: $p99"
  echo "  teamgen: $cross"
  ONE+=("$one") TWO+=("$two") CROSS+=("${p99%% *}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m1=$(median "${ONE[@]}") m2=$(median "${TWO[@]}")
echo "median: one node $m1 msg/s, two nodes $m2 msg/s (x$(python3 -c "print(round($m2/$m1, 2))")), cross-node EXISTS p99 $(median "${CROSS[@]}") ms"
psql -q "$PG" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" > /dev/null
