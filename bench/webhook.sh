#!/usr/bin/env bash
# Webhook speed, side by side in one run (bench/run calls this; it also runs on its own):
#  1. the minimal receiver's own capacity, measured with wrk (Debian) — the physical limit —
#     one request at a time per connection, and 16 pipelined per connection (as hookmq sends);
#  2. events/s hookmq delivers to that same receiver (a message.publish webhook);
#  3. publish → receiver latency at a steady 10,000 events/s;
#  4. hookmq's publish rate (1 publisher → 1 subscriber) with an all-events webhook off, on,
#     and on with a stalled receiver.
# hookmq and the load run on core 0, the receiver on core 1 (the machine has two); wrk, like
# hookmq, on core 0. The load is hookmq's own generator (crates/bench).
# Needs: wrk (apt; bench/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
for port in 1900 8090; do
  if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy: stop what listens there" >&2; exit 1; fi
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
RUNS=${RUNS:-3}
N=${N:-200000}
cargo build --release -q -p hookmq -p hookmq-bench
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1']))"; }

start_receiver() { # [delay ms]
  taskset -c 1 "$BIN"/hookmq-bench-receiver --bind 127.0.0.1:8090 --delay-ms "${1:-0}" & receiver=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/8090) 2>/dev/null && break; sleep 0.1; done
}
stop_receiver() { kill "$receiver"; wait "$receiver" 2>/dev/null || true; }

start_hookmq() { # config file
  HOOKMQ_NODE__DATA_DIR="$tmp/data-$RANDOM" HOOKMQ_LOG__LEVEL=warn \
    taskset -c 0 "$BIN"/hookmq --config "$1" & hookmq=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/1900) 2>/dev/null && break; sleep 0.1; done
}
stop_hookmq() { kill "$hookmq"; wait "$hookmq" 2>/dev/null || true; }
load() { timeout 180 taskset -c 0 "$BIN"/hookmq-bench -a 127.0.0.1:1900 load "$@"; }

base_config() {
  cat <<TOML
[listeners.tcp]
bind = "127.0.0.1:1900"
[listeners.ws]
enable = false
[dashboard]
enable = false
[mqtt]
max_queue_len = 1000000
TOML
}
webhook_config() { # events ordered queue_capacity
  base_config; cat <<TOML
[[webhooks]]
name = "bench"
url = "http://127.0.0.1:8090/"
events = $1
max_inflight = 64
pool_size = 64
queue_capacity = $3
ordered = $2
TOML
}

# A body like a message.publish event.
body='{"username":"undefined","topic":"t/1","timestamp":1694681417728,"qos":0,"publish_received_at":1694681417728,"pub_props":{"User-Property":{}},"peerhost":"127.0.0.1","payload":"0123456789012345678901234567890123456789012345678901234567890123","node":"hookmq@127.0.0.1","metadata":{"rule_id":"bench"},"id":"0006054DC3E940F8F445000038A60002","flags":{"retain":false,"dup":false},"event":"message.publish","clientid":"bench"}'
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$body" > "$tmp/post.lua"
# The same request, 16 at a time on each connection (HTTP/1.1 pipelining, as hookmq's lanes).
cat > "$tmp/pipelined.lua" <<LUA
init = function(args)
  local batch = {}
  for i = 1, 16 do
    batch[i] = wrk.format("POST", "/", {["Content-Type"] = "application/json"}, [[$body]])
  end
  req = table.concat(batch)
end
request = function() return req end
LUA

echo "== 1. receiver capacity (wrk -t1 -c64 -d10s, POST of a ${#body}-byte event)"
wrk_capacity() { # lua script: median req/s over RUNS fresh receivers
  for _ in $(seq "$RUNS"); do
    start_receiver
    taskset -c 0 wrk -t1 -c64 -d10s -s "$1" http://127.0.0.1:8090/ | awk '/Requests\/sec/ {print $2}'
    stop_receiver
  done | median
}
capacity=$(wrk_capacity "$tmp/post.lua")
echo "receiver: $capacity req/s (median of $RUNS)"
pipelined=$(wrk_capacity "$tmp/pipelined.lua")
echo "receiver, pipelined 16 deep: $pipelined req/s (median of $RUNS)"

