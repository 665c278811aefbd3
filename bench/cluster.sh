#!/usr/bin/env bash
# hookmq as a single node and as three nodes on one nats-server with JetStream (Debian's),
# in one run, everything on this machine's cores:
#  1. messages/s for one publisher and one subscriber, unpaced, the subscriber on the
#     publisher's node or on another one; QoS 1 also with cluster.forward_confirm_timeout
#     = 0s (a PUBACK that does not wait for NATS to take the message);
#  2. publish-to-subscriber latency at a steady 5,000 msg/s, same node and across nodes;
#  3. webhook events/s delivered to the minimal receiver: one node (disk buffer), three
#     nodes each delivering its own clients' events (disk buffer), and three nodes sharing
#     the work through JetStream (buffer = "cluster"), publishers spread over the nodes.
# Every line says how much arrived of how much was sent: a run that lost any is not a
# throughput figure.
#   N0, N1    messages for QoS 0 and QoS 1 in 1 (default 100000 and 50000)
#   NW        webhook events in 3 (default 60000)
#   SECTIONS  which of 1 2 3 to run (default all)
#   KEEP_LOGS a folder to copy the nodes' logs to at the end
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || PATH="$PATH:/usr/sbin"
cargo build --release -q -p hookmq -p hookmq-bench
bin=target/release/hookmq
bench=target/release/hookmq-bench
work="$(mktemp -d)"
# KEEP_LOGS=<dir>: the nodes' and nats-server's logs are copied there at the end.
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$work"/*.log "$KEEP_LOGS"/ 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
nodes=()
node() { # name mqtt-port [nats-url] [config]
  env HOOKMQ_NODE__NAME="$1" HOOKMQ_NODE__DATA_DIR="$work/$1-$RANDOM" \
    HOOKMQ_LISTENERS__TCP__BIND="127.0.0.1:$2" HOOKMQ_LISTENERS__WS__ENABLE=false \
    HOOKMQ_DASHBOARD__ENABLE=false HOOKMQ_LOG__LEVEL=warn \
    HOOKMQ_MQTT__MAX_QUEUE_LEN=1000000 HOOKMQ_CLUSTER__NATS_URL="${3:-}" \
    HOOKMQ_CLUSTER__FORWARD_CONFIRM_TIMEOUT="${confirm:-5s}" \
    "$bin" ${4:+--config "$4"} >>"$work/$1.log" 2>&1 &
  nodes+=($!)
  wait_port "$2"
}
stop_nodes() { kill "${nodes[@]}" 2>/dev/null || true; wait "${nodes[@]}" 2>/dev/null || true; nodes=(); }
restart_three() { # confirm: the three clustered nodes again, forward_confirm_timeout=$1
  kill "${nodes[@]:1}"; wait "${nodes[@]:1}" 2>/dev/null || true; nodes=("${nodes[0]}")
  confirm=$1; node a "$a" "$url"; node b "$b" "$url"; node c "$c" "$url"
}
nats=$(port); single=$(port); a=$(port); b=$(port); c=$(port)
url="nats://127.0.0.1:$nats"
nats-server -a 127.0.0.1 -p "$nats" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
wait_port "$nats"

section() { [[ " ${SECTIONS:-1 2 3} " == *" $1 "* ]]; }
node single "$single"
node a "$a" "$url"; node b "$b" "$url"; node c "$c" "$url"
row() { # label qos
  python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $1 | QoS $2 | {r['received']:,} of {r['expected']:,} | {r['delivery_rate']:,.0f} | {r['latency_p50_us']:,} | {r['latency_p99_us']:,} |\")"
}
run() { # label qos count pub-port sub-port [rate]
  # The last run's tail drains before the next subscribes on the same topics.
  sleep 3
  "$bench" -a "127.0.0.1:$4" load -q "$2" -n "$3" --rate "${6:-0}" \
    --sub-address "127.0.0.1:$5" --settle-ms 500 | row "$1" "$2"
}
if section 1; then
echo "== 1. one publisher, one subscriber, 64 B, unpaced"
echo "| setup | QoS | arrived | msg/s delivered | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
for qos in 0 1; do
  count=$([ "$qos" = 0 ] && echo "${N0:-100000}" || echo "${N1:-50000}")
  run "single node" "$qos" "$count" "$single" "$single"
  run "3 nodes, same node" "$qos" "$count" "$a" "$a"
  run "3 nodes, across nodes" "$qos" "$count" "$a" "$b"
