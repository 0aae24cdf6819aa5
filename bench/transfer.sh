#!/usr/bin/env bash
# Large transfers, HugBucket against the real client on the same hub (performance issue):
#
#   - one `hugbucket hub` process (the hub, separate, so the gateway's own cost shows),
#   - `hugbucket serve` talking to it over HTTP (HF_ENDPOINT + HF_TOKEN), S3 on loopback,
#     driven by curl (PUT from a file, GET to /dev/null),
#   - huggingface_hub + hf_xet uploading and downloading files of the same size to the
#     same hub (a fresh HF_HOME per download, so nothing comes from its local cache).
#
# For each size and round, interleaved: hf_xet upload, S3 PUT, hf_xet download, cold S3
# GET (first read after the PUT: the chunk cache does not hold the object yet), warm S3
# GET (second read). Every object is fresh random data. The serve process's CPU time
# (utime + stime from /proc) is read around each S3 transfer and reported per GiB; its
# peak RssAnon is sampled throughout. The median of the rounds is reported, with the
# ratios to hf_xet and the issue's targets, and appended to
# bench/results/<date>-<host>-transfer.md.
#
# Usage: bench/transfer.sh
# Env:   SIZES="512 1024"   object sizes in MiB
#        ROUNDS=3           rounds per size (the median is reported)
#        RUNTIME=glommio    serve --runtime
#        PERF=0             1: `perf record -g` the serve process during the last round's
#                           cold GET of the largest size (report in $PERF_OUT)
#        VENV=path          Python venv with huggingface_hub + hf_xet (default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES="${SIZES:-512 1024}"
ROUNDS="${ROUNDS:-3}"
RUNTIME="${RUNTIME:-glommio}"
RESULTS="${RESULTS:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-$(hostname)-transfer.md}"
PERF_OUT="${PERF_OUT:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-$(hostname)-cold-get-profile.txt}"

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_workdir hb-transfer
bench_binaries
bench_venv huggingface_hub hf_xet

KEY=TRANSFERKEY
SECRET=transfer-secret-key


