# apimon container image: apimond and apimonctl on Debian slim, running as the
# non-root user apimon (uid 10001) with its data in the volume /data.
#   docker build -t apimon .
#   docker compose up -d          (docker-compose.yml beside this file)
#   docker exec apimon apimonctl status
# The builder uses the toolchain the workspace is tested with; the runtime stage has
# the same Debian release, so the binaries find the glibc they were linked against.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# The `browser` client profile (wreq) builds BoringSSL: cmake and libclang. Build
# tools only (not in the image), so taken as the Debian release has them, unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p apimond -p apimonctl \
    && install -D -m 0755 target/release/apimond /out/apimond \
    && install -D -m 0755 target/release/apimonctl /out/apimonctl

FROM debian:${DEBIAN_RELEASE}-slim
# TLS roots are built into the binaries; util-linux (setpriv) is part of the base.
RUN groupadd --system --gid 10001 apimon \
    && useradd --system --uid 10001 --gid apimon --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin apimon \
    && install -d -m 0700 -o apimon -g apimon /data
COPY --from=builder /out/apimond /out/apimonctl /usr/local/bin/
COPY packaging/docker-entrypoint.sh /usr/local/bin/apimon-entrypoint
ENV HOST=0.0.0.0 \
    PORT=8081 \
    DATA_DIR=/data \
    APIMON_SOCKET=/data/apimond.sock
VOLUME ["/data"]
EXPOSE 8081
# apimon, by number so the runtime need not resolve the name.
USER 10001:10001
# apimonctl asks GET /api/health (no token): 0 when the daemon answers 200.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["apimonctl", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/apimon-entrypoint"]
CMD ["apimond"]
