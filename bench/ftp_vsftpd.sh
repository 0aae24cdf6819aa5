#!/usr/bin/env bash
# FTP throughput of `hugbucket serve --mode ftp` (embedded hub, fresh data dir) against
# vsftpd on the same machine, same client (curl), same 1 GiB files, in one run:
#
#   (a) STOR to vsftpd (local disk)         (b) RETR from vsftpd (page cache warm)
#   (c) STOR to HugBucket (distinct random data each run, so nothing deduplicates)
#   (d) RETR from HugBucket: cold (first read of an object, chunk cache empty) and warm
#       (second read)
#
# Best of RUNS for each. Prints MB/s (1 MB = 10^6 bytes, size / curl's time_total), the
# ratios against vsftpd next to the targets (HugBucket RETR warm >= 50% of vsftpd RETR,
# STOR >= 40% of vsftpd STOR), CPU seconds of client and servers per transfer (from
# /proc/PID/stat and bash's `time`), and the serve process's peak RSS (VmHWM) during the
# STOR and the RETR phase; appends the report to bench/results/<date>-<host>-ftp.md.
#
# Usage: bench/ftp_vsftpd.sh [SIZE_MIB]        (default 1024 = 1 GiB)
# Env:   RUNS=3               (transfers per phase; best and all runs reported)
#        HUGBUCKET_BIN=...    (use this binary instead of building target/release/hugbucket)
#        TMPDIR=...           (where the files, the vsftpd root and the data dir go)
#        RESULT_FILE=...      (write the report here instead of bench/results/...)
# Needs: vsftpd (apt-get install vsftpd), curl, python3, root (vsftpd starts as root and
# drops to VSFTPD_ANON_USER, default `daemon`, for anonymous read-write access chrooted
# into a temp dir, on 127.0.0.1 only, in the foreground).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
RUNS="${RUNS:-3}"
SIZE=$((SIZE_MIB * 1024 * 1024))
RESULTS_DIR="$ROOT/bench/results"
FTP_USER=bench
FTP_PASS=bench-pass

