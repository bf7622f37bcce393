#!/usr/bin/env python3
"""Proxy cost in instructions: what apimond does per proxied request, measured exactly.

Requests per second on a shared 2-core machine move by 20% or more between identical
runs, which hides any change smaller than that. Instructions do not: this runs apimond
(release build) and testkit's bare-proxy (the same HTTP stack, axum + reqwest, with
nothing in between) under `valgrind --tool=callgrind`, sends non-streaming chat
completions to nginx answering a fixed JSON through each (wrk, 4 connections, a proxy
key for apimond, usage recording on), and prints the user-space instructions per
request of each and their ratio. Kernel work (system calls) is not counted: fewer
calls show up in proxy_bench.py's throughput instead.

Baseline (2026-11-26, before the profile-driven changes): apimond 209,496
instructions per request.

Installs nginx, wrk and valgrind from Debian packages when missing. Builds the release
binaries unless --bin-dir names a folder holding apimond, fake-upstream and bare-proxy.
Usage: bench/proxy_instructions.py [--duration S] [--bin-dir DIR]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import proxy_bench as pb
from probe_bench import ROOT, api

BASELINE = 209_496


def under_callgrind(binary, out, log):
    return ["valgrind", f"--log-file={log}", "--tool=callgrind", f"--callgrind-out-file={out}", binary]


def load(url, key, duration, tmp):
    """Warms up, zeroes the counters, sends the counted load: requests sent."""
    pb.wrk(url, key, 3, 4, tmp)
    subprocess.run(["callgrind_control", "-z"], check=True, capture_output=True)
    r = pb.wrk(url, key, duration, 4, tmp)
    subprocess.run(["callgrind_control", "-d"], check=True, capture_output=True)
    if not r["requests"] or r["non2xx"]:
        raise SystemExit(f"{url}: {r['requests']} requests, {r['non2xx']} non-2xx")
    return r["requests"]


def instructions(out, proc):
    """Stops `proc` and reads what it executed since the counters were zeroed: the
    dump asked for after the load, or (when the process was too idle to take the
    request before it stopped) the dump it wrote at exit."""
    proc.terminate()
    proc.wait(timeout=120)
    dump = out + ".1" if os.path.exists(out + ".1") else out
    with open(dump) as f:
        total = sum(int(m) for m in re.findall(r"^summary:\s+(\d+)", f.read(), re.M))
    if not total:
        raise SystemExit(f"callgrind counted nothing in {dump}")
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10, help="seconds of counted load per proxy")
    ap.add_argument("--bin-dir", help="use apimond, fake-upstream and bare-proxy from here")
    args = ap.parse_args()
    pb.ensure_installed(("nginx", "wrk", "valgrind"))
    if args.bin_dir:
        bin_dir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apimond", "-p", "testkit"], cwd=ROOT, check=True)
        bin_dir = os.path.join(ROOT, "target", "release")

    tmp = tempfile.mkdtemp(prefix="apimon-proxy-instructions-")
    procs = []
    try:
        nginx, up_port, _ = pb.start_nginx(tmp)
        procs.append(nginx)
        upstream = f"http://127.0.0.1:{up_port}"

        out = os.path.join(tmp, "bare.callgrind")
        bare = subprocess.Popen(under_callgrind(os.path.join(bin_dir, "bare-proxy"), out, f"{tmp}/bare.vg.log")
                                + [upstream], stdout=subprocess.PIPE, text=True)
        procs.append(bare)
        bare_url = bare.stdout.readline().split()[-1] + "/v1/chat/completions"
        bare_n = load(bare_url, None, args.duration, tmp)
        bare_ir = instructions(out, bare) / bare_n

        # The daemon under callgrind: start_daemon runs `apimond` from the folder given.
        out = os.path.join(tmp, "apimond.callgrind")
        wrapper_dir = os.path.join(tmp, "wrapped")
        os.makedirs(wrapper_dir)
        with open(os.path.join(wrapper_dir, "apimond"), "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join(under_callgrind(os.path.join(bin_dir, "apimond"), out,
                                                                   f"{tmp}/apimond.vg.log")) + "\n")
        os.chmod(os.path.join(wrapper_dir, "apimond"), 0o755)
        daemon, base = pb.start_daemon(wrapper_dir, tmp, {})
        procs.append(daemon)
        pb.add_channel(base, "fixed", upstream, pb.MODEL)
        key = api(base, "POST", "/api/proxy/keys", {"name": "bench"})["proxy_key"]
        am_n = load(f"{base}/v1/chat/completions", key, args.duration, tmp)
        am_ir = instructions(out, daemon) / am_n

        print(f"user-space instructions per proxied request (callgrind, wrk -c4, {args.duration} s each)")
        print(f"bare same-stack proxy: {bare_ir:>9,.0f}  ({bare_n} requests)")
        print(f"apimond (proxy key):   {am_ir:>9,.0f}  ({am_n} requests, usage recording on)")
        print(f"apimond / bare stack: {am_ir / bare_ir:.2f}; apimond / baseline {BASELINE:,}: {am_ir / BASELINE:.2f}")
    finally:
        pb.stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
