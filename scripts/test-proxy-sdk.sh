#!/usr/bin/env bash
# The proxy with the real openai, anthropic and google-genai Python SDKs: makes (or
# reuses) a virtual environment under target/ with the versions pinned in
# tests/sdk/requirements.txt, then runs the Rust harness that starts the relays and the
# daemon and runs tests/sdk/ against them (apimond/tests/proxy_sdk.rs).
# Usage: scripts/test-proxy-sdk.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
venv="$target/sdk-venv"
requirements=tests/sdk/requirements.txt

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "test-proxy-sdk: installing python3 and python3-venv"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
        python3 python3-venv
fi

# The environment is reused while the pins stay the same.
stamp="$venv/requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "test-proxy-sdk: making $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
else
    echo "test-proxy-sdk: reusing $venv"
fi

APIMON_SDK_PYTHON="$(cd "$venv" && pwd)/bin/python" \
    cargo test -p apimond --features test-support --locked --test proxy_sdk -- --ignored --nocapture
