#!/usr/bin/env bash
# Journal storage candidates on one workload: builds the bench (its own workspace, target dir
# outside the repo), runs every engine 3 times pinned to core 1, prints a table of medians.
# Usage: [RUNS=3] [ENGINES=redb,fjall] bench/storage/run.sh [--records 200000 --stuck 16 ...]
# Data goes under $STORAGE_BENCH_DIR (default /work/tmp-storage-bench), which must be a real
# disk, not tmpfs: the point is real fdatasyncs. Without crates/webhooks building, run
# `cargo build --release --no-default-features` and ENGINES=redb,redb-qr,fjall,fjall-weak.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-storage}
DIR=${STORAGE_BENCH_DIR:-/work/tmp-storage-bench}
ENGINES=${ENGINES:-redb,redb-qr,fjall,fjall-weak,seglog}
cargo build --release -q
mkdir -p "$DIR"
if [ "$(stat -f -c %T "$DIR")" = tmpfs ]; then
  echo "$DIR is tmpfs: pick a disk-backed dir" >&2
  exit 1
fi
PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then PIN=(taskset -c 1); fi
versions=$(grep -A1 --no-group-separator -E '^name = "(redb|fjall|lsm-tree)"$' Cargo.lock | cut -d'"' -f2)
echo "rustc $(rustc --version | cut -d" " -f2);" $versions "; load: $(cut -d" " -f1-3 /proc/loadavg)"
"${PIN[@]}" "$CARGO_TARGET_DIR"/release/hookmq-storage-bench \
  --runs "${RUNS:-3}" --engines "$ENGINES" --dir "$DIR" "$@"
rmdir "$DIR" 2>/dev/null || true
