#!/usr/bin/env bash
# Soak benchmark (reliability issue; not part of CI): `hugbucket serve` on the embedded hub
# under 256 concurrent S3 clients mixing PUT, GET, LIST and DELETE plus 16 FTP sessions
# mixing STOR and RETR, for DURATION seconds. Every GET/RETR is verified while it runs;
# the server's RSS is sampled every 10 s; afterwards every object left in the bucket is
# read back over S3 and checked byte for byte against the generator's data format.
# Appends requests, errors and RSS over time to bench/results/<date>-<host>-soak.md.
#
# Usage: bench/soak.sh
# Env:   DURATION=600  S3_CLIENTS=256  FTP_SESSIONS=16  RUNTIME=glommio  CACHE_SIZE=1G
#        VENV=path (Python with boto3 + blake3; default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-600}"
S3_CLIENTS="${S3_CLIENTS:-256}"
FTP_SESSIONS="${FTP_SESSIONS:-16}"
RUNTIME="${RUNTIME:-glommio}"
RESULTS="$ROOT/bench/results/$(date -u +%Y-%m-%d)-$(hostname)-soak.md"
SEED=7
# Small objects: every PUT stores new content (the hub keeps all of it; nothing is
# garbage-collected), so the sizes bound the run's disk use (~3 GB in 10 min here).
S3_SIZE=4KiB-16KiB
FTP_SIZE=1MiB

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
bench_workdir hb-soak
bench_binaries hugbucket-bench
BENCH="$ROOT/target/release/hugbucket-bench"
s3=$(free_port); ftp=$(free_port); admin=$(free_port)
export AWS_ACCESS_KEY_ID=SOAKKEY AWS_SECRET_ACCESS_KEY=soak-secret FTP_USERNAME=soak FTP_PASSWORD=soak-pass
"$HB" serve --data-dir "$work/data" --mode both --runtime "$RUNTIME" \
    --s3-listen "127.0.0.1:$s3" --ftp-listen "127.0.0.1:$ftp" --admin-listen "127.0.0.1:$admin" \
    --ftp-passive-ports 48000-48999 --cache-size "${CACHE_SIZE:-1G}" >"$work/serve.log" 2>&1 &
srv=$!; pids+=("$srv")
wait_http "http://127.0.0.1:$s3/health"

rss_csv="$work/rss.csv"
echo "elapsed_s,rss_mib,anon_mib" >"$rss_csv"
(
    start=$(date +%s)
    while kill -0 "$srv" 2>/dev/null; do
        awk -v t=$(( $(date +%s) - start )) '/^VmRSS/{r=$2} /^RssAnon/{a=$2} END{printf "%d,%d,%d\n", t, r/1024, a/1024}' \
            "/proc/$srv/status" >>"$rss_csv" 2>/dev/null || true
        sleep 10
    done
) &
pids+=("$!")

echo "== soak: ${DURATION}s, $S3_CLIENTS S3 clients, $FTP_SESSIONS FTP sessions"
"$BENCH" s3 --endpoint "http://127.0.0.1:$s3" --bucket soak --create-bucket --mode mixed \
    --mix put=25,get=50,list=2,delete=23 --size "$S3_SIZE" --objects 500 --prefix s3/ \
    --concurrency "$S3_CLIENTS" --duration "${DURATION}s" --seed "$SEED" --verify --quiet \
    --json "$work/s3.json" >"$work/s3.txt" 2>&1 &
s3_load=$!
"$BENCH" ftp --port "$ftp" --dir /soak/ftp --create-dir --mode mixed --mix stor=50,retr=50 \
    --size "$FTP_SIZE" --objects 64 --sessions "$FTP_SESSIONS" --duration "${DURATION}s" \
    --seed "$SEED" --verify --quiet --json "$work/ftp.json" >"$work/ftp.txt" 2>&1 &
ftp_load=$!
s3_rc=0; ftp_rc=0
wait "$s3_load" || s3_rc=$?
wait "$ftp_load" || ftp_rc=$?

echo "== verifying every object left in the bucket"
ENDPOINT="http://127.0.0.1:$s3" SEED=$SEED S3_SIZE=$S3_SIZE FTP_SIZE=$FTP_SIZE \
PYTHONPATH="$ROOT/tests/python" "$VENV/bin/python" - >"$work/verify.txt" <<'PY'
import os
import boto3
from botocore.config import Config
from bench_data import expected_bytes, expected_size, list_keys

def parse(spec):
    units = {"KiB": 1024, "MiB": 1 << 20}
    def one(s):
        for u, m in units.items():
            if s.endswith(u):
                return int(s[:-len(u)]) * m
        return int(s)
    lo, _, hi = spec.partition("-")
    return one(lo), one(hi or lo)

s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                  config=Config(retries={"max_attempts": 1}))
seed = int(os.environ["SEED"])
checked = bad = 0
for prefix, spec in (("s3/", os.environ["S3_SIZE"]), ("ftp/", os.environ["FTP_SIZE"])):
    lo, hi = parse(spec)
    for key, size in sorted(list_keys(s3, "soak", prefix).items()):
        want = expected_bytes(seed, key, expected_size(seed, key, lo, hi))
        got = s3.get_object(Bucket="soak", Key=key)["Body"].read()
        checked += 1
        if got != want or size != len(want):
            bad += 1
            print(f"MISMATCH {key}: {len(got)} bytes, listed {size}, expected {len(want)}")
print(f"verified {checked} objects, {bad} wrong")
PY
kill -0 "$srv" 2>/dev/null && alive=yes || alive=no
panics=$(grep -c panicked "$work/serve.log" || true)

summary() {
    "$VENV/bin/python" - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ops = ", ".join(f"{k} {v['ops']}" for k, v in sorted(d["by_op"].items()))
lat = d["latency_ms"] or {}
line = (f"{d['ops']} requests ({ops}), {d['ops_per_s']:.0f}/s, {d['mib_per_s']:.1f} MiB/s, "
        f"errors {d['errors']}, p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms, "
        f"max {lat.get('max', 0):.0f} ms")
if d["errors"]:
    line += "; first errors: " + " | ".join(d["error_samples"][:3])
print(line)
PY
}

{
    echo "## soak.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname)"
    echo
    echo "Machine: $(uname -srm), $(nproc) cores; runtime $RUNTIME; ${DURATION} s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "S3: $S3_CLIENTS clients, mix put=25 get=50 list=2 delete=23, sizes $S3_SIZE, GETs verified."
    echo "FTP: $FTP_SESSIONS sessions, stor=50 retr=50, $FTP_SIZE files, RETRs verified."
    echo
    echo "- S3 (exit $s3_rc): $(summary "$work/s3.json" 2>/dev/null || tail -2 "$work/s3.txt")"
    echo "- FTP (exit $ftp_rc): $(summary "$work/ftp.json" 2>/dev/null || tail -2 "$work/ftp.txt")"
    echo "- Afterwards: $(tail -1 "$work/verify.txt"); server alive: $alive; panics in the log: $panics"
    echo
    echo "RSS of the serve process (embedded hub included) every 10 s, MiB:"
    echo
    echo '```'
    cat "$rss_csv"
    echo '```'
    echo
} | tee -a "$RESULTS"
echo "== appended to $RESULTS"
[ "$s3_rc" = 0 ] && [ "$ftp_rc" = 0 ] && grep -q ", 0 wrong" "$work/verify.txt" && [ "$alive" = yes ]
