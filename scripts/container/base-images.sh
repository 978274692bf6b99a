#!/usr/bin/env bash
# Makes the Dockerfile's two FROM images locally, under exactly the names the Dockerfile uses,
# because no image can be pulled here: a plain `docker build .` then runs unchanged. They are
# STAND-INS, built from Debian bookworm packages and the host's Rust toolchain; they are not the
# official images and do not show those images' exact contents or digests.
#
#   rust:<V>-slim-bookworm   debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates
#                            bookworm (what the official slim image installs), plus the host's
#                            Rust toolchain (must be <V>.x) under /usr/local/rustup with rustup's
#                            proxies in /usr/local/cargo/bin, and the official image's RUSTUP_HOME,
#                            CARGO_HOME, PATH, RUST_VERSION. Unlike the official image it also holds
#                            the crates of Cargo.lock (fetched on the host: outbound TLS from
#                            containers is intercepted here) and sets CARGO_NET_OFFLINE=true, so
#                            the build runs with --network none.
#   gcr.io/distroless/cc-debian12:nonroot
#                            bookworm's base-files netbase tzdata ca-certificates libc6 libssl3
#                            libgcc-s1 libgomp1 libstdc++6 unpacked (dpkg-deb -x, no maintainer
#                            scripts) into one merged-/usr tree, a CA bundle, passwd/group with
#                            root, nobody and nonroot (65532:65532, home /home/nonroot), no shell;
#                            USER 65532, WORKDIR /home/nonroot.
#
# Cache, under target/container/base/ (git-ignored), keyed by the inputs:
#   builder-rootfs-K1/  the debootstrap result (K1: the debootstrap command), ~1 min to make;
#   builder-K2.tar      that rootfs + toolchain + crates (K2: K1, rustc/cargo/rustup versions,
#                       Cargo.lock, the image config);
#   distroless-K3.tar   (K3: package versions apt would download, the files written here).
#   imported-NAME       "KEY IMAGE-ID" of the last import into the engine: an image already
#                       imported from the same key is not imported again.
# Older files of each kind are removed when a new one is made.
#
# Usage: scripts/container/base-images.sh  (as root; needs debootstrap, dpkg-deb, apt-get, and
# the engine: starts its own dockerd unless DOCKER_HOST answers)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
. scripts/container/lib.sh
LOG_PREFIX=base-images

CACHE=$CONTAINER_CACHE/base
mkdir -p "$CACHE"
# Bump when the way an image is assembled here changes without its inputs changing.
LAYOUT=2
sha() { sha256sum | cut -c1-12; }

# ---- The names, from the Dockerfile itself.
mapfile -t FROMS < <(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' Dockerfile)
BUILDER_IMAGE=
RUNTIME_IMAGE=
for from in "${FROMS[@]}"; do
  case "$from" in
    *@sha256:*) die "Dockerfile pins $from by digest: a local stand-in cannot have that digest" ;;
    rust:*-slim-bookworm) BUILDER_IMAGE=$from ;;
    gcr.io/distroless/cc-debian12:nonroot) RUNTIME_IMAGE=$from ;;
    *) die "Dockerfile's FROM $from: no stand-in for it here" ;;
  esac
done
[ -n "$BUILDER_IMAGE" ] || die "no rust:*-slim-bookworm FROM in the Dockerfile"
[ -n "$RUNTIME_IMAGE" ] || die "expected a rust:*-slim-bookworm and a distroless cc-debian12:nonroot FROM"

# imported_is_current NAME KEY: NAME in the engine is what we imported from KEY.
stamp_of() { echo "$CACHE/imported-$(tr '/:' '__' <<<"$1")"; }
imported_is_current() {
  local id stamp
  stamp=$(stamp_of "$1")
  id=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null) || return 1
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$2 $id" ]
}
# import TAR NAME KEY CHANGE...: docker import with Dockerfile instructions, and the stamp.
import() {
  local tar=$1 name=$2 key=$3 t0 id; shift 3
  local changes=() c
  for c in "$@"; do changes+=(--change "$c"); done
  t0=$(date +%s)
  id=$(docker import "${changes[@]}" "$tar" "$name")
  echo "$key $id" >"$(stamp_of "$name")"
  log "imported $name ($(( $(docker image inspect -f '{{.Size}}' "$name") / 1000000 )) MB) in $(( $(date +%s) - t0 )) s"
}

docker_up
trap docker_down EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---------------------------------------------------------------------------------------------
# The builder: rust:<V>-slim-bookworm.
need debootstrap debootstrap
need cargo "the Rust toolchain (rustup)"
RUST_MINOR=${BUILDER_IMAGE#rust:}
RUST_MINOR=${RUST_MINOR%-slim-bookworm}
read -r _ RUST_VERSION _ <<<"$(rustc -V)"
case "$RUST_VERSION" in
  "$RUST_MINOR" | "$RUST_MINOR".*) ;;
  *) die "the host's rustc is $RUST_VERSION; the Dockerfile's $BUILDER_IMAGE needs $RUST_MINOR.x (rustup toolchain install $RUST_MINOR)" ;;