done
# QoS 1 again with acknowledgements that do not wait for NATS to take the message.
restart_three 0s
run "3 nodes, same node, confirm 0s" 1 "${N1:-50000}" "$a" "$a"
run "3 nodes, across nodes, confirm 0s" 1 "${N1:-50000}" "$a" "$b"
restart_three 5s
fi

if section 2; then
echo "== 2. latency at 5,000 msg/s for 5 s, one publisher, one subscriber"
echo "| setup | QoS | arrived | msg/s delivered | p50 µs | p99 µs |"
echo "|---|---|---|---|---|---|"
for qos in 0 1; do
  run "single node" "$qos" 25000 "$single" "$single" 5000
  run "3 nodes, across nodes" "$qos" 25000 "$a" "$b" 5000
done
fi
stop_nodes
section 3 || exit 0

echo "== 3. webhook events/s: ${NW:=60000} message.publish events, QoS 1, 3 publishers"
receiver=$(port)
webhook_config() { # buffer
  cat > "$work/webhook-$1.toml" <<TOML
[[webhooks]]
name = "bench"
url = "http://127.0.0.1:$receiver/"
events = ["message.publish"]
max_inflight = 64
pool_size = 64
queue_capacity = 1000000
buffer = "$1"
TOML
  echo "$work/webhook-$1.toml"
}
delivered() { # label expected: waits for the receiver to have them all, prints the rate
  local count span
  for _ in $(seq 1200); do
    read -r count span < <(curl -s "http://127.0.0.1:$receiver/count")
    [ "$count" -ge "$2" ] && break; sleep 0.1
  done
  echo "$count $span" | awk -v label="$1" -v total="$2" \
    '{ rate = ($2 > 0) ? $1 * 1000 / $2 : 0;
       printf "| %s | %\047d of %\047d | %s |\n", label, $1, total, ($1 >= total) ? sprintf("%\047d", rate) : "not a throughput figure" }'
}
start_receiver() { "$bench-receiver" --bind "127.0.0.1:$receiver" & rpid=$!; wait_port "$receiver"; }
stop_receiver() { kill "$rpid"; wait "$rpid" 2>/dev/null || true; }
per=$((NW / 3))
echo "| setup | delivered | events/s |"
echo "|---|---|---|"
start_receiver
node single "$single" "" "$(webhook_config disk)"
"$bench" -a "127.0.0.1:$single" load -p 3 -s 0 -n "$per" -q 1 >/dev/null
delivered "single node, disk buffer" $((per * 3))
stop_nodes; stop_receiver
for buffer in disk cluster; do
  start_receiver
  config=$(webhook_config "$buffer")
  node a "$a" "$url" "$config"; node b "$b" "$url" "$config"; node c "$c" "$url" "$config"
  # The steady state: partitions are taken and handed over in rounds of 2 s as nodes
  # join; after a few rounds each node holds its share.
  [ "$buffer" = cluster ] && sleep "${SETTLE:-10}"
  loads=()
  for p in "$a" "$b" "$c"; do
    "$bench" -a "127.0.0.1:$p" load -p 1 -s 0 -n "$per" -q 1 --client-prefix "on-$p" >/dev/null & loads+=($!)
  done
  wait "${loads[@]}"
  delivered "3 nodes, $buffer buffer, a publisher on each" $((per * 3))
  stop_nodes; stop_receiver
done