# Samples the peak RssAnon (KiB) of process $1 into $work/peak until stopped.
start_sampler() {
    ( mx=0; while kill -0 "$1" 2>/dev/null; do
        a=$(awk '/^RssAnon/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
        if [ "${a:-0}" -gt "$mx" ]; then mx=$a; echo "$mx" >"$work/peak"; fi
        sleep 0.05; done ) &
    SAMPLER=$!
}

start_hub "$work/hub"
pids+=("$HUB_PID")
port=$(free_port)
HF_ENDPOINT="$HF_ENDPOINT" HF_TOKEN="$HF_TOKEN" "$HB" serve --data-dir "$work/serve" \
    --mode s3 --runtime "$RUNTIME" --s3-listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$(free_port)" --access-key-id "$KEY" \
    --secret-access-key "$SECRET" >"$work/serve.log" 2>&1 &
SERVE=$!; pids+=("$SERVE")
EP="http://127.0.0.1:$port"
wait_http "$EP/health"
start_sampler "$SERVE"; pids+=("$SAMPLER")

s3() { # curl arguments...; prints seconds taken
    curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$KEY:$SECRET" \
        -H x-amz-content-sha256:UNSIGNED-PAYLOAD -w '%{time_total}\n' "$@"
}
s3 -X PUT -o /dev/null "$EP/transfer" >/dev/null

# The hf_xet side: a small server process reading commands on stdin, so that Python start
# and imports stay out of the timings.
mkfifo "$work/py.in"
cat >"$work/hfxet.py" <<'PY'
import filecmp, os, shutil, sys, time
work = os.environ["WORK"]
os.environ["HF_HOME"] = os.path.join(work, "hf_up")
from huggingface_hub import HfApi
api = HfApi()
api.create_bucket("hugbucket/transfer", exist_ok=True)
print("ready", flush=True)
for line in sys.stdin:
    op, src, name = line.split()
    t = time.perf_counter()
    if op == "up":
        api.batch_bucket_files("hugbucket/transfer", add=[(src, name)])
        print(time.perf_counter() - t, flush=True)
    else:
        home = os.path.join(work, "hf_dl")
        os.environ["HF_HOME"] = home
        os.environ["HF_XET_CACHE"] = os.path.join(home, "xet")
        dest = os.path.join(home, "out", name)
        api.download_bucket_files("hugbucket/transfer", [(name, dest)])
        took = time.perf_counter() - t
        assert filecmp.cmp(dest, src, shallow=False), "hf_xet download differs"
        shutil.rmtree(home)
        print(took, flush=True)
PY
HF_ENDPOINT="$HF_ENDPOINT" HF_TOKEN="$HF_TOKEN" HF_HUB_DISABLE_TELEMETRY=1 \
HF_HUB_DISABLE_PROGRESS_BARS=1 WORK="$work" \
"$VENV/bin/python" -u "$work/hfxet.py" <"$work/py.in" >"$work/py.out" 2>"$work/py.err" &
PY_PID=$!; pids+=("$PY_PID")
exec 3>"$work/py.in"
py() { echo "$1 $2 $3" >&3; local n; n=$(($(wc -l <"$work/py.out") + 1))
    for _ in $(seq 6000); do [ "$(wc -l <"$work/py.out")" -ge "$n" ] && break
        kill -0 "$PY_PID" 2>/dev/null || { cat "$work/py.err"; return 1; }; sleep 0.05; done
    sed -n "${n}p" "$work/py.out"; }
for _ in $(seq 600); do grep -q ready "$work/py.out" 2>/dev/null && break
    kill -0 "$PY_PID" 2>/dev/null || { cat "$work/py.err"; exit 1; }; sleep 0.1; done

declare -A V  # "<size>.<metric>" -> space-separated values, one per round
add() { V[$1]="${V[$1]:-} $2"; }
mibs() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }
per_gib() { awk -v c="$1" -v m="$2" 'BEGIN { printf "%.2f", c / (m / 1024) }'; }

perf_pid=""
for mib in $SIZES; do
    for round in $(seq "$ROUNDS"); do
        echo "== ${mib} MiB, round $round"
        src="$work/src-$mib-$round.bin"
        head -c "$((mib << 20))" /dev/urandom >"$src"
        add "$mib.hfxet_put" "$(mibs "$mib" "$(py up "$src" "f$mib-$round")")"

        key="o$mib-$round"
        c0=$(cpu_seconds "$SERVE")
        t=$(s3 -T "$src" -o /dev/null "$EP/transfer/$key")
        c1=$(cpu_seconds "$SERVE")
        add "$mib.put" "$(mibs "$mib" "$t")"
        add "$mib.put_cpu" "$(per_gib "$(echo "$c1 - $c0" | bc)" "$mib")"

        add "$mib.hfxet_get" "$(mibs "$mib" "$(py down "$src" "f$mib-$round")")"

        if [ "${PERF:-0}" = 1 ] && [ "$round" = "$ROUNDS" ] && [ "$mib" = "${SIZES##* }" ]; then
            perf record -F 499 -g -p "$SERVE" -o "$work/perf.data" 2>/dev/null &
            perf_pid=$!; sleep 0.5
        fi
        c0=$(cpu_seconds "$SERVE")
        t=$(s3 -o "$work/got.bin" "$EP/transfer/$key")
        c1=$(cpu_seconds "$SERVE")
        if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
        cmp -s "$src" "$work/got.bin" || { echo "cold GET of $key differs"; exit 1; }
        add "$mib.cold" "$(mibs "$mib" "$t")"
        add "$mib.cold_cpu" "$(per_gib "$(echo "$c1 - $c0" | bc)" "$mib")"

        c0=$(cpu_seconds "$SERVE")
        t=$(s3 -o /dev/null "$EP/transfer/$key")
        c1=$(cpu_seconds "$SERVE")
        add "$mib.warm" "$(mibs "$mib" "$t")"
        add "$mib.warm_cpu" "$(per_gib "$(echo "$c1 - $c0" | bc)" "$mib")"
        rm -f "$src" "$work/got.bin"
    done
