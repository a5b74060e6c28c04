#!/usr/bin/env bash
# Ingest with a team connected, postdesk against Postfix -> Dovecot, in one
# sitting (issue 17's first benchmark). Both servers get a view of FILL
# messages; then, for each RATE, CLIENTS IMAP clients IDLE on it (answering
# each EXISTS with a header FETCH, as Thunderbird does) while mail arrives at
# that rate for SECONDS over 8 SMTP sessions (TEAMGEN, examples/teamgen.rs).
# Rounds alternate which server goes first. Every run prints one JSON line; the
# medians per server and rate come last.
#
#   bench/team_vs_dovecot.sh BIN [--fill 40000] [--clients 20]
#       [--rates "50 200 1000"] [--seconds 60] [--rounds 2] [--postdesk-only]
#       [--agents 1]
#
# --postdesk-only leaves Dovecot out (no peer stack needed): postdesk's
# side alone, e.g. to compare builds. --agents N spreads postdesk's clients
# over N agents of the queue, as a team is (each agent's folders are
# mailboxes of its own); Dovecot's clients share its one user either way.
#
# Needs the peer stack of ../shared/bench (mailstack.sh: Postfix + Dovecot,
# apt packages postfix dovecot-imapd dovecot-lmtpd), LOADGEN (default
# target/release/examples/loadgen) to fill the views fast, and TEAMGEN (default
# target/release/examples/teamgen) for the runs:
# `cargo build --release --example loadgen --example teamgen` first.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "$1"); shift
FILL=40000 CLIENTS=20 RATES="50 200 1000" SECONDS_=60 ROUNDS=2 SERVERS="postdesk dovecot" AGENTS=1
while [ $# -gt 0 ]; do case "$1" in --fill) FILL=$2; shift 2;; --clients) CLIENTS=$2; shift 2;;
  --rates) RATES=$2; shift 2;; --seconds) SECONDS_=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;;
  --postdesk-only) SERVERS=postdesk; shift;; --agents) AGENTS=$2; shift 2;;
  *) echo "bad arg $1" >&2; exit 2;; esac; done
LOADGEN=$(realpath -m "${LOADGEN:-target/release/examples/loadgen}")
TEAMGEN=$(realpath -m "${TEAMGEN:-target/release/examples/teamgen}")
for b in "$LOADGEN" "$TEAMGEN"; do [ -x "$b" ] || { echo "build first: $b" >&2; exit 2; }; done
PEERS=$(realpath "${PEERS:-../shared/bench}")
RESULTS=$(mktemp /tmp/postdesk-team-vs-dovecot.XXXXXX)
if [ "$SERVERS" != postdesk ]; then . "$PEERS/env.sh"; fi

# postdesk: a fresh data directory, acknowledgements and "possibly related"
# notes off (the peer sends neither), the view filled before the clients come.
data=$(mktemp -d /tmp/postdesk-team.XXXXXX)
smtp=$((20000 + RANDOM % 20000)); imap=$((smtp + 1))
cat > "$data/postdesk.toml" <<TOML
hostname = "desk.bench"
data_dir = "$data"
[smtp]
listen = "127.0.0.1:$smtp"
max_connections = 300
verify = "off"
[submission]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
[imap]
listen = "127.0.0.1:$imap"
tls_listen = "127.0.0.1:0"
max_connections_per_address = 1000
max_connections_per_agent = 1000
[http]
listen = "127.0.0.1:0"
[search]
similar = false
[autoreply]
enabled = false
TOML
USERS=agent@desk.bench
echo 'bench-password' | "$BIN" --config "$data/postdesk.toml" agent add agent@desk.bench \
  --queue support --password-stdin >/dev/null
for i in $(seq 2 "$AGENTS"); do
  echo 'bench-password' | "$BIN" --config "$data/postdesk.toml" agent add "agent$i@desk.bench" \
    --queue support --password-stdin >/dev/null
  USERS="$USERS,agent$i@desk.bench"
done
"$BIN" --config "$data/postdesk.toml" serve > "$data/serve.log" 2>&1 &
pid=$!
if [ "$SERVERS" = postdesk ]; then
  trap 'kill $pid 2>/dev/null || true' EXIT
else
  trap 'kill $pid 2>/dev/null || true; "$PEERS/mailstack.sh" stop >/dev/null 2>&1 || true' EXIT
