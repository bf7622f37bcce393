#!/usr/bin/env python3
"""Runs the built apimond under the systemd unit's restrictions, as far as a machine
without systemd as init allows, and fails when the daemon breaks one:

- W^X: the kernel's PR_SET_MDWE (refuse writable+executable memory and memory that
  becomes executable), the rule MemoryDenyWriteExecute= enforces with seccomp;
- no new privileges (PR_SET_NO_NEW_PRIVS, as NoNewPrivileges=);
- system calls: every call the daemon makes is recorded with strace and checked
  against the unit's SystemCallFilter= lines, expanded by `systemd-analyze
  syscall-filter`.

While restricted, the daemon probes a fake relay over HTTPS with the `browser` client
(BoringSSL) and the `plain` one (rustls), answers HTTP and the control socket, and
stops on SIGTERM with exit 0.

Usage: ops_runtime_check.py APIMOND FAKE_UPSTREAM APIMONCTL UNIT_FILE
"""

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
TOKEN = "ops-check-admin-token-0123456789"
KEY = "sk-ops-check-upstream-key-0123"


def fail(message):
    print(f"ops_runtime_check: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expand(group, seen=None):
    """The system call names of a systemd syscall-filter group, nested groups expanded."""
    seen = set() if seen is None else seen
    if not group.startswith("@"):
        return {group}
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], check=True, capture_output=True, text=True
    ).stdout
    names = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names |= expand(line, seen)
    return names


def allowed_syscalls(unit_text):
    """Allow-list lines, then deny-list (`~`) lines, in the unit's order."""
    allowed = None
    for value in re.findall(r"^SystemCallFilter=(.*)$", unit_text, re.M):
        deny = value.startswith("~")
        names = set()
        for item in value.lstrip("~").split():
            names |= expand(item)
        if deny:
            allowed = (allowed or set()) - names
        else:
            allowed = names if allowed is None else allowed | names
    if allowed is None:
        fail("the unit has no SystemCallFilter=")
    return allowed


def restrict():
    """In the child before exec: no new privileges, and W^X refused by the kernel."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE (Linux 6.3 or later)")


def check_restriction_bites():
    """The same restrictions refuse a writable+executable mapping here, so a daemon
    that runs under them really ran without W^X."""
    probe = (
        "import mmap, sys\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except OSError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    if subprocess.run([sys.executable, "-c", probe], preexec_fn=restrict).returncode != 0:
        fail("PR_SET_MDWE did not refuse a writable+executable mapping on this kernel")


def api(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    apimond, fake, apimonctl, unit = sys.argv[1:]
    with open(unit) as f:
        allowed = allowed_syscalls(f.read())
    check_restriction_bites()

    work = tempfile.mkdtemp(prefix="apimon-ops-")
    relay = subprocess.Popen(
        [fake, "--tls", "--key", KEY, "--models", "2"], stdout=subprocess.PIPE, text=True
    )
    relay_url = relay.stdout.readline().split()[-1]

    trace = os.path.join(work, "strace.txt")
    log_path = os.path.join(work, "apimond.log")
    socket_path = os.path.join(work, "run", "apimond.sock")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATA_DIR": os.path.join(work, "data"),
        "APIMON_SOCKET": socket_path,
        "PORT": "0",
        "LOG_FORMAT": "json",
        "API_MONITOR_TOKEN": TOKEN,
    }
    log = open(log_path, "w")
    daemon = subprocess.Popen(
        ["strace", "-f", "-qq", "-c", "-o", trace, apimond],
        env=env,
        stderr=log,
        preexec_fn=restrict,
    )
    try:
        base = None
        deadline = time.time() + 60
        while base is None and time.time() < deadline:
            time.sleep(0.2)
            with open(log_path) as f:
                for line in f:
                    address = json.loads(line).get("fields", {}).get("address")
                    if address:
                        base = f"http://{address}"
            if daemon.poll() is not None:
                fail(f"apimond exited under the restrictions: {open(log_path).read()}")
        if base is None:
            fail("apimond did not start within 60 s")

        for profile in ["browser", "plain"]:
            item = api(base, "POST", "/api/targets", {
                "name": f"tls-{profile}", "base_url": relay_url, "api_key": KEY,
                "verify_ssl": False, "client_profile": profile,
            })["item"]
            api(base, "POST", f"/api/targets/{item['id']}/run")
            deadline = time.time() + 60
            while True:
                runs = api(base, "GET", f"/api/targets/{item['id']}/runs")["items"]
                if runs and runs[0]["status"] != "running":
                    break
                if time.time() > deadline:
                    fail(f"the {profile} run did not finish")
                time.sleep(0.3)
            run = runs[0]
            if run["status"] != "completed" or run.get("success", 0) < 1:
                fail(f"the {profile} client's run over HTTPS failed: {run}")
            print(f"ops_runtime_check: {profile} client probed over TLS: {run['success']} models ok")

        status = subprocess.run(
            [apimonctl, "--socket", socket_path, "status"], capture_output=True, text=True
        )
        if status.returncode != 0:
            fail(f"apimonctl status: {status.stderr}")

        # The daemon is strace's child: its pid is in the data directory's lock file.
        with open(os.path.join(env["DATA_DIR"], "apimond.lock")) as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
        code = daemon.wait(timeout=60)
        if code != 0:
            fail(f"apimond exited {code} on SIGTERM: {open(log_path).read()[-2000:]}")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        relay.kill()

    used = set()
    with open(trace) as f:
        for line in f:
            m = re.match(r"^\s*\d+\.\d+\s+\d+\.\d+\s.*\s([a-z0-9_]+)\s*$", line)
            if m and m.group(1) != "total":
                used.add(m.group(1))
    if not used:
        fail(f"strace recorded no system calls ({trace})")
    # execve is made by strace on the daemon's behalf before the filter would apply
    # under systemd too (the filter is installed before exec, and allows execve).
    outside = sorted(used - allowed)
    if outside:
        fail(f"system calls outside the unit's SystemCallFilter: {', '.join(outside)}")
    print(
        f"ops_runtime_check: ok: W^X refused by the kernel, no new privileges, "
        f"{len(used)} distinct system calls all within SystemCallFilter"
    )


if __name__ == "__main__":
    main()
