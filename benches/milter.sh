#!/usr/bin/env bash
# What a milter costs: Postfix's smtp-source sends MESSAGES messages over
# SESSIONS connections to `postel` twice in one run, once without filters
# and once with one no-op milter (the test filter on Debian's pymilter, the
# real libmilter, answering every event), and prints accepted messages per
# second for each and the ratio.
#
#   benches/milter.sh [MESSAGES] [SESSIONS]     (defaults: 5000 10)
#
# Needs smtp-source (Debian package postfix) and python3-milter; .ci/run
# installs both. Listens on loopback only; everything it starts is stopped
# by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
MESSAGES=${1:-5000}
SESSIONS=${2:-10}
bench_setup

MILTER_PORT=$(free_port)
/usr/bin/python3 crates/postel-testkit/milter/filter.py "$MILTER_PORT" noop /dev/null >"$work/milter.log" 2>&1 & PIDS+=($!)
wait_port "$MILTER_PORT"

start_postel() { # label, port, extra config
  local dir="$work/$1"
  mkdir -p "$dir"
  cat > "$dir/postel.toml" <<TOML
data_dir = "data"
[[listener]]
address = "127.0.0.1:$2"
role = "mx"
[limits]
connections_per_ip = $((SESSIONS + 5))
$3
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
  serve_postel "$dir" "$2"
}

rate() { # port -> accepted msg/s
  local start end
  start=$(now)
  smtp-source -c -l 1024 -m "$MESSAGES" -s "$SESSIONS" -f sender@example.org -t postmaster@localhost "127.0.0.1:$1" >/dev/null
  end=$(now)
  echo "$MESSAGES / ($end - $start)" | bc -l
}

PLAIN_PORT=$(free_port)
start_postel plain "$PLAIN_PORT" ""
plain=$(rate "$PLAIN_PORT")
FILTERED_PORT=$(free_port)
start_postel milter "$FILTERED_PORT" "[[milter]]
address = \"inet:127.0.0.1:$MILTER_PORT\""
filtered=$(rate "$FILTERED_PORT")
printf 'messages: %d over %d sessions\n' "$MESSAGES" "$SESSIONS"
printf 'postel, no milter:          %8.0f msg/s\n' "$plain"
printf 'postel, one no-op milter:   %8.0f msg/s\n' "$filtered"
printf 'with / without:             %8.3f\n' "$(echo "$filtered / $plain" | bc -l)"