esac
SYSROOT=$(rustc --print sysroot)
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
RUSTUP_BIN=$(readlink -f "$(command -v rustup)") || die "rustup not found: its proxies are what the official image has in /usr/local/cargo/bin"
TOOLCHAIN=$RUST_VERSION-$HOST_TRIPLE

SUITE=bookworm
BUILDER_PACKAGES=gcc,libc6-dev,ca-certificates
DEBOOTSTRAP_ARGS=(--variant=minbase "--include=$BUILDER_PACKAGES" "$SUITE")
# The official image's environment (rust-lang/docker-rust), plus the offline switch.
BUILDER_CHANGES=(
  "ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin RUST_VERSION=$RUST_VERSION"
  "ENV CARGO_NET_OFFLINE=true"
  'CMD ["bash"]'
)
K1=$(printf '%s\n' "debootstrap ${DEBOOTSTRAP_ARGS[*]}" | sha)
ROOTFS=$CACHE/builder-rootfs-$K1
K2=$(printf '%s\n' "$LAYOUT" "$K1" "$(rustc -vV)" "$(cargo -V)" "$("$RUSTUP_BIN" --version 2>/dev/null)" \
       "$(sha256sum <Cargo.lock)" "${BUILDER_CHANGES[@]}" | sha)
BUILDER_TAR=$CACHE/builder-$K2.tar

if imported_is_current "$BUILDER_IMAGE" "$K2"; then
  log "$BUILDER_IMAGE: current (key $K2)"
else
  if [ ! -f "$ROOTFS/ready" ]; then
    mirror=$(debian_mirror) || die "no Debian mirror in apt's sources"
    t0=$(date +%s)
    rm -rf "$ROOTFS.tmp" "$CACHE"/builder-rootfs-*
    log "debootstrap ${DEBOOTSTRAP_ARGS[*]} from $mirror (~1 min; log in $ROOTFS.log)"
    if ! debootstrap "${DEBOOTSTRAP_ARGS[@]}" "$ROOTFS.tmp" "$mirror" >"$ROOTFS.log" 2>&1; then
      tail -n 30 "$ROOTFS.log" >&2
      die "debootstrap failed (full log: $ROOTFS.log)"
    fi
    # As the official slim image leaves it: no package lists, no downloaded packages.
    rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*
    touch "$ROOTFS.tmp/ready"
    mv "$ROOTFS.tmp" "$ROOTFS"
    log "rootfs ready in $(( $(date +%s) - t0 )) s"
  fi
  if [ ! -f "$BUILDER_TAR" ]; then
    t0=$(date +%s)
    stage=$CACHE/builder-stage
    rm -rf "$stage" "$CACHE"/builder-*.tar "$CACHE"/builder-*.tar.tmp
    # The toolchain as rustup installs it: toolchains/<version>-<host>, settings.toml naming it
    # the default, and the proxies (hard links to rustup) in $CARGO_HOME/bin. Its docs and man
    # pages (share/) are left out, as the minimal profile leaves them out.
    mkdir -p "$stage/usr/local/rustup/toolchains/$TOOLCHAIN" "$stage/usr/local/cargo/bin"
    for part in bin lib libexec etc; do
      [ -e "$SYSROOT/$part" ] && cp -a "$SYSROOT/$part" "$stage/usr/local/rustup/toolchains/$TOOLCHAIN/"
    done
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$TOOLCHAIN" \
      >"$stage/usr/local/rustup/settings.toml"
    cp "$RUSTUP_BIN" "$stage/usr/local/cargo/bin/rustup"
    for proxy in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rust-gdb rust-gdbgui rust-lldb; do
      ln "$stage/usr/local/cargo/bin/rustup" "$stage/usr/local/cargo/bin/$proxy"
    done
    # The crates of Cargo.lock, fetched on the host into a CARGO_HOME kept between runs (only
    # new crates are downloaded), then copied into the image's CARGO_HOME.
    log "cargo fetch --locked (into $CONTAINER_CACHE/cargo-home)"
    CARGO_HOME=$PWD/$CONTAINER_CACHE/cargo-home cargo fetch --locked --quiet
    mkdir -p "$stage/usr/local/cargo/registry"
    cp -a "$CONTAINER_CACHE/cargo-home/registry/index" "$CONTAINER_CACHE/cargo-home/registry/cache" \
      "$stage/usr/local/cargo/registry/"
    # As the official image does: anyone may use and extend the toolchain and CARGO_HOME.
    chmod -R a+w "$stage/usr/local/rustup" "$stage/usr/local/cargo"
    tar -cf "$BUILDER_TAR.tmp" -C "$ROOTFS" --exclude=./ready .
    tar -rf "$BUILDER_TAR.tmp" -C "$stage" ./usr/local/rustup ./usr/local/cargo
    mv "$BUILDER_TAR.tmp" "$BUILDER_TAR"
    rm -rf "$stage"
    log "$BUILDER_TAR ($(( $(stat -c %s "$BUILDER_TAR") / 1000000 )) MB) made in $(( $(date +%s) - t0 )) s"
  fi
  import "$BUILDER_TAR" "$BUILDER_IMAGE" "$K2" "${BUILDER_CHANGES[@]}"
