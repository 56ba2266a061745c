# Shell helpers shared by the load scripts (sourced, not run).
export PATH="$PATH:/usr/sbin"

# A loopback port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (at most 20 s) until 127.0.0.1:$1 accepts connections.
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }
