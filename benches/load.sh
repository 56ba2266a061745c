#!/usr/bin/env bash
# Load figure for the reference server: Postfix's smtp-source sends
# MESSAGES messages over SESSIONS parallel connections to `postel` (embedded
# default: every message queued durably, then delivered into a Maildir) and,
# in the same run, to Postfix's smtp-sink, which accepts and discards (the
# do-nothing ceiling). Prints messages per second for each and the ratio.
#
#   benches/load.sh [MESSAGES] [SESSIONS]     (defaults: 20000 20)
#
# Needs smtp-source and smtp-sink (Debian package postfix; .ci/run installs
# it). Listens on loopback only; both servers are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
MESSAGES=${1:-20000}
SESSIONS=${2:-20}
bench_setup

run_source() { # port -> elapsed seconds
  local start end
  start=$(now)
  smtp-source -c -l 1024 -m "$MESSAGES" -s "$SESSIONS" -f sender@example.org -t postmaster@localhost "127.0.0.1:$1" >/dev/null
  end=$(now)
  echo "$end - $start" | bc -l
}

SINK_PORT=$(free_port)
user=()
[ "$(id -u)" = 0 ] && user=(-u nobody)
smtp-sink "${user[@]}" "127.0.0.1:$SINK_PORT" 256 & PIDS+=($!)
wait_port "$SINK_PORT"
sink_s=$(run_source "$SINK_PORT")

POSTEL_PORT=$(free_port)
cat > "$work/postel.toml" <<TOML
data_dir = "data"
[[listener]]
address = "127.0.0.1:$POSTEL_PORT"
role = "mx"
[limits]
connections_per_ip = $((SESSIONS + 5))
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
serve_postel "$work" "$POSTEL_PORT"
t0=$(now)
postel_s=$(run_source "$POSTEL_PORT")
# Wait until every message is in the Maildir: delivered, not only queued.
dir="$work/data/mail/localhost/postmaster/new"
for _ in $(seq 600); do
  n=$(find "$dir" -type f 2>/dev/null | wc -l)
  [ "$n" -ge "$MESSAGES" ] && break
  sleep 0.1
done
delivered_s=$(echo "$(now) - $t0" | bc -l)
n=$(find "$dir" -type f | wc -l)

printf 'messages: %d over %d sessions\n' "$MESSAGES" "$SESSIONS"
printf 'smtp-sink (ceiling):        %8.0f msg/s\n' "$(echo "$MESSAGES / $sink_s" | bc -l)"
printf 'postel (queued, 250 sent):  %8.0f msg/s\n' "$(echo "$MESSAGES / $postel_s" | bc -l)"
printf 'postel / smtp-sink:         %8.3f\n' "$(echo "$sink_s / $postel_s" | bc -l)"
printf 'delivered to Maildir:       %d of %d, %.0f msg/s end to end\n' "$n" "$MESSAGES" "$(echo "$n / $delivered_s" | bc -l)"
