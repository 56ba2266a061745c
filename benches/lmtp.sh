#!/usr/bin/env bash
# LMTP delivery, measured: Postfix's smtp-source sends MESSAGES messages over
# SESSIONS connections to postel's mx listener for a local user, and the
# time until all are stored is taken three ways in one run: over LMTP to a
# real Dovecot with connection reuse (the default), over LMTP with a
# connection per message (messages_per_connection = 1), and into postel's
# own Maildir. Prints delivered msg/s for each and the ratios.
#
#   benches/lmtp.sh [MESSAGES] [SESSIONS]     (defaults: 2000 10)
#
# Needs smtp-source (Debian package postfix) and Dovecot (dovecot-core,
# dovecot-lmtpd); .ci/run installs both. Loopback only; every server is
# stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
MESSAGES=${1:-2000}
SESSIONS=${2:-10}
bench_setup
chmod 755 "$work"


# Dovecot for bob@d.test, its mail kept by nobody when run as root.
dove="$work/dovecot"
mkdir -p "$dove/run" "$dove/state" "$dove/mail"
if [ "$(id -u)" = 0 ]; then uid=65534; gid=65534; inner=dovecot; login=dovenull; chown "$uid:$gid" "$dove/mail";
else uid=$(id -u); gid=$(id -g); inner=$(id -un); login=$inner; fi
echo "bob@d.test:{PLAIN}pw:$uid:$gid::$dove/mail/bob::" > "$dove/users"
LMTP_PORT=$(free_port)
cat > "$dove/dovecot.conf" <<CONF
protocols = lmtp
listen = 127.0.0.1
base_dir = $dove/run
state_dir = $dove/state
log_path = $dove/dovecot.log
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
default_internal_user = $inner
default_login_user = $login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dove/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dove/users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
CONF
dovecot -F -c "$dove/dovecot.conf" & PIDS+=($!)
wait_port "$LMTP_PORT"

count() { find "$1" -type f 2>/dev/null | wc -l; }

# run LABEL DELIVERY_LINE RELAY_LINE MAILDIR -> seconds until MESSAGES more are stored
run() {
  local dir="$work/$1" port postel start before
  mkdir -p "$dir"
  port=$(free_port)
  cat > "$dir/postel.toml" <<TOML
hostname = "mail.d.test"
data_dir = "data"
[[listener]]
address = "127.0.0.1:$port"
role = "mx"
[[domain]]
name = "d.test"
mailboxes = ["bob"]
$2
[limits]
connections_per_ip = $((SESSIONS + 5))
[relay]
$3
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
  (cd "$dir" && RUST_LOG=warn exec "$POSTEL_BIN" serve --config postel.toml) & postel=$!
  PIDS+=("$postel")
  wait_port "$port"
  before=$(count "$4")
  start=$(now)
  smtp-source -c -l 1024 -m "$MESSAGES" -s "$SESSIONS" -f sender@example.org -t bob@d.test "127.0.0.1:$port" >/dev/null
  for _ in $(seq 6000); do
    [ $(( $(count "$4") - before )) -ge "$MESSAGES" ] && break
    sleep 0.05
  done
  echo "$(now) - $start" | bc -l
  kill "$postel" 2>/dev/null || true
}

lmtp_line="delivery = \"lmtp:127.0.0.1:$LMTP_PORT\""
reuse_s=$(run reuse "$lmtp_line" "" "$dove/mail/bob/Maildir/new")
single_s=$(run single "$lmtp_line" "messages_per_connection = 1" "$dove/mail/bob/Maildir/new")
maildir_s=$(run maildir "" "" "$work/maildir/data/mail/d.test/bob/new")
rate() { echo "$MESSAGES / $1" | bc -l; }
printf 'messages: %d of 1 KiB over %d sessions, delivered end to end\n' "$MESSAGES" "$SESSIONS"
printf 'LMTP to Dovecot, reuse:      %8.0f msg/s\n' "$(rate "$reuse_s")"
printf 'LMTP to Dovecot, no reuse:   %8.0f msg/s\n' "$(rate "$single_s")"
printf 'postel Maildir:              %8.0f msg/s\n' "$(rate "$maildir_s")"
printf 'reuse / no reuse:            %8.2f\n' "$(echo "$single_s / $reuse_s" | bc -l)"
printf 'LMTP reuse / Maildir:        %8.2f\n' "$(echo "$maildir_s / $reuse_s" | bc -l)"
