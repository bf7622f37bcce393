#!/usr/bin/env bash
# The browser tests of the pages (web/tests/): installs what is missing — Debian's
# chromium, a CJK font (so Chinese screenshots show characters, not boxes), the npm
# packages of web/ (playwright-core, axe-core) —, builds apimond and testkit's fake
# relay, and runs the tests with node's test runner. Screenshots go to
# target/screenshots/. Usage: scripts/test-web.sh
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qiE "wenquanyi|wqy|noto sans cjk" || missing+=(fonts-wqy-microhei)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
# The analysis test builds a Go data directory with history (web/tests/go-history.py).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test-web: installing ${missing[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
if [ ! -d web/node_modules/playwright-core ] || [ ! -d web/node_modules/axe-core ]; then
    echo "test-web: npm ci in web/"
    (cd web && npm ci --no-audit --no-fund)
fi

echo "test-web: building apimond and fake-upstream"
cargo build --locked -q -p apimond -p testkit --bins
export APIMON_BIN_DIR="${CARGO_TARGET_DIR:-$PWD/target}/debug"
echo "test-web: running web/tests"
cd web
node --test --test-concurrency=1 tests/*.test.mjs
