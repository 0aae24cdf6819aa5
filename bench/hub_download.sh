#!/usr/bin/env bash
# Download throughput of the embedded hub: uploads one random file with huggingface_hub +
# hf_xet to a `hugbucket hub` on loopback, then times `download_bucket_files` of it (hub
# data page-cache hot, fresh client cache each run so every byte comes from the hub), and
# prints MB/s (target: >= 500 MB/s for 1 GiB). Appends a dated section to
# bench/results/<date>-<host>.md.
#
# Usage: bench/hub_download.sh [SIZE_MIB]        (default 1024 = 1 GiB)
# Env:   VENV=/path/to/venv   (default <repo>/.venv; created with huggingface_hub + hf_xet if missing)
#        RUNS=3               (timed downloads; best and median reported)
#        HUGBUCKET_BIN=...    (use this binary instead of building target/release/hugbucket)
#        TMPDIR=...           (where the data dir and the source file go)
#        DEST_DIR=...         (where downloads are written; default /dev/shm when present, so
#                              that the local disk's write speed is not what is measured)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
VENV="${VENV:-$ROOT/.venv}"
RUNS="${RUNS:-3}"
RESULTS_DIR="$ROOT/bench/results"

work="$(mktemp -d "${TMPDIR:-/tmp}/hub_download.XXXXXX")"
if [ -z "${DEST_DIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then DEST_DIR=/dev/shm; fi
dest_root="$(mktemp -d "${DEST_DIR:-$work}/hub_download_dl.XXXXXX")"
HUB_PID=""
cleanup() {
    if [ -n "$HUB_PID" ]; then kill "$HUB_PID" 2>/dev/null || true; wait "$HUB_PID" 2>/dev/null || true; fi
    rm -rf "$work" "$dest_root"
}
trap cleanup EXIT

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_binaries
echo "== python venv $VENV"
bench_venv huggingface_hub hf_xet

echo "== starting hub"
start_hub "$work/data"

echo "== creating $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/random.bin"

export HF_ENDPOINT HF_TOKEN HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export WORK="$work" DEST_ROOT="$dest_root" RUNS
"$VENV/bin/python" - <<'EOF' | tee "$work/result.txt"
import os, time, statistics, filecmp, shutil, json, urllib.request
work = os.environ["WORK"]
runs = int(os.environ["RUNS"])
def api_in(home):
    os.environ["HF_HOME"] = home
    from huggingface_hub import HfApi
    return HfApi()
api = api_in(os.path.join(work, "hf_home_up"))
api.create_bucket("hugbucket/bench", exist_ok=True)
t = time.perf_counter()
api.batch_bucket_files("hugbucket/bench", add=[(os.path.join(work, "random.bin"), "random.bin")])
up = time.perf_counter() - t
size = os.path.getsize(os.path.join(work, "random.bin"))
def stats():
    req = urllib.request.Request(os.environ["HF_ENDPOINT"] + "/api/_hugbucket/stats",
                                 headers={"Authorization": "Bearer " + os.environ["HF_TOKEN"]})
    return json.load(urllib.request.urlopen(req))
# The hub's xorbs are in the page cache right after the upload; read once more to be sure.
for f in os.listdir(os.path.join(work, "data", "xorbs")):
    with open(os.path.join(work, "data", "xorbs", f), "rb") as fh:
        while fh.read(1 << 24):
            pass
times = []
for i in range(runs):
    dest = os.path.join(os.environ["DEST_ROOT"], f"dl{i}")
    # hf_xet keeps caches under HF_HOME: a fresh one per run (the env is read per session).
    os.environ["HF_HOME"] = os.path.join(work, f"hf_home_dl{i}")
    os.environ["HF_XET_CACHE"] = os.path.join(work, f"hf_home_dl{i}", "xet")
    before = stats()["xorb_range_bytes"]
    t = time.perf_counter()
    api.download_bucket_files("hugbucket/bench", [("random.bin", os.path.join(dest, "random.bin"))])
    times.append(time.perf_counter() - t)
    served = stats()["xorb_range_bytes"] - before
    assert served >= size, f"hub served only {served} of {size} bytes"
    assert filecmp.cmp(os.path.join(dest, "random.bin"), os.path.join(work, "random.bin"), shallow=False)
    shutil.rmtree(dest)
mb = size / 1e6
print(f"size_bytes={size}")
print(f"upload_MBps={mb / up:.0f}")
print(f"download_MBps_best={mb / min(times):.0f}")
print(f"download_MBps_median={mb / statistics.median(times):.0f}")
print("download_seconds=" + ",".join(f"{x:.2f}" for x in times))
EOF

mkdir -p "$RESULTS_DIR"
out="$RESULTS_DIR/$(date -u +%Y-%m-%d)-$(hostname).md"
{
    echo
    echo "## hub_download $(date -u +%Y-%m-%dT%H:%M:%SZ) (${SIZE_MIB} MiB, $RUNS runs, $HB, downloads to ${DEST_DIR:-$work}, load: $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo '```'
    cat "$work/result.txt"
    echo '```'
} >>"$out"
echo "== appended to $out"