fi

# ---------------------------------------------------------------------------------------------
# The runtime: gcr.io/distroless/cc-debian12:nonroot.
need dpkg-deb dpkg
RUNTIME_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libssl3 libgcc-s1 libgomp1 libstdc++6)
read -r -d '' PASSWD <<'EOF' || true
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
read -r -d '' GROUP <<'EOF' || true
root:x:0:
tty:x:5:
staff:x:50:
nobody:x:65534:
nonroot:x:65532:
EOF
RUNTIME_CHANGES=(
  "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
  "USER 65532"
  "WORKDIR /home/nonroot"
)
# The versions apt would download now: a point release or security update makes a new key.
versions=()
for pkg in "${RUNTIME_PACKAGES[@]}"; do
  v=$(apt-cache policy "$pkg" | sed -n 's/^[[:space:]]*Candidate:[[:space:]]*//p')
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then die "apt knows no candidate for $pkg (apt-get update?)"; fi
  versions+=("$pkg=$v")
done
K3=$(printf '%s\n' "$LAYOUT" "${versions[@]}" "$PASSWD" "$GROUP" "${RUNTIME_CHANGES[@]}" | sha)
RUNTIME_TAR=$CACHE/distroless-$K3.tar

if imported_is_current "$RUNTIME_IMAGE" "$K3"; then
  log "$RUNTIME_IMAGE: current (key $K3)"
else
  if [ ! -f "$RUNTIME_TAR" ]; then
    t0=$(date +%s)
    work=$CACHE/distroless-stage
    rm -rf "$work" "$CACHE"/distroless-*.tar "$CACHE"/distroless-*.tar.tmp
    mkdir -p "$work/debs" "$work/root"
    # apt-get download fetches into the current directory, as root without apt's sandbox user.
    (cd "$work/debs" && apt-get download -q "${versions[@]}" >/dev/null 2>&1) \
      || die "apt-get download ${versions[*]} failed"
    root=$work/root
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
    # Merged /usr, as in Debian 12 installs and distroless: /bin, /lib, ... are links into /usr.
    for dir in bin sbin lib lib32 lib64 libx32; do
      if [ -d "$root/$dir" ] && [ ! -L "$root/$dir" ]; then
        mkdir -p "$root/usr/$dir"
        cp -a "$root/$dir/." "$root/usr/$dir/"
        rm -rf "${root:?}/$dir"
        ln -s "usr/$dir" "$root/$dir"
      fi
    done
    # What maintainer scripts would have made: the CA bundle (update-ca-certificates), the
    # accounts (base-passwd, adduser), the directories.
    mkdir -p "$root/etc/ssl/certs"
    find "$root/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat \
      >"$root/etc/ssl/certs/ca-certificates.crt"
    [ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || die "no CA certificates in ca-certificates"
    printf '%s\n' "$PASSWD" >"$root/etc/passwd"
    printf '%s\n' "$GROUP" >"$root/etc/group"
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
    mkdir -p "$root/tmp" "$root/root" "$root/home/nonroot"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root" "$root/home/nonroot"
    chown 65532:65532 "$root/home/nonroot"
    # Documentation but the licences, as distroless keeps them.
    find "$root/usr/share/doc" -type f ! -name copyright -delete
    rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
    # Maintainer-side scripts the packages ship (update-ca-certificates, update-motd.d): with no
    # interpreter in the image they could not run; distroless has none of them.
    find "$root" -type f -perm /111 -exec sh -c 'head -c2 "$1" | grep -q "^#!"' _ {} \; -print -delete \
      | sed "s|^$root/|base-images: removed script |" >&2
    tar -cf "$RUNTIME_TAR.tmp" -C "$root" .
    mv "$RUNTIME_TAR.tmp" "$RUNTIME_TAR"
    rm -rf "$work"
    log "$RUNTIME_TAR ($(( $(stat -c %s "$RUNTIME_TAR") / 1000000 )) MB) made in $(( $(date +%s) - t0 )) s"
  fi
  import "$RUNTIME_TAR" "$RUNTIME_IMAGE" "$K3" "${RUNTIME_CHANGES[@]}"
fi
