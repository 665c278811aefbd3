#!/usr/bin/env bash
# Webhook speed, side by side in one run (bench/run calls this; it also runs on its own):
#  1. the minimal receiver's own capacity, measured with wrk (Debian) — the physical limit —
#     one request at a time per connection, and 16 pipelined per connection (as hookmq sends);
#  2. events/s hookmq delivers to that same receiver (a message.publish webhook), with a disk
#     buffer (the default) and a memory buffer, one event per request and in batches of up
#     to 100 events (batch.max_events, batch.max_wait = 10ms);
#  3. publish → receiver latency at a steady 10,000 events/s;
#  4. the highest 1 → 1 QoS 1 publish rate an all-events webhook keeps up with: nothing
#     dropped, its queue empty within a second of the last publish;
#  5. at a rate it keeps up with, CPU time per message of the connection threads (the publish
#     path) with the webhook off and on, and of the delivery and journal threads per event;
#  6. the QoS 1 publish rate with a disk-buffered webhook and with sync_before_ack, against
#     none, in turns;
#  7. the receiver of EMQX's Webhook guide (Flask, bench/receivers/flask_receiver.py): its
#     capacity with wrk, and a backlog delivered one event per request and in batches.
# Every figure counts only work done: deliveries the receiver got, messages subscribers got.
# hookmq and the load run on core 0, the receiver on core 1 (the machine has two); wrk, like
# hookmq, on core 0. The load is hookmq's own generator (crates/bench).
# Needs: wrk (apt; bench/run installs it); flask (pip) for section 7. SECTIONS picks sections (default "1 2 3 4 5 6").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release
for port in 1900 8090; do
  if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is busy: stop what listens there" >&2; exit 1; fi
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-5}
N=${N:-200000}
cargo build --release -q -p hookmq -p hookmq-bench
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
section() { [[ " ${SECTIONS:-1 2 3 4 5 6} " == *" $1 "* ]]; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1']))"; }

start_receiver() { # [delay ms]
  if [ -n "${FLASK:-}" ]; then
    taskset -c 1 python3 bench/receivers/flask_receiver.py 8090 >/dev/null 2>&1 & receiver=$!
  else
    taskset -c 1 "$BIN"/hookmq-bench-receiver --bind 127.0.0.1:8090 --delay-ms "${1:-0}" & receiver=$!
  fi
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
bind = "127.0.0.1:18090"
[mqtt]
max_queue_len = 1000000
TOML
}
webhook_config() { # events ordered queue_capacity [buffer] [sync_before_ack]
  base_config; cat <<TOML
[[webhooks]]
name = "bench"
url = "http://127.0.0.1:8090/"
events = $1
max_inflight = 64
pool_size = 64
queue_capacity = $3
ordered = $2
buffer = "${4:-disk}"
sync_before_ack = ${5:-false}
${BATCH_TOML:-}
TOML
}
# The webhook's metrics, from the API (the default admin; the dashboard listens on 18090).
metrics() {
  local token
  token=$(curl -s http://127.0.0.1:18090/api/v5/login -H 'content-type: application/json' \
    -d '{"username":"admin","password":"public"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s http://127.0.0.1:18090/api/v5/webhooks/bench/metrics -H "authorization: Bearer $token"
}
metric() { metrics | python3 -c "import json,sys; m=json.load(sys.stdin); print(eval('m$1'))"; }
# CPU seconds (user + system) of hookmq's threads whose name matches a pattern, from /proc.
cpu() { # pattern
  python3 - "$hookmq" "$1" <<'PY'
import os, re, sys
pid, pattern = sys.argv[1], re.compile(sys.argv[2])
ticks = os.sysconf('SC_CLK_TCK'); total = 0
for tid in os.listdir(f'/proc/{pid}/task'):
    try:
        stat = open(f'/proc/{pid}/task/{tid}/stat').read()
    except OSError:
        continue
    name = stat[stat.index('(') + 1:stat.rindex(')')]
    fields = stat[stat.rindex(')') + 2:].split()
    if pattern.fullmatch(name):
        total += int(fields[11]) + int(fields[12])
print(total / ticks)
PY
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

wrk_capacity() { # lua script: median req/s over RUNS fresh receivers
  for _ in $(seq "$RUNS"); do
    start_receiver
    taskset -c 0 wrk -t1 -c64 -d10s -s "$1" http://127.0.0.1:8090/ | awk '/Requests\/sec/ {print $2}'
    stop_receiver
  done | median
}
if section 1 || section 2; then
echo "== 1. receiver capacity (wrk -t1 -c64 -d10s, POST of a ${#body}-byte event)"
capacity=$(wrk_capacity "$tmp/post.lua")
echo "receiver: $capacity req/s (median of $RUNS)"
pipelined=$(wrk_capacity "$tmp/pipelined.lua")
echo "receiver, pipelined 16 deep: $pipelined req/s (median of $RUNS)"
fi

# Waits (60 s at most) until the receiver has `total` events; prints their rate in events/s,
# from its first request to its last, or 0 for a run that did not deliver every event
# (only such a run is a throughput figure; it says so on stderr). Keeps the request count.
received_rate() { # total
  local count span
  for _ in $(seq 600); do
    read -r count span < <(curl -s http://127.0.0.1:8090/count)
    [ "$count" -ge "$1" ] && break; sleep 0.1
  done
  [ "$count" -ge "$1" ] || echo "a run delivered only $count of $1 events: not a throughput figure" >&2
  curl -s http://127.0.0.1:8090/requests > "$tmp/requests"
  echo "$count $span" | awk -v total="$1" '{ if ($1 >= total && $2 > 0) printf "%.0f\n", $1 * 1000 / $2; else print 0 }'
}

delivery() { # label publishers ordered buffer
  webhook_config '["message.publish"]' "$3" 2000000 "$4" > "$tmp/delivery.toml"
  local per=$((N / $2))
  local total=$((per * $2))
  local rate
  rate=$(for _ in $(seq "$RUNS"); do
    start_receiver; start_hookmq "$tmp/delivery.toml"
    load -p "$2" -s 0 -n "$per" -q 0 -m 64 >/dev/null
    received_rate "$total"
    stop_hookmq; stop_receiver
  done | median)
  echo "$1: $rate events/s (median of $RUNS; the last run's $(cat "$tmp/requests" | tr -d '\n') requests), $(awk -v a="$rate" -v b="$capacity" -v c="$pipelined" 'BEGIN {printf "%.2f of the receiver'"'"'s capacity, %.2f of its pipelined capacity", a / b, a / c}')"
  last_rate=$rate
}
if section 2; then
echo "== 2. hookmq → receiver: $N message.publish events, 64 lanes, disk and memory buffers (a run counts once the receiver has all $N)"
delivery "64 publishers, ordered, disk  " 64 true disk; disk=$last_rate; ordered_single=$disk
delivery "64 publishers, ordered, memory" 64 true memory; memory=$last_rate
echo "disk / memory, ordered: $(awk -v a="$disk" -v b="$memory" 'BEGIN {printf "%.2f", a / b}')"
delivery "1 publisher, unordered, disk  " 1 false disk; disk=$last_rate
delivery "1 publisher, unordered, memory" 1 false memory; memory=$last_rate
echo "disk / memory, unordered: $(awk -v a="$disk" -v b="$memory" 'BEGIN {printf "%.2f", a / b}')"
single=$disk
BATCH_TOML='batch = { max_events = 100, max_wait = "10ms" }'
delivery "64 publishers, ordered, disk, batches   " 64 true disk; batched_disk=$last_rate
delivery "64 publishers, ordered, memory, batches " 64 true memory
delivery "1 publisher, unordered, disk, batches   " 1 false disk; batched=$last_rate
unset BATCH_TOML
fi
# A backlog: the receiver is stopped (SIGSTOP) while N events queue up, then let go; the
# rate is the receiver's: from its first request to the one that brought the N-th event.
# What it measures is delivery alone, not how fast the load tool and the broker make events
# (which bound the runs above once requests carry many events).
backlog() { # label [events]
  local N=${2:-$N}
  webhook_config '["message.publish"]' true 2000000 disk > "$tmp/backlog.toml"
  local rate
  rate=$(for _ in $(seq "$RUNS"); do
    start_receiver; kill -STOP "$receiver"; start_hookmq "$tmp/backlog.toml"
    load -p 64 -s 0 -n $((N / 64)) -q 0 -m 64 >/dev/null
    total=$((N / 64 * 64))
    # The API may not answer yet while hookmq starts: asked again.
    for _ in $(seq 600); do [ "$(metric '["matched"]' 2>/dev/null || echo 0)" -ge "$total" ] && break; sleep 0.1; done
    kill -CONT "$receiver"
    received_rate "$total"
    stop_hookmq; stop_receiver
  done | median)
  echo "$1: $rate events/s (median of $RUNS; the last run's $(tr -d '\n' < "$tmp/requests") requests), $(awk -v a="$rate" -v b="$capacity" 'BEGIN {printf "%.2f", a / b}') of the receiver's capacity in requests/s"
  last_rate=$rate
}
if section 2; then
backlog "backlog of $N events, disk, one per request "; backlog_single=$last_rate
BATCH_TOML='batch = { max_events = 100, max_wait = "10ms" }'
backlog "backlog of $N events, disk, batches of 100  "; backlog_batched=$last_rate
unset BATCH_TOML
echo "backlog, batched / one per request: $(awk -v a="$backlog_batched" -v b="$backlog_single" 'BEGIN {printf "%.1f", a / b}')×"
echo "batched / one per request, disk: 64 publishers ordered $(awk -v a="$batched_disk" -v b="$ordered_single" 'BEGIN {printf "%.1f", a / b}')×, 1 publisher unordered $(awk -v a="$batched" -v b="$single" 'BEGIN {printf "%.1f", a / b}')×; batched events/s / the receiver's capacity in requests/s: $(awk -v a="$batched_disk" -v b="$capacity" 'BEGIN {printf "%.1f", a / b}')×"
fi

if section 3; then
echo "== 3. latency, broker's receipt of the PUBLISH → receiver, 10 publishers × 1,000 msg/s for 10 s"
webhook_config '["message.publish"]' true 100000 > "$tmp/latency.toml"
start_receiver; start_hookmq "$tmp/latency.toml"
load -p 10 -s 0 -n 10000 --rate 1000 -q 1 -m 64 >/dev/null
sleep 1
read -r p50 p99 samples < <(curl -s http://127.0.0.1:8090/latency)
echo "latency: p50 ${p50} ms, p99 ${p99} ms ($samples events; ms resolution)"
stop_hookmq; stop_receiver

fi
if section 4; then
echo "== 4. the highest 1 → 1 QoS 1 rate an all-events webhook keeps up with (10 s at each rate)"
# Kept up: every message reached the subscriber, nothing dropped, the queue empty within
# 1 s of the last publish. Each rate on a fresh broker; the ladder stops at the first miss.
webhook_config '["*"]' true 10000 > "$tmp/all.toml"
base_config > "$tmp/off.toml"
kept_up=0
for rate in ${LADDER:-5000 10000 20000 30000 40000 50000 60000 80000 100000}; do
  start_receiver; start_hookmq "$tmp/all.toml"
  got=$(load -p 1 -s 1 -n $((rate * 10)) --rate "$rate" -q 1 -m 64 | field received)
  drained=no
  for _ in $(seq 10); do
    left=$(metric '["queuing"] + m["inflight"]'); dropped=$(metric '["dropped"]')
    [ "$left" = 0 ] && drained=yes && break; sleep 0.1
  done
  matched=$(metric '["matched"]')
  stop_hookmq; stop_receiver
  echo "$rate msg/s: $got of $((rate * 10)) received, webhook matched $matched events, dropped $dropped, queue empty within 1 s: $drained"
  if [ "$got" -ge $((rate * 10)) ] && [ "$dropped" = 0 ] && [ "$drained" = yes ]; then kept_up=$rate; else break; fi
done
echo "highest rate kept up with: $kept_up msg/s"

fi
if section 5; then
echo "== 5. CPU per message at ${CPU_RATE:=20000} msg/s, 1 → 1 QoS 1, 10 s, in $ROUNDS rounds (webhook off / on)"
# The connection threads' CPU time (the publish path) per message, with an all-events
# webhook off and on. "on" runs three ways: disk buffer with the delivery and journal threads
# on core 0 beside the broker (how this 2-core machine is set up), the same with those
# threads moved to core 1 beside the receiver (the publish path's own cost, without sharing
# its core with the webhook's delivery), and memory buffer on core 0. The modes take turns
# and each round's "on" is divided by its own "off" (rates and CPU drift here).
webhook_config '["*"]' true 10000 memory > "$tmp/all-memory.toml"
cpu_run() { # config [split]
  start_receiver; start_hookmq "$1"
  if [ -n "${2:-}" ]; then
    for task in /proc/"$hookmq"/task/*; do
      case "$(cat "$task/comm")" in hookmq-webhooks|hookmq-journal*) taskset -p -c 1 "${task##*/}" >/dev/null;; esac
    done
  fi
  conn0=$(cpu 'hookmq'); deliv0=$(cpu 'hookmq-webhooks'); jour0=$(cpu 'hookmq-journal.*')
  got=$(load -p 1 -s 1 -n $((CPU_RATE * 10)) --rate "$CPU_RATE" -q 1 -m 64 | field received)
  for _ in $(seq 50); do
    [ "$1" = "$tmp/off.toml" ] && break
    [ "$(metric '["queuing"] + m["inflight"]')" = 0 ] && break; sleep 0.1
  done
  conn=$(cpu 'hookmq'); deliv=$(cpu 'hookmq-webhooks'); jour=$(cpu 'hookmq-journal.*')
  delivered=$([ "$1" = "$tmp/off.toml" ] && echo 0 || metric '["success"]')
  dropped=$([ "$1" = "$tmp/off.toml" ] && echo 0 || metric '["dropped"]')
  [ "$dropped" = 0 ] || echo "the webhook dropped $dropped events: not a rate it keeps up with" >&2
  [ "$1" = "$tmp/all.toml" ] && metric '["buffer"]["write_window"]' > "$tmp/window"
  stop_hookmq; stop_receiver
  [ "$got" -ge $((CPU_RATE * 10)) ] || echo "only $got of $((CPU_RATE * 10)) messages received" >&2
  python3 -c "print(($conn - $conn0) / $got * 1e6, ($deliv - $deliv0) / max($delivered, 1) * 1e6, ($jour - $jour0) / max($delivered, 1) * 1e6)"
}
cpu_rows=""
for round in $(seq "$ROUNDS"); do
  read -r off _ < <(cpu_run "$tmp/off.toml")
  read -r disk deliv jour < <(cpu_run "$tmp/all.toml")
  read -r split _ < <(cpu_run "$tmp/all.toml" split)
  read -r mem _ < <(cpu_run "$tmp/all-memory.toml")
  printf 'round %s: µs per message off %.2f, disk %.2f, disk with delivery on core 1 %.2f, memory %.2f; delivery %.2f and journal %.2f µs per event\n' \
    "$round" "$off" "$disk" "$split" "$mem" "$deliv" "$jour"
  cpu_rows="$cpu_rows$off $disk $split $mem $deliv $jour
"
done
echo "write window of the last disk run (happened → on disk, per group): $(cat "$tmp/window")"
printf '%s' "$cpu_rows" | python3 -c "
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
m = lambda i: st.median(r[i] for r in rows)
ratio = lambda i: st.median(r[i] / r[0] for r in rows)
print(f'connection threads per message: off {m(0):.2f} µs; on, disk {ratio(1):.2f}× off, disk with delivery on core 1 {ratio(2):.2f}×, memory {ratio(3):.2f}× (medians of per-round ratios)')
print(f'per delivered event: delivery threads {m(4):.2f} µs, journal {m(5):.2f} µs (medians)')"

fi
if section 6; then
echo "== 6. QoS 1 publish rate, 1 → 1: no webhook / disk-buffered all-events webhook / with sync_before_ack"
# Rates drift by ±20% over minutes here, so the modes take turns: ROUNDS rounds, a fresh
# broker per mode, one warm-up run, then the median of RUNS runs; the results are the
# medians of each round's ratios to its own "off".
webhook_config '["*"]' true 10000 disk true > "$tmp/sync.toml"
rows=""
for round in $(seq "$ROUNDS"); do
  row=""
  lost=""
  for mode in off all sync; do
    start_receiver; start_hookmq "$tmp/$mode.toml"
    load -p 1 -s 1 -n 100000 -q 1 -m 64 >/dev/null
    for _ in $(seq "$RUNS"); do load -p 1 -s 1 -n 300000 -q 1 -m 64 | tail -n 1; done > "$tmp/runs.json"
    read -r r missing < <(python3 -c "
import json, statistics as st
runs = [json.loads(l) for l in open('$tmp/runs.json') if l.strip()]
print(round(st.median(r['delivery_rate'] for r in runs)), sum(r['expected'] - r['received'] for r in runs))")
    # What the webhook dropped over the whole broker's life (warm-up included).
    dropped=$([ "$mode" = off ] && echo 0 || metric '["dropped"]')
    stop_hookmq; stop_receiver
    row="$row $r"
    lost="$lost $mode: $missing messages missing, $dropped events dropped;"
  done
  echo "round $round: off / disk webhook / sync_before_ack msg/s:$row ($lost)"
  rows="$rows$row
"
done
printf '%s' "$rows" | python3 -c "
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
off = st.median(r[0] for r in rows)
on = st.median(r[1] / r[0] for r in rows)
sync = st.median(r[2] / r[0] for r in rows)
cost = st.median(r[2] / r[1] for r in rows)
print(f'QoS 1: off {off:,.0f} msg/s (median); disk webhook {on:.2f} of off ({(on - 1) * 100:+.0f}%), sync_before_ack {sync:.2f} ({(sync - 1) * 100:+.0f}%); sync_before_ack / disk webhook {cost:.2f} (medians of per-round ratios)')"
fi
if section 7; then
echo "== 7. the receiver of EMQX's Webhook guide (Flask, prints each request), on core 1"
FLASK=1
capacity=$(wrk_capacity "$tmp/post.lua")
echo "Flask receiver: $capacity req/s (wrk -t1 -c64, median of $RUNS)"
FLASK_N=${FLASK_N:-20000}
backlog "backlog of $FLASK_N events, one per request " "$FLASK_N"; flask_single=$last_rate
BATCH_TOML='batch = { max_events = 100, max_wait = "10ms" }'
backlog "backlog of $FLASK_N events, batches of 100  " "$FLASK_N"; flask_batched=$last_rate
unset BATCH_TOML FLASK
echo "Flask receiver, batched / one per request: $(awk -v a="$flask_batched" -v b="$flask_single" 'BEGIN {printf "%.1f", a / b}')×"
fi
