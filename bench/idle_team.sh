#!/usr/bin/env bash
# A team connected while mail arrives (issue 17's workload): N IMAP clients
# in IDLE on a view of FILL messages that, like Thunderbird, answer each
# EXISTS with a header FETCH, while mail arrives at a steady RATE over 8
# SMTP sessions for SECONDS. Two builds, run alternately, ROUNDS times each.
# Prints every run and the medians: achieved msg/s, accept p50/p99, the new
# messages the clients saw, server CPU (user+system seconds) and peak RSS.
#
#   bench/idle_team.sh OLD_BIN NEW_BIN [--fill 10000] [--clients 20]
#       [--rate 50] [--seconds 60] [--rounds 2]
#
# Acknowledgements and "possibly related" notes are off: the runs measure
# ingest and the views, alike for builds whose acknowledgement rules differ.
# Uses ../shared/bench/idle_clients.py and steady_rate.py, and LOADGEN
# (default target/release/examples/loadgen) to fill the view.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2; shift 2
FILL=10000 CLIENTS=20 RATE=50 SECONDS_=60 ROUNDS=2
while [ $# -gt 0 ]; do case "$1" in --fill) FILL=$2; shift 2;; --clients) CLIENTS=$2; shift 2;;
  --rate) RATE=$2; shift 2;; --seconds) SECONDS_=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;;
  *) echo "bad arg $1" >&2; exit 2;; esac; done
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
PEERS=${PEERS:-../shared/bench}
RESULTS=$(mktemp /tmp/postdesk-idle-team.XXXXXX)

run() { # BIN LABEL
  local data smtp imap pid
  data=$(mktemp -d /tmp/postdesk-team.XXXXXX)
  smtp=$((20000 + RANDOM % 20000)); imap=$((smtp + 1))
  cat > "$data/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$data"
[smtp]
listen = "127.0.0.1:$smtp"
max_connections = 200
VERIFY
[submission]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
[imap]
listen = "127.0.0.1:$imap"
tls_listen = "127.0.0.1:0"
max_connections_per_address = 1000
[search]
similar = false
[autoreply]
enabled = false
TOML
  # Builds before inbound authentication do not know `verify` (later ones
  # must not ask DNS about the generated senders' domains), builds before
  # the operations listener no `[http]` (later ones get an ephemeral port):
  # each is added when the build takes it.
  sed -i '/^VERIFY$/d' "$data/postdesk.toml"
  sed 's/^\[smtp\]$/[smtp]\nverify = "off"/' "$data/postdesk.toml" > "$data/try.toml"
  if "$1" --config "$data/try.toml" migrate >/dev/null 2>&1; then
    mv "$data/try.toml" "$data/postdesk.toml"
  fi
  cp "$data/postdesk.toml" "$data/try.toml"
  printf '[http]\nlisten = "127.0.0.1:0"\n' >> "$data/try.toml"
  if "$1" --config "$data/try.toml" migrate >/dev/null 2>&1; then
    mv "$data/try.toml" "$data/postdesk.toml"
  fi
  rm -f "$data/try.toml"
  echo 'bench-password' | "$1" --config "$data/postdesk.toml" agent add agent@desk.bench \
    --queue support --password-stdin >/dev/null
  "$1" --config "$data/postdesk.toml" serve > "$data/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do grep -q "IMAP" "$data/serve.log" 2>/dev/null && break; sleep 0.1; done
  "$LOADGEN" --addr "127.0.0.1:$smtp" --to support@desk.bench --senders 16 \
    --messages "$FILL" --size 4000 --json >/dev/null
  sleep 2
  python3 "$PEERS/idle_clients.py" --port "$imap" --user agent@desk.bench \
    --password bench-password --mailbox Queues/support -n "$CLIENTS" \
    --seconds $((SECONDS_ + 15)) > "$data/idle.out" 2>&1 &
  local idle=$!
  sleep 10
  local cpu0 cpu1
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  python3 "$PEERS/steady_rate.py" --port "$smtp" --to support@desk.bench --rate "$RATE" \
    --seconds "$SECONDS_" --sessions 8 > "$data/rate.out" 2>&1
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  wait "$idle" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ticks
  ticks=$(getconf CLK_TCK)
  echo "$2 rate: $(tr '\n' ' ' < "$data/rate.out")" | tee -a "$RESULTS"
  echo "$2 idle: $(tr '\n' ' ' < "$data/idle.out")" | tee -a "$RESULTS"
  echo "$2 cpu_s: $(( (cpu1 - cpu0) / ticks )) peak_rss_kib: $rss" | tee -a "$RESULTS"
  rm -rf "$data"
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for label in $order; do
    bin=$OLD; [ "$label" = new ] && bin=$NEW
    echo "round $round: $label"
    run "$bin" "$label"
  done
done
echo "all runs: $RESULTS"
