#!/usr/bin/env bash
# What an idle connection costs: opens CONNECTIONS connections to `postel`
# (release build), each greeted and past EHLO, holds them, and prints the
# server's resident memory before and after and the growth per connection.
#
#   benches/idle.sh [CONNECTIONS]     (default: 10000)
#
# Raises its own open-file limit (as root, or up to the hard limit).
# Listens on loopback only; the server is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
N=${1:-10000}
ulimit -n $((N + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bench_setup
PORT=$(free_port)
cat > "$work/postel.toml" <<TOML
data_dir = "data"
[[listener]]
address = "127.0.0.1:$PORT"
role = "mx"
[limits]
connections = $((N + 100))
connections_per_ip = $((N + 100))
[authentication]
# Postfix, measured beside it, checks no SPF, DKIM or DMARC either.
enabled = false
TOML
serve_postel "$work" "$PORT"
python3 - "${PIDS[-1]}" "$N" "$PORT" <<'PY'
import resource, socket, sys, time
pid, n, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
time.sleep(0.5)
before = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(512)
    s.sendall(b"EHLO idle.example\r\n")
    socks.append(s)
for s in socks:
    s.recv(4096)
time.sleep(1)
after = rss()
print(f"idle connections: {n}")
print(f"server RSS: {before} KiB before, {after} KiB after")
print(f"per idle connection: {(after - before) * 1024 / n:.0f} octets")
PY
