# syntax=docker/dockerfile:1
# codex-sentinel image: a static (musl) binary on distroless "static" (no libc, no shell,
# CA certificates for OTLP over TLS), running as the non-root user 65532.
#
#   docker build -t localhost/codex-sentinel:0.1.0 .      (the Helm chart's default image)
#   docker run --rm -p 3000:3000 -e CODEX_HEALTH_HOST=0.0.0.0 localhost/codex-sentinel:0.1.0
#
# Without Docker: scripts/build-image builds the same image with podman FROM scratch
# (scripts/podman/agent.Containerfile: same user, working directory, port and entry point).
#
# The build stage runs scripts/build-static, which fails when the binary is not static or
# exceeds its 10 MiB budget.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    OUT=/out scripts/build-static

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/codex-sentinel /usr/local/bin/codex-sentinel
USER 65532:65532
# Relative defaults (.codex-sentinel state, logs/codex) resolve here; the Helm chart sets
# absolute paths on its own volumes and runs with a read-only root filesystem.
WORKDIR /home/nonroot
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/codex-sentinel"]