for tool in vsftpd curl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install vsftpd curl python3)" >&2; exit 1; }
done
VSFTPD="$(command -v vsftpd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/ftp_vsftpd.XXXXXX")"
vs_pid=""
hb_pid=""
stop() {
    if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
}
cleanup() {
    stop "$vs_pid"
    stop "$hb_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

wait_port() {
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Samples the process tree under $1 every 20 ms until SIGTERM, then writes
# "<cpu seconds used by the tree meanwhile> <peak RssAnon KiB> <peak RssFile KiB>" to $2.
# vsftpd serves each session in short-lived child processes, which are not all reaped by
# their parent: so CPU is summed over every process seen, from its last sample.
cat >"$work/sampler.py" <<'PY'
import os, signal, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
last, peak = {}, [0, 0]
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return seen
def sample():
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(") ", 1)[1].split()
            key = (p, f[19])  # pid and start time: a reused pid is another process
            cpu = int(f[11]) + int(f[12])
            last[key] = cpu
        except (OSError, IndexError):
            pass
    try:
        with open(f"/proc/{root}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
                elif line.startswith("RssFile:"):
                    peak[1] = max(peak[1], int(line.split()[1]))
    except OSError:
        pass
sample()
# Processes there at the start count from now on; later ones from zero.
base = dict(last)
while not stop:
    time.sleep(0.02)
    sample()
sample()
used = sum(last[k] - base.get(k, 0) for k in last)
with open(out, "w") as fh:
    fh.write(f"{used / tick:.2f} {peak[0]} {peak[1]}\n")
PY

# A fresh file of random data.
make_random() {
    head -c "$SIZE" /dev/urandom >"$1"
}

# transfer NAME SERVER_PID CURL_ARGS...: one timed curl transfer; appends
# "name MB/s curl_cpu_s server_cpu_s server_peak_anon_kib server_peak_file_kib" to
# $work/runs.txt.
transfer() {
    local name="$1" pid="$2" sampler out
    shift 2
    python3 "$work/sampler.py" "$pid" "$work/sample.txt" &
    sampler=$!
    sleep 0.2
    out="$( { TIMEFORMAT='%U %S'; time curl -sS --fail "$@" -w '%{time_total} %{size_upload} %{size_download}\n' 2>"$work/curl.err"; } 2>&1 )" || {
        echo "curl failed ($name): $(cat "$work/curl.err")" >&2
        exit 1
    }
    # Let the server finish the session (QUIT) before the last sample.
    sleep 0.3
    kill -TERM "$sampler"
    wait "$sampler" || true
    # out: "<time_total> <up> <down>\n<user> <sys>"; sample.txt: "<cpu> <anon> <file>"
    echo "$out $(cat "$work/sample.txt")" | tr '\n' ' ' | awk -v n="$name" -v size="$SIZE" '{
        bytes = ($2 > $3) ? $2 : $3
        if (bytes != size) { printf "short transfer %s: %d of %d bytes\n", n, bytes, size > "/dev/stderr"; exit 1 }
        printf "%s %.1f %.2f %.2f %d %d\n", n, size / $1 / 1e6, $4 + $5, $6, $7, $8
    }' | tee -a "$work/runs.txt"
}

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

bench_binaries

: >"$work/runs.txt"
echo "== $SIZE_MIB MiB of random data"
make_random "$work/src.bin"

# ---------------------------------------------------------------------------------------
# vsftpd: anonymous read-write in $work/vsftpd/pub, foreground, loopback only.
# ---------------------------------------------------------------------------------------
vs_port="$(free_port)"
vs_pasv="${VSFTPD_PASV_MIN:-47100}"
mkdir -p "$work/vsftpd/pub" "$work/empty"
chmod 755 "$work/vsftpd"
# The anonymous user: vsftpd changes into its home directory before the chroot into
# anon_root, so it needs one that exists (nobody's /nonexistent does not work).
anon_user="${VSFTPD_ANON_USER:-daemon}"
chown "$anon_user" "$work/vsftpd/pub"
chmod 555 "$work/empty"
cat >"$work/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$vs_port
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
ftp_username=$anon_user
anon_root=$work/vsftpd
write_enable=YES
anon_upload_enable=YES
anon_other_write_enable=YES
anon_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$vs_pasv
pasv_max_port=$((vs_pasv + 99))
connect_from_port_20=NO
secure_chroot_dir=$work/empty
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
vsftpd_log_file=$work/vsftpd.log
dirmessage_enable=NO
use_sendfile=YES
EOF
echo "== vsftpd on 127.0.0.1:$vs_port"
"$VSFTPD" "$work/vsftpd.conf" >"$work/vsftpd.out" 2>&1 &
vs_pid=$!
wait_port "$vs_port" || { echo "vsftpd did not start:"; cat "$work/vsftpd.out"; exit 1; }
vs_url="ftp://127.0.0.1:$vs_port/pub/bench.bin"

for i in $(seq "$RUNS"); do
    rm -f "$work/vsftpd/pub/bench.bin"
    transfer "vsftpd_stor_$i" "$vs_pid" -T "$work/src.bin" "$vs_url"
done
cmp "$work/src.bin" "$work/vsftpd/pub/bench.bin"
for i in $(seq "$RUNS"); do
    transfer "vsftpd_retr_$i" "$vs_pid" -o /dev/null "$vs_url"
done
stop "$vs_pid"
vs_pid=""
rm -f "$work/vsftpd/pub/bench.bin"

# ---------------------------------------------------------------------------------------
# HugBucket: serve --mode ftp over the embedded hub, fresh data dir.
# ---------------------------------------------------------------------------------------
hb_port="$(free_port)"
hb_pasv="${HB_PASV_MIN:-47200}"
echo "== hugbucket serve --mode ftp on 127.0.0.1:$hb_port"
FTP_USERNAME="$FTP_USER" FTP_PASSWORD="$FTP_PASS" RUST_LOG="${RUST_LOG:-warn}" \
    "$HB" serve --mode ftp --ftp-listen "127.0.0.1:$hb_port" --data-dir "$work/hb" \
    --hub-listen "127.0.0.1:$(free_port)" --admin-listen "127.0.0.1:$(free_port)" \
    --ftp-passive-ports "$hb_pasv-$((hb_pasv + 99))" >"$work/hb.log" 2>&1 &
hb_pid=$!
wait_port "$hb_port" || { echo "hugbucket did not start:"; cat "$work/hb.log"; exit 1; }
hb_base="ftp://$FTP_USER:$FTP_PASS@127.0.0.1:$hb_port"
curl -sS --fail -Q "MKD /bench" "$hb_base/" -o /dev/null

reset_hwm "$hb_pid"
hwm_start="$(hwm_kib "$hb_pid")"
sums=()
for i in $(seq "$RUNS"); do
    # Distinct data for every object (the first run uses the file vsftpd got).
    if [ "$i" -gt 1 ]; then make_random "$work/src.bin"; fi
    sums+=("$(sha256sum <"$work/src.bin" | cut -d' ' -f1)")
    transfer "hugbucket_stor_$i" "$hb_pid" -T "$work/src.bin" "$hb_base/bench/o$i.bin"
done
rm -f "$work/src.bin"
hwm_stor="$(hwm_kib "$hb_pid")"
reset_hwm "$hb_pid"
for i in $(seq "$RUNS"); do
    transfer "hugbucket_retr_cold_$i" "$hb_pid" -o /dev/null "$hb_base/bench/o$i.bin"
done
for i in $(seq "$RUNS"); do
    transfer "hugbucket_retr_warm_$i" "$hb_pid" -o /dev/null "$hb_base/bench/o$i.bin"
done
hwm_retr="$(hwm_kib "$hb_pid")"
# The objects read back intact (one more warm read each, not timed).
for i in $(seq "$RUNS"); do
    got="$(curl -sS --fail "$hb_base/bench/o$i.bin" | sha256sum | cut -d' ' -f1)"
    [ "$got" = "${sums[$((i - 1))]}" ] || { echo "object o$i.bin does not read back intact" >&2; exit 1; }
done
stop "$hb_pid"
hb_pid=""

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
best() { awk -v p="$1" '$1 ~ "^"p"_[0-9]+$" && $2 > b { b = $2; l = $0 } END { print l }' "$work/runs.txt"; }
all() { awk -v p="$1" '$1 ~ "^"p"_[0-9]+$" { s = s (s ? ", " : "") $2 } END { print s }' "$work/runs.txt"; }
mbps() { best "$1" | awk '{ print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
verdict() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { print (a / b >= t) ? "met" : "**missed**" }'; }

vs_stor="$(mbps vsftpd_stor)"
vs_retr="$(mbps vsftpd_retr)"
hb_stor="$(mbps hugbucket_stor)"
hb_cold="$(mbps hugbucket_retr_cold)"
hb_warm="$(mbps hugbucket_retr_warm)"

mkdir -p "$RESULTS_DIR"
out="${RESULT_FILE:-$RESULTS_DIR/$(date -u +%Y-%m-%d)-$(hostname)-ftp.md}"
# A new file gets the title; an existing one (earlier runs, notes) gets this run appended.
if [ ! -s "$out" ]; then
    echo "# FTP benchmark: HugBucket vs vsftpd — $(date -u +%Y-%m-%d), host \`$(hostname)\`" >"$out"
fi
{
    echo
    echo "## Run $(date -u +%Y-%m-%dT%H:%M:%SZ): \`bench/ftp_vsftpd.sh $SIZE_MIB\` (RUNS=$RUNS)"
    echo
    echo "Machine: \`$(uname -srvmo)\`, CPU \"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)\","
    echo "nproc $(nproc), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "vsftpd $(dpkg-query -W -f='${Version}' vsftpd 2>/dev/null || echo '?'), curl $(curl --version | awk 'NR == 1 { print $2 }'); HugBucket \`$HB\`."
    echo
    echo "Client: curl (\`curl -T file ftp://...\` / \`curl -o /dev/null ftp://...\`), passive mode,"
    echo "loopback. MB/s = 10^6 bytes / curl's \`time_total\` (login and the final reply included)."
    echo "$SIZE_MIB MiB of /dev/urandom data per transfer; every HugBucket STOR is a new random file."
    echo "vsftpd: anonymous read-write, files on the local disk (page cache; STOR not synced),"
    echo "sendfile for RETR. HugBucket: \`serve --mode ftp\`, embedded hub, fresh data dir, chunk"
    echo "cache empty before the cold reads (a STOR does not fill it)."
    echo
    echo "CPU seconds and peak RSS are those of the best run; server CPU is the whole server"
    echo "process tree (for HugBucket that includes the embedded hub)."
    echo
    echo "| transfer | best MB/s | all runs MB/s | curl CPU s | server CPU s | server peak RssAnon MiB | server peak RssFile MiB |"
    echo "|---|---|---|---|---|---|---|"
    for p in vsftpd_stor vsftpd_retr hugbucket_stor hugbucket_retr_cold hugbucket_retr_warm; do
        best "$p" | awk -v p="$p" -v all="$(all "$p")" '{ printf "| %s | %.0f | %s | %.2f | %.2f | %.0f | %.0f |\n", p, $2, all, $3, $4, $5 / 1024, $6 / 1024 }'
    done
    echo
    echo "| ratio | value | target | |"
    echo "|---|---|---|---|"
    echo "| HugBucket RETR warm / vsftpd RETR | $(ratio "$hb_warm" "$vs_retr") | >= 50% | $(verdict "$hb_warm" "$vs_retr" 0.5) |"
    echo "| HugBucket RETR cold / vsftpd RETR | $(ratio "$hb_cold" "$vs_retr") | — | |"
    echo "| HugBucket STOR / vsftpd STOR | $(ratio "$hb_stor" "$vs_stor") | >= 40% | $(verdict "$hb_stor" "$vs_stor" 0.4) |"
    echo
    echo "Peak RSS (VmHWM) of the serve process: $((hwm_start / 1024)) MiB after start,"
    echo "$((hwm_stor / 1024)) MiB during the STOR phase, $((hwm_retr / 1024)) MiB during the RETR phase"
    echo "(peak reset between the phases through /proc/PID/clear_refs). VmHWM counts file-backed"
    echo "pages too (RssFile: mapped chunk cache and xorb files, reclaimable page cache); the"
    echo "process's own memory is RssAnon (table above, sampled every 20 ms)."
} >"$work/report.md"
cat "$work/report.md" >>"$out"
cat "$work/report.md"
echo "== appended to $out"
