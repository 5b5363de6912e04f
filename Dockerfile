# tagline's container image: a release build in the Rust image, then a small Debian runtime.
#
#   docker build -t tagline .
#   docker run -d --name tagline \
#     -v ./config:/etc/tagline:ro -v tagline-state:/var/lib/tagline -p 9440:9440 tagline
#
# The binary links libgit2 and libssh2 statically; at run time it needs glibc, OpenSSL 3
# (libssl3), zlib and the CA bundle, nothing else (no git, ssh or gpg programs are run).

FROM docker.io/library/rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY src ./src
RUN cargo build --release --locked --bin tagline \
 && cp target/release/tagline /tagline \
 && objcopy --strip-debug /tagline

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /tagline /usr/local/bin/tagline
# A fixed unprivileged user; the state volume is created owned by it.
RUN install -d -o 65532 -g 65532 -m 0700 /var/lib/tagline
USER 65532:65532
ENV HOME=/var/lib/tagline
VOLUME /var/lib/tagline
EXPOSE 9440
ENTRYPOINT ["/usr/local/bin/tagline"]
CMD ["run", "--config", "/etc/tagline", "--state-dir", "/var/lib/tagline", "--listen", "0.0.0.0:9440", "--log-format", "json"]
