#!/usr/bin/env python3
"""hookmq beside its peers, side by side in one run.

Starts each broker on loopback pinned to core 0 and drives it from core 1 with two load
tools: hookmq's own generator (`hookmq-bench`) and rumqtt's `mqttwrk` (crates.io; rumqttc
clients as users run them: MQTT 3.1.1, a publish window of 100, one write per publish). In
each of RUNS rounds every scenario runs once per tool and broker, brokers in turns (each
round starting with the next broker), so a slow minute of the machine hits all of them; each
measured run of a message scenario follows an uncounted warm-up run against the same broker
process. Also records the broker's CPU time per delivery and the CPU time the hypervisor
took (steal) during the run. `--brokers` also takes hookmq-nohold (hookmq with
`mqtt.write_coalesce_us = 0`, writes never held). Prints the median deliveries/s per broker with
the spread (min–max) and the ratio hookmq / peer of the medians, per tool; a run that lost
messages is not a throughput figure (its loss is shown instead). Writes the same as JSON to
bench/results/latest.json (and a dated copy). Then runs the webhook scenarios
(bench/webhook.sh: delivery beside the receiver's wrk capacity, latency, publish rate with a
webhook off / on / stalled).

With `--only persistence`: QoS 1 to persistent sessions with hookmq's persistence on
(default, `sync = "before_ack"`), `sync = "interval"` and off, beside mosquitto with
persistence on; in turns, every variant once per round.

Usage: bench/run [--runs N] [--quick] [--only SCENARIO,...|webhooks|persistence]
                 [--brokers hookmq,mosquitto,rumqttd] [--tools hookmq-bench,mqttwrk]
                 [--no-webhooks]
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release")
TOOLS = os.path.join(ROOT, "bench", ".tools")
# CPUs (taskset lists) of the broker and of the load tool; `--broker-cores`, `--load-cores`.
BROKER_CORE, LOAD_CORE = "0", "1"

# name -> (load generator arguments, what it shows)
SCENARIOS = {
    "qos0_1to1": (["load", "-p", "1", "-s", "1", "-n", "500000", "-q", "0"], "QoS 0, 1 publisher → 1 subscriber, 64 B"),
    "qos1_1to1": (["load", "-p", "1", "-s", "1", "-n", "100000", "-q", "1"], "QoS 1, 1 → 1, 64 B"),
    # A narrow publish window, as paho's clients keep by default (10–20): one that waits.
    "qos1_1to1_w10": (["load", "-p", "1", "-s", "1", "-n", "100000", "-q", "1", "--inflight", "10"],
                      "QoS 1, 1 → 1, publish window 10"),
    # 2,000,000 deliveries: with 500,000 a run lasted ~0.15 s and its rate swung 2× between runs.
    "qos0_fanout10": (["load", "-p", "1", "-s", "10", "-n", "200000", "-q", "0"], "QoS 0, 1 → 10 fan-out (deliveries/s)"),
    "qos0_fanin10": (["load", "-p", "10", "-s", "1", "-n", "50000", "-q", "0"], "QoS 0, 10 → 1 fan-in"),
    "qos0_5x5": (["load", "-p", "5", "-s", "5", "-n", "40000", "-q", "0"], "QoS 0, 5 → 5"),
    "qos1_5x5": (["load", "-p", "5", "-s", "5", "-n", "10000", "-q", "1"], "QoS 1, 5 → 5"),
    "qos0_1to1_4k": (["load", "-p", "1", "-s", "1", "-n", "100000", "-q", "0", "-m", "4096"], "QoS 0, 1 → 1, 4 KiB"),
    "idle_10k": (["connections", "-n", "10000", "--hold", "3"], "10,000 idle connections: connect rate, memory per connection"),
    "retained_10k": (["retained", "-n", "10000"], "subscribe to 10,000 retained topics"),
}
# The same scenarios for mqttwrk: (publishers, subscribers, messages per publisher, QoS,
# payload bytes, publish window). Its subscribers all take every publisher's messages
# (`hello/+/world`); 100 is its (rumqttc's) default window.
MQTTWRK = {
    "qos0_1to1": (1, 1, 500000, 0, 64, 100),
    "qos1_1to1": (1, 1, 200000, 1, 64, 100),
    "qos1_1to1_w10": (1, 1, 100000, 1, 64, 10),
    "qos0_fanout10": (1, 10, 200000, 0, 64, 100),
    "qos0_fanin10": (10, 1, 50000, 0, 64, 100),
    "qos0_5x5": (5, 5, 40000, 0, 64, 100),
    "qos1_5x5": (5, 5, 10000, 1, 64, 100),
    "qos0_1to1_4k": (1, 1, 100000, 0, 4096, 100),
}
MQTTWRK_VERSION = "0.2.0"
# Message scenarios: each measured run follows a warm-up run against the same broker.
WARM_UP = {name for name in SCENARIOS if not name.startswith(("idle", "retained"))}
# hookmq with settings other than its defaults, runnable beside it (`--brokers hookmq,hookmq-nohold`).
HOOKMQ_VARIANTS = {"hookmq-nohold": {"HOOKMQ_MQTT__WRITE_COALESCE_US": "0"}}
TOOLS_DEFAULT = "hookmq-bench,mqttwrk"
# Persistence: (load generator arguments, what it shows); every variant below runs each.
PERSISTENCE_SCENARIOS = {
    "qos1_1to1_persistent": (["load", "-p", "1", "-s", "1", "-n", "200000", "-q", "1", "--persistent"],
                             "QoS 1, 1 → 1, the subscriber's session persistent and connected"),
    "qos1_offline_queue": (["load", "-p", "1", "-s", "1", "-n", "200000", "-q", "1", "--offline"],
                           "QoS 1, 1 → 1, queued for an offline persistent session, then drained"),
}
# variant -> (broker, extra environment for hookmq / mosquitto.conf lines)
PERSISTENCE_VARIANTS = {
    "hookmq (before_ack)": ("hookmq", {}),
    "hookmq (interval)": ("hookmq", {"HOOKMQ_PERSISTENCE__SYNC": "interval"}),
    "hookmq (off)": ("hookmq", {"HOOKMQ_PERSISTENCE__ENABLE": "false"}),
    "mosquitto (persistence true)": ("mosquitto", {"persistence": "true"}),
}
QUICK = {"qos0_1to1": "200000", "qos1_1to1": "50000", "qos1_1to1_w10": "25000", "qos0_fanout10": "50000", "qos0_fanin10": "20000",
         "qos0_5x5": "20000", "qos1_5x5": "5000", "qos0_1to1_4k": "50000"}


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not port_free(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_s(pid):
    """CPU seconds (user + system) a process has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_s():
    """Seconds the hypervisor has taken from this machine's CPUs (all cores)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ensure_tools(brokers, tools=()):
    """Installs what the run needs; quiet and idempotent."""
    def apt(*packages):
        missing = [p for p, cmd in packages if not shutil.which(cmd)]
        if missing:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            cmd = sudo + ["apt-get", "install", "-y", "-qq"] + missing
            if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(sudo + ["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, check=True)
                subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    apt(("mosquitto", "mosquitto"), ("wrk", "wrk"))
    if "rumqttd" in brokers and not os.path.exists(os.path.join(TOOLS, "bin", "rumqttd")):
        print("installing rumqttd from crates.io (a few minutes, once)", file=sys.stderr)
        # Not --locked: its lockfile pins a metrics release that no longer builds on 1.95.
        subprocess.run(["cargo", "install", "-q", "rumqttd", "--version", "0.20.0", "--root", TOOLS], check=True)
    if "mqttwrk" in tools and not os.path.exists(os.path.join(TOOLS, "bin", "mqttwrk")):
        print("installing mqttwrk from crates.io (a few minutes, once)", file=sys.stderr)
        subprocess.run(["cargo", "install", "-q", "mqttwrk", "--version", MQTTWRK_VERSION, "--root", TOOLS],
                       check=True)
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "hookmq", "-p", "hookmq-bench"], cwd=ROOT, check=True)


def start_broker(name, port, work, extra=None):
    """Starts `name` with a fresh data directory; `extra`: environment (hookmq) or settings
    (mosquitto) over the defaults."""
    pin = ["taskset", "-c", BROKER_CORE]
    extra = extra or {}
    # A fresh directory per start: no state (retained, sessions) carried between runs.
    data = tempfile.mkdtemp(dir=work)
    if name in HOOKMQ_VARIANTS:
        extra = {**HOOKMQ_VARIANTS[name], **extra}
        name = "hookmq"
    if name == "hookmq":
        env = dict(os.environ, HOOKMQ_LISTENERS__TCP__BIND=f"127.0.0.1:{port}", HOOKMQ_LISTENERS__WS__ENABLE="false",
                   HOOKMQ_DASHBOARD__ENABLE="false", HOOKMQ_NODE__DATA_DIR=data,
                   HOOKMQ_MQTT__MAX_QUEUE_LEN="1000000", HOOKMQ_MQTT__MAX_INFLIGHT="100", HOOKMQ_LOG__LEVEL="warn",
                   **extra)
        return subprocess.Popen(pin + [os.path.join(BIN, "hookmq")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if name == "mosquitto":
        conf = os.path.join(work, "mosquitto.conf")
        settings = {"persistence": "false", **extra}
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 100\nmax_connections -1\n"
                    # Root runs it in CI: keep root, so it can write its data directory.
                    f"user root\npersistence_location {data}/\n"
                    + "".join(f"{k} {v}\n" for k, v in settings.items()))
        return subprocess.Popen(pin + ["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if name == "rumqttd":
        conf = os.path.join(work, "rumqttd.toml")
        with open(conf, "w") as f:
            f.write(f"""id = 0
