#!/usr/bin/env python3
"""A Go api_monitor data directory with 30 days of history, for the analysis page's
browser test: apimond upgrades it at its first start (as it does for a user coming from
the Go program), so the charts show real rollups of rows spread over time.

usage: go-history.py FIXTURE_DB OUT_DIR RELAY_URL RELAY_KEY

FIXTURE_DB is the database the Go program wrote (apimond/tests/fixtures/go-data/
registry.db). Its target 1 is pointed at the fake relay and gets a run every 6 hours
for 30 days: four models, one of which fails with HTTP 500 on most runs, latencies that
drift with the day so the latency chart has a shape.
"""
import math
import os
import shutil
import sqlite3
import sys
import time

MODELS = [
    # model, protocol, route/endpoint, base latency (s), fails
    ("gpt-4o-mini", "openai", "chat", 0.35, False),
    ("claude-3-5-haiku", "anthropic", "anthropic", 0.55, False),
    ("gemini-2.0-flash", "gemini", "gemini", 0.25, False),
    ("gpt-4o-err500", "openai", "chat", 0.12, True),
]


def main():
    fixture, out, relay_url, relay_key = sys.argv[1:5]
    os.makedirs(out, exist_ok=True)
    db_path = os.path.join(out, "registry.db")
    shutil.copyfile(fixture, db_path)
    db = sqlite3.connect(db_path)
    db.execute(
        "UPDATE targets SET base_url = ?, api_key = ?, interval_min = 1440 WHERE id = 1",
        (relay_url, relay_key),
    )
    now = time.time()
    # Oldest first, so ids grow with time as the Go program wrote them.
    starts = [now - h * 3600 for h in range(30 * 24, 0, -6)]
    for n, start in enumerate(starts):
        rows = []
        for i, (model, protocol, route, base, fails) in enumerate(MODELS):
            # The failing model passes one run in five, so its uptime is not zero.
            failed = fails and n % 5 != 0
            wave = 1 + 0.5 * math.sin(n / 6 + i)
            duration = round(base * wave, 3)
            rows.append((model, protocol, route, duration, failed))
        ok = sum(1 for r in rows if not r[4])
        cur = db.execute(
            "INSERT INTO runs (target_id, started_at, finished_at, status, total, success, fail) "
            "VALUES (1, ?, ?, 'completed', ?, ?, ?)",
            (start, start + 2, len(rows), ok, len(rows) - ok),
        )
        run_id = cur.lastrowid
        for j, (model, protocol, route, duration, failed) in enumerate(rows):
            db.execute(
                "INSERT INTO run_models (run_id, target_id, protocol, model, stream, duration, "
                "success, transport_success, tool_calls_count, tool_calls, content, timestamp, "
                "error, status_code, route, endpoint) VALUES (?, 1, ?, ?, 0, ?, ?, 1, 0, '[]', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    protocol,
                    model,
                    duration,
                    0 if failed else 1,
                    None if failed else f"I am {model}",
                    start + 0.1 * j,
                    "HTTP 500: upstream exploded" if failed else None,
                    500 if failed else 200,
                    route,
                    "messages" if route == "anthropic" else route,
                ),
            )
    db.commit()
    db.close()
    logs = os.path.join(os.path.dirname(fixture), "logs")
    if os.path.isdir(logs):
        shutil.copytree(logs, os.path.join(out, "logs"), dirs_exist_ok=True)
    print(f"{len(starts)} runs of {len(MODELS)} models over 30 days in {db_path}")


if __name__ == "__main__":
    main()
