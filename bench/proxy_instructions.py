#!/usr/bin/env python3
"""Proxy cost in instructions: what apimond does per proxied request, measured exactly.

Requests per second on a shared 2-core machine move by 20% or more between identical
runs, which hides any change smaller than that. Instructions do not: this runs apimond
(release build) and testkit's bare-proxy (the same HTTP stack with nothing in between)
under `valgrind --tool=callgrind`, sends non-streaming chat completions to nginx
answering a fixed JSON through each (wrk, 4 connections, a proxy key for apimond, usage
recording on), and prints the user-space instructions per request of each and their
ratio. Each is run twice, with a short and a long load, and the difference is divided
by the difference in requests: start-up, warm-up and shutdown cancel out. Kernel work
(system calls) is not counted: fewer calls show up in proxy_bench.py's throughput
instead.

Baseline (2026-11-26, before the profile-driven changes, counted with start-up
included): apimond 209,496 instructions per request.

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


def instructions(out, proc):
    """Stops `proc` and reads what it executed in all (its dump at exit)."""
    proc.terminate()
    proc.wait(timeout=120)
    with open(out) as f:
        total = sum(int(m) for m in re.findall(r"^summary:\s+(\d+)", f.read(), re.M))
    if not total:
        raise SystemExit(f"callgrind counted nothing in {out}")
    return total


def served(url, key, duration, tmp):
    """Warms up, then sends the load: requests answered in all, checked."""
    n = 0
    for seconds in (2, duration):
        r = pb.wrk(url, key, seconds, 4, tmp)
        if not r["requests"] or r["non2xx"]:
            raise SystemExit(f"{url}: {r['requests']} requests, {r['non2xx']} non-2xx")
        n += r["requests"]
    return n


def per_request(run, duration, tmp):
    """Instructions per request from two runs of `run(duration) -> (instructions,
    requests)`, a short and a long one: what is not per request cancels out."""
    short_ir, short_n = run(max(1, duration // 3))
    long_ir, long_n = run(duration)
    if long_n <= short_n:
        raise SystemExit(f"the long run served {long_n} requests, the short one {short_n}")
    return (long_ir - short_ir) / (long_n - short_n), long_n - short_n


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
        procs.extend(nginx)
        upstream = f"http://127.0.0.1:{up_port}"

        runs = iter(range(100))

        def bare_run(duration):
            out = os.path.join(tmp, f"bare-{next(runs)}.callgrind")
            bare = subprocess.Popen(under_callgrind(os.path.join(bin_dir, "bare-proxy"), out,
                                                    f"{out}.vg.log") + [upstream],
                                    stdout=subprocess.PIPE, text=True)
            procs.append(bare)
            n = served(bare.stdout.readline().split()[-1] + "/v1/chat/completions", None, duration, tmp)
            return instructions(out, bare), n

        def apimond_run(duration):
            # The daemon under callgrind: start_daemon runs `apimond` from the folder given.
            run = next(runs)
            out = os.path.join(tmp, f"apimond-{run}.callgrind")
            wrapper_dir = os.path.join(tmp, f"wrapped-{run}")
            os.makedirs(wrapper_dir)
            with open(os.path.join(wrapper_dir, "apimond"), "w") as f:
                f.write("#!/bin/sh\nexec " + " ".join(under_callgrind(os.path.join(bin_dir, "apimond"), out,
                                                                       f"{out}.vg.log")) + "\n")
            os.chmod(os.path.join(wrapper_dir, "apimond"), 0o755)
            data = os.path.join(tmp, f"daemon-{run}")
            os.makedirs(data)
            daemon, base = pb.start_daemon(wrapper_dir, data, {})
            procs.append(daemon)
            pb.add_channel(base, "fixed", upstream, pb.MODEL)
            key = api(base, "POST", "/api/proxy/keys", {"name": "bench"})["proxy_key"]
            # The channel's run and the key's creation are the same in both runs.
            n = served(f"{base}/v1/chat/completions", key, duration, tmp)
            return instructions(out, daemon), n

        bare_ir, bare_n = per_request(bare_run, args.duration, tmp)
        am_ir, am_n = per_request(apimond_run, args.duration, tmp)

        print(f"user-space instructions per proxied request (callgrind, wrk -c4; the difference between "
              f"a {max(1, args.duration // 3)} s and a {args.duration} s load)")
        print(f"bare same-stack proxy: {bare_ir:>9,.0f}  ({bare_n} requests)")
        print(f"apimond (proxy key):   {am_ir:>9,.0f}  ({am_n} requests, usage recording on)")
        print(f"apimond / bare stack: {am_ir / bare_ir:.2f}; apimond / baseline {BASELINE:,}: {am_ir / BASELINE:.2f}")
    finally:
        pb.stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
