#!/usr/bin/env bash
# Compares `hugbucket hash` with hf_xet.hash_files (and b3sum when installed) on one random
# file, checks that the Xet hashes agree, prints MB/s and ratios, and appends a dated
# section to bench/results/<date>-<host>.md.
#
# Usage: bench/hash_compare.sh [SIZE_MIB]        (default 1024 = 1 GiB)
# Env:   VENV=/path/to/venv   (default <repo>/.venv; created, and hf_xet installed, if missing)
#        RUNS=3               (best of RUNS timed runs per tool; the file is page-cache hot)
#        TMPDIR=...           (where the test file is created)
#        HB_BIN=path          (use this hugbucket binary instead of building one)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
VENV="${VENV:-$ROOT/.venv}"
RUNS="${RUNS:-3}"
RESULTS_DIR="$ROOT/bench/results"

work="$(mktemp -d "${TMPDIR:-/tmp}/hash_compare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
file="$work/random.bin"

if [ -n "${HB_BIN:-}" ]; then
    HB="$HB_BIN"
else
    echo "== building hugbucket (release)"
    (cd "$ROOT" && cargo build --release -p hugbucket --quiet)
    HB="$ROOT/target/release/hugbucket"
fi

echo "== python venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import hf_xet' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet hf_xet
fi
HF_XET_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("hf_xet"))')"

echo "== creating $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$file"
bytes=$(stat -c %s "$file")
cat "$file" >/dev/null # page cache hot for every tool

now() { date +%s.%N; }

# best_of CMD... : runs CMD $RUNS times, prints "<best seconds> <last stdout>".
best_of() {
    local best="" out t0 t1 dt
    for _ in $(seq "$RUNS"); do
        t0=$(now)
        out="$("$@")"
        t1=$(now)
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
        if [ -z "$best" ] || awk -v d="$dt" -v b="$best" 'BEGIN { exit !(d < b) }'; then best=$dt; fi
    done
    echo "$best $out"
}

# Timed inside Python (interpreter start and import excluded): best of $RUNS calls.
hf_xet_best() {
    "$VENV/bin/python" - "$1" "$RUNS" <<'EOF'
import sys, time, hf_xet
path, runs = sys.argv[1], int(sys.argv[2])
best, digest = None, None
for _ in range(runs):
    t = time.perf_counter()
    # hash_files(file_paths: list[str]) -> list[PyXetUploadInfo(hash, file_size, sha256)]
    digest = hf_xet.hash_files([path])[0].hash
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)
print(f"{best:.6f} {digest}")
EOF
}

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== timing (best of $RUNS)"
read -r t_hb h_hb _ < <(best_of "$HB" hash "$file")
echo "hugbucket hash: ${t_hb}s $h_hb"
read -r t_hf h_hf < <(hf_xet_best "$file")
echo "hf_xet.hash_files: ${t_hf}s $h_hf"

have_b3=0
if command -v b3sum >/dev/null; then
    have_b3=1
    read -r t_b1 h_b1 _ < <(best_of b3sum --num-threads 1 "$file")
    read -r t_bn h_bn _ < <(best_of b3sum "$file")
    echo "b3sum (1 thread): ${t_b1}s; b3sum (default threads): ${t_bn}s"
fi

if [ "$h_hb" != "$h_hf" ]; then
    echo "HASH MISMATCH: hugbucket $h_hb vs hf_xet $h_hf" >&2
    agree="NO (hugbucket $h_hb, hf_xet $h_hf)"
    status=1
else
    agree="yes ($h_hb)"
    status=0
fi

mbps() { awk -v n="$bytes" -v t="$1" 'BEGIN { printf "%.0f", n / t / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

table="| tool | seconds | MB/s | vs hf_xet.hash_files |
|---|---|---|---|
| hugbucket hash | $(printf %.3f "$t_hb") | $(mbps "$t_hb") | $(ratio "$t_hb" "$t_hf")x |
| hf_xet.hash_files ($HF_XET_VERSION) | $(printf %.3f "$t_hf") | $(mbps "$t_hf") | 1.00x |"
if [ "$have_b3" = 1 ]; then
    table="$table
| b3sum --num-threads 1 (plain BLAKE3, no CDC) | $(printf %.3f "$t_b1") | $(mbps "$t_b1") | $(ratio "$t_b1" "$t_hf")x |
| b3sum (default threads) | $(printf %.3f "$t_bn") | $(mbps "$t_bn") | $(ratio "$t_bn" "$t_hf")x |"
fi
extra=""
if [ "$have_b3" = 1 ]; then
    extra="hugbucket hash / b3sum single-thread: $(ratio "$t_hb" "$t_b1")x; hf_xet.hash_files / b3sum single-thread: $(ratio "$t_hf" "$t_b1")x"
fi

echo
echo "$table"
echo "hashes agree: $agree"
[ -n "$extra" ] && echo "$extra"

mkdir -p "$RESULTS_DIR"
out="$RESULTS_DIR/$(date -u +%F)-$(hostname -s).md"
{
    echo
    echo "## hash_compare.sh — $(date -u '+%F %T UTC')"
    echo
    echo "- machine: \`$(uname -a)\`"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores visible; load average (1/5/15 min) before timing: $load_start, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- input: $SIZE_MIB MiB from /dev/urandom, page-cache hot, best of $RUNS runs; hugbucket and b3sum: wall clock of the whole process; hf_xet: the hash_files call timed inside Python"
    echo "- hashes agree: $agree"
    echo
    echo "$table"
    [ -n "$extra" ] && { echo; echo "$extra"; }
} >>"$out"
echo "appended to $out"
exit $status