fi
for _ in $(seq 1 300); do grep -q "IMAP" "$data/serve.log" 2>/dev/null && break; sleep 0.1; done
echo "filling postdesk with $FILL messages"
"$LOADGEN" --addr "127.0.0.1:$smtp" --to support@desk.bench --senders 16 \
  --messages "$FILL" --size 4000 --json >/dev/null

if [ "$SERVERS" != postdesk ]; then
  echo "filling Dovecot with $FILL messages"
  # A fresh peer stack: an interrupted run leaves Postfix's queue behind,
  # and Postfix then delivers it into the Maildir being wiped ("Directory
  # not empty").
  "$PEERS/mailstack.sh" clean >/dev/null 2>&1 || true
  "$PEERS/mailstack.sh" start >/dev/null
  "$LOADGEN" --addr "127.0.0.1:$SMTP_PORT" --to "$MAIL_USER" --senders 16 \
    --messages "$FILL" --size 4000 --json >/dev/null
  for _ in $(seq 1 1200); do
    [ "$("$PEERS/mailstack.sh" count "$MAIL_USER")" -ge "$FILL" ] && break; sleep 0.5
  done
fi
sleep 5

# Waits until the machine is quiet (under 10% of a core for 3 s in a row,
# at most 5 minutes): a server still indexing the fill, or delivering the
# last run's mail, would otherwise be measured in the next run.
quiet() {
  local busy0 busy1 calm=0
  for _ in $(seq 1 300); do
    busy0=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat); sleep 1
    busy1=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
    if [ $((busy1 - busy0)) -lt 10 ]; then calm=$((calm + 1)); else calm=0; fi
    [ "$calm" -ge 3 ] && return 0
  done
}

# The reconcile counters of postdesk's /metrics: "reconciles rounds".
http=$(grep -o 'http://[0-9.:]*/metrics' "$data/serve.log" | head -n 1 || true)
reconciles() {
  curl -s "$http" 2>/dev/null | awk '
    /^postdesk_imap_ticket_reconciles_total / {r=$2}
    /^postdesk_imap_ticket_reconcile_rounds_total / {n=$2}
    END {print r+0, n+0}'
}
run_postdesk() { # RATE
  local before after
  before=$(reconciles)
  "$TEAMGEN" --label "postdesk agents=$AGENTS rate=$1" --smtp-port "$smtp" --imap-port "$imap" \
    --user "$USERS" --password bench-password --mailbox Queues/support \
    --to support@desk.bench --clients "$CLIENTS" --rate "$1" --seconds "$SECONDS_" --pid "$pid"
  after=$(reconciles)
  # How many mailboxes a reconcile round did together (a team's are
  # read and written together; see view_batch.rs).
  echo "$before $after" | awk -v rate="$1" '{r=$3-$1; n=$4-$2;
    printf "# postdesk rate=%s: %d reconciles in %d rounds (%.2f a round)\n", rate, r, n, n ? r/n : 0}' >&2
}
run_dovecot() { # RATE
  "$TEAMGEN" --label "dovecot rate=$1" --smtp-port "$SMTP_PORT" \
    --imap-port "$IMAP_PORT" --user "$MAIL_USER" --password "$MAIL_PASS" --mailbox INBOX \
    --to "$MAIL_USER" --clients "$CLIENTS" --rate "$1" --seconds "$SECONDS_"
}

for round in $(seq 1 "$ROUNDS"); do
  for rate in $RATES; do
    if [ "$SERVERS" = postdesk ]; then order=postdesk
    elif [ $((round % 2)) = 1 ]; then order="postdesk dovecot"; else order="dovecot postdesk"; fi
    for server in $order; do
      quiet
      "run_$server" "$rate" | tee -a "$RESULTS"
    done
  done
done

echo "medians (postdesk peak RSS $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") KiB):"
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["achieved_per_s", "not_sent_backlog", "accept_p50_ms", "accept_p99_ms", "notify_p50_ms",
        "notify_p99_ms", "seen_share", "server_cpu_s", "machine_cpu_s"]
for label in dict.fromkeys(r["label"] for r in runs):
    rs = [r for r in runs if r["label"] == label]
    med = {k: statistics.median([r[k] for r in rs if r.get(k) is not None] or [float("nan")])
           for k in keys}
    print(label, f"({len(rs)} runs)", " ".join(f"{k}={v:g}" for k, v in med.items()))
PY
echo "all runs: $RESULTS"
rm -rf "$data"
