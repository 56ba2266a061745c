#!/usr/bin/env bash
# Load figures for the reference server, three servers on the same load in
# one run: Postfix's smtp-sink (accepts and discards: the protocol
# ceiling), `postel` (embedded default: every message queued durably, then
# delivered into a Maildir) and a real Postfix configured here for virtual
# Maildir delivery (see DEVELOPERS.md).
#
#   benches/load.sh [MESSAGES] [SESSIONS] [LARGE_MB]   (defaults: 20000 20 30)
#
# First MESSAGES messages of 1 KiB over SESSIONS connections (smtp-source):
# accepted msg/s (until the last 250) and delivered msg/s (until the last
# Maildir file), with the ratios. Then SESSIONS messages of LARGE_MB MB at
# once, one per connection, with each server's peak resident memory
# (Postfix: the most its processes held together, sampled every 50 ms).
#
# Needs smtp-source, smtp-sink and postfix (Debian package postfix;
# .ci/run installs it), run as root for Postfix. Listens on loopback only;
# every server is stopped by PID or by `postfix stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
MESSAGES=${1:-20000}
SESSIONS=${2:-20}
LARGE_MB=${3:-30}
# A run ends by removing some 40 000 files. On ext4 without a journal,
# each inode allocation then steps over every inode freed in the last
# five minutes (the kernel's recently_deleted check), which slowed every
# server that writes files in a run that followed another one at once.
# The next run waits those five minutes out (LOAD_NO_WAIT=1 skips it).
ENDED="${TMPDIR:-/tmp}/postel-load.ended"
if [ -z "${LOAD_NO_WAIT:-}" ] && [ -f "$ENDED" ]; then
  left=$(( $(cat "$ENDED") + 300 - $(date +%s) ))
  if [ "$left" -gt 0 ]; then
    echo "waiting ${left} s for the file system to settle after the last run" >&2
    sleep "$left"
  fi
fi
bench_setup

# Sends `count` messages of `size` octets to port $1; prints the seconds.
run_source() { # port count size -> elapsed seconds
  local start end
  start=$(now)
  smtp-source -c -l "$3" -m "$2" -s "$SESSIONS" -f sender@example.org -t postmaster@localhost "127.0.0.1:$1" >/dev/null
  end=$(now)
  echo "$end - $start" | bc -l
}

# Waits until directory $1 holds $2 files (at most 10 minutes); prints the
# seconds since $3.
wait_files() {
  for _ in $(seq 6000); do
    [ "$(find "$1" -type f 2>/dev/null | wc -l)" -ge "$2" ] && break
    sleep 0.1
  done
  echo "$(now) - $3" | bc -l
}

# The resident memory of process $1 and its children, in KiB, now.
rss_tree() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Samples rss_tree of $1 every 50 ms until file $2 exists; writes the peak to $2.peak.
sample_peak() {
  local peak=0 r
  while [ ! -e "$2" ]; do
    r=$(rss_tree "$1")
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  echo "$peak" > "$2.peak"
}

ratio() { echo "$1 / $2" | bc -l; }

# --- smtp-sink --------------------------------------------------------------
SINK_PORT=$(free_port)
user=()
[ "$(id -u)" = 0 ] && user=(-u nobody)
smtp-sink "${user[@]}" "127.0.0.1:$SINK_PORT" 256 & PIDS+=($!)
wait_port "$SINK_PORT"
sink_s=$(run_source "$SINK_PORT" "$MESSAGES" 1024)

# --- postel -----------------------------------------------------------------
POSTEL_PORT=$(free_port)
mkdir -p "$work/postel"
cat > "$work/postel/postel.toml" <<TOML
data_dir = "data"
[[listener]]
address = "127.0.0.1:$POSTEL_PORT"
role = "mx"
[limits]
connections_per_ip = $((SESSIONS + 5))
message_size = $(((LARGE_MB + 5) * 1000000))
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
serve_postel "$work/postel" "$POSTEL_PORT"
POSTEL_PID=${PIDS[-1]}
t0=$(now)
postel_s=$(run_source "$POSTEL_PORT" "$MESSAGES" 1024)
postel_box="$work/postel/data/mail/localhost/postmaster/new"
postel_d=$(wait_files "$postel_box" "$MESSAGES" "$t0")
postel_n=$(find "$postel_box" -type f | wc -l)

