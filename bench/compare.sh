#!/usr/bin/env bash
# Side-by-side comparison, one run, one machine (benchmarks issue): the same workloads
# against
#   - HugBucket (`hugbucket serve`, embedded hub, default runtime),
#   - hf_xet via huggingface_hub, uploading and downloading the same bytes to a fresh
#     embedded hub (`hugbucket hub`),
#   - the original Python HugBucket (only if it can be installed here; it is neither on
#     PyPI nor reachable without the internet, so this column normally says so),
#   - s3s-fs (crates.io), a plain local-disk S3 server: the "no Xet work" ceiling,
#   - vsftpd for FTP (bench/ftp_vsftpd.sh, run from here),
#   - raw limits: memory copy, one-shot BLAKE3, loopback TCP.
# Prints a table of absolute numbers and ratios and appends it to
# bench/results/<date>-<host>-compare.md.
#
# Usage: bench/compare.sh
# Env:   SIZE_MIB=1024       size of the big object
#        SMALL_SECS=10       seconds per 4 KiB phase (concurrency 64)
#        S3SFS_BIN=path      s3s-fs binary (default: installed with `cargo install s3s-fs`
#                            into target/compare-tools/ on first use)
#        FTP=0               skip the vsftpd comparison
#        VENV=path           Python venv with huggingface_hub + hf_xet (default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${SIZE_MIB:-1024}"
SMALL_SECS="${SMALL_SECS:-10}"
TOOLS="$ROOT/target/compare-tools"
RESULTS="$ROOT/bench/results/$(date -u +%Y-%m-%d)-$(hostname)-compare.md"

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_workdir hb-compare
bench_binaries hugbucket-bench
BENCH="$ROOT/target/release/hugbucket-bench"

if [ -z "${S3SFS_BIN:-}" ]; then
    S3SFS_BIN="$TOOLS/bin/s3s-fs"
    if [ ! -x "$S3SFS_BIN" ]; then
        echo "== installing s3s-fs 0.14.1 (the newest that builds with this rustc)"
        CARGO_TARGET_DIR="$work/s3sfs-target" cargo install s3s-fs --version 0.14.1 \
            --features binary --locked --root "$TOOLS" --quiet
        rm -rf "$work/s3sfs-target"
    fi
