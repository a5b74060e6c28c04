#!/usr/bin/env bash
# IMAP benchmark: a 10,000-message folder and the first sync Thunderbird sends,
# on postdesk (and on Dovecot with the peer scripts, for the ratio).
#
#   bench/imap_first_sync.sh [-n 10000] [--runs 5] [--dovecot]
#
# Builds nothing: run `cargo build --release` first. Uses the deterministic
# corpus of ../shared/bench/gen_corpus.py delivered over SMTP; every message
# lands in one support queue, so the agent's "Unassigned" view holds them all.
# Then it measures resident memory with 1,000 connections in IDLE
# (bench/imap_idle_memory.py; IDLE_CONNECTIONS to change).
# --dovecot also fills the peer Postfix+Dovecot stack and runs the same
# imap_sync_bench.py against it (../shared/bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR="${PEERS_DIR:-$(cd ../shared/bench && pwd)}"
N=10000 RUNS=5 DOVECOT=0
while [ $# -gt 0 ]; do case "$1" in -n) N=$2; shift 2;; --runs) RUNS=$2; shift 2;;
  --dovecot) DOVECOT=1; shift;; *) echo "bad arg $1" >&2; exit 2;; esac; done

BIN=${POSTDESK_BIN:-target/release/postdesk}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
DATA=$(mktemp -d /tmp/postdesk-bench.XXXXXX)
SMTP_PORT=${SMTP_PORT:-12525} IMAP_PORT=${IMAP_PORT:-12243}
# All the IDLE clients come from 127.0.0.1: lift the per-address limits
# (builds from before they existed do not know the keys).
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-1000}
ALLOWED=$((IDLE_CONNECTIONS + 200))
LIMITS=""
if grep -q max_unauthenticated "$BIN"; then
  LIMITS="max_connections_per_address = $ALLOWED
max_unauthenticated = $ALLOWED"
fi
# One descriptor per connection in the server and in the client.
ulimit -n "$(ulimit -Hn)"
cat > "$DATA/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$DATA"
[smtp]
listen = "127.0.0.1:$SMTP_PORT"
# No DNS lookups of the generated senders while measuring.
verify = "off"
max_connections = 100
[imap]
listen = "127.0.0.1:$IMAP_PORT"
tls_listen = "127.0.0.1:0"
max_connections_per_agent = $ALLOWED
max_connections = $ALLOWED
$LIMITS
[autoreply]
enabled = false
[[queue]]
name = "support"
address = "support@support.test"
TOML
"$BIN" --config "$DATA/postdesk.toml" serve > "$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do grep -q "IMAP" "$DATA/serve.log" 2>/dev/null && break; sleep 0.1; done
echo bench-password | "$BIN" --config "$DATA/postdesk.toml" agent add bench@support.test --name Bench \
  --queue support --password-stdin > /dev/null

count() { "$BIN" --config "$DATA/postdesk.toml" ticket list --json | python3 -c \
  'import json,sys; print(sum(t["message_count"] for t in json.load(sys.stdin)))'; }
echo "postdesk: delivering $N messages"
python3 "$PEERS_DIR/gen_corpus.py" -n "$N" --seed 42 --to support@support.test \
  --rcpt support@support.test --smtp "127.0.0.1:$SMTP_PORT" --threads 8
echo "postdesk: $(count) messages stored"
python3 "$PEERS_DIR/imap_sync_bench.py" --port "$IMAP_PORT" --user bench@support.test \
  --password bench-password --mailbox Unassigned --runs "$RUNS"
echo "postdesk: memory with $IDLE_CONNECTIONS connections in IDLE"
python3 bench/imap_idle_memory.py --pid "$SERVER" --port "$IMAP_PORT" --user bench@support.test \
  --password bench-password -n "$IDLE_CONNECTIONS"

if [ "$DOVECOT" = 1 ]; then
  echo "dovecot: delivering $N messages"
  (
    unset SMTP_PORT IMAP_PORT
    . "$PEERS_DIR/env.sh"
    "$PEERS_DIR/mailstack.sh" start > /dev/null
    "$PEERS_DIR/fill_corpus.sh" -n "$N"
    python3 "$PEERS_DIR/imap_sync_bench.py" --port "$IMAP_PORT" --user "$CORPUS_USER" \
      --password "$MAIL_PASS" --runs "$RUNS"
    # Stopped again: a later bench starts its own (team_vs_dovecot.sh).
    "$PEERS_DIR/mailstack.sh" stop > /dev/null
  )
fi
