#!/usr/bin/env bash
# Checks a built apimon .deb without installing it (maintainer scripts that add users
# cannot run under `dpkg --root` here): its files and their modes (dpkg-deb -c), its
# control data, conffiles and dependencies (dpkg-deb -I), what it unpacks to
# (dpkg-deb -x: the unit, the sysusers file, the binaries run), and lintian, whose
# errors fail the check. The warnings accepted are listed below with their reasons.
# Usage: scripts/deb_check.sh PACKAGE.deb
set -euo pipefail
deb=$1
fail() {
    echo "deb_check: FAIL: $*" >&2
    exit 1
}

contents=$(dpkg-deb -c "$deb")
# path and mode of each packaged file: "-rwxr-xr-x ./usr/bin/apimond"
expect_file() {
    local mode=$1 path=$2
    grep -Eq "^$mode [^ ]+ +[0-9]+ [0-9-]+ [0-9:]+ \./$path\$" <<<"$contents" \
        || fail "$path with mode $mode not in the package:
$contents"
}
expect_file -rwxr-xr-x usr/bin/apimond
expect_file -rwxr-xr-x usr/bin/apimonctl
expect_file -rw-r--r-- usr/lib/systemd/system/apimond.service
expect_file -rw-r--r-- usr/lib/sysusers.d/apimon.conf
expect_file -rw------- etc/apimon/apimond.env
expect_file -rw-r--r-- usr/share/man/man8/apimond.8.gz
expect_file -rw-r--r-- usr/share/man/man1/apimonctl.1.gz
expect_file -rw-r--r-- usr/share/man/man1/apimonctl-backup.1.gz
expect_file -rw-r--r-- usr/share/bash-completion/completions/apimonctl
expect_file -rw-r--r-- usr/share/zsh/vendor-completions/_apimonctl
expect_file -rw-r--r-- usr/share/fish/vendor_completions.d/apimonctl.fish
expect_file -rw-r--r-- usr/share/doc/apimon/copyright
grep -Evq '^[-d][rwx-]{9} (0/0|root/root) ' <<<"$contents" && fail "files not owned by root"
echo "deb_check: dpkg-deb -c: both binaries, unit, sysusers, settings file (0600), man pages, completions"

info=$(dpkg-deb -I "$deb")
grep -q '^ Package: apimon$' <<<"$info" || fail "package name: $info"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
grep -q "^ Version: $version-1\$" <<<"$info" || fail "package version is not $version-1: $info"
head -1 packaging/changelog | grep -q "^apimon ($version-1) " \
    || fail "packaging/changelog's first entry is not $version-1: add one"
grep -Eq '^ Depends: .*libc6' <<<"$info" || fail "no libc6 dependency (shlibdeps): $info"
grep -Eq '^ Depends: .*systemd \| systemd-standalone-sysusers \| systemd-sysusers' <<<"$info" \
    || fail "no dependency on systemd-sysusers: $info"
dpkg-deb -I "$deb" conffiles | grep -qx '/etc/apimon/apimond.env' || fail "the settings file is no conffile"
postinst=$(dpkg-deb -I "$deb" postinst)
grep -q 'systemd-sysusers .*apimon.conf' <<<"$postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper update-state apimond.service' <<<"$postinst" \
    || fail "postinst does not register the unit"
# Installing starts nothing (the README's second command does); upgrades restart a
# running daemon (try-restart).
if grep -Eq 'deb-systemd-invoke (start|restart) ' <<<"$postinst" \
    || grep -q 'deb-systemd-helper enable apimond.service' <<<"$postinst" \
    && ! grep -q 'was-enabled apimond.service' <<<"$postinst"; then
    fail "postinst enables or starts the service on a first install"
fi
echo "deb_check: dpkg-deb -I: conffile, dependencies, postinst (sysusers, unit, nothing started)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/apimond" --version | grep -q '^apimond ' || fail "apimond --version"
"$root/usr/bin/apimonctl" --version | grep -q '^apimonctl ' || fail "apimonctl --version"
grep -q '^ExecStart=/usr/bin/apimond$' "$root/usr/lib/systemd/system/apimond.service" \
    || fail "the unit does not start /usr/bin/apimond"
zcat "$root/usr/share/man/man8/apimond.8.gz" | grep -q '^\.TH apimond 8' || fail "man apimond"
grep -q 'complete' "$root/usr/share/bash-completion/completions/apimonctl" || fail "bash completion"
sed "s|^ExecStart=/usr/bin/apimond|ExecStart=$root/usr/bin/apimond|" \
    "$root/usr/lib/systemd/system/apimond.service" >"$root/apimond.service"
systemd-analyze verify --man=no "$root/apimond.service" || fail "the packaged unit does not verify"
echo "deb_check: dpkg-deb -x: binaries run, unit verifies, man page and completions readable"

# Accepted lintian warnings, each for a reason:
# - non-standard-file-perm on /etc/apimon/apimond.env: 0600 on purpose (it may hold
#   tokens; systemd reads it as root before starting the daemon as apimon);
# - initial-upload-closes-no-bugs: the package is not uploaded to Debian, so its first
#   changelog entry closes no ITP bug.
lintian_out=$(lintian --tag-display-limit 0 \
    --suppress-tags non-standard-file-perm,initial-upload-closes-no-bugs "$deb" 2>&1 || true)
lintian_out=$(grep -v '^running with root privileges' <<<"$lintian_out" || true)
if [ -n "$lintian_out" ]; then
    echo "$lintian_out"
fi
if grep -q '^E:' <<<"$lintian_out"; then
    fail "lintian reports errors"
fi
echo "deb_check: lintian: no errors ($(grep -c '^W:' <<<"$lintian_out" || true) warnings shown above)"
