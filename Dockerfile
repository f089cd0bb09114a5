# Multi-stage build from the local context; small non-root runtime image.
#   docker build -t exporter-proxy .
#   docker run -p 6555:6555 -v /run/exporter-proxy:/run/exporter-proxy exporter-proxy
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY schema schema
COPY src src
RUN cargo build --release --locked && strip target/release/exporter-proxy

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/exporter-proxy /usr/bin/exporter-proxy
COPY docker/config.toml /etc/exporter-proxy/config.toml
# The push socket lives here: mount it to reach it from other containers.
VOLUME ["/run/exporter-proxy"]
EXPOSE 6555 6554
USER nonroot
ENTRYPOINT ["/usr/bin/exporter-proxy"]
CMD ["--config.file=/etc/exporter-proxy/config.toml"]
