# syntax=docker/dockerfile:1
# One image per service, all from this file:
#   docker build --build-arg SERVICE=identity -t ticketing/identity .
# SERVICE is one of: gateway identity catalog inventory booking payment notification prescaler.
#
# Stages:
#   chef        Rust toolchain + the C toolchain the native crates need + cargo-chef
#   planner     computes the dependency recipe from the manifests
#   builder     builds the dependencies of the whole workspace (one cached layer shared by all
#               eight images, since SERVICE is declared after it), then the one binary
#   distroless-cc, distroless
#               the runtime bases: distroless/base-nossl (glibc, CA certificates, tzdata; no
#               shell), non-root UID 65532; distroless/cc (the same plus libgcc, libssl3,
#               libstdc++, libgomp) for the dev image and as the source of the libraries
#               below. Renovate moves the two together.
#   runtime-libraries
#               the shared libraries the one binary links beyond glibc, taken from
#               distroless/cc with their package records (see below)
#   dev-builder, dev
#               skaffold's dev profile only (`--target dev`): every binary in one image, built
#               incrementally without LTO (see below)
#   runtime     the default target: distroless/base-nossl, the libraries the binary links
#               and the one binary, nothing else
#
# Base images are pinned by digest (the tag beside it says what it is); Renovate moves
# both together (.github/renovate.json), so a rebuild fetches the bytes that were reviewed.
#
# Native dependencies, so nothing is needed at run time beyond glibc, libgcc_s and libssl3:
#   - rdkafka builds its bundled librdkafka (mklove ./configure + make, C and C++); its zlib
#     comes from libz-sys, built from source and linked statically (LIBZ_SYS_STATIC=1),
#     because distroless/cc has no libz.so;
#   - protobuf code is generated in crates/proto/build.rs by protox: no protoc;
#   - librdkafka links the system's OpenSSL (rdkafka's `ssl` feature: SSL/SASL_SSL to
#     managed Kafka), so the builder has libssl-dev and the runtime uses the libssl3 that
#     distroless/cc carries (same Debian release, see below), copied into the images of
#     the services that link it; `ssl-vendored` would build OpenSSL from source instead,
#     minutes longer (ADR 0016);
#   - Postgres and Redis speak TLS through rustls (pure Rust, ring) and the CA store.
#   perl and cmake stay for rdkafka's `ssl-vendored`/`cmake-build` features.

# The builder's Rust is the workspace's rust-version (Cargo.toml) and its Debian release (bookworm) matches the
# runtime's (distroless cc-debian12): the runtime must carry the same or a newer glibc and
# the same libssl3, so move both together.
FROM rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS chef
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make perl pkg-config cmake libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src
# Set here, in the stage both cook and build inherit, so their fingerprints agree.
#   CARGO_INCREMENTAL=0          no incremental artifacts in a one-shot build
#   LIBZ_SYS_STATIC=1            static zlib (see above)
#   CARGO_PROFILE_RELEASE_STRIP  strip symbols too (the workspace keeps them for local
#                                profiling); panics still report file and line
#   CARGO_PROFILE_RELEASE_LTO, _CODEGEN_UNITS
#                                fat LTO in one unit: the gateway's binary 24.0 -> 19.9 MB
#                                for half a minute more on a cold 2-core build
#                                (docs/benchmarks.md); the workspace keeps thin LTO so
#                                local release builds stay quick
ENV CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never \
    LIBZ_SYS_STATIC=1 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies of the whole workspace, once for all seven services.
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
ARG SERVICE
RUN if [ -z "${SERVICE}" ]; then echo "build with --build-arg SERVICE=<service>" >&2; exit 1; fi; \
    if [ ! -f "services/${SERVICE}/Cargo.toml" ]; then echo "no such service: ${SERVICE}" >&2; exit 1; fi
# -p selects only the service's package, so Cargo enables only the features it asks for
# (the gateway builds and links no librdkafka); --bin alone would unify the workspace's.
RUN cargo build --release --locked -p "ticketing-${SERVICE}" --bin "${SERVICE}" \
    && mkdir -p /out/bin \
    && cp "target/release/${SERVICE}" "/out/bin/${SERVICE}" \
    && ln -s "${SERVICE}" /out/bin/service

