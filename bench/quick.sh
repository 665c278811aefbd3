#!/usr/bin/env bash
# A first side-by-side run: hookmq beside mosquitto, one publisher → one subscriber, QoS 0 and
# QoS 1, 64-byte payloads, broker pinned to core 0 and the load (rumqtt's mqttwrk) to core 1.
# Prints the median of 3 runs of each. The full harness (issue 4) replaces this.
# Needs: mosquitto (apt), mqttwrk (`cargo install mqttwrk --root <dir>`, set MQTTWRK=<dir>/bin/mqttwrk).
set -euo pipefail
cd "$(dirname "$0")/.."
MQTTWRK=${MQTTWRK:-mqttwrk}
BIN=${CARGO_TARGET_DIR:-target}/release
for port in 1900 1901 8090; do
  if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy: stop what listens there" >&2; exit 1; fi
done
cargo build --release -q -p hookmq
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

HOOKMQ_LISTENERS__TCP__BIND=127.0.0.1:1900 HOOKMQ_LISTENERS__WS__ENABLE=false \
HOOKMQ_MQTT__MAX_QUEUE_LEN=100000 HOOKMQ_NODE__DATA_DIR="$tmp/data" HOOKMQ_LOG__LEVEL=warn \
  taskset -c 0 "$BIN"/hookmq &
printf 'listener 1901 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n' > "$tmp/mosquitto.conf"
taskset -c 0 mosquitto -c "$tmp/mosquitto.conf" >/dev/null 2>&1 &
sleep 1

run() { # port qos count → received msg/s
  timeout 120 taskset -c 1 "$MQTTWRK" bench -S 127.0.0.1 -P "$1" -p 1 -s 1 -n "$3" -m 64 \
    --publish-qos "$2" --subscribe-qos "$2" 2>&1 \
    | grep -A6 'Aggregate SubStats' | grep -oE 'throughput: [0-9.]+' | grep -oE '[0-9.]+' | head -1
}
median() { sort -n | sed -n 2p; }
printf '%-10s %-6s %12s\n' broker qos 'msg/s (median of 3)'
for qos in 0 1; do
  n=$([ "$qos" = 0 ] && echo 500000 || echo 100000)
  for pair in hookmq:1900 mosquitto:1901; do
    name=${pair%%:*}; port=${pair##*:}
    rate=$(for _ in 1 2 3; do run "$port" "$qos" "$n"; done | median)
    printf '%-10s %-6s %12s\n' "$name" "$qos" "$rate"
  done
done
