#!/usr/bin/env bash
# Serve CPU per 4 KiB GET on one runtime, with a flat `perf` profile of the serve process
# (the glommio-vs-tokio question of the performance issue). Prints ops/s and serve
# CPU-microseconds per op; the profile goes to $PERF_OUT.
#
# Usage: RUNTIME=glommio|tokio bench/runtime_probe.sh
# Env:   SECS=5 (measured seconds), PERF_OUT=/tmp/runtime-<runtime>.perf
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNTIME="${RUNTIME:-glommio}"
SECS="${SECS:-5}"
PERF_OUT="${PERF_OUT:-/tmp/runtime-$RUNTIME.perf}"
# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_workdir hb-runtime
bench_binaries hugbucket-bench
BENCH="$ROOT/target/release/hugbucket-bench"

port=$(free_port)
"$HB" serve --data-dir "$work/serve" --mode s3 --runtime "$RUNTIME" \
    --s3-listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$(free_port)" \
    --access-key-id PROBEKEY --secret-access-key probe-secret >"$work/serve.log" 2>&1 &
serve=$!; pids+=("$serve")
wait_http "http://127.0.0.1:$port/health"
b=("$BENCH" s3 --endpoint "http://127.0.0.1:$port" --bucket bench --access-key PROBEKEY
   --secret-key probe-secret --quiet --size 4KiB --objects 512)
"${b[@]}" --create-bucket --mode put --ops 512 --concurrency 16 >/dev/null
"${b[@]}" --mode get --no-prepare --concurrency 64 --duration 2s >/dev/null   # warm-up
c0=$(cpu_seconds "$serve")
timeout $((SECS + 20)) perf record -F 499 -p "$serve" -o "$PERF_OUT" 2>/dev/null &
perf_pid=$!
"${b[@]}" --mode get --no-prepare --concurrency 64 --duration "${SECS}s" --json "$work/get.json" >/dev/null
kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" || true
c1=$(cpu_seconds "$serve")
python3 - "$work/get.json" "$c0" "$c1" "$SECS" "$RUNTIME" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cpu, secs, rt = float(sys.argv[3]) - float(sys.argv[2]), float(sys.argv[4]), sys.argv[5]
ops = d["ops_per_s"] * secs
print(f"{rt}: {d['ops_per_s']:.0f} ops/s, serve {cpu / ops * 1e6:.1f} CPU-us per op")
PY
echo "profile: $PERF_OUT (perf report -i $PERF_OUT --sort comm,sym)"
