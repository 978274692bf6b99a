#!/bin/bash
# PID 1 of the rehearsal guest (exec'd by the stub /sbin/rehearsal-init that build-guest.sh bakes
# into the image, once /proc and the 9p share at /share are mounted). Sets up the environment
# rehearsal.py relies on: an NFSv4.1/4.2-only kernel nfsd in the root network namespace
# exporting a 32 MiB tmpfs, three client hosts h1..h3 (network namespaces, each with a storage
# veth and an HTTP veth and its own NFS client identifier), each host's NFS mount at /mnt/hN in
# the root mount namespace; then runs
# rehearsal.py (or, with MODE=smoke, a short check of this setup), writes its exit code to
# /share/out/exit-code and powers off. Every failure, and the guest deadline, also end in a
# written exit code and a power-off: nothing here may hang the VM.
#
# /share/guest.env (written by run.sh) sets MODE (rehearsal|smoke) and GUEST_DEADLINE (seconds of
# guest uptime by which the guest powers off whatever happens).
set -eEuo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export PYTHONUNBUFFERED=1   # rehearsal.py's lines reach the console as they happen
OUT=/share/out
MODE=rehearsal
GUEST_DEADLINE=840
SEED=        # rehearsal.py --seed (empty: it picks one)
SCENARIOS=   # rehearsal.py --scenarios (empty: all)
SCALE_USERS= # rehearsal.py --scale-users (empty: its default)
# shellcheck source=/dev/null
[ -r /share/guest.env ] && . /share/guest.env
HOSTS=(1 2 3)

uptime_s() { cut -d' ' -f1 /proc/uptime; }
log() { echo "guest-init [$(uptime_s)]: $*"; }

# finish CODE: the only way out. PID 1 must never exit (the kernel would panic and the exit code
# be lost), so record the code, keep the kernel log, flush, power off, and wait for it.
finish() {
  trap - ERR
  set +e
  echo "$1" >"$OUT/exit-code"
  dmesg >"$OUT/dmesg.txt" 2>&1
  sync
  log "exit code $1, powering off"
  echo o >/proc/sysrq-trigger
  sleep 60
}
trap 'log "FAILED at line $LINENO: $BASH_COMMAND"; finish 1' ERR

log "started (boot to init: $(uptime_s) s of guest uptime)"
INIT_AT=$(uptime_s)
mkdir -p "$OUT"
rm -f "$OUT/exit-code"

# The guest's own deadline, independent of the host's: whatever hangs (a hard NFS mount to a
# cut link, a stuck driver), the VM powers off with exit code 124 and its logs on the share.
# GUEST_DEADLINE counts guest uptime, from the kernel's start.
(
  sleep "$(awk -v d="$GUEST_DEADLINE" -v a="$(uptime_s)" 'BEGIN {printf "%d", (d > a + 1) ? d - a : 1}')"
  log "guest deadline of $GUEST_DEADLINE s passed"
  finish 124
) &

# --- the basic file systems (Debian's initrd moves its /dev, /run, /proc, /sys to the root; the
# checks keep this working without it too)
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 tmpfs /dev/shm   # python's multiprocessing
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
hostname rehearsal
ip link set lo up
# The kernel's NFS messages ("server ... not responding", "lost N locks") are notices and
# warnings: keep them on the console, where the rehearsal's timeline is, but not the info
# chatter below them (all of it is in out/dmesg.txt).
dmesg -n notice   # notice and above; dmesg sets the console level one past the one named

# --- modules: the rootfs's /lib/modules matches the booted kernel (both from linux-image-amd64)
for m in nfsd nfsv4 veth sch_netem; do modprobe "$m"; done

# --- the NFS server, in the root network namespace
# EFS grants no delegations; nfsd grants them through file leases, so none when leases are off.
sysctl -q -w fs.leases-enable=0
mount -t nfsd nfsd /proc/fs/nfsd
# Short lease and grace so a partition fits in a test; both must be set before nfsd starts.
echo 15 >/proc/fs/nfsd/nfsv4leasetime
echo 15 >/proc/fs/nfsd/nfsv4gracetime
mkdir -p /srv/export
mount -t tmpfs -o size=32m tmpfs /srv/export
# insecure: the clients mount with noresvport (as EFS's mount helper does), i.e. from ports above
# 1023, which a secure export refuses ("mount.nfs4: Operation not permitted").
echo '/srv/export 10.0.0.0/16(rw,sync,no_subtree_check,no_root_squash,insecure,fsid=1)' >/etc/exports
mkdir -p /var/lib/nfs
# rpc.mountd answers the kernel's export-cache upcalls (which client may see which export):
# NFSv4 needs it too, only not its MOUNT protocol (without it the mount hangs; tried). With v2
# and v3 off neither it nor nfsd registers with rpcbind, so no rpcbind runs.
rpc.mountd --no-nfs-version 2 --no-nfs-version 3
exportfs -ra
rpc.nfsd --no-nfs-version 3 --no-nfs-version 4.0 --nfs-version 4.1 --nfs-version 4.2 8
log "nfsd: versions $(cat /proc/fs/nfsd/versions), $(cat /proc/fs/nfsd/threads) threads, lease $(cat /proc/fs/nfsd/nfsv4leasetime) s, grace $(cat /proc/fs/nfsd/nfsv4gracetime) s"
# No client can hold state from before this boot, so the grace period would only make the first
# OPENs wait 15 s: end it now (as nfsdcld does when it knows there is nothing to reclaim).
echo Y >/proc/fs/nfsd/v4_end_grace