# --- Postfix ----------------------------------------------------------------
PF=$work/postfix
PF_PORT=$(free_port)
mkdir -p "$PF/conf" "$PF/queue" "$PF/data" "$PF/mail"
# mktemp's directory is private; Postfix's own users must reach theirs.
chmod 755 "$work"
chown postfix "$PF/data"
chown nobody "$PF/mail"
cp /etc/postfix/master.cf /etc/postfix/dynamicmaps.cf "$PF/conf/"
mkdir -p "$PF/conf/dynamicmaps.cf.d"
sed -i "s/^smtp      inet/127.0.0.1:$PF_PORT      inet/" "$PF/conf/master.cf"
cat > "$PF/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
maillog_file_prefixes = $work
maillog_file = $PF/maillog
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = postfix.localhost
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
default_process_limit = $((SESSIONS + 10))
message_size_limit = $(((LARGE_MB + 5) * 1000000))
virtual_mailbox_limit = 0
virtual_mailbox_domains = localhost
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:postmaster/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
CF
# postfix writes why it did not start only to a terminal.
script -qc "postfix -c $PF/conf start" /dev/null >"$PF/start.log" 2>&1 || true
if [ ! -s "$PF/queue/pid/master.pid" ]; then sleep 1; fi
[ -s "$PF/queue/pid/master.pid" ] || { echo "postfix did not start:" >&2; cat "$PF/start.log" >&2; exit 1; }
trap 'postfix -c "$PF/conf" stop >/dev/null 2>&1 || true; kill "${PIDS[@]}" 2>/dev/null || true; sleep 0.5; rm -rf "$work"; date +%s > "$ENDED"' EXIT
wait_port "$PF_PORT"
PF_MASTER=$(cat "$PF/queue/pid/master.pid" | tr -d ' ')
t0=$(now)
postfix_s=$(run_source "$PF_PORT" "$MESSAGES" 1024)
postfix_box="$PF/mail/postmaster/new"
postfix_d=$(wait_files "$postfix_box" "$MESSAGES" "$t0")
postfix_n=$(find "$postfix_box" -type f | wc -l)

printf '%d messages of 1 KiB over %d sessions\n' "$MESSAGES" "$SESSIONS"
printf '  smtp-sink (ceiling)          %8.0f msg/s accepted\n' "$(ratio "$MESSAGES" "$sink_s")"
printf '  postel                       %8.0f msg/s accepted  %8.0f msg/s delivered (%d in the Maildir)\n' \
  "$(ratio "$MESSAGES" "$postel_s")" "$(ratio "$postel_n" "$postel_d")" "$postel_n"
printf '  Postfix                      %8.0f msg/s accepted  %8.0f msg/s delivered (%d in the Maildir)\n' \
  "$(ratio "$MESSAGES" "$postfix_s")" "$(ratio "$postfix_n" "$postfix_d")" "$postfix_n"
printf '  postel / smtp-sink, accepted %8.2f\n' "$(ratio "$sink_s" "$postel_s")"
printf '  postel / Postfix, accepted   %8.2f\n' "$(ratio "$postfix_s" "$postel_s")"
printf '  postel / Postfix, delivered  %8.2f\n' "$(echo "($postel_n / $postel_d) / ($postfix_n / $postfix_d)" | bc -l)"

# --- large messages ---------------------------------------------------------
LARGE=$((LARGE_MB * 1000000))
large() { # name port pid maildir -> "seconds peak_kib"
  local before done_at
  before=$(find "$4" -type f 2>/dev/null | wc -l)
  rm -f "$work/$1.done" "$work/$1.done.peak"
  sample_peak "$3" "$work/$1.done" &
  local sampler=$!
  local t0
  t0=$(now)
  run_source "$2" "$SESSIONS" "$LARGE" >/dev/null
  done_at=$(wait_files "$4" $((before + SESSIONS)) "$t0")
  touch "$work/$1.done"
  wait "$sampler"
  echo "$done_at $(cat "$work/$1.done.peak")"
}
read -r postel_large_s postel_peak < <(large postel "$POSTEL_PORT" "$POSTEL_PID" "$postel_box")
read -r postfix_large_s postfix_peak < <(large postfix "$PF_PORT" "$PF_MASTER" "$postfix_box")
postel_hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$POSTEL_PID/status")
printf '%d messages of %d MB at once, one per session\n' "$SESSIONS" "$LARGE_MB"
printf '  postel   delivered in %6.1f s, peak RSS %7d KiB (sampled), %7d KiB (VmHWM, whole run)\n' \
  "$postel_large_s" "$postel_peak" "$postel_hwm"
printf '  Postfix  delivered in %6.1f s, peak RSS %7d KiB (sampled, all processes)\n' \
  "$postfix_large_s" "$postfix_peak"
