#!/usr/bin/env bash
# Connection reuse, measured: MESSAGES messages for one remote domain wait in
# postel's queue while its smarthost (Postfix's smtp-sink) is down; then the
# sink comes up, the queue is flushed, and the time until the queue is empty
# and the outbound connections opened are counted, once with connection
# reuse (the default) and once without (messages_per_connection = 1), in the
# same run on the same load. Prints msg/s and connections for each.
#
#   benches/reuse.sh [MESSAGES] [PER_DOMAIN]     (defaults: 2000 10)
#
# Needs smtp-sink (Debian package postfix; .ci/run installs it) and python3.
# Listens on loopback only; every server is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
MESSAGES=${1:-2000}
PER_DOMAIN=${2:-10}
bench_setup

user=()
[ "$(id -u)" = 0 ] && user=(-u nobody)

# run LABEL EXTRA_RELAY_KEYS -> prints "seconds connections"
run() {
  local dir="$work/$1" port sink_port sink postel start end conns
  mkdir -p "$dir"
  port=$(free_port); sink_port=$(free_port)
  cat > "$dir/postel.toml" <<TOML
hostname = "mail.a.test"
data_dir = "data"
[[listener]]
address = "127.0.0.1:$port"
role = "submission"
[[domain]]
name = "a.test"
mailboxes = ["alice"]
[relay]
smarthost = "127.0.0.1:$sink_port"
per_domain = $PER_DOMAIN
$2
[queue]
min_retry_secs = 3600
max_retry_secs = 3600
poll_ms = 100
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
  (cd "$dir" && echo "pw-for-load" | "$POSTEL_BIN" user add alice@a.test --config postel.toml >/dev/null)
  (cd "$dir" && RUST_LOG=info exec "$POSTEL_BIN" serve --dev-tls --config postel.toml >log 2>&1) & postel=$!
  PIDS+=("$postel")
  wait_port "$port"
  python3 - "$port" "$MESSAGES" <<'PY'
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.starttls(context=ctx); s.login("alice@a.test", "pw-for-load")
for i in range(int(sys.argv[2])):
    s.sendmail("alice@a.test", ["bob@b.test"], b"Subject: load %d\r\n\r\n" % i + (b"x" * 62 + b"\r\n") * 16)
s.quit()
PY
  sleep 1 # the first attempts find the sink down and defer
  smtp-sink "${user[@]}" "127.0.0.1:$sink_port" 256 & sink=$!
  PIDS+=("$sink")
  wait_port "$sink_port"
  local before
  before=$(grep -c 'connected host' "$dir/log" || true)
  start=$(now)
  (cd "$dir" && "$POSTEL_BIN" queue flush --config postel.toml >/dev/null)
  for _ in $(seq 6000); do
    (cd "$dir" && "$POSTEL_BIN" queue stats --config postel.toml) | grep -q '^messages 0$' && break
    sleep 0.05
  done
  end=$(now)
  conns=$(( $(grep -c 'connected host' "$dir/log" || true) - before ))
  kill "$postel" "$sink" 2>/dev/null || true
  echo "$(echo "$end - $start" | bc -l) $conns"
}

read -r reuse_s reuse_c < <(run reuse "")
read -r single_s single_c < <(run single "messages_per_connection = 1")
printf 'messages: %d for one domain, %d deliveries at once\n' "$MESSAGES" "$PER_DOMAIN"
printf 'with reuse:     %8.0f msg/s  %6d connections\n' "$(echo "$MESSAGES / $reuse_s" | bc -l)" "$reuse_c"
printf 'without reuse:  %8.0f msg/s  %6d connections\n' "$(echo "$MESSAGES / $single_s" | bc -l)" "$single_c"
printf 'reuse / none:   %8.2f x msg/s\n' "$(echo "$single_s / $reuse_s" | bc -l)"