# :nonroot is UID/GID 65532; USER below repeats it numerically so Kubernetes'
# runAsNonRoot can verify it without resolving a user name.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS distroless-cc
# distroless/cc less libgcc, libssl3, libstdc++ and libgomp (about 9 MB): no binary here links
# libstdc++ or libgomp, and the gateway links no OpenSSL, so each image takes only what its
# binary links (runtime-libraries) and stays under the 40 MB goal (ADR 0048).
FROM gcr.io/distroless/base-nossl-debian12:nonroot@sha256:be40c00dfabd86576d92666e87e406714d5618342de1a0c213ad232de255172e AS distroless

# The shared libraries the binary links beyond glibc, from the same distroless/cc (so the
# same Debian release and versions), with their package records under
# /var/lib/dpkg/status.d and their copyright files, so image scanners and SBOMs still see
# them: libgcc_s always (Rust's unwinder), libssl3 when the binary links it (librdkafka's
# TLS). A binary that links anything else fails the build here, not the pod at start.
FROM chef AS runtime-libraries
COPY --from=distroless-cc / /cc/
COPY --from=builder /out/bin/ /bin-check/
RUN set -eu; cd /cc; mkdir /out; \
    keep() { for f in "$@"; do cp -a --parents "$(realpath --relative-to=/cc "$f")" /out/; done; }; \
    keep lib/*-linux-gnu/libgcc_s.so.1 var/lib/dpkg/status.d/libgcc-s1* \
         var/lib/dpkg/status.d/gcc-12-base* usr/share/doc/gcc-12-base/copyright; \
    for lib in $(readelf -d /bin-check/service | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do \
        case "$lib" in \
            libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux-*.so.* | libgcc_s.so.1) ;; \
            libssl.so.3 | libcrypto.so.3) ssl=1 ;; \
            *) echo "the binary links $lib, which the runtime image does not carry" >&2; exit 1 ;; \
        esac; \
    done; \
    if [ -n "${ssl:-}" ]; then \
        keep usr/lib/*-linux-gnu/libssl.so.3 usr/lib/*-linux-gnu/libcrypto.so.3 \
             usr/lib/*-linux-gnu/engines-3 usr/lib/*-linux-gnu/ossl-modules \
             var/lib/dpkg/status.d/libssl3* usr/share/doc/libssl3/copyright; \
    fi

# The dev loop (skaffold's dev profile): one image with every binary, so an edit rebuilds one
# image instead of eight. The cache mounts keep the cargo registry and the target directory
# across builds, so only the crates an edit touches recompile, incrementally; the dev-image
# profile (Cargo.toml) drops LTO, which dominates a release link. Nothing here reaches a
# release: the release workflow and the production profiles build the default target.
FROM chef AS dev-builder
# The chef stage turns incremental compilation off for one-shot builds; here it pays.
ENV CARGO_INCREMENTAL=1
COPY . .
# sharing=locked: two builds at once would corrupt one target directory, so they take turns.
RUN --mount=type=cache,id=ticketing-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=ticketing-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=ticketing-dev-target,target=/src/target,sharing=locked \
    services=$(for d in services/*/; do basename "$d"; done) \
    && cargo build --profile dev-image --locked $(printf -- '--bin %s ' $services) \
    && mkdir -p /out/bin \
    && for s in $services; do cp "target/dev-image/$s" /out/bin/; done

FROM distroless-cc AS dev
COPY --from=dev-builder /out/bin/ /usr/local/bin/
USER 65532:65532
# No entrypoint: the chart runs /usr/local/bin/<service> in each pod.

FROM distroless AS runtime
ARG SERVICE
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/ticketing/ticketing
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="Ticketing platform: the ${SERVICE} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/base-nossl-debian12:nonroot"
COPY --from=runtime-libraries /out/ /
# /usr/local/bin/<service> plus the symlink /usr/local/bin/service -> <service>, so the
# entrypoint is the same in every image (the chart names the binary explicitly).
COPY --from=builder /out/bin/ /usr/local/bin/
USER 65532:65532
# gRPC (5005x) and admin (5105x) ports differ per service; see docs/configuration.md "Ports".
ENTRYPOINT ["/usr/local/bin/service"]
CMD ["serve"]