# --- the client hosts
for i in "${HOSTS[@]}"; do
  ns=h$i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # storage link stN, 10.0.N.0/24 (cut in partition tests); HTTP link htN, 10.1.N.0/24 (never cut)
  for link in st:0 ht:1; do
    dev=${link%:*}$i net=10.${link#*:}.$i
    ip link add "$dev" type veth peer name "${dev}p" netns "$ns"
    ip addr add "$net.1/24" dev "$dev"; ip link set "$dev" up
    ip -n "$ns" addr add "$net.2/24" dev "${dev}p"; ip -n "$ns" link set "${dev}p" up
  done
  # The NFS client is per network namespace, but its client id string is built from the UTS
  # host name, which all namespaces share: the server would take the three for one client that
  # keeps rebooting and evict one for another. Each gets its own uniquifier. The file is per
  # network namespace as sysfs shows it, and sysfs shows the namespace it was mounted in: hence
  # `ip netns exec`, which mounts a fresh /sys in its own mount namespace.
  ip netns exec "$ns" sh -c "echo rehearsal-$ns >/sys/fs/nfs/net/nfs_client/identifier"
  got=$(ip netns exec "$ns" cat /sys/fs/nfs/net/nfs_client/identifier)
  [ "$got" = "rehearsal-$ns" ] || { log "$ns: NFS client identifier reads '$got'"; false; }
  mkdir -p "/mnt/$ns"
  # nsenter --net only, not `ip netns exec` (which makes a private mount namespace): the mount
  # lands in the root mount namespace, made by h$i's NFS client, over h$i's storage link.
  timeout 60 nsenter --net="/run/netns/$ns" mount -t nfs4 \
    -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport \
    "10.0.$i.1:/srv/export" "/mnt/$ns"
done

# Three hosts must be three NFS clients to the server.
shopt -s nullglob
clients=(/proc/fs/nfsd/clients/*/info)
shopt -u nullglob
log "nfsd sees ${#clients[@]} clients:"
for c in "${clients[@]}"; do
  echo "    $(grep -h -E '^(clientid|address|name):' "$c" | tr '\n' ' ')"
done
[ "${#clients[@]}" -eq "${#HOSTS[@]}" ] || { log "expected ${#HOSTS[@]} NFS clients"; false; }

mkdir -p /srv/local   # the local-disk baseline, on the guest's ext4 root
SETUP_S=$(awk -v a="$INIT_AT" -v b="$(uptime_s)" 'BEGIN {printf "%.1f", b - a}')
log "setup done in $SETUP_S s"
printf 'boot_to_init_s %s\nsetup_s %s\n' "$INIT_AT" "$SETUP_S" >"$OUT/timings.txt"

# --- smoke mode: the plumbing only; one instance per host, one write through host 1 read back
# through hosts 2 and 3 over their HTTP links
smoke() {
  local i body pids=()
  for i in "${HOSTS[@]}"; do
    nsenter --net="/run/netns/h$i" /share/bin/hello-birthday --listen "10.1.$i.2:8080" \
      --data-dir "/mnt/h$i" --log-format json --lock-timeout 2000 --storage-timeout 5000 \
      --orphan-age 10 >>"$OUT/h$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${HOSTS[@]}"; do
    # curl retries a refused connection and a 503 (not ready yet) every second, for 60 s at most.
    curl -fs -o /dev/null --max-time 5 --retry 60 --retry-delay 1 --retry-max-time 60 --retry-connrefused \
      "http://10.1.$i.2:8080/health/ready" || { log "smoke: h$i not ready; its log:"; cat "$OUT/h$i.log"; return 1; }
    log "smoke: h$i ready"
  done
  curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
    -d '{"dateOfBirth":"1990-06-15"}' -w 'smoke: PUT via h1 -> %{http_code}\n' http://10.1.1.2:8080/hello/alice
  for i in 2 3; do
    body=$(curl -fsS --max-time 10 "http://10.1.$i.2:8080/hello/alice")
    echo "smoke: GET via h$i -> $body"
    [[ $body == *'"Hello, alice! '* ]] || { log "smoke: h$i did not read back alice's record"; return 1; }
  done
  ls -la /mnt/h1/users/*/ /srv/export/users/*/
  kill -TERM "${pids[@]}"
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { log "smoke: h$((i + 1)) exited $?"; return 1; }
  done
  log "smoke: passed"
}

rc=0
if [ "$MODE" = smoke ]; then
  smoke   # a plain statement: `smoke || ...` would turn set -e off inside it
else
  START=$(uptime_s)
  # Stop the driver 15 s before the guest deadline, so that its own exit code (124) and the
  # logs are written by finish rather than by the watchdog.
  left=$(awk -v d="$GUEST_DEADLINE" -v a="$START" 'BEGIN {printf "%d", (d > a + 16) ? d - a - 15 : 1}')
  log "running rehearsal.py (at most $left s)"
  # The driver's output goes to the console and to rehearsal.log; its status is the guest's.
  args=(--out "$OUT")
  [ -z "$SEED" ] || args+=(--seed "$SEED")
  [ -z "$SCENARIOS" ] || args+=(--scenarios "$SCENARIOS")
  [ -z "$SCALE_USERS" ] || args+=(--scale-users "$SCALE_USERS")
  timeout --kill-after=5 "$left" python3 /share/rehearsal/rehearsal.py "${args[@]}" 2>&1 \
    | tee "$OUT/rehearsal.log" || rc=${PIPESTATUS[0]}
  [ "$rc" != 124 ] || log "rehearsal.py did not finish within $left s (NFS_REHEARSAL_TIMEOUT); stopped"
  echo "scenarios_s $(awk -v a="$START" -v b="$(uptime_s)" 'BEGIN {printf "%.1f", b - a}')" >>"$OUT/timings.txt"
fi
finish "$rc"
