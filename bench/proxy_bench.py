#!/usr/bin/env python3
"""Proxy benchmark (issue 10): is apimond as fast as a plain reverse proxy?

In one run, against a fast upstream (nginx answering a fixed chat-completions JSON):

  1. non-streaming chat completions with wrk: direct to the upstream, through nginx's own
     proxy_pass (keep-alive to the upstream; a second nginx instance, as a proxy in
     front of a relay is another process), through testkit's bare-proxy (apimond's HTTP
     stack, axum serving and the plain profile's direct client sending, with nothing in
     between: what the stack itself costs), and through apimond (release build) with a
     proxy key; requests/s, p50, p99 and non-2xx of each, and apimond's ratios;
  2. the time to the first event of a stream, one at a time, straight to the fake relay
     and through apimond (what the proxy adds to the time to first token);
  3. 1,000 concurrent streaming clients through apimond to the fake relay (events
     --gap-ms apart): peak RSS of apimond, streams that stalled or broke.

The four wrk runs are made in --rounds rounds (each starting one further along), and
apimond's ratios and added latencies are medians of those within a round: on a shared
machine throughput drifts by 20% or more within minutes, which a single run of each
mistakes for a difference between the proxies.

Usage recording stays on throughout (every proxied request is a usage row).
Goals: apimond >= 70% of nginx proxy_pass's requests/s, added p50 < 0.5 ms and added
p99 < 3 ms over proxy_pass, no non-2xx; 1,000 streams with peak RSS < 200 MB and none
stalled.

Installs nginx and wrk from Debian packages when missing. Builds the release binaries
unless --bin-dir names a folder holding apimond, fake-upstream and bare-proxy.
Usage: bench/proxy_bench.py [--duration S] [--rounds N] [--connections N] [--streams N]
                            [--one-nginx] [--bin-dir DIR]
"""

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from probe_bench import KEY, ROOT, TOKEN, api, peak_rss_mb, stop_all

MODEL = "bench-model"
# What real APIs answer, give or take: the upstream's fixed reply.
REPLY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
}
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
GOALS = {"ratio": 0.70, "added_p50_ms": 0.5, "added_p99_ms": 3.0, "rss_mb": 200.0}


def ensure_installed(tools=("nginx", "wrk")):
    """Installs each tool's Debian package (named as the tool) when it is missing."""
    missing = [tool for tool in tools
               if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} (Debian packages)", flush=True)
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                   check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(tmp, servers):
    return f"""
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
{servers}
}}
"""


def upstream_server(port):
    """The fast upstream: the fixed reply (and a model list)."""
    reply = json.dumps(REPLY).replace("'", "\\'")
    models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
    return f"""
    server {{
        listen 127.0.0.1:{port};
        location = /v1/models {{ default_type application/json; return 200 '{models}'; }}
        location / {{ default_type application/json; return 200 '{reply}'; }}
    }}"""


