# shellcheck shell=bash
# shellcheck disable=SC2034 # HB, HUB_PID, HF_ENDPOINT, HF_TOKEN, work, pids are for the caller
# shellcheck disable=SC2120 # bench_binaries takes optional package names
# Shell helpers shared by the bench scripts (sourced, not run). The caller sets ROOT (the
# repository) and may set VENV; every helper fails loudly.

VENV="${VENV:-$ROOT/.venv}"

# Makes a scratch directory `work` (named after $1) and an array `pids`; on exit every
# process in `pids` is stopped and `work` deleted (function `bench_cleanup`).
bench_workdir() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# Sets HB to the hugbucket binary: $HUGBUCKET_BIN (or the older $HB_BIN) if given, else a
# fresh release build. Extra arguments are more packages to build (e.g. hugbucket-bench).
bench_binaries() {
    HB="${HUGBUCKET_BIN:-${HB_BIN:-}}"
    if [ -z "$HB" ] || [ "$#" -gt 0 ]; then
        echo "== building hugbucket $* (release)"
        local pkgs=(-p hugbucket) p
        for p in "$@"; do pkgs+=(-p "$p"); done
        (cd "$ROOT" && cargo build --release "${pkgs[@]}" --bins --quiet)
        HB="${HB:-$ROOT/target/release/hugbucket}"
    fi
}

# Makes sure $VENV has the given Python modules, installing the packages if not
# (arguments: "module[=package]" ...).
bench_venv() {
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    local spec mods=() pkgs=()
    for spec in "$@"; do mods+=("${spec%%=*}"); pkgs+=("${spec#*=}"); done
    local IFS=,
    if ! "$VENV/bin/python" -c "import ${mods[*]}" 2>/dev/null; then
        IFS=' '
        "$VENV/bin/pip" install --quiet "${pkgs[@]}"
    fi
}

# Waits until $1 answers HTTP (up to 20 s); fails loudly if it never does.
wait_http() {
    local _
    for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1"
    return 1
}

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts `hugbucket hub` on loopback with its data in $1; sets HUB_PID, HF_ENDPOINT and
# HF_TOKEN (not exported). The caller stops it.
start_hub() {
    "$HB" hub --listen 127.0.0.1:0 --data-dir "$1" >"$1.out" 2>"$1.log" &
    HUB_PID=$!
    local _
    for _ in $(seq 100); do grep -q '^LISTENING=' "$1.out" 2>/dev/null && break; sleep 0.1; done
    HF_ENDPOINT="$(sed -n 's/^HF_ENDPOINT=//p' "$1.out")"
    HF_TOKEN="$(sed -n 's/^HF_TOKEN=//p' "$1.out")"
    if [ -z "$HF_ENDPOINT" ] || [ -z "$HF_TOKEN" ]; then
        echo "hub did not start:"
        cat "$1.log"
        return 1
    fi
}