done
exec 3>&-
peak_mib=$(( $(cat "$work/peak" 2>/dev/null || echo 0) / 1024 ))

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
check() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "**missed**" }'; }

report() {
    echo "## transfer.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname)"
    echo
    echo "Machine: $(uname -sr) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
    echo "hugbucket $("$HB" --version | awk '{print $2}') (commit $(git -C "$ROOT" rev-parse --short HEAD)), serve --runtime $RUNTIME,"
    echo "hub in a separate process; hf_xet $("$VENV/bin/python" -c 'import hf_xet, importlib.metadata as m; print(m.version("hf_xet"))'),"
    echo "huggingface_hub $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("huggingface_hub"))'). S3 client: curl."
    echo "Median of $ROUNDS interleaved rounds (all rounds in brackets). MiB/s; CPU = serve process CPU-s per GiB."
    echo
    echo "| size | S3 PUT | hf_xet upload | PUT / hf_xet | cold GET | hf_xet download | cold / hf_xet | warm GET | warm / hf_xet | CPU PUT | CPU cold | CPU warm |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    local mib m
    for mib in $SIZES; do
        declare -A M=()
        for m in put hfxet_put cold hfxet_get warm put_cpu cold_cpu warm_cpu; do
            M[$m]=$(median "${V[$mib.$m]}")
        done
        echo "| $mib MiB | ${M[put]} [${V[$mib.put]# }] | ${M[hfxet_put]} [${V[$mib.hfxet_put]# }] | $(ratio "${M[put]}" "${M[hfxet_put]}") | ${M[cold]} [${V[$mib.cold]# }] | ${M[hfxet_get]} [${V[$mib.hfxet_get]# }] | $(ratio "${M[cold]}" "${M[hfxet_get]}") | ${M[warm]} [${V[$mib.warm]# }] | $(ratio "${M[warm]}" "${M[hfxet_get]}") | ${M[put_cpu]} | ${M[cold_cpu]} | ${M[warm_cpu]} |"
        T_put+=("$(ratio "${M[put]}" "${M[hfxet_put]}")")
        T_cold+=("$(ratio "${M[cold]}" "${M[hfxet_get]}")")
        T_warm+=("$(ratio "${M[warm]}" "${M[hfxet_get]}")")
        T_pcpu+=("${M[put_cpu]}"); T_ccpu+=("${M[cold_cpu]}")
    done
    echo
    echo "Peak RssAnon of serve over the whole run: $peak_mib MiB."
    echo
    echo "| target | values ($SIZES MiB) | verdict |"
    echo "|---|---|---|"
    targets "S3 PUT >= 2.5x hf_xet upload" ">=" 2.5 "${T_put[@]}"
    targets "cold GET >= 2x hf_xet download" ">=" 2 "${T_cold[@]}"
    targets "warm GET >= 3x hf_xet download" ">=" 3 "${T_warm[@]}"
    targets "serve CPU-s/GiB PUT <= 1.3" "<=" 1.3 "${T_pcpu[@]}"
    targets "serve CPU-s/GiB cold GET <= 1.0" "<=" 1.0 "${T_ccpu[@]}"
}
targets() { # label op threshold values...
    local label=$1 op=$2 th=$3 v all=met; shift 3
    for v in "$@"; do [ "$(check "${v%x}" "$op" "$th")" = met ] || all="**missed**"; done
    echo "| $label | $* | $all |"
}
T_put=(); T_cold=(); T_warm=(); T_pcpu=(); T_ccpu=()

mkdir -p "$(dirname "$RESULTS")"
report | tee -a "$RESULTS"
echo >>"$RESULTS"
if [ -f "$work/perf.data" ]; then
    perf report -i "$work/perf.data" --no-children --percent-limit 1 --stdio 2>/dev/null \
        | grep -v '^$' | head -150 >"$PERF_OUT"
    echo "profile of the cold GET: $PERF_OUT"
fi
echo "appended to $RESULTS"
