#!/usr/bin/env bash
# Report benchmark (not a test): `postdesk report` over N tickets (default
# 100,000) with their messages, events, time entries and ratings, on
# SQLite and (when POSTGRES is set) PostgreSQL. The dataset is written by
# examples/report_bench (fill); then
#   1. the report as computed in process (examples/report_bench time):
#      no grouping, by day, by agent, median of RUNS runs each;
#   2. the command end to end (`postdesk report --json`, `--by day --csv`),
#      process start and database open included, median of RUNS runs.
# Tickets are measured in business hours on an office calendar (Berlin,
# Mon-Fri 09-17), the expensive case.
#
#   bench/report_bench.sh [-n 100000] [--runs 5] [--postgres postgres://postgres@127.0.0.1/postgres]
#
# Build first: cargo build --release --bin postdesk --example report_bench
set -euo pipefail
cd "$(dirname "$0")/.."
N=100000 RUNS=5 POSTGRES=
while [ $# -gt 0 ]; do case "$1" in -n) N=$2; shift 2;; --runs) RUNS=$2; shift 2;;
  --postgres) POSTGRES=$2; shift 2;; *) echo "bad arg $1" >&2; exit 2;; esac; done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${POSTDESK_BIN:-$TARGET/release/postdesk}
BENCH=$TARGET/release/examples/report_bench
for b in "$BIN" "$BENCH"; do
  [ -x "$b" ] || { echo "build first: cargo build --release --bin postdesk --example report_bench" >&2; exit 2; }
done
DATA=$(mktemp -d /tmp/postdesk-report-bench.XXXXXX)
PGDB=
cleanup() {
  if [ -n "$PGDB" ]; then psql "$POSTGRES" -qc "DROP DATABASE IF EXISTS $PGDB" >/dev/null 2>&1 || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

cat > "$DATA/rules.toml" <<'TOML'
default_sla = "standard"
[calendar.office]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", tue = "09:00-17:00", wed = "09:00-17:00", thu = "09:00-17:00", fri = "09:00-17:00" }
[sla.standard]
calendar = "office"
first_response = "4h"
next_response = "2h"
resolution = "2d"
TOML

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run() { # name, database_url line (or empty)
  local name=$1 url=$2
  local dir="$DATA/$name"
  mkdir -p "$dir"
  { echo "hostname = \"desk.bench\""; echo "data_dir = \"$dir\""; [ -n "$url" ] && echo "database_url = \"$url\"";
    echo "rules = \"$DATA/rules.toml\""
    printf '[reports]\ncalendar = "office"\n'
    for q in support billing sales; do printf '[[queue]]\nname = "%s"\naddress = "%s@desk.bench"\n' $q $q; done
  } > "$dir/postdesk.toml"
  echo "== $name: filling $N tickets"
  "$BENCH" fill --config "$dir/postdesk.toml" --tickets "$N"
  echo "== $name: the report in process ($RUNS runs each)"
  "$BENCH" time --config "$dir/postdesk.toml" --runs "$RUNS"
  for args in "report --json" "report --by day --csv" "report --by agent --json"; do
    local times=()
    for _ in $(seq 1 "$RUNS"); do
      local t0 t1
      t0=$(date +%s%N)
      "$BIN" --config "$dir/postdesk.toml" $args > "$dir/out" 2>/dev/null
      t1=$(date +%s%N)
      times+=($(( (t1 - t0) / 1000000 )))
    done
    echo "postdesk $args: median $(printf '%s\n' "${times[@]}" | median) ms (runs: ${times[*]})"
  done
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r["total"]; print("  total: created", t["created"], "resolved", t["resolved"], "first response median/p90 (h)", t["first_response"]["median_hours"], t["first_response"]["p90_hours"])' "$dir/out" 2>/dev/null || true
}

run sqlite ""
if [ -n "$POSTGRES" ]; then
  PGDB="postdesk_report_bench_$$"
  psql "$POSTGRES" -qc "CREATE DATABASE $PGDB" >/dev/null
  run postgres "${POSTGRES%/*}/$PGDB"
fi
