# syntax=docker/dockerfile:1
# HugBucket container image.
#   docker build -t hugbucket .
#   docker run --rm -p 9000:9000 -p 2121:2121 -p 30000-30099:30000-30099 -p 9001:9001 \
#     -v hugbucket-data:/data hugbucket
# One image runs either or both gateways (MODE=s3|ftp|both) on the embedded hub, or on
# huggingface.co with HF_TOKEN.

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
# 9000: S3 API, 2121: FTP control, 30000-30099: FTP passive data, 9001: health/metrics.
EXPOSE 9000 2121 30000-30099 9001

# Numeric so that runtimes enforcing runAsNonRoot can verify it (user "hugbucket").
USER 10001:10001
WORKDIR /data
ENV HUGBUCKET_DATA_DIR=/data
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["hugbucket", "healthcheck", "http://127.0.0.1:9001/health"]

ENTRYPOINT ["hugbucket"]
CMD ["serve"]
