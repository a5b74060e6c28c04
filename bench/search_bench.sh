#!/usr/bin/env bash
# Search benchmark (not a test): N messages (default 100,000) of the
# deterministic corpus of ../shared/bench/gen_corpus.py, imported into a
# fresh data directory, then
#   1. indexing: `postdesk reindex` from the store (messages/s, index size);
#   2. query latency: examples/search_bench (p50/p99 per kind of query);
#   3. index lag under ingest load: the server running, examples/loadgen
#      delivering LOAD messages with SENDERS sessions while
#      examples/search_bench samples the lag every 100 ms.
#
#   bench/search_bench.sh [-n 100000] [--load 5000] [--senders 8] [--runs 3] [--keep DIR]
#
# --keep DIR keeps the data directory (and reuses it when it exists: the
# import of 100,000 messages takes minutes).
#
# Build first: cargo build --release --bin postdesk --example search_bench --example loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${PEERS_DIR:-$(cd ../shared/bench && pwd)}"
N=100000 LOAD=5000 SENDERS=8 RUNS=3 KEEP=
while [ $# -gt 0 ]; do case "$1" in -n) N=$2; shift 2;; --load) LOAD=$2; shift 2;; --keep) KEEP=$2; shift 2;;
  --senders) SENDERS=$2; shift 2;; --runs) RUNS=$2; shift 2;; *) echo "bad arg $1" >&2; exit 2;; esac; done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${POSTDESK_BIN:-$TARGET/release/postdesk}
BENCH=$TARGET/release/examples/search_bench LOADGEN=$TARGET/release/examples/loadgen
for b in "$BIN" "$BENCH" "$LOADGEN"; do
  [ -x "$b" ] || { echo "build first: cargo build --release --bin postdesk --example search_bench --example loadgen" >&2; exit 2; }
done
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; DATA=$(cd "$KEEP" && pwd); else DATA=$(mktemp -d /tmp/postdesk-search-bench.XXXXXX); fi
SMTP_PORT=${SMTP_PORT:-14525}
FILLED=0; [ -f "$DATA/filled" ] && FILLED=1
cat > "$DATA/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$DATA"
[smtp]
listen = "127.0.0.1:$SMTP_PORT"
# No DNS lookups of the generated senders while measuring.
verify = "off"
[imap]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
[autoreply]
enabled = false
[search]
similar = true
[[queue]]
name = "support"
address = "support@support.test"
TOML
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$DATA"' EXIT
CFG=(--config "$DATA/postdesk.toml")

if [ "$FILLED" = 0 ]; then
  echo "== corpus: $N messages"
  python3 "$PEERS_DIR/gen_corpus.py" -n "$N" --seed 42 --min-size 2000 --max-size 6000 \
    --to support@support.test --mbox "$DATA/corpus.mbox" | tail -n 1
  "$BIN" "${CFG[@]}" import mbox "$DATA/corpus.mbox" --queue support --json \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print("imported", s["stored"], "messages")'
  rm -f "$DATA/corpus.mbox"
  touch "$DATA/filled"
else
  echo "== reusing the $(cat "$DATA/filled" 2>/dev/null)corpus in $DATA"
fi

echo "== indexing from the store ($RUNS runs of postdesk reindex)"
for run in $(seq 1 "$RUNS"); do
  "$BIN" "${CFG[@]}" reindex --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
docs, secs, mib = r["documents"], r["seconds"], r["bytes"] / 2**20
print(f"run {sys.argv[1]}: {docs} documents in {secs:.1f} s = {docs / secs:.0f} msg/s, index {mib:.0f} MiB")' "$run"
done

echo "== query latency"
for run in $(seq 1 "$RUNS"); do
  echo "-- run $run"
  "$BENCH" queries --config "$DATA/postdesk.toml"
done

echo "== index lag while $LOAD messages arrive ($SENDERS SMTP sessions)"
"$BIN" "${CFG[@]}" serve > "$DATA/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 200); do grep -q "IMAP" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
for run in $(seq 1 "$RUNS"); do
  "$BENCH" lag --config "$DATA/postdesk.toml" --seconds 600 &
  WATCH=$!
  "$LOADGEN" --addr "127.0.0.1:$SMTP_PORT" --to support@support.test --senders "$SENDERS" \
    --messages "$LOAD" --size 4096
  wait $WATCH
done
