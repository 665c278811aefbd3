#!/usr/bin/env bash
# The dashboard end to end in a real browser: Debian's headless Chromium driven by
# playwright-core (npm) through the seed's Webhook flow (webhook.e2e.mjs).
#
# Installs what it drives if missing (apt: chromium, mosquitto-clients; npm ci here), builds
# hookmq (debug), starts it on free loopback ports with a temporary data directory, starts the
# test receiver (receiver.mjs), runs the browser script and stops everything, whatever
# happens. Screenshots go to artifacts/screenshots/ at the repository root.
#
# Environment: HOOKMQ_BIN (use this binary, skip the build), CHROMIUM (default
# /usr/bin/chromium), SCREENSHOTS (default <repo>/artifacts/screenshots).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export SCREENSHOTS="${SCREENSHOTS:-$root/artifacts/screenshots}"

# ---- what the test drives ----
need_apt=()
[ -x "$CHROMIUM" ] || need_apt+=(chromium)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 \
    || { $sudo_cmd apt-get update -qq >/dev/null \
      && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; }
fi
command -v node >/dev/null 2>&1 || { echo "tests/browser needs Node.js (node, npm)" >&2; exit 1; }
pinned="$(node -p "require('$here/package.json').dependencies['playwright-core']")"
installed="$(node -p "try { require('$here/node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$pinned" != "$installed" ]; then
  echo "installing playwright-core $pinned (npm ci)" >&2
  (cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
fi

# ---- hookmq ----
# Not left in the environment: hookmq reads every HOOKMQ_ variable as configuration.
hookmq_bin="${HOOKMQ_BIN:-}"
unset HOOKMQ_BIN
if [ -z "$hookmq_bin" ]; then
  cargo build -p hookmq --quiet
  target_dir="$(cargo metadata --format-version 1 --no-deps \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
  hookmq_bin="$target_dir/debug/hookmq"
fi

# ---- run ----
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three free loopback ports: MQTT, dashboard, receiver.
read -r mqtt_port dashboard_port receiver_port < <(node -e '
  const net = require("node:net");
  (async () => {
    const servers = [];
    for (let i = 0; i < 3; i++) {
      const s = net.createServer();
      await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
      servers.push(s);
    }
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  })();')

wait_for_port() { # port, pid, what, log
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "$3 stopped before listening on $1:" >&2; tail -n 30 "$4" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$3 is not listening on $1 after 30 s:" >&2; tail -n 30 "$4" >&2; return 1
}

PORT="$receiver_port" node "$here/receiver.mjs" >"$work/receiver.log" 2>&1 &
pids+=($!)
HOOKMQ_LISTENERS__TCP__BIND="127.0.0.1:$mqtt_port" \
HOOKMQ_LISTENERS__WS__ENABLE=false \
HOOKMQ_DASHBOARD__BIND="127.0.0.1:$dashboard_port" \
HOOKMQ_NODE__DATA_DIR="$work/data" \
  "$hookmq_bin" >"$work/hookmq.log" 2>&1 &
pids+=($!)
wait_for_port "$receiver_port" "${pids[0]}" receiver "$work/receiver.log"
wait_for_port "$mqtt_port" "${pids[1]}" hookmq "$work/hookmq.log"
wait_for_port "$dashboard_port" "${pids[1]}" hookmq "$work/hookmq.log"

status=0
HOOKMQ_URL="http://127.0.0.1:$dashboard_port" \
MQTT_PORT="$mqtt_port" \
RECEIVER_URL="http://localhost:$receiver_port" \
  timeout 180 node "$here/webhook.e2e.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- hookmq log (last 40 lines) ---" >&2
  tail -n 40 "$work/hookmq.log" >&2
fi
exit "$status"
