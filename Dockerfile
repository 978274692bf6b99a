# syntax=docker/dockerfile:1
#
# hello-birthday: a two-stage build. The builder compiles a release binary with the locked
# dependency set; the runtime image holds only that binary on distroless `cc` (glibc, libgcc,
# CA certificates; no shell, no package manager).
#
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t hello-birthday .
#   docker run --rm -p 8080:8080 --read-only -v hello-data:/data hello-birthday
#
# tests/infra.rs reads this file: EXPOSE, ENV, USER, ENTRYPOINT and HEALTHCHECK must agree with
# the ECS task definition and the EFS access point in terraform/.

# Bookworm (Debian 12) to match the runtime's glibc: distroless cc-debian12. Both base images
# are pinned by tag only, not by digest: a tag can be re-pushed, so two builds of one commit may
# differ. To pin, append `@sha256:<digest>` to each FROM (e.g. from `docker buildx imagetools
# inspect <image>`); Dependabot's docker ecosystem (.github/dependabot.yml) then proposes tag and
# digest updates together.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock
# change, not on every source edit. Empty stand-ins for the crate's two targets let cargo
# compile every dependency; their own artefacts are then removed so the real build below
# cannot mistake them for up to date. The manifest also declares the `scale` example (for its
# tests), so cargo wants its file to exist, though `cargo build` never compiles it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src examples \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs examples/scale.rs \
 && cargo build --release --locked \
 && rm -rf src examples target/release/.fingerprint/hello-birthday-* \
           target/release/deps/hello_birthday-* target/release/deps/libhello_birthday-* \
           target/release/hello-birthday* target/release/libhello_birthday*

# The commit is compiled in (`option_env!("GIT_COMMIT")`, reported by hello_birthday_build_info
# and the startup log). Declared after the dependency layer so a new commit does not rebuild it.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
# The whole build context: .dockerignore admits only what the build reads (the sources and the
# files they include_str!; tests/infra.rs checks that list against src/).
COPY . ./
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && mkdir /data

# ---------------------------------------------------------------------------------------------
# The `nonroot` variant runs as uid/gid 65532. The EFS access point in terraform/modules/storage
# forces the same numbers on every file the tasks create.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG GIT_COMMIT=unknown
ARG VERSION=0.0.0
ARG SOURCE=https://github.com/OWNER/hello-birthday
LABEL org.opencontainers.image.title="hello-birthday" \
      org.opencontainers.image.description="Users-and-birthdays HTTP API storing one JSON file per user on a shared file system" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=builder /build/target/release/hello-birthday /usr/local/bin/hello-birthday
# /data is the EFS mount point on ECS. Owned by the service user so a plain `docker run` (with
# a named volume, which copies this ownership, or without a volume) can write there too.
COPY --from=builder --chown=65532:65532 /data /data

USER 65532:65532
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/data \
    LOG_FORMAT=json
EXPOSE 8080

# The binary's own probe (GET /health/live, exit 0/1): the image has no curl. Liveness, not
# readiness, so a slow EFS does not get a healthy process restarted.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/hello-birthday", "healthcheck"]

# Exec form: the binary is PID 1 and receives SIGTERM itself (a shell wrapper would swallow it).
ENTRYPOINT ["/usr/local/bin/hello-birthday"]
