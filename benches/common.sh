# Shell helpers shared by the load scripts (sourced, not run).
export PATH="$PATH:/usr/sbin"

# A loopback port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (at most 20 s) until 127.0.0.1:$1 accepts connections.
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }
# Builds the release binary ($POSTEL_BIN), makes the scratch directory $work,
# and at exit stops every process in PIDS and removes $work.
bench_setup() {
  cargo build --release -q -p postel-server
  POSTEL_BIN="$PWD/target/release/postel"
  work=$(mktemp -d)
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null || true; sleep 0.5; rm -rf "$work"' EXIT
}
# Starts postel with the postel.toml in directory $1, logging to $1/log, and
# waits until port $2 accepts; its PID is the last of PIDS.
serve_postel() {
  (cd "$1" && RUST_LOG=warn exec "$POSTEL_BIN" serve --config postel.toml) >"$1/log" 2>&1 &
  PIDS+=($!)
  wait_port "$2"
}
