#!/usr/bin/env bash
# Two builds of postdesk side by side, run alternately so that the machine's
# drift (other load, caches, thermals) falls on both alike: ingest with
# examples/loadgen.rs and the IMAP first sync of bench/imap_first_sync.sh.
# Prints every run and the medians per build.
#
#   bench/compare_builds.sh OLD_BIN NEW_BIN [--rounds 3] [-n 5000] [--sync-n 10000]
#
# LOADGEN (default target/release/examples/loadgen) drives the ingest runs;
# build it with `cargo build --release --example loadgen`.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2; shift 2
ROUNDS=3 N=5000 SYNC_N=10000
while [ $# -gt 0 ]; do case "$1" in --rounds) ROUNDS=$2; shift 2;; -n) N=$2; shift 2;;
  --sync-n) SYNC_N=$2; shift 2;; *) echo "bad arg $1" >&2; exit 2;; esac; done
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
for bin in "$OLD" "$NEW" "$LOADGEN"; do
  [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }
done
RESULTS=$(mktemp /tmp/postdesk-compare.XXXXXX)

ingest() { # BIN LABEL
  local data port pid
  data=$(mktemp -d /tmp/postdesk-ab.XXXXXX)
  port=$((20000 + RANDOM % 20000))
  cat > "$data/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$data"
[smtp]
listen = "127.0.0.1:$port"
max_connections = 200
[submission]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
[imap]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
TOML
  "$1" --config "$data/postdesk.toml" serve > "$data/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q "SMTP" "$data/serve.log" 2>/dev/null && break; sleep 0.1; done
  "$LOADGEN" --addr "127.0.0.1:$port" --to support@desk.bench --senders 32 \
    --messages "$N" --size 10240 --json | sed "s/^/ingest $2 /" | tee -a "$RESULTS"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

first_sync() { # BIN LABEL
  POSTDESK_BIN=$1 IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-1000} bench/imap_first_sync.sh -n "$SYNC_N" --runs 3 \
    | awk -v label="$2" '/^(select|fetch_hdrs),/ { print "sync " label " " $0 } /MiB|RSS|resident/ { print "memory " label " " $0 }' \
    | tee -a "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
  # Alternate which build goes first.
  if [ $((round % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for label in $order; do
    bin=$OLD; [ "$label" = new ] && bin=$NEW
    echo "round $round: $label"
    ingest "$bin" "$label"
    first_sync "$bin" "$label"
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [l.split(" ", 2) for l in open(sys.argv[1]) if l.strip()]
for label in ("old", "new"):
    ing = [json.loads(r[2]) for r in rows if r[0] == "ingest" and r[1] == label]
    if ing:
        med = lambda k: statistics.median(x[k] for x in ing)
        print(f"{label}: ingest median of {len(ing)}: {med('per_second'):.1f} msg/s, "
              f"p50 {med('p50_ms'):.2f} ms, p99 {med('p99_ms'):.2f} ms")
    for step in ("select", "fetch_hdrs"):
        # step,run1_s,min_s,median_s,max_s: the median of each run's median.
        vals = [float(r[2].split(",")[3]) for r in rows
                if r[0] == "sync" and r[1] == label and r[2].startswith(step + ",")]
        if vals:
            print(f"{label}: first sync {step} median of {len(vals)}: {statistics.median(vals)*1000:.1f} ms")
PY
echo "all runs: $RESULTS"
