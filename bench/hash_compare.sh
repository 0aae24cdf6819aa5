#!/usr/bin/env bash
# Compares `hugbucket hash` with hf_xet.hash_files (and b3sum when installed) on one random
# file, checks that the Xet hashes agree, prints MB/s and ratios, and appends a dated
# section to bench/results/<date>-<host>.md.
#
# Usage: bench/hash_compare.sh [SIZE_MIB]        (default 1024 = 1 GiB)
# Env:   VENV=/path/to/venv   (default <repo>/.venv; created, and hf_xet installed, if missing)
#        RUNS=5               (rounds; each round runs every tool once, interleaved; best
#                              time per tool is reported; the file is page-cache hot)
#        TMPDIR=...           (where the test file is created)
#        HB_BIN=path          (use this hugbucket binary instead of building one)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
VENV="${VENV:-$ROOT/.venv}"
RUNS="${RUNS:-5}"
RESULTS_DIR="$ROOT/bench/results"

work="$(mktemp -d "${TMPDIR:-/tmp}/hash_compare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
file="$work/random.bin"

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_binaries
echo "== python venv $VENV"
bench_venv hf_xet
HF_XET_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("hf_xet"))')"

echo "== creating $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$file"
bytes=$(stat -c %s "$file")
cat "$file" >/dev/null # page cache hot for every tool

now() { date +%s.%N; }

# timed CMD... : runs CMD once, prints "<seconds> <first word of its stdout>".
timed() {
    local t0 t1 out
    t0=$(now)
    out="$("$@")"
    t1=$(now)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }') ${out%% *}"
}

# One hash_files call, timed inside Python (interpreter start and import excluded).
hf_xet_once() {
    "$VENV/bin/python" - "$1" <<'EOF'
import sys, time, hf_xet
t = time.perf_counter()
# hash_files(file_paths: list[str]) -> list[PyXetUploadInfo(hash, file_size, sha256)]
digest = hf_xet.hash_files([sys.argv[1]])[0].hash
print(f"{time.perf_counter() - t:.6f} {digest}")
EOF
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

have_b3=0
command -v b3sum >/dev/null && have_b3=1

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== timing: $RUNS rounds, the tools interleaved in each round; best time per tool"
t_hb="" t_hf="" t_b1="" t_bn=""
for round in $(seq "$RUNS"); do
    read -r t h_hb < <(timed "$HB" hash "$file"); t_hb=$(min "$t_hb" "$t")
    read -r t h_hf < <(hf_xet_once "$file"); t_hf=$(min "$t_hf" "$t")
    line="round $round: hugbucket ${t_hb}s hf_xet ${t_hf}s"
    if [ "$have_b3" = 1 ]; then
        read -r t _ < <(timed b3sum --num-threads 1 "$file"); t_b1=$(min "$t_b1" "$t")
        read -r t _ < <(timed b3sum "$file"); t_bn=$(min "$t_bn" "$t")
        line="$line b3sum-1 ${t_b1}s b3sum ${t_bn}s"
    fi
    echo "$line (best so far)"
done

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
    echo "- input: $SIZE_MIB MiB from /dev/urandom, page-cache hot; $RUNS rounds with the tools interleaved, best time per tool; hugbucket and b3sum: wall clock of the whole process; hf_xet: the hash_files call timed inside Python"
    echo "- hashes agree: $agree"
    echo
    echo "$table"
    [ -n "$extra" ] && { echo; echo "$extra"; }
} >>"$out"
echo "appended to $out"
exit $status
