#!/usr/bin/env bash
# Search right after a burst (benchmark, not a test): a fresh server takes
# N messages (default 10,000) offered at RATE msg/s (default 667: 10,000 in
# 15 s) by examples/loadgen over 8 SMTP sessions, while an agent's IMAP
# session times `SEARCH TEXT vpn` on Unassigned every 0.5 s
# (bench/search_after_burst.py) and /metrics' index lag is sampled. Every
# loadgen message has the word, so a complete answer names every message.
#
#   bench/search_after_burst.sh [-n 10000] [--rate 667] [--runs 3] [--after 40] [--resolved 200]
#
# --resolved K first files K tickets of the same kind and resolves them, as
# a queue in use has: then every new ticket of the burst gets a "possibly
# related" note (a similarity search and a store write each), the work
# that used to hold up the indexer.
#
# Per run: how long after the last message was accepted SEARCH answered
# complete in under 20 ms (and stayed so), the SEARCH time then, the
# index lag gauge's last non-zero sample; at the end the medians.
#
# Build first: cargo build --release --bin postdesk --example loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
N=10000 RATE=667 RUNS=3 AFTER=40 RESOLVED=0
while [ $# -gt 0 ]; do case "$1" in -n) N=$2; shift 2;; --rate) RATE=$2; shift 2;; --resolved) RESOLVED=$2; shift 2;;
  --runs) RUNS=$2; shift 2;; --after) AFTER=$2; shift 2;; *) echo "bad arg $1" >&2; exit 2;; esac; done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${POSTDESK_BIN:-$TARGET/release/postdesk}
LOADGEN=${LOADGEN:-$TARGET/release/examples/loadgen}
for b in "$BIN" "$LOADGEN"; do
  [ -x "$b" ] || { echo "build first: cargo build --release --bin postdesk --example loadgen" >&2; exit 2; }
done
SMTP_PORT=${SMTP_PORT:-14625} IMAP_PORT=${IMAP_PORT:-14643} HTTP_PORT=${HTTP_PORT:-14680}
RESULTS=$(mktemp /tmp/postdesk-burst-results.XXXXXX)
DATA= SERVER= SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  wait 2>/dev/null || true
  [ -n "$DATA" ] && rm -rf "$DATA"
  SERVER= SAMPLER= DATA=
}
trap 'cleanup; rm -f "$RESULTS"' EXIT

for run in $(seq 1 "$RUNS"); do
  DATA=$(mktemp -d /tmp/postdesk-burst.XXXXXX)
  HTTP=""
  grep -q "healthz" "$BIN" && HTTP="[http]
listen = \"127.0.0.1:$HTTP_PORT\""
  cat > "$DATA/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$DATA"
[smtp]
listen = "127.0.0.1:$SMTP_PORT"
# No DNS lookups of the generated senders while measuring.
verify = "off"
[imap]
listen = "127.0.0.1:$IMAP_PORT"
tls_listen = "127.0.0.1:0"
[autoreply]
enabled = false
$HTTP
[[queue]]
name = "support"
address = "support@support.test"
TOML
  "$BIN" --config "$DATA/postdesk.toml" serve > "$DATA/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do grep -q "IMAP" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
  echo bench-password | "$BIN" --config "$DATA/postdesk.toml" agent add bench@support.test --name Bench \
    --queue support --password-stdin > /dev/null
  if [ "$RESOLVED" -gt 0 ]; then
    "$LOADGEN" --addr "127.0.0.1:$SMTP_PORT" --to support@support.test --senders 1 \
      --messages "$RESOLVED" --size 2048 --reply-ratio 0 > /dev/null
    for t in $(seq 1 "$RESOLVED"); do
      # The server may hold SQLite's write lock a moment: try again.
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        "$BIN" --config "$DATA/postdesk.toml" ticket set "$t" --status resolved > /dev/null 2>&1 && break
        sleep 0.2
      done
    done
  fi
  if [ -n "$HTTP" ]; then
    ( while true; do
        lag=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^postdesk_search_index_lag_messages /{print $2}')
        echo "$(date +%s.%N) ${lag:-?}"; sleep 0.5
      done > "$DATA/lag.log" ) &
    SAMPLER=$!
  fi
  python3 bench/search_after_burst.py --port "$IMAP_PORT" --user bench@support.test \
    --password bench-password --done "$DATA/done" --after "$AFTER" > "$DATA/probe.log" &
  PROBE=$!
  sleep 1
  "$LOADGEN" --addr "127.0.0.1:$SMTP_PORT" --to support@support.test --senders 8 \
    --messages "$N" --rate "$RATE" --size 2048 --reply-ratio 0 | sed "s/^/run $run: loadgen: /"
  date +%s.%N > "$DATA/done"
  wait "$PROBE"
  python3 - "$DATA" "$N" "$run" <<'PY' | tee -a "$RESULTS"
import statistics, sys
data, n, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
end = float(open(f"{data}/done").read())
probes = [tuple(map(float, l.split())) for l in open(f"{data}/probe.log") if l.strip()]
after = [(t - end, ms, hits) for t, ms, hits in probes if t >= end]
during = [ms for t, ms, _ in probes if t < end]
# The first probe from which on every answer was complete and under 20 ms.
ready = None
for i, (dt, ms, hits) in enumerate(after):
    if all(m < 20 and h >= n for _, m, h in after[i:]):
        ready = dt
        break
def at(second):
    near = [ms for dt, ms, _ in after if second <= dt < second + 1]
    return f"{statistics.median(near):.0f}" if near else "-"
lag_end = "-"
try:
    lags = [l.split() for l in open(f"{data}/lag.log")]
    nonzero = [float(t) - end for t, v in lags if v not in ("0", "?")]
    lag_end = f"{max(nonzero):.1f}" if nonzero else "0"
except FileNotFoundError:
    pass
print(f"RESULT run={run} ready_s={'never' if ready is None else f'{ready:.1f}'} "
      f"during_median_ms={statistics.median(during) if during else 0:.0f} "
      f"after_ms(+0s,+2s,+5s,+10s,+20s,+30s)={at(0)},{at(2)},{at(5)},{at(10)},{at(20)},{at(30)} "
      f"last_lag_nonzero_s={lag_end}")
PY
  if [ "$RESOLVED" -gt 0 ] && command -v sqlite3 > /dev/null; then
    echo "run $run: similar-tickets notes written by the end: $(sqlite3 "$DATA/postdesk.db" \
      "SELECT COUNT(*) FROM ticket_events WHERE kind = 'similar-tickets'")"
  fi
  cleanup
done
python3 - "$RESULTS" <<'PY'
import re, statistics, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("RESULT")]
ready = [float(m.group(1)) for l in rows if (m := re.search(r"ready_s=([0-9.]+)", l))]
never = sum("ready_s=never" in l for l in rows)
print(f"== {len(rows)} runs: SEARCH complete and under 20 ms after the last message: "
      f"median {statistics.median(ready):.1f} s" if ready else f"== {len(rows)} runs: never ready",
      f"({never} runs never within the window)" if never and ready else "")
PY
