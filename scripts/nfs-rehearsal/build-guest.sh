#!/usr/bin/env bash
# Builds (or finds in its cache) the guest the NFS rehearsal boots: a Debian bookworm rootfs with
# a stock kernel, the kernel NFS server and client, as an ext4 disk image, plus the kernel and
# initrd to boot it with. Prints the guest directory (image, vmlinuz, initrd.img) on stdout as
# its last line; everything else goes to stderr.
#
# Cache, under target/nfs-rehearsal/ (git-ignored):
#   rootfs-KEY/  the debootstrap result; KEY hashes the debootstrap command (suite, variant,
#                package list), so changing the package list builds a new one (~2 min).
#   guest-KEY2/  rootfs.ext4 + vmlinuz + initrd.img; KEY2 hashes KEY, the stub init baked into
#                the image and the image's size, so those rebuild the image only (~15 s).
# Older rootfs-*/guest-* are removed when a new one is made: each is ~1 GB.
#
# NFS_REHEARSAL_ROOTFS=DIR: copy DIR instead of running debootstrap, for a rootfs already made
# with exactly the command below (checked: every package of the list must be installed in it).
#
# Usage: scripts/nfs-rehearsal/build-guest.sh  (as root: debootstrap, chroot and mkfs -d need it
# (file owners); needs debootstrap, e2fsprogs >= 1.43)
set -euo pipefail
cd "$(dirname "$0")/../.."

SUITE=bookworm
VARIANT=minbase
# What the guest needs and nothing more: the stock kernel (virtio, 9p, ext4, nfs, nfsd, veth and
# netem as modules), the NFS server and client tools, ip/tc for the host namespaces, and what
# rehearsal.py uses: faketime for libfaketime (each host's instance on a wall clock of its own).
PACKAGES=linux-image-amd64,nfs-kernel-server,nfs-common,iproute2,procps,curl,python3,kmod,util-linux,faketime
IMAGE_SIZE=2G   # sparse; the rootfs is ~0.8 GB, the rest is room for /srv/local and logs
CACHE=target/nfs-rehearsal

log() { echo "build-guest: $*" >&2; }
need() { command -v "$1" >/dev/null || { log "$1 not found (apt-get install $2)"; exit 1; }; }
need mkfs.ext4 e2fsprogs
need sha256sum coreutils

# Debian's initrd cannot mount a 9p root (no 9p modules in it), so the guest boots from the ext4
# image on virtio-blk and the kernel runs this stub, baked into the image, as init. It mounts the
# share and hands over to /share/rehearsal/guest-init.sh, so that guest-init.sh can change
# without rebuilding the image. If anything fails it powers off: a PID 1 that exits panics the
# kernel, which (panic=-1, -no-reboot) also ends qemu, but this way the console says why.
read -r -d '' STUB_INIT <<'EOF' || true
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
die() { echo "rehearsal-init: $*" >/dev/console; echo o >/proc/sysrq-trigger; sleep 60; }
mountpoint -q /proc || mount -t proc proc /proc || die "cannot mount /proc"
modprobe 9pnet_virtio && modprobe 9p || die "cannot load the 9p modules"
mkdir -p /share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 share /share || die "cannot mount the 9p share"
[ -r /share/rehearsal/guest-init.sh ] || die "no /share/rehearsal/guest-init.sh"
exec /bin/bash /share/rehearsal/guest-init.sh
die "cannot exec guest-init.sh"
EOF

# Debian's own initrd (MODULES=most) is 36 MB that TCG takes ~3.5 s to unpack and ~4 s more to
# get through; one with only what finds and mounts the root boots to init ~7 s sooner.
INITRD_MODULES=(virtio_pci virtio_blk ext4)

KEY=$(printf '%s\n' "debootstrap --variant=$VARIANT --include=$PACKAGES $SUITE" | sha256sum | cut -c1-12)
KEY2=$(printf '%s\n' "$KEY" "$IMAGE_SIZE" "$STUB_INIT" "${INITRD_MODULES[*]}" | sha256sum | cut -c1-12)
ROOTFS="$CACHE/rootfs-$KEY"
GUEST="$CACHE/guest-$KEY2"
mkdir -p "$CACHE"

