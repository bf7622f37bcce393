#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what a fresh machine lacks.
# Usage: scripts/test.sh        (CI calls it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
# rustfmt and clippy ship with rustup's default profile; add them if this one lacks them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

# The `browser` client profile (wreq) builds BoringSSL: it needs cmake and libclang.
# A test reads the listener's backlog with `ss` (iproute2).
# On Debian and Ubuntu, install them when missing (as root, or through sudo).
if ! command -v cmake >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1 \
    || ! ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || ! command -v ss >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
            cmake libclang-dev clang iproute2
    else
        echo "scripts/test.sh: install cmake, clang and libclang (needed to build BoringSSL) and iproute2" >&2
        exit 1
    fi
fi

# Each stage says how long it took.
stage_start=$SECONDS
stage() {
    if [ -n "${stage_name:-}" ]; then
        echo "== $stage_name took $((SECONDS - stage_start)) s"
    fi
    stage_name=$1
    stage_start=$SECONDS
    [ -n "$stage_name" ] && echo "== $stage_name"
    return 0
}

stage formatting
cargo fmt --all -- --check
stage lints
cargo clippy --workspace --all-targets --locked -- -D warnings
stage tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
stage proxy-sdk
scripts/test-proxy-sdk.sh 2>&1 | tee -a "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
stage web
scripts/test-web.sh 2>&1 | tee -a "$log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
stage operations
scripts/test-ops.sh || status=1
stage ""
echo "== total $SECONDS s"
# One closing line over every test: cargo's result line per binary, pytest's closing
# line (the SDK tests) and node's totals (the pages).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^=* *[0-9]+ (passed|failed)/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^# pass [0-9]+$/ { p += $3 }
     /^# fail [0-9]+$/ { f += $3 }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
