#!/usr/bin/env python3
"""Probe throughput benchmark (issue: probe engine).

200 targets x 50 models on the fake relay, which answers discovery at once and every
probe after 100 ms; MONITOR_DETECT_CONCURRENCY=10, MONITOR_MAX_PARALLEL_TARGETS=20;
runs started by trigger. Prints the figures and their ratio to the goals:

  wall time of one round      <= 1.25 x ideal (10,000 x 0.1 s / 200 in flight = 5 s)
  daemon CPU                  <= 0.2 CPU-seconds per 1,000 probes
  daemon peak RSS             <  80 MB
  GET /api/targets?history_format=compact (apimon's own clients' form) with 30
  points of history per model: < 100 ms and < 3 MB (the default form, the Go
  program's, is measured by bench/targets_list_bench.py)

Usage: bench/probe_bench.py [--rounds N] (default 30: the first round is timed, all of
them fill the history). Builds the release binaries first. Only loopback is used.

--client-profile browser|plain picks the targets' HTTP client (default browser, the
Chrome-like one). --event-gap-ms N makes the relay pause N ms between stream events,
so each leaves in its own TCP segment as real relays send them (the probe-cost goal
there is <= 0.3 CPU-seconds per 1,000 streamed probes with either profile); the
expected wall time grows by the gaps.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TARGETS = 200
MODELS = 50
DELAY_MS = 100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-admin-token-0123456789"
KEY = "sk-bench-upstream-key-0123456789"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def api(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def wait_idle(base):
    while True:
        h = api(base, "GET", "/api/health")
        if not h["running_targets"] and not h["queued_targets"]:
            return
        time.sleep(0.1)


def stop_all(procs, tmp):
    """Stops the daemon and relays (SIGTERM, then kill after 20 s) and removes tmp."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--perf", metavar="FILE", help="record a perf profile of the daemon during one round")
    ap.add_argument("--perf-round", type=int, default=2, help="the round --perf records (1-based)")
    ap.add_argument("--bin-dir", help="use the binaries in this folder instead of building them")
    ap.add_argument("--client-profile", choices=["browser", "plain"], default="browser")
    ap.add_argument("--event-gap-ms", type=int, default=0,
                    help="relay pause between stream events (each in its own TCP segment)")
    args = ap.parse_args()

    if args.bin_dir:
        target_dir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apimond", "-p", "testkit"], cwd=ROOT, check=True)
        target_dir = os.path.join(ROOT, "target", "release")
    tmp = tempfile.mkdtemp(prefix="apimon-bench-")
    procs = []
    try:
        fake = subprocess.Popen(
            [os.path.join(target_dir, "fake-upstream"), "--models", str(MODELS), "--delay-ms", str(DELAY_MS),
             "--event-gap-ms", str(args.event_gap_ms), "--key", KEY],
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
            # Every target is on the one fake relay; the per-host cap must not be the limit.
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
        # Drain the log so the daemon never blocks on a full pipe.
        subprocess.Popen(["cat"], stdin=daemon.stderr, stdout=subprocess.DEVNULL)

        ids = []
        for i in range(TARGETS):
            item = api(base, "POST", "/api/targets", {
                "name": f"bench-{i:03}", "base_url": upstream, "api_key": KEY,
                "enabled": False, "timeout_s": 30.0, "client_profile": args.client_profile,
            })["item"]
            ids.append(item["id"])

        rounds = []
        fake_cpu = []
        for r in range(args.rounds):
            perf = None
            if args.perf and r == args.perf_round - 1:
                perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(daemon.pid), "-o", args.perf],
                                        stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            cpu0 = cpu_seconds(daemon.pid)
            fake0 = cpu_seconds(fake.pid)
            t0 = time.monotonic()
            for i in ids:
                api(base, "POST", f"/api/targets/{i}/run")
            wait_idle(base)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(daemon.pid) - cpu0
            fake_cpu.append(cpu_seconds(fake.pid) - fake0)
            rounds.append((wall, cpu))
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            if r == 0:
                print(f"round 1: {wall:.2f} s wall, daemon {cpu:.2f} CPU-s, fake relay {fake_cpu[-1]:.2f} CPU-s", flush=True)
        dash = api(base, "GET", "/api/dashboard")
        probes = TARGETS * MODELS
        wall, cpu = rounds[0]
        best_wall = min(w for w, _ in rounds)
        med_cpu = statistics.median(c for _, c in rounds)
        rss = peak_rss_mb(daemon.pid)

        times, sizes = [], []
        for _ in range(7):
            req = urllib.request.Request(base + "/api/targets?history_format=compact")
            req.add_header("Authorization", f"Bearer {TOKEN}")
            t0 = time.monotonic()
            with urllib.request.urlopen(req) as resp:
                body = resp.read()
            times.append(time.monotonic() - t0)
            sizes.append(len(body))
        listing = json.loads(body)
        res = api(base, "GET", "/api/admin/resources")["item"]
        durations = []
        for i in ids[:20]:
            for row in api(base, "GET", f"/api/targets/{i}/logs")["items"]:
                durations.append(row["total_ms"])
        durations.sort()
        points = len(listing["items"][0]["history_runs"])

        ideal = probes * DELAY_MS / 1000 / (10 * 20)
        print(f"targets {TARGETS} x models {MODELS} = {probes} probes per round, {args.rounds} rounds; healthy targets: {dash['healthy']}")
        print(f"client profile {args.client_profile}; relay event gap {args.event_gap_ms} ms "
              f"({'each event in its own TCP segment' if args.event_gap_ms else 'events back to back'})")
        print(f"wall time, first round:      {wall:6.2f} s   ideal {ideal:.2f} s   ratio {wall / ideal:.2f} (goal <= 1.25)")
        print(f"wall time, best round:       {best_wall:6.2f} s   ratio {best_wall / ideal:.2f}")
        print(f"probe time seen by the daemon: median {statistics.median(durations):.1f} ms, "
              f"p95 {durations[int(len(durations) * 0.95)]:.1f} ms (the relay answers after {DELAY_MS} ms)")
        print("daemon CPU-s per round:", " ".join(f"{c:.2f}" for _, c in rounds))
        goal = 0.3 if args.event_gap_ms else 0.2
        print(f"daemon CPU per 1000 probes:  {med_cpu / probes * 1000:6.3f} s   (median round)   ratio {med_cpu / probes * 1000 / goal:.2f} to the {goal} s goal")
        print(f"daemon peak RSS:             {rss:6.1f} MB  ratio {rss / 80:.2f} to the 80 MB goal")
        print(f"database on disk (with WAL):  {res['db_bytes'] / 1e6:6.1f} MB after {args.rounds * probes} probes")
        print(f"GET /api/targets?history_format=compact ({points} points per model): median {statistics.median(times) * 1000:.1f} ms, "
              f"{sizes[-1] / 1e6:.2f} MB   ratios {statistics.median(times) / 0.1:.2f} and {sizes[-1] / 3e6:.2f} to 100 ms / 3 MB")
    finally:
        stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
