#!/usr/bin/env bash
# Captures the JA4 of a real Chromium's TLS ClientHello with testkit's recorder, to pin
# in shared/tests/fingerprint.rs. Usage: scripts/capture-ja4.sh [chromium binary]
# (Debian: apt-get install chromium). Prints the browser version, JA4 and JA4_r.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=${1:-chromium}
command -v "$browser" >/dev/null 2>&1 || { echo "capture-ja4.sh: $browser not found" >&2; exit 1; }
cargo build -q -p testkit --bin hello-recorder
bin="${CARGO_TARGET_DIR:-target}/debug/hello-recorder"

out=$(mktemp)
profile=$(mktemp -d)
trap 'kill "$recorder" 2>/dev/null || true; rm -rf "$out" "$profile"' EXIT
"$bin" --count 1 >"$out" &
recorder=$!
for _ in $(seq 50); do grep -q '^listening' "$out" && break; sleep 0.1; done
url=$(sed -n 's/^listening //p' "$out")
[ -n "$url" ] || { echo "capture-ja4.sh: the recorder did not start" >&2; exit 1; }

# A fresh profile: nothing cached, so the hello is a first connection's.
timeout 30 "$browser" --headless --no-sandbox --disable-gpu --ignore-certificate-errors \
    --user-data-dir="$profile" --no-first-run "$url/" >/dev/null 2>&1 || true
wait "$recorder" || true
"$browser" --version 2>/dev/null
grep '^ja4' "$out"
