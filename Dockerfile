# syntax=docker/dockerfile:1
# HugBucket container image.
#   docker build -t hugbucket .
#   docker run --rm -p 7860:7860 -v hugbucket-data:/data hugbucket
# For now the image runs the embedded hub (`hugbucket hub`); the S3/FTP gateway
# (`hugbucket serve`, ports 9000 / 2121 + passive range) is not built yet.

# ---- build --------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Same features as a plain `cargo build --release -p hugbucket`.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hugbucket \
    && install -D -m 0755 target/release/hugbucket /out/hugbucket

# ---- runtime ------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the upstream client talks HTTPS to the Hub / Xet CAS.
# Versions are left to the bookworm point release (security updates).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hugbucket \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin hugbucket \
    && mkdir -p /data \
    && chown hugbucket:hugbucket /data

COPY --from=builder /out/hugbucket /usr/local/bin/hugbucket

VOLUME ["/data"]
# 9000: S3 API, 2121: FTP control, 30000-30009: FTP passive data (gateway, planned);
# 7860: embedded hub.
EXPOSE 9000 2121 30000-30009 7860

# Numeric so that runtimes enforcing runAsNonRoot can verify it (user "hugbucket").
USER 10001:10001
WORKDIR /data
# Placeholder until the servers expose a health endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["hugbucket", "--version"]

ENTRYPOINT ["hugbucket"]
CMD ["hub", "--data-dir", "/data", "--listen", "0.0.0.0:7860"]