if [ -f "$GUEST/ready" ]; then
  log "cached guest $GUEST"
  echo "$GUEST"
  exit 0
fi

# has_packages DIR: every package of the list is installed in DIR (asked of DIR's dpkg database).
has_packages() {
  local missing
  missing=$(dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${db:Status-Status} ${Package}\n' ${PACKAGES//,/ } 2>&1 \
    | grep -v '^installed ') || true
  [ -z "$missing" ] || { log "$1 lacks packages: $missing"; return 1; }
}

if [ ! -f "$ROOTFS/ready" ]; then
  start=$(date +%s)
  rm -rf "$ROOTFS.tmp" "$CACHE"/rootfs-*
  if [ -n "${NFS_REHEARSAL_ROOTFS:-}" ]; then
    has_packages "$NFS_REHEARSAL_ROOTFS" || exit 1
    log "copying the ready rootfs $NFS_REHEARSAL_ROOTFS"
    cp -a "$NFS_REHEARSAL_ROOTFS" "$ROOTFS.tmp"
  else
    need debootstrap debootstrap
    # The mirror is apt's own (never a host name written here).
    . scripts/lib.sh
    mirror=$(debian_mirror) || { log "no Debian mirror found in apt's sources"; exit 1; }
    log "debootstrap $SUITE from $mirror (~2-3 min; log in $ROOTFS.log)"
    if ! debootstrap --variant="$VARIANT" --include="$PACKAGES" "$SUITE" "$ROOTFS.tmp" "$mirror" >"$ROOTFS.log" 2>&1; then
      tail -n 30 "$ROOTFS.log" >&2
      log "debootstrap failed (full log: $ROOTFS.log)"
      exit 1
    fi
    has_packages "$ROOTFS.tmp" || exit 1
  fi
  rm -rf "$ROOTFS.tmp/var/cache/apt/archives/"*.deb   # ~150 MB the image does not need
  touch "$ROOTFS.tmp/ready"
  mv "$ROOTFS.tmp" "$ROOTFS"
  log "rootfs ready in $(( $(date +%s) - start )) s"
fi

start=$(date +%s)
rm -rf "$GUEST.tmp" "$CACHE"/guest-*
mkdir -p "$GUEST.tmp"
printf '%s\n' "$STUB_INIT" >"$ROOTFS/sbin/rehearsal-init"
chmod 755 "$ROOTFS/sbin/rehearsal-init"
# Exactly one kernel is installed; take it and its initrd by their versioned names.
kernels=("$ROOTFS"/boot/vmlinuz-*)
if [ "${#kernels[@]}" -ne 1 ] || [ ! -f "${kernels[0]}" ]; then
  log "expected one kernel in $ROOTFS/boot, found: ${kernels[*]}"; exit 1
fi
version=${kernels[0]##*/vmlinuz-}
cp "${kernels[0]}" "$GUEST.tmp/vmlinuz"
# mkinitramfs from the rootfs itself (its initramfs-tools, its modules), with a copy of its
# configuration changed to MODULES=list; the rootfs's own /boot stays as Debian made it.
conf=$ROOTFS/tmp/rehearsal-initramfs
rm -rf "$conf"
cp -a "$ROOTFS/etc/initramfs-tools" "$conf"
sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=gzip/' "$conf/initramfs.conf"
printf '%s\n' "${INITRD_MODULES[@]}" >"$conf/modules"
chroot "$ROOTFS" mkinitramfs -d /tmp/rehearsal-initramfs -o /tmp/rehearsal-initrd.img "$version" >&2
mv "$ROOTFS/tmp/rehearsal-initrd.img" "$GUEST.tmp/initrd.img"
rm -rf "$conf"
# mkfs -d copies the tree with owners and modes: no loop mount, no privileges beyond reading it.
truncate -s "$IMAGE_SIZE" "$GUEST.tmp/rootfs.ext4"
mkfs.ext4 -q -F -L rehearsal-root -d "$ROOTFS" "$GUEST.tmp/rootfs.ext4" >&2
echo "$version" >"$GUEST.tmp/kernel-version"
touch "$GUEST.tmp/ready"
mv "$GUEST.tmp" "$GUEST"
log "image ready in $(( $(date +%s) - start )) s (kernel $version)"
echo "$GUEST"