delivery() { # label publishers ordered
  webhook_config '["message.publish"]' "$3" 2000000 > "$tmp/delivery.toml"
  local per=$((N / $2))
  local total=$((per * $2))
  local rate
  rate=$(for _ in $(seq "$RUNS"); do
    start_receiver; start_hookmq "$tmp/delivery.toml"
    load -p "$2" -s 0 -n "$per" -q 0 -m 64 >/dev/null
    for _ in $(seq 600); do
      read -r count span < <(curl -s http://127.0.0.1:8090/count)
      [ "$count" -ge "$total" ] && break; sleep 0.1
    done
    echo "$count $span" | awk '{ if ($2 > 0) printf "%.0f\n", $1 * 1000 / $2; else print 0 }'
    stop_hookmq; stop_receiver
  done | median)
  echo "$1: $rate events/s (median of $RUNS), $(awk -v a="$rate" -v b="$capacity" -v c="$pipelined" 'BEGIN {printf "%.2f of the receiver'"'"'s capacity, %.2f of its pipelined capacity", a / b, a / c}')"
}
echo "== 2. hookmq → receiver: $N message.publish events, 64 lanes"
delivery "64 publishers, ordered per client" 64 true
delivery "1 publisher, ordered = false    " 1 false

echo "== 3. latency, broker's receipt of the PUBLISH → receiver, 10 publishers × 1,000 msg/s for 10 s"
webhook_config '["message.publish"]' true 100000 > "$tmp/latency.toml"
start_receiver; start_hookmq "$tmp/latency.toml"
load -p 10 -s 0 -n 10000 --rate 1000 -q 1 -m 64 >/dev/null
sleep 1
read -r p50 p99 samples < <(curl -s http://127.0.0.1:8090/latency)
echo "latency: p50 ${p50} ms, p99 ${p99} ms ($samples events; ms resolution)"
stop_hookmq; stop_receiver

echo "== 4. publish rate, 1 → 1, 64-byte payloads: no webhook / all-events webhook / its receiver stalled"
# Rates on this machine drift by ±20% over minutes, so the three modes take turns: ROUNDS
# rounds, each starting a fresh broker per mode, one warm-up run, then the median of RUNS
# runs. Each round gives a ratio to its own "off"; the medians of those ratios are the result.
ROUNDS=${ROUNDS:-5}
base_config > "$tmp/off.toml"
webhook_config '["*"]' true 10000 > "$tmp/all.toml"
for qos in 0 1; do
  n=$([ "$qos" = 0 ] && echo 500000 || echo 300000)
  rows=""
  for round in $(seq "$ROUNDS"); do
    row=""
    for mode in off all stalled; do
      delay=$([ "$mode" = stalled ] && echo 3600000 || echo 0)
      config=$([ "$mode" = off ] && echo off || echo all)
      start_receiver "$delay"; start_hookmq "$tmp/$config.toml"
      load -p 1 -s 1 -n "$n" -q "$qos" -m 64 >/dev/null
      r=$(for _ in $(seq "$RUNS"); do load -p 1 -s 1 -n "$n" -q "$qos" -m 64 | field delivery_rate; done | median)
      stop_hookmq; stop_receiver
      row="$row $r"
    done
    echo "QoS $qos, round $round: off / all / stalled msg/s:$row"
    rows="$rows$row
"
  done
  printf '%s' "$rows" | python3 -c "
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
off = st.median(r[0] for r in rows)
on = st.median(r[1] / r[0] for r in rows)
stalled = st.median(r[2] / r[0] for r in rows)
print(f'QoS $qos: off {off:,.0f} msg/s (median); webhook on {on:.2f} of off ({(on - 1) * 100:+.0f}%), stalled {stalled:.2f} ({(stalled - 1) * 100:+.0f}%) (medians of per-round ratios)')"
done