[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true
""")
        return subprocess.Popen(pin + [os.path.join(TOOLS, "bin", "rumqttd"), "-c", conf, "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raise ValueError(name)


def run_load(port, args, broker_pid=None, timeout=180):
    cmd = ["taskset", "-c", LOAD_CORE, os.path.join(BIN, "hookmq-bench"), "-a", f"127.0.0.1:{port}"] + args
    if args[0] != "connections":
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
        return json.loads(out.stdout.strip().splitlines()[-1])
    # Idle connections: read the broker's memory while they are held.
    before = rss_kib(broker_pid)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    time.sleep(1)
    held = rss_kib(broker_pid)
    proc.wait(timeout=timeout)
    result = json.loads(line) if line.strip() else {"error": "no report"}
    if "connections" in result:
        result["rss_kib_before"], result["rss_kib_held"] = before, held
        result["kib_per_connection"] = round((held - before) / max(result["connections"], 1), 2)
    return result


def run_mqttwrk(port, scenario, quick, timeout=120):
    """One mqttwrk run: deliveries/s summed over its subscribers (each from its first to its
    last message), and what reached them. A subscriber missing messages waits for them: the
    timeout ends the run, and what arrived is counted as lost."""
    publishers, subscribers, count, qos, size, window = MQTTWRK[scenario]
    if quick:
        count //= 4
    cmd = ["taskset", "-c", LOAD_CORE, os.path.join(TOOLS, "bin", "mqttwrk"), "bench", "-S", "127.0.0.1",
           "-P", str(port), "-p", str(publishers), "-s", str(subscribers), "-n", str(count),
           "--publish-qos", str(qos), "--subscribe-qos", str(qos), "-m", str(size), "-i", str(window)]
    expected = publishers * subscribers * count
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s (messages lost?)", "expected": expected}
    sub = out.split("Aggregate SubStats")[-1]
    received = re.search(r"publish_count: (\d+)", sub)
    rate = re.search(r"throughput: ([\d.]+)", sub)
    published = re.search(r"Aggregate PubStats: PubStats \{[^}]*throughput: ([\d.]+)", out, re.S)
    if not (received and rate):
        return {"error": "no report from mqttwrk", "expected": expected}
    return {"received": int(received.group(1)), "expected": expected, "delivery_rate": float(rate.group(1)),
            "publish_rate": float(published.group(1)) if published else None}


def key_metric(name, result):
    if name.startswith("idle"):
        return result.get("connect_rate", 0.0)
    if name.startswith("retained"):
        return -result.get("subscribe_ms", 0.0)
    return result.get("delivery_rate", 0.0)


def main():
    global BROKER_CORE, LOAD_CORE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller message counts")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--brokers", default="hookmq,mosquitto,rumqttd")
    parser.add_argument("--tools", default=TOOLS_DEFAULT, help="load tools: hookmq-bench, mqttwrk")
    parser.add_argument("--no-webhooks", action="store_true", help="skip bench/webhook.sh")
    parser.add_argument("--broker-cores", default=BROKER_CORE, help="CPUs of the broker (taskset list)")
    parser.add_argument("--load-cores", default=LOAD_CORE,
                        help="CPUs of the load tool (taskset list, e.g. 1-3 on a larger machine)")
    opts = parser.parse_args()
    BROKER_CORE, LOAD_CORE = opts.broker_cores, opts.load_cores
    brokers = opts.brokers.split(",")
    tools = opts.tools.split(",")
    scenarios = {k: v for k, v in SCENARIOS.items() if not opts.only or k in opts.only.split(",")}
    ensure_tools(brokers, tools)
    # Idle-connection runs need many descriptors, in the brokers and the load generator.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    port = 1910
    if scenarios and not port_free(port):
        sys.exit(f"port {port} is busy")
    # results[tool][scenario][broker] = [run, ...]
    results = {tool: {} for tool in tools}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(opts.runs):
            for name, (args, _) in scenarios.items():
                for tool in tools:
                    if tool == "mqttwrk" and name not in MQTTWRK:
                        continue
                    # Each round starts with another broker: a position in the turn (the first
                    # run after an idle pause is often slower here) favours none of them.
                    shift = round_ % len(brokers)
                    for broker in brokers[shift:] + brokers[:shift]:
                        result = one_run(broker, tool, name, args, port, work, opts.quick)
                        results[tool].setdefault(name, {}).setdefault(broker, []).append(result)
                        print(f"round {round_ + 1} {tool:12} {broker:10} {name:15} {json.dumps(result)}",
                              file=sys.stderr)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "broker_cores": BROKER_CORE, "load_cores": LOAD_CORE, "platform": platform.platform(), "cpu": cpu_model()},
        "command": "bench/run " + " ".join(sys.argv[1:]),
        "runs": opts.runs,
        "results": {tool: {name: {broker: {"median": median(name, runs), "runs": runs}
                                  for broker, runs in by_broker.items()}
                           for name, by_broker in by_name.items()}
                    for tool, by_name in results.items()},
    }
    if scenarios:
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        for path in ["latest.json", report["date"][:10] + ".json"]:
            with open(os.path.join(ROOT, "bench", "results", path), "w") as f:
                json.dump(report, f, indent=1)
        for tool in tools:
            print_table(report, scenarios, brokers, tool)
    if "persistence" in opts.only.split(","):
        run_persistence(opts, port)
    # Webhook scenarios (hookmq only: no peer has webhooks) with --only webhooks or no --only.
    if not opts.no_webhooks and "hookmq" in brokers and (not opts.only or "webhooks" in opts.only.split(",")):
        print("\n## Webhooks (bench/webhook.sh)\n", flush=True)
        env = dict(os.environ, RUNS=str(opts.runs), N="100000" if opts.quick else "200000")
        subprocess.run([os.path.join(ROOT, "bench", "webhook.sh")], env=env, check=True)


def one_run(broker, tool, name, args, port, work, quick):
    """`name` once with `tool` against a fresh `broker` (no state carried between runs)."""
    args = list(args)
    if quick and name in QUICK:
        args[args.index("-n") + 1] = QUICK[name]
    proc = start_broker(broker, port, work)
    try:
        wait_port(port)
        measure = (lambda: run_mqttwrk(port, name, quick)) if tool == "mqttwrk" else (lambda: run_load(port, args, proc.pid))
        if name in WARM_UP:
            # A warm-up run first, not counted: the broker then serves from memory it has
            # used, as a running one does. On this VM a fresh process growing its memory ran
            # at half speed, the kernel zeroing pages the host had taken back while idle.
            measure()
        cpu, steal = cpu_s(proc.pid), steal_s()
        load_cpu, started = children_cpu_s(), time.monotonic()
        result = measure()
        # The load tool's share of its cores over the whole run (connecting included): near
        # 100%, the tool, not the broker, set the rate.
        result["load_busy"] = round((children_cpu_s() - load_cpu) / (time.monotonic() - started)
                                    / len(os.sched_getaffinity(0) & cpus(LOAD_CORE)), 3)
        # What the broker's core spent per delivery, and what the hypervisor took meanwhile:
        # a load tool on one core can cap the rate; this shows what the broker needed for it.
        result["broker_cpu_s"] = round(cpu_s(proc.pid) - cpu, 3)
        result["steal_s"] = round(steal_s() - steal, 3)
        if result.get("received"):
            result["broker_us_per_delivery"] = round(result["broker_cpu_s"] * 1e6 / result["received"], 2)
        return result
    except (subprocess.TimeoutExpired, RuntimeError, json.JSONDecodeError) as error:
        return {"error": str(error)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        while not port_free(port):
            time.sleep(0.05)


def cpus(taskset_list):
    """The CPUs of a taskset list such as `1`, `1-3` or `0,2`."""
    found = set()
    for part in taskset_list.split(","):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def children_cpu_s():
    """CPU seconds (user + system) of the finished load tool runs so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def complete(result):
    """A run that did its work: no error, and every expected message delivered."""
    return "error" not in result and result.get("received", 0) >= result.get("expected", 0)


def median(name, runs):
    """The median run by the scenario's key metric, of the complete runs (else the last)."""
    ok = sorted((r for r in runs if complete(r)), key=lambda r: key_metric(name, r))
    return ok[len(ok) // 2] if ok else runs[-1]


def run_persistence(opts, port):
    """QoS 1 to persistent sessions, each variant once per round, in turns."""
    n = "50000" if opts.quick else None
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(opts.runs):
            for name, (args, _) in PERSISTENCE_SCENARIOS.items():
                args = list(args)
                if n:
                    args[args.index("-n") + 1] = n
                for variant, (broker, extra) in PERSISTENCE_VARIANTS.items():
                    proc = start_broker(broker, port, work, extra)
                    try:
                        wait_port(port)
                        result = run_load(port, args)
                    except (subprocess.TimeoutExpired, RuntimeError, json.JSONDecodeError) as error:
                        result = {"error": str(error)}
                    finally:
                        proc.terminate()
                        proc.wait(timeout=30)
                        while not port_free(port):
                            time.sleep(0.05)
                    results.setdefault(name, {}).setdefault(variant, []).append(result)
                    print(f"{variant:30} {name:22} {json.dumps(result)}", file=sys.stderr)
    print(f"\n## Persistence, median of {opts.runs} (spread)\n")
    print("| scenario | " + " | ".join(PERSISTENCE_VARIANTS) + " |")
    print("|" + "---|" * (1 + len(PERSISTENCE_VARIANTS)))
    for name, (_, what) in PERSISTENCE_SCENARIOS.items():
        for metric, label in (("publish_rate", "publish"), ("delivery_rate", "delivery")):
            cells = []
            for variant in PERSISTENCE_VARIANTS:
                runs = results[name][variant]
                ok = [r for r in runs if "error" not in r and r["received"] == r["expected"]]
                lost = [r["expected"] - r["received"] for r in runs if "error" not in r and r["received"] != r["expected"]]
                if not ok:
                    cells.append(f"error or lost {lost}")
                    continue
                values = sorted(r[metric] for r in ok)
                cell = f"{fmt(statistics.median(values))}/s ({fmt(values[0])}–{fmt(values[-1])})"
                if lost:
                    cell += f", {len(lost)} runs lost messages"
                cells.append(cell)
            print(f"| {what}: {label} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "persistence.json"), "w") as f:
        json.dump(results, f, indent=1)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt(value, unit=""):
    if isinstance(value, float) and value >= 1000:
        return f"{value / 1000:,.0f}k{unit}"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value}{unit}"


def print_table(report, scenarios, brokers, tool):
    """One table per load tool: median (min–max) per broker, ratio of the medians."""
    peers = [b for b in brokers if b != "hookmq"]
    results = report["results"].get(tool, {})
    header = "| scenario | " + " | ".join(brokers) + " | " + " | ".join(f"hookmq / {p}" for p in peers) + " |"
    print(f"\n### {tool}\n\n{report['date']}, {report['machine']['cpu']}, {report['machine']['cpus']} cores, "
          f"median of {report['runs']} rounds (min–max), brokers in turns\n")
    steal = sum(r.get("steal_s", 0.0) for row in results.values() for b in row.values() for r in b["runs"])
    busy = sum(r.get("broker_cpu_s", 0.0) for row in results.values() for b in row.values() for r in b["runs"])
    print("µs CPU: the broker's CPU time per delivery in the median run (its core's work, whatever "
          "capped the rate); load: the load tool's share of its cores in that run (near 100%: the "
          f"tool set the rate). The hypervisor took {steal:.1f} s of CPU from this machine during the runs "
          f"(the brokers used {busy:.1f} s).\n")
    print(header)
    print("|" + "---|" * (1 + len(brokers) + len(peers)))
    for name, (_, what) in scenarios.items():
        row = results.get(name)
        if not row:
            continue
        cells, values = [], {}
        for broker in brokers:
            runs = row.get(broker, {}).get("runs", [])
            ok = [r for r in runs if complete(r)]
            lost = [r.get("expected", 0) - r.get("received", 0) for r in runs if "error" not in r and not complete(r)]
            if not ok:
                errors = sorted({str(r.get("error", "")) for r in runs if "error" in r})
                cells.append(f"lost {lost}" if lost else f"error: {'; '.join(errors)[:80]}")
                continue
            r = row[broker]["median"]
            extra = f"; {len(runs) - len(ok)} runs failed or lost messages" if len(ok) < len(runs) else ""
            if name.startswith("idle"):
                values[broker] = r["connect_rate"]
                cells.append(f"{fmt(r['connect_rate'])}/s, {r['kib_per_connection']} KiB/conn{extra}")
            elif name.startswith("retained"):
                values[broker] = 1 / max(r["subscribe_ms"], 1e-9)
                cells.append(f"{r['subscribe_ms']:.0f} ms{extra}")
            else:
                rates = sorted(x["delivery_rate"] for x in ok)
                values[broker] = r["delivery_rate"]
                latency = (f", p50 {r['latency_p50_us'] / 1000:.1f} ms, p99 {r['latency_p99_us'] / 1000:.1f} ms"
                           if "latency_p50_us" in r else "")
                cpu = f", {r['broker_us_per_delivery']:.2f} µs CPU" if "broker_us_per_delivery" in r else ""
                cpu += f", load {r['load_busy']:.0%}" if "load_busy" in r else ""
                cells.append(f"{fmt(r['delivery_rate'])}/s ({fmt(rates[0])}–{fmt(rates[-1])}{latency}{cpu}){extra}")
        ratios = [f"{values['hookmq'] / values[p]:.2f}×" if "hookmq" in values and values.get(p) else "–" for p in peers]
        print(f"| {what} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
