#!/usr/bin/env python3
""""Run all" benchmark (issue: drop-in replacement, manual runs).

At default settings (MONITOR_DETECT_CONCURRENCY=3, MONITOR_MAX_PARALLEL_TARGETS=2,
MONITOR_HOST_CONCURRENCY=16), 20 channels, each on its own fake relay process on its own
port (the per-host cap is per host and port), 50 models each, every probe answered after
200 ms. All 20 are triggered at once, as a user pressing "run all"; the figure is the
time from the first trigger until every run has finished.

Manual runs start at once, past MONITOR_MAX_PARALLEL_TARGETS, as the Go program's do,
so all 20 runs go side by side: 50 models in waves of 3 probes x 0.2 s is 3.4 s. The goal is 4.8 s (the
Go program took 4 s side by side; apimon queueing manual runs behind the limit took 36 s).

Usage: bench/run_all_bench.py [--rounds N] [--bin-dir DIR]. Builds the release binaries
first unless --bin-dir is given. Only loopback is used.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from probe_bench import KEY, ROOT, TOKEN, api, stop_all, wait_idle

CHANNELS = 20
MODELS = 50
DELAY_MS = 200
GOAL_S = 4.8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin-dir", help="use the binaries in this folder instead of building them")
    args = ap.parse_args()

    if args.bin_dir:
        target_dir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apimond", "-p", "testkit"], cwd=ROOT, check=True)
        target_dir = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    tmp = tempfile.mkdtemp(prefix="apimon-bench-")
    procs = []
    try:
        upstreams = []
        for _ in range(CHANNELS):
            fake = subprocess.Popen(
                [os.path.join(target_dir, "fake-upstream"), "--models", str(MODELS),
                 "--delay-ms", str(DELAY_MS), "--key", KEY],
                stdout=subprocess.PIPE, text=True,
            )
            procs.append(fake)
            upstreams.append(fake.stdout.readline().split()[-1])
        assert len(set(upstreams)) == CHANNELS, "each relay on its own port"

        env = dict(os.environ)
        # Default limits: only what the daemon needs to start is set.
        for k in [k for k in env if k.startswith("MONITOR_")]:
            del env[k]
        env.update({
            "DATA_DIR": os.path.join(tmp, "data"),
            "PORT": "0",
            "HOST": "127.0.0.1",
            "API_MONITOR_TOKEN": TOKEN,
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
        # Drain the log so the daemon never blocks on a full pipe.
        subprocess.Popen(["cat"], stdin=daemon.stderr, stdout=subprocess.DEVNULL)

        ids = []
        for i, upstream in enumerate(upstreams):
            item = api(base, "POST", "/api/targets", {
                "name": f"channel-{i:02}", "base_url": upstream, "api_key": KEY,
                "enabled": False, "timeout_s": 30.0,
            })["item"]
            ids.append(item["id"])

        walls = []
        for r in range(args.rounds):
            t0 = time.monotonic()
            for i in ids:
                reply = api(base, "POST", f"/api/targets/{i}/run")
                assert reply.get("ok") and not reply.get("queued"), reply
            wait_idle(base)
            walls.append(time.monotonic() - t0)
            runs = [api(base, "GET", f"/api/targets/{i}/runs?limit=1")["items"][0] for i in ids]
            bad = [x for x in runs if x["status"] != "completed" or x["success"] != MODELS]
            assert not bad, f"round {r + 1}: runs not fully passing: {bad[:2]}"
            print(f"round {r + 1}: {walls[-1]:.2f} s", flush=True)

        # One run's floor: its models in waves of MONITOR_DETECT_CONCURRENCY (3).
        ideal = math.ceil(MODELS / 3) * DELAY_MS / 1000
        best, median = min(walls), statistics.median(walls)
        print(f"{CHANNELS} channels on {CHANNELS} relay ports x {MODELS} models, relay answering after {DELAY_MS} ms, default limits")
        print(f"run all, first round:  {walls[0]:5.2f} s   ratio {walls[0] / GOAL_S:.2f} to the {GOAL_S} s goal")
        print(f"run all, median:       {median:5.2f} s   ratio {median / GOAL_S:.2f}   (best {best:.2f} s; "
              f"one run's own floor {ideal:.2f} s)")
    finally:
        stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
