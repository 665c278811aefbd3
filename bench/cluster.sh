#!/usr/bin/env bash
# hookmq as a single node and as two nodes on one nats-server (Debian's), in one run:
# messages/s and publish-to-subscriber latency for one publisher and one subscriber, the
# subscriber on the publisher's node or on the other one. Every line says how many
# messages arrived of how many were sent: a run that lost any is not a throughput figure.
#   N0, N1    messages for QoS 0 and QoS 1 (default 100000 and 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || PATH="$PATH:/usr/sbin"
cargo build --release -q -p hookmq -p hookmq-bench
bin=target/release/hookmq
bench=target/release/hookmq-bench
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
node() { # name mqtt-port [nats-url]
  env HOOKMQ_NODE__NAME="$1" HOOKMQ_NODE__DATA_DIR="$work/$1" \
    HOOKMQ_LISTENERS__TCP__BIND="127.0.0.1:$2" HOOKMQ_LISTENERS__WS__ENABLE=false \
    HOOKMQ_DASHBOARD__ENABLE=false HOOKMQ_LOG__LEVEL=warn \
    HOOKMQ_MQTT__MAX_QUEUE_LEN=1000000 HOOKMQ_CLUSTER__NATS_URL="${3:-}" \
    "$bin" >"$work/$1.log" 2>&1 &
  wait_port "$2"
}
nats=$(port); single=$(port); a=$(port); b=$(port)
nats-server -a 127.0.0.1 -p "$nats" >"$work/nats.log" 2>&1 &
wait_port "$nats"
node single "$single"
node a "$a" "nats://127.0.0.1:$nats"
node b "$b" "nats://127.0.0.1:$nats"
run() { # label qos count pub-port sub-port
  # A node forwards every message to NATS, interested node or not: let the last run's
  # tail drain before subscribing again on the same topics.
  sleep 3
  "$bench" -a "127.0.0.1:$4" load -q "$2" -n "$3" --sub-address "127.0.0.1:$5" --settle-ms 500 \
    | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $1 | QoS $2 | {r['received']:,} of {r['expected']:,} | {r['delivery_rate']:,.0f} | {r['latency_p50_us']:,} | {r['latency_p99_us']:,} |\")"
}
echo "| setup | QoS | arrived | msg/s delivered | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
for qos in 0 1; do
  count=$([ "$qos" = 0 ] && echo "${N0:-100000}" || echo "${N1:-50000}")
  run "single node" "$qos" "$count" "$single" "$single"
  run "cluster, same node" "$qos" "$count" "$a" "$a"
  run "cluster, across nodes" "$qos" "$count" "$a" "$b"
done
