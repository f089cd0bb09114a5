# Multi-stage build from the local context (nothing is fetched but crates);
# small non-root runtime image.
#
#   docker build -t exporter-proxy .
#   docker run -p 127.0.0.1:6555:6555 -v exporter-proxy-socket:/run/exporter-proxy exporter-proxy
#
# See docker-compose.yml for a complete example (socket shared with another
# container, config and web config mounted read-only, Prometheus).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY schema schema
COPY src src
RUN cargo build --release --locked \
    && strip target/release/exporter-proxy \
    && mkdir -p /out/run/exporter-proxy

# distroless cc: glibc, libgcc_s and CA certificates; no shell, no package
# manager. The binary links only libc, libm and libgcc_s.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/exporter-proxy /usr/bin/exporter-proxy
COPY docker/config.toml /etc/exporter-proxy/config.toml
# The socket directory must belong to the runtime user (65532) so that the
# proxy can create its socket there; a named volume mounted on it starts
# with this ownership.
COPY --from=build --chown=nonroot:nonroot /out/run/exporter-proxy /run/exporter-proxy
# Read by the proxy and by the health check alike (both honour it).
ENV EXPORTER_PROXY_CONFIG=/etc/exporter-proxy/config.toml
# The push socket (share it with the containers that push) and the config
# (mount your own read-only; a web config for TLS and basic auth too).
VOLUME ["/run/exporter-proxy", "/etc/exporter-proxy"]
# HTTP (/metrics, push API), TCP push receiver, Cap'n Proto RPC.
EXPOSE 6555 6554 6556
USER nonroot
# No shell or curl here: the binary checks itself (GET /-/healthy at the
# config's address, https when the web config enables TLS; no credentials
# needed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/bin/exporter-proxy", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["/usr/bin/exporter-proxy"]
CMD ["run"]