fi
bench_venv huggingface_hub hf_xet
json() { "$VENV/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2], {}, {"d": d}); print(round(v, 1) if isinstance(v, float) else v)' "$@"; }

# Peak anonymous RSS (KiB) of a process while a command runs.
peak_anon() { # pid cmd...
    local pid=$1 out="$work/peak.$RANDOM"; shift
    ( mx=0; while kill -0 "$pid" 2>/dev/null; do
        a=$(awk '/^RssAnon/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${a:-0}" -gt "$mx" ] && mx=$a && echo "$mx" >"$out"
        sleep 0.05; done ) &
    local sampler=$!
    "$@"
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    PEAK_KIB=$(cat "$out" 2>/dev/null || echo 0)
}

KEY=COMPAREKEY
SECRET=compare-secret-key
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET
declare -A R  # results: name -> value

# One S3 target through the whole workload. $1 = label, $2 = endpoint, $3 = server pid.
s3_workload() {
    local label=$1 ep=$2 pid=$3 j="$work/$1"
    local common=(--endpoint "$ep" --bucket compare --quiet)
    "$BENCH" s3 "${common[@]}" --create-bucket --mode put --size 4KiB --ops 1 --prefix warmup/ >/dev/null
    peak_anon "$pid" "$BENCH" s3 "${common[@]}" --mode put --size "${SIZE_MIB}MiB" --ops 1 \
        --concurrency 1 --objects 1 --prefix big/ --json "$j-put.json" >/dev/null
    R[$label.put]=$(json "$j-put.json" 'd["mib_per_s"]'); R[$label.put_rss]=$((PEAK_KIB / 1024))
    "$BENCH" s3 "${common[@]}" --mode multipart --size "${SIZE_MIB}MiB" --part-size 64MiB --ops 1 \
        --concurrency 4 --objects 1 --prefix mp/ --json "$j-mp.json" >/dev/null
    R[$label.mp]=$(json "$j-mp.json" 'd["mib_per_s"]')
    # First read fills the gateway's cache; the measured reads are warm.
    "$BENCH" s3 "${common[@]}" --mode get --no-prepare --size "${SIZE_MIB}MiB" --ops 1 \
        --concurrency 1 --objects 1 --prefix big/ --json "$j-cold.json" >/dev/null
    R[$label.get_cold]=$(json "$j-cold.json" 'd["mib_per_s"]')
    peak_anon "$pid" "$BENCH" s3 "${common[@]}" --mode get --no-prepare --size "${SIZE_MIB}MiB" --ops 3 \
        --concurrency 1 --objects 1 --prefix big/ --verify --json "$j-get.json" >/dev/null
    R[$label.get]=$(json "$j-get.json" 'd["mib_per_s"]'); R[$label.get_rss]=$((PEAK_KIB / 1024))
    "$BENCH" s3 "${common[@]}" --mode put --size 4KiB --concurrency 64 --duration "${SMALL_SECS}s" \
        --objects 100000 --prefix small/ --json "$j-sput.json" >/dev/null
    R[$label.sput]=$(json "$j-sput.json" 'd["ops_per_s"]'); R[$label.sput_p99]=$(json "$j-sput.json" 'd["latency_ms"]["p99"]')
    "$BENCH" s3 "${common[@]}" --mode get --size 4KiB --concurrency 64 --duration "${SMALL_SECS}s" \
        --objects 512 --prefix smallget/ --verify --json "$j-sget.json" >/dev/null
    R[$label.sget]=$(json "$j-sget.json" 'd["ops_per_s"]'); R[$label.sget_p99]=$(json "$j-sget.json" 'd["latency_ms"]["p99"]')
}

echo "== raw limits"
src=/dev/shm/hb-compare-$$.bin
[ -d /dev/shm ] || src="$work/src.bin"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$src"
trap 'rm -f "$src"; bench_cleanup' EXIT
mbs() { "$VENV/bin/python" -c "import sys; print(round($SIZE_MIB * 1048576 / 1048576 / float(sys.argv[1]), 1))" "$1"; }
t0=$(date +%s.%N); dd if="$src" of=/dev/null bs=1M status=none; t1=$(date +%s.%N)
R[raw.copy]=$(mbs "$(echo "$t1 - $t0" | bc)")
t0=$(date +%s.%N); b3sum --num-threads 1 "$src" >/dev/null; t1=$(date +%s.%N)
R[raw.blake3]=$(mbs "$(echo "$t1 - $t0" | bc)")
R[raw.tcp]=$("$VENV/bin/python" - "$src" <<'PY'
import socket, sys, threading, time
path = sys.argv[1]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def send():
    c, _ = srv.accept()
    with open(path, "rb") as f:
        c.sendfile(f)
    c.close()
threading.Thread(target=send, daemon=True).start()
cli = socket.create_connection(srv.getsockname())
buf = bytearray(1 << 20); view = memoryview(buf); n = 0
t = time.perf_counter()
while True:
    k = cli.recv_into(view)
    if not k:
        break
    n += k
print(round(n / 1048576 / (time.perf_counter() - t), 1))
PY
)

echo "== HugBucket (serve, embedded hub)"
port=$(free_port); admin=$(free_port)
"$HB" serve --data-dir "$work/hb" --mode s3 --s3-listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" --access-key-id "$KEY" --secret-access-key "$SECRET" \
    >"$work/hb.log" 2>&1 &
hb_pid=$!; pids+=("$hb_pid")
wait_http "http://127.0.0.1:$port/health"
s3_workload hugbucket "http://127.0.0.1:$port" "$hb_pid"
# The object HugBucket stored, read back: the exact bytes hf_xet uploads below.
curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$KEY:$SECRET" \
    -H x-amz-content-sha256:UNSIGNED-PAYLOAD -o "$src" "http://127.0.0.1:$port/compare/big/0" \
    || "$BENCH" s3 --endpoint "http://127.0.0.1:$port" --bucket compare --mode list --ops 1 --prefix big/
kill "$hb_pid"; wait "$hb_pid" 2>/dev/null || true

echo "== hf_xet (huggingface_hub) to a fresh embedded hub"
start_hub "$work/hub2"
pids+=("$HUB_PID")
HF_ENDPOINT="$HF_ENDPOINT" HF_TOKEN="$HF_TOKEN" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 WORK="$work" SRC="$src" \
"$VENV/bin/python" - >"$work/hfxet.txt" <<'PY'
import filecmp, os, shutil, time
work, src = os.environ["WORK"], os.environ["SRC"]
os.environ["HF_HOME"] = os.path.join(work, "hf_up")
from huggingface_hub import HfApi
api = HfApi()
api.create_bucket("hugbucket/compare", exist_ok=True)
size = os.path.getsize(src)
t = time.perf_counter()
api.batch_bucket_files("hugbucket/compare", add=[(src, "big.bin")])
print("put", size / 1048576 / (time.perf_counter() - t))
best = 0.0
for i in range(3):
    os.environ["HF_HOME"] = os.path.join(work, f"hf_dl{i}")
    os.environ["HF_XET_CACHE"] = os.path.join(work, f"hf_dl{i}", "xet")
    dest = os.path.join(work, f"dl{i}", "big.bin")
    t = time.perf_counter()
    api.download_bucket_files("hugbucket/compare", [("big.bin", dest)])
    best = max(best, size / 1048576 / (time.perf_counter() - t))
    assert filecmp.cmp(dest, src, shallow=False)
    shutil.rmtree(os.path.dirname(dest)); shutil.rmtree(os.environ["HF_HOME"])
print("get", best)
PY
R[hfxet.put]=$(awk '$1=="put"{printf "%.1f", $2}' "$work/hfxet.txt")
R[hfxet.get]=$(awk '$1=="get"{printf "%.1f", $2}' "$work/hfxet.txt")

echo "== original Python HugBucket"
if "$VENV/bin/pip" download --quiet --no-deps -d "$work/orig" hugbucket >/dev/null 2>&1; then
    ORIGINAL="downloaded but not wired into this script yet"
else
    ORIGINAL="not run: not on PyPI and its source is not reachable from this machine"
fi

echo "== s3s-fs (local disk, no Xet)"
mkdir -p "$work/s3sfs"
port=$(free_port)
"$S3SFS_BIN" --host 127.0.0.1 --port "$port" --access-key "$KEY" --secret-key "$SECRET" \
    "$work/s3sfs" >"$work/s3sfs.log" 2>&1 &
sf_pid=$!; pids+=("$sf_pid")
wait_http "http://127.0.0.1:$port/"
s3_workload s3sfs "http://127.0.0.1:$port" "$sf_pid"
kill "$sf_pid"; wait "$sf_pid" 2>/dev/null || true
rm -rf "$work/s3sfs"

ftp_line="not run (FTP=0)"
if [ "${FTP:-1}" != 0 ]; then
    echo "== FTP: bench/ftp_vsftpd.sh (RUNS=2)"
    RUNS=2 HUGBUCKET_BIN="$HB" bash "$ROOT/bench/ftp_vsftpd.sh" "$SIZE_MIB" >"$work/ftp.txt" 2>&1 || true
    ftp_line="$(grep -E 'RETR warm / vsftpd RETR|STOR / vsftpd STOR' "$work/ftp.txt" | tr -s ' ' | paste -sd ';' || true)"
    [ -n "$ftp_line" ] || ftp_line="failed: $(tail -3 "$work/ftp.txt" | paste -sd ' ')"
fi

ratio() { "$VENV/bin/python" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}x' if b else '-')" "$1" "$2"; }
verdict() { "$VENV/bin/python" -c "import sys; print('met' if float(sys.argv[1]) $2 float(sys.argv[2]) else '**missed**')" "$1" "$3"; }

report() {
    echo "## compare.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname)"
    echo
    echo "Machine: $(uname -srm), $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo),"
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Object: ${SIZE_MIB} MiB of random bytes;"
    echo "small objects: 4 KiB, concurrency 64, ${SMALL_SECS} s. Client: hugbucket-bench (S3), huggingface_hub + hf_xet."
    echo
    echo "| workload | HugBucket | hf_xet | s3s-fs | HB / hf_xet | HB / s3s-fs |"
    echo "|---|---|---|---|---|---|"
    echo "| PUT ${SIZE_MIB} MiB single (MiB/s) | ${R[hugbucket.put]} | ${R[hfxet.put]} | ${R[s3sfs.put]} | $(ratio "${R[hugbucket.put]}" "${R[hfxet.put]}") | $(ratio "${R[hugbucket.put]}" "${R[s3sfs.put]}") |"
    echo "| PUT ${SIZE_MIB} MiB multipart 64 MiB parts (MiB/s) | ${R[hugbucket.mp]} | ${R[hfxet.put]} | ${R[s3sfs.mp]} | $(ratio "${R[hugbucket.mp]}" "${R[hfxet.put]}") | $(ratio "${R[hugbucket.mp]}" "${R[s3sfs.mp]}") |"
    echo "| GET ${SIZE_MIB} MiB cold (MiB/s) | ${R[hugbucket.get_cold]} | — | ${R[s3sfs.get_cold]} | | |"
    echo "| GET ${SIZE_MIB} MiB warm (MiB/s) | ${R[hugbucket.get]} | ${R[hfxet.get]} | ${R[s3sfs.get]} | $(ratio "${R[hugbucket.get]}" "${R[hfxet.get]}") | $(ratio "${R[hugbucket.get]}" "${R[s3sfs.get]}") |"
    echo "| 4 KiB PUT ops/s (p99 ms) | ${R[hugbucket.sput]} (${R[hugbucket.sput_p99]}) | — | ${R[s3sfs.sput]} (${R[s3sfs.sput_p99]}) | | $(ratio "${R[hugbucket.sput]}" "${R[s3sfs.sput]}") |"
    echo "| 4 KiB GET ops/s (p99 ms) | ${R[hugbucket.sget]} (${R[hugbucket.sget_p99]}) | — | ${R[s3sfs.sget]} (${R[s3sfs.sget_p99]}) | | $(ratio "${R[hugbucket.sget]}" "${R[s3sfs.sget]}") |"
    echo "| peak RssAnon during PUT / GET (MiB) | ${R[hugbucket.put_rss]} / ${R[hugbucket.get_rss]} | | ${R[s3sfs.put_rss]} / ${R[s3sfs.get_rss]} | | |"
    echo
    echo "Original Python HugBucket: $ORIGINAL."
    echo
    echo "Raw limits (same run): memory copy ${R[raw.copy]} MiB/s, one-shot BLAKE3 (1 thread) ${R[raw.blake3]} MiB/s,"
    echo "loopback TCP ${R[raw.tcp]} MiB/s. HugBucket PUT = $(ratio "${R[hugbucket.put]}" "${R[raw.blake3]}") of one-shot BLAKE3;"
    echo "GET warm = $(ratio "${R[hugbucket.get]}" "${R[raw.tcp]}") of loopback TCP."
    echo
    echo "FTP (bench/ftp_vsftpd.sh, its own results file has the details): $ftp_line"
    echo
    echo "| target | value | verdict |"
    echo "|---|---|---|"
    echo "| PUT single >= 1.2x hf_xet | $(ratio "${R[hugbucket.put]}" "${R[hfxet.put]}") | $(verdict "${R[hugbucket.put]}" '>=' "$("$VENV/bin/python" -c "print(1.2*${R[hfxet.put]})")") |"
    echo "| PUT multipart >= 1.2x hf_xet | $(ratio "${R[hugbucket.mp]}" "${R[hfxet.put]}") | $(verdict "${R[hugbucket.mp]}" '>=' "$("$VENV/bin/python" -c "print(1.2*${R[hfxet.put]})")") |"
    echo "| GET warm >= 1.0x hf_xet | $(ratio "${R[hugbucket.get]}" "${R[hfxet.get]}") | $(verdict "${R[hugbucket.get]}" '>=' "${R[hfxet.get]}") |"
    echo "| GET warm >= 50% s3s-fs | $(ratio "${R[hugbucket.get]}" "${R[s3sfs.get]}") | $(verdict "${R[hugbucket.get]}" '>=' "$("$VENV/bin/python" -c "print(0.5*${R[s3sfs.get]})")") |"
    echo "| 4 KiB PUT >= 50% s3s-fs | $(ratio "${R[hugbucket.sput]}" "${R[s3sfs.sput]}") | $(verdict "${R[hugbucket.sput]}" '>=' "$("$VENV/bin/python" -c "print(0.5*${R[s3sfs.sput]})")") |"
    echo "| 4 KiB GET >= 50% s3s-fs | $(ratio "${R[hugbucket.sget]}" "${R[s3sfs.sget]}") | $(verdict "${R[hugbucket.sget]}" '>=' "$("$VENV/bin/python" -c "print(0.5*${R[s3sfs.sget]})")") |"
    echo "| 4 KiB p99 < 50 ms (PUT / GET) | ${R[hugbucket.sput_p99]} / ${R[hugbucket.sget_p99]} | $(verdict "$("$VENV/bin/python" -c "print(max(${R[hugbucket.sput_p99]}, ${R[hugbucket.sget_p99]}))")" '<' 50) |"
    local rss_max=${R[hugbucket.put_rss]}
    [ "${R[hugbucket.get_rss]}" -gt "$rss_max" ] && rss_max=${R[hugbucket.get_rss]}
    echo "| peak RSS < 300 MiB (PUT / GET) | ${R[hugbucket.put_rss]} / ${R[hugbucket.get_rss]} | $(verdict "$rss_max" '<' 300) |"
    echo
}
report | tee -a "$RESULTS"
echo "== appended to $RESULTS"
