#!/usr/bin/env python3
"""Target list benchmark (issue: the Go program's response shapes).

200 targets x 50 models on the fake relay, 30 rounds so every model has 30 points of
history; then `GET /api/targets` as the Go program's clients ask for it (no query: the
seed's history objects, about 27 MB) and as apimon's own clients do
(`history_format=compact`). Prints the median time and size of each and the ratio of
the default form's time to the goal:

  GET /api/targets, default form, 200 x 50 x 30 points   < 1 s

Usage: bench/targets_list_bench.py [--rounds N] [--bin-dir DIR]. Builds the release
binaries first unless --bin-dir is given. Only loopback is used.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from probe_bench import KEY, ROOT, TOKEN, api, stop_all, wait_idle

TARGETS = 200
MODELS = 50
POINTS = 30
GOAL_S = 1.0


def timed_get(base, path, repeat=7):
    """Median seconds, size in bytes and the parsed body of `repeat` GETs."""
    times, body = [], b""
    for _ in range(repeat):
        req = urllib.request.Request(base + path)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
        times.append(time.monotonic() - t0)
    return statistics.median(times), len(body), json.loads(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=POINTS)
    ap.add_argument("--bin-dir", help="use the binaries in this folder instead of building them")
    args = ap.parse_args()

    if args.bin_dir:
        target_dir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apimond", "-p", "testkit"], cwd=ROOT, check=True)
        target_dir = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    tmp = tempfile.mkdtemp(prefix="apimon-list-bench-")
    procs = []
    try:
        fake = subprocess.Popen(
            [os.path.join(target_dir, "fake-upstream"), "--models", str(MODELS), "--delay-ms", "0", "--key", KEY],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(fake)
        upstream = fake.stdout.readline().split()[-1]
        env = dict(os.environ)
        env.update({
            "DATA_DIR": os.path.join(tmp, "data"),
            "PORT": "0",
            "HOST": "127.0.0.1",
            "API_MONITOR_TOKEN": TOKEN,
            "MONITOR_DETECT_CONCURRENCY": "10",
            "MONITOR_MAX_PARALLEL_TARGETS": "20",
            "MONITOR_HOST_CONCURRENCY": "200",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn,apimond=info",
        })
        daemon = subprocess.Popen([os.path.join(target_dir, "apimond")], env=env, stderr=subprocess.PIPE, text=True)
        procs.append(daemon)
        base = None
        for line in daemon.stderr:
            rec = json.loads(line)
            if "address" in rec.get("fields", {}):
                base = "http://" + rec["fields"]["address"]
                break
        subprocess.Popen(["cat"], stdin=daemon.stderr, stdout=subprocess.DEVNULL)

        ids = [
            api(base, "POST", "/api/targets", {
                "name": f"list-{i:03}", "base_url": upstream, "api_key": KEY,
                "enabled": False, "timeout_s": 30.0,
            })["item"]["id"]
            for i in range(TARGETS)
        ]
        t0 = time.monotonic()
        for r in range(args.rounds):
            for i in ids:
                api(base, "POST", f"/api/targets/{i}/run")
            wait_idle(base)
            print(f"\rfilling history: round {r + 1}/{args.rounds}", end="", flush=True)
        print(f" ({time.monotonic() - t0:.0f} s)")

        full_s, full_bytes, full = timed_get(base, "/api/targets")
        compact_s, compact_bytes, _ = timed_get(base, "/api/targets?history_format=compact")
        models = [m for t in full["items"] for m in t["latest_models"]]
        points = {len(m["history"]) for m in models}
        keys = set(models[0]["history"][0])
        assert full["history_format"] == "full", full["history_format"]
        assert {"success", "duration", "timestamp", "error", "status_code"} <= keys, keys
        print(f"targets {len(full['items'])} x models {len(models) // len(full['items'])}, "
              f"history points per model: {sorted(points)}")
        print(f"GET /api/targets (default, history objects): median {full_s * 1000:7.1f} ms, "
              f"{full_bytes / 1e6:6.2f} MB   ratio {full_s / GOAL_S:.2f} to the {GOAL_S:.0f} s goal")
        print(f"GET /api/targets?history_format=compact:     median {compact_s * 1000:7.1f} ms, "
              f"{compact_bytes / 1e6:6.2f} MB")
    finally:
        stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