def proxy_server(port, upstream_port):
    """nginx's own reverse proxy to the upstream, with keep-alive connections to it."""
    return f"""
    upstream fixed {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fixed;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def start_nginx(tmp, one_process=False):
    """nginx answering the fixed reply on one port and nginx proxying to it on another:
    ([processes], upstream port, proxy_pass port).

    The upstream and the proxy are two nginx instances, each with its own workers, as
    a relay and the proxy in front of it are: a proxy's hop to its upstream wakes
    another process. With one_process, one nginx serves both (the bench's earlier
    layout): a worker then often answers its own upstream request in the same pass of
    its event loop, which no proxy in front of a real relay can do."""
    up_port, proxy_port = free_port(), free_port()
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    layouts = ([("nginx", upstream_server(up_port) + proxy_server(proxy_port, up_port))]
               if one_process else
               [("nginx-upstream", upstream_server(up_port)),
                ("nginx-proxy", proxy_server(proxy_port, up_port))])
    procs = []
    for name, servers in layouts:
        prefix = os.path.join(tmp, name)
        os.makedirs(prefix, exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(prefix, servers))
        procs.append(subprocess.Popen([nginx_bin, "-p", prefix, "-c", conf, "-g", "daemon off;"]))
    return procs, up_port, proxy_port


def check_once(url, key, body):
    """One request as the load will send it; stops the bench, saying why, if it still
    fails after a few seconds (the proxy takes up a finished run within moments)."""
    deadline = time.monotonic() + 5
    while True:
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} answered {e.code}: {e.read().decode(errors='replace')}") from None
            time.sleep(0.1)


def wrk(url, key, duration, connections, tmp):
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(json.dumps(REQUEST))}\n")
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        if key:
            f.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
        check=True, capture_output=True, text=True,
    ).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def start_daemon(bin_dir, tmp, extra_env):
    env = dict(os.environ)
    env.update({
        "DATA_DIR": os.path.join(tmp, "data"), "PORT": "0", "HOST": "127.0.0.1",
        "API_MONITOR_TOKEN": TOKEN, "LOG_FORMAT": "json", "RUST_LOG": "warn,apimond=info",
    })
    env.update(extra_env)
    daemon = subprocess.Popen([os.path.join(bin_dir, "apimond")], env=env, stderr=subprocess.PIPE, text=True)
    for line in daemon.stderr:
        fields = json.loads(line).get("fields", {})
        if "address" in fields:
            base = "http://" + fields["address"]
            break
    else:
        raise SystemExit("apimond stopped before it listened")
    # Drain the log so the daemon never blocks on a full pipe.
    subprocess.Popen(["cat"], stdin=daemon.stderr, stdout=subprocess.DEVNULL)
    return daemon, base


def add_channel(base, name, upstream, model):
    """A channel on `upstream`, run once so its model list holds `model` and its probe
    result is known (scheduled runs come at the default interval, minutes away)."""
    item = api(base, "POST", "/api/targets", {
        "name": name, "base_url": upstream, "api_key": KEY, "enabled": True,
        "client_profile": "plain", "check_mode": "prompt", "probe_mode": "plain",
        "selected_models": [model],
    })["item"]
    api(base, "POST", f"/api/targets/{item['id']}/run")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = api(base, "GET", f"/api/targets/{item['id']}/runs")["items"]
        if runs and runs[0]["status"] != "running":
            return item["id"]
        time.sleep(0.1)
    raise SystemExit(f"the run of channel {name} never finished")


async def one_stream(host, port, key, model, results, open_now, peak):
    """One streamed chat completion over a raw socket; notes whether it completed, its
    time to first byte and the longest pause between two reads after that."""
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "Say hello"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    longest_gap, ttfb, done, received, counted = 0.0, None, False, b"", False
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        await writer.drain()
        open_now[0] += 1
        counted = True
        peak[0] = max(peak[0], open_now[0])
        sent = last = time.monotonic()
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=30)
            now = time.monotonic()
            if ttfb is None:
                ttfb = now - sent
            else:
                longest_gap = max(longest_gap, now - last)
            last = now
            if not chunk:
                break
            received += chunk
            if b"data: [DONE]" in received:
                done = True
                break
        writer.close()
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        if counted:
            open_now[0] -= 1
    ok = received.startswith(b"HTTP/1.1 200") and done
    results.append((ok, ttfb or 0.0, longest_gap))


async def first_event(host, port, key, model):
    """Seconds from sending a streamed chat completion to its first `data:` line; the
    connection is closed right after it."""
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "Say hello"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        sent = time.monotonic()
        writer.write(head + body)
        await writer.drain()
        received = b""
        while b"\ndata:" not in received:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=30)
            if not chunk:
                raise SystemExit(f"{host}:{port} closed the stream before its first event: {received[:200]!r}")
            received += chunk
        return time.monotonic() - sent
    finally:
        writer.close()


def first_events(host, port, key, model, count):
    """Median and p90 of `count` first-event times, one stream at a time."""
    times = sorted(asyncio.run(first_event(host, port, key, model)) for _ in range(count))
    return times[len(times) // 2], times[int(len(times) * 0.9)]


async def streams(host, port, key, model, count):
    results, open_now, peak = [], [0], [0]
    await asyncio.gather(*(one_stream(host, port, key, model, results, open_now, peak) for _ in range(count)))
    return results, peak[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four wrk runs")
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streaming clients")
    ap.add_argument("--gap-ms", type=int, default=500, help="relay pause between stream events")
    ap.add_argument("--one-nginx", action="store_true",
                    help="serve the upstream and proxy_pass from one nginx (the earlier layout)")
    ap.add_argument("--bin-dir", help="use apimond and fake-upstream from here instead of building them")
    args = ap.parse_args()

    ensure_installed()
    # Every stream holds a client socket, a daemon socket each way and a relay socket.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.streams + 1024)), hard))
    if args.bin_dir:
        bin_dir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "apimond", "-p", "testkit"], cwd=ROOT, check=True)
        bin_dir = os.path.join(ROOT, "target", "release")

    tmp = tempfile.mkdtemp(prefix="apimon-proxy-bench-")
    procs = []
    try:
        nginx, up_port, proxy_port = start_nginx(tmp, args.one_nginx)
        procs.extend(nginx)
        fake = subprocess.Popen([os.path.join(bin_dir, "fake-upstream"), "--models", "1",
                                 "--event-gap-ms", str(args.gap_ms), "--key", KEY],
                                stdout=subprocess.PIPE, text=True)
        procs.append(fake)
        relay = fake.stdout.readline().split()[-1]
        daemon, base = start_daemon(bin_dir, tmp, {})
        procs.append(daemon)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", up_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

        bare = subprocess.Popen([os.path.join(bin_dir, "bare-proxy"), f"http://127.0.0.1:{up_port}"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(bare)
        bare_base = bare.stdout.readline().split()[-1]
        add_channel(base, "fixed", f"http://127.0.0.1:{up_port}", MODEL)
        add_channel(base, "relay", relay, "model-000")
        key = api(base, "POST", "/api/proxy/keys", {"name": "bench"})["proxy_key"]
        host, port = base.removeprefix("http://").rsplit(":", 1)
        via = f"{base}/v1/chat/completions"
        check_once(via, key, REQUEST)
        check_once(via, key, {**REQUEST, "model": "relay/model-000"})
        # Warm every path once (connections, pools, routing view).
        for url, k in ((f"http://127.0.0.1:{up_port}/v1/chat/completions", None),
                       (f"http://127.0.0.1:{proxy_port}/v1/chat/completions", None),
                       (f"{bare_base}/v1/chat/completions", None)):
            wrk(url, k, 1, 8, tmp)
        through_apimond = 2 + wrk(via, key, 1, 8, tmp)["requests"]

        targets = {
            "direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", None),
            "nginx proxy_pass": (f"http://127.0.0.1:{proxy_port}/v1/chat/completions", None),
            "bare same-stack proxy": (f"{bare_base}/v1/chat/completions", None),
            "apimond (proxy key)": (via, key),
        }
        # Rounds of all four, each round starting one further along: on a shared machine
        # throughput drifts by 20% or more within minutes, and a ratio of two runs made
        # minutes apart measures the drift as much as the proxies. Ratios are taken
        # within a round and their median reported.
        rounds = {name: [] for name in targets}
        names = list(targets)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                url, k = targets[name]
                rounds[name].append(wrk(url, k, args.duration, args.connections, tmp))
        rss_after_wrk = peak_rss_mb(daemon.pid)
        through_apimond += sum(r["requests"] for r in rounds["apimond (proxy key)"])

        def median(xs):
            xs = sorted(xs)
            mid = len(xs) // 2
            return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2

        def per_round(a, b, f):
            return median([f(x, y) for x, y in zip(rounds[a], rounds[b])])

        layout = "one nginx for both" if args.one_nginx else "two nginx instances"
        print(f"non-streaming chat completions, wrk -t2 -c{args.connections} -d{args.duration}s, "
              f"{args.rounds} rounds (medians), usage recording on; upstream and proxy_pass: {layout}")
        print(f"{'':22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}   req/s each round")
        for name, rs in rounds.items():
            each = " ".join(str(round(r["rps"])) for r in rs)
            print(f"{name:22}{median([r['rps'] for r in rs]):>10.0f}{median([r['p50'] for r in rs]):>9.3f}"
                  f"{median([r['p99'] for r in rs]):>9.3f}{sum(r['non2xx'] for r in rs):>9}"
                  f"{sum(r['socket_errors'] for r in rs):>9}   {each}")
        ng, am, bs = "nginx proxy_pass", "apimond (proxy key)", "bare same-stack proxy"
        rps_ratio = lambda x, y: x["rps"] / y["rps"] if y["rps"] else float("nan")  # noqa: E731
        ratio = per_round(am, ng, rps_ratio)
        added50 = per_round(am, ng, lambda x, y: x["p50"] - y["p50"])
        added99 = per_round(am, ng, lambda x, y: x["p99"] - y["p99"])
        am_non2xx = sum(r["non2xx"] for r in rounds[am])
        each = " ".join(f"{rps_ratio(x, y):.2f}" for x, y in zip(rounds[am], rounds[ng]))
        print(f"apimond / nginx proxy_pass throughput: {ratio:.2f} (goal >= {GOALS['ratio']}; each round {each})")
        print(f"bare same-stack proxy / nginx proxy_pass: {per_round(bs, ng, rps_ratio):.2f}; apimond / bare: "
              f"{per_round(am, bs, rps_ratio):.2f} (what apimond's keys, routing, limits and usage cost)")
        print(f"added p50 over proxy_pass: {added50:.3f} ms (goal < {GOALS['added_p50_ms']}); "
              f"added p99: {added99:.3f} ms (goal < {GOALS['added_p99_ms']}); apimond non-2xx: {am_non2xx}")
        time.sleep(2)  # usage rows are written in batches
        usage = api(base, "GET", "/api/proxy/usage")["totals"]
        print(f"usage rows recorded: {usage['requests']} of {through_apimond} requests sent through apimond "
              f"(wrk counts only completed ones; those it cut at its end are rows too), {usage['errors']} errors; "
              f"apimond peak RSS so far {rss_after_wrk:.1f} MB")

        # One stream at a time: what the proxy adds to the time to the first token.
        relay_host, relay_port = relay.removeprefix("http://").rsplit(":", 1)
        first_events(relay_host, int(relay_port), KEY, "model-000", 5)  # warm-up
        first_events(host, int(port), key, "relay/model-000", 5)
        direct50, direct90 = first_events(relay_host, int(relay_port), KEY, "model-000", 40)
        via50, via90 = first_events(host, int(port), key, "relay/model-000", 40)
        print(f"time to the first stream event, one stream at a time (40 each): direct to the relay "
              f"p50 {direct50 * 1000:.2f} ms, p90 {direct90 * 1000:.2f} ms; through apimond p50 "
              f"{via50 * 1000:.2f} ms, p90 {via90 * 1000:.2f} ms; added p50 {(via50 - direct50) * 1000:.2f} ms")

        broken = stalled = 0
        rss = peak_rss_mb(daemon.pid)
        if args.streams > 0:
            t0 = time.monotonic()
            results, peak_open = asyncio.run(streams(host, int(port), key, "relay/model-000", args.streams))
            wall = time.monotonic() - t0
            broken = sum(1 for ok, _, _ in results if not ok)
            # Stalled: a pause between two events over twice the relay's own.
            stalled = sum(1 for ok, _, gap in results if ok and gap > 2 * args.gap_ms / 1000)
            longest = max(gap for _, _, gap in results)
            ttfbs = sorted(t for _, t, _ in results)
            rss = peak_rss_mb(daemon.pid)
            print(f"{args.streams} concurrent streams through apimond (events {args.gap_ms} ms apart): "
                  f"{peak_open} open at once, {args.streams - broken} complete, {broken} broken, "
                  f"{stalled} stalled (a pause over {2 * args.gap_ms} ms between events), longest pause "
                  f"{longest * 1000:.0f} ms; first byte p50 {ttfbs[len(ttfbs) // 2] * 1000:.0f} ms, "
                  f"max {ttfbs[-1] * 1000:.0f} ms; {wall:.1f} s in all")
            print(f"apimond peak RSS: {rss:.1f} MB (goal < {GOALS['rss_mb']:.0f}); ratio {rss / GOALS['rss_mb']:.2f}")
        ok = (ratio >= GOALS["ratio"] and added50 < GOALS["added_p50_ms"] and added99 < GOALS["added_p99_ms"]
              and am_non2xx == 0 and broken == 0 and stalled == 0 and rss < GOALS["rss_mb"])
        skipped = "" if args.streams > 0 else " (streams not run: --streams 0)"
        print(("goals met" if ok else "goals NOT met") + skipped)
        return 0 if ok else 1
    finally:
        stop_all(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
