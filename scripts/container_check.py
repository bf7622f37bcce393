#!/usr/bin/env python3
"""Checks the container files without a container engine: what the image promises
(non-root user, both binaries, the health check, port, stop signal, data volume,
listen address) is in the Dockerfile's last stage, and docker-compose.yml uses the
Go program's variable names, each one apimond knows.

Usage: container_check.py   (from the repository root)
"""

import re
import sys

failures = []


def need(cond, message):
    if not cond:
        failures.append(message)


def instructions(text):
    """(keyword, arguments) of each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def main():
    docker = instructions(open("Dockerfile").read())
    stages = [i for i, (k, _) in enumerate(docker) if k == "FROM"]
    need(len(stages) >= 2, "a multi-stage build (builder, then runtime)")
    final = docker[stages[-1]:]
    base = final[0][1]
    need(re.search(r"debian:.*-slim|distroless", base), f"a small runtime image, got {base}")

    users = [a for k, a in final if k == "USER"]
    need(users, "a USER in the runtime stage")
    if users:
        user = users[-1].split(":")[0]
        need(user not in ("root", "0"), f"a non-root USER, got {users[-1]}")

    copied = " ".join(a for k, a in final if k == "COPY" and "--from=" in a)
    for binary in ("apimond", "apimonctl"):
        need(re.search(rf"/{binary}\b", copied), f"{binary} copied from the builder")

    health = [a for k, a in final if k == "HEALTHCHECK"]
    need(health and "apimonctl" in health[0] and "health" in health[0],
         "HEALTHCHECK runs `apimonctl health` (GET /api/health; the image has no curl)")
    need(("EXPOSE", "8081") in final, "EXPOSE 8081")
    need(("STOPSIGNAL", "SIGTERM") in final, "STOPSIGNAL SIGTERM")
    need(any(k == "VOLUME" and "/data" in a for k, a in final), "VOLUME /data")
    env = " ".join(a for k, a in final if k == "ENV")
    need("HOST=0.0.0.0" in env, "ENV HOST=0.0.0.0")
    need("DATA_DIR=/data" in env, "ENV DATA_DIR=/data")
    builder = " ".join(a for k, a in docker[: stages[-1]])
    for tool in ("cmake", "clang", "libclang-dev"):
        need(tool in builder, f"the builder installs {tool} (BoringSSL)")
    need("--locked" in builder, "the builder builds with --locked")

    known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', open("apimond/src/config/variables.rs").read()))
    compose = open("docker-compose.yml").read()
    names = re.findall(r"^\s+([A-Z][A-Z0-9_]+):", compose, re.M)
    need("API_MONITOR_TOKEN_ADMIN" in names, "compose sets API_MONITOR_TOKEN_ADMIN (the Go name)")
    need("API_MONITOR_TOKEN_VISITOR" in names, "compose sets API_MONITOR_TOKEN_VISITOR")
    for name in names:
        need(name in known, f"compose variable {name} is one apimond reads")
    need(re.search(r"^\s+- \S+:/data\s*$", compose, re.M), "compose mounts a volume at /data")
    need("8081:8081" in compose, "compose publishes 8081")

    ignore = open(".dockerignore").read().split()
    need("target/" in ignore or "target" in ignore, ".dockerignore leaves target/ out")

    if failures:
        for f in failures:
            print(f"container_check: FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"container_check: ok ({len(docker)} Dockerfile instructions, {len(names)} compose variables)")


if __name__ == "__main__":
    main()
