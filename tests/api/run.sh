#!/usr/bin/env bash
# The API contract against the running binary: the OpenAPI document it serves is valid
# (openapi-spec-validator), and schemathesis (every check, positive and negative data, the
# stateful phase) finds no failure. Installs both from PyPI when missing.
#   HOOKMQ_BIN   the binary (default: target/debug/hookmq)
#   EXAMPLES     test cases per operation and phase (default 25)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${HOOKMQ_BIN:-target/debug/hookmq}"
examples="${EXAMPLES:-25}"

need_pip=()
command -v openapi-spec-validator >/dev/null 2>&1 || need_pip+=('openapi-spec-validator>=0.7,<0.8')
command -v schemathesis >/dev/null 2>&1 || need_pip+=('schemathesis>=4.3,<5')
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing ${need_pip[*]} (pip)" >&2
  python3 -m pip install -q --disable-pip-version-check "${need_pip[@]}" 2>/dev/null
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# Throttling off: the run sends thousands of requests with wrong credentials on purpose.
# Webhook URLs it makes up may name any host: requests may reach loopback only.
HOOKMQ_NODE__DATA_DIR="$work/data" HOOKMQ_DASHBOARD__BIND="127.0.0.1:$port" \
  HOOKMQ_LISTENERS__TCP__BIND=127.0.0.1:0 HOOKMQ_LISTENERS__WS__ENABLE=false \
  HOOKMQ_DASHBOARD__UNSUCCESSFUL_LOGIN_MAX_ATTEMPTS=0 \
  HOOKMQ_EGRESS__ALLOW_NETWORKS=127.0.0.0/8,::1/128 \
  "$bin" >"$work/hookmq.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
# Waits for the API, saves the document, logs in and makes an API key (not a login token:
# the run calls POST /logout); prints key:secret.
key="$(python3 - "$base" "$work/openapi.json" <<'PY'
import json, sys, time, urllib.request
base, path = sys.argv[1], sys.argv[2]
def call(method, url, body=None, token=None):
    request = urllib.request.Request(base + url, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.read()
for _ in range(100):
    try:
        open(path, "wb").write(call("GET", "/api/v5/openapi.json"))
        break
    except OSError:
        time.sleep(0.1)
token = json.loads(call("POST", "/api/v5/login", {"username": "admin", "password": "public"}))["token"]
key = json.loads(call("POST", "/api/v5/api_key", {"name": "schemathesis-run"}, token))
print(key["api_key"] + ":" + key["api_secret"])
PY
)"

openapi-spec-validator "$work/openapi.json"

# From the work directory: schemathesis keeps a cache (.schemathesis/) where it runs.
config="$PWD/tests/api/schemathesis.toml"
cd "$work"
schemathesis --config-file "$config" run "$base/api/v5/openapi.json" \
  --url "$base" --auth "$key" --checks all --max-examples "$examples" --seed 1 \
  --report junit --report-dir "$work/report" --no-color
echo "hookmq's log had $(grep -c ' ERROR ' "$work/hookmq.log" || true) errors"
