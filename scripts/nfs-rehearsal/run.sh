#!/usr/bin/env bash
# NFS rehearsal: the release binary on three client hosts that share one real NFSv4.1 export, as
# the ECS tasks share EFS, driven through partitions, kills and contention by rehearsal.py. The
# host kernel has no NFS, so it all runs in a qemu guest (Debian bookworm's stock kernel, built
# by build-guest.sh): the guest's nfsd is the server, three network namespaces are the hosts.
# See guest-init.sh for the guest's setup.
#
# Usage: scripts/nfs-rehearsal/run.sh [--smoke]
#   --smoke  instead of rehearsal.py, a short check of the plumbing: one instance per host,
#            a PUT through host 1 read back through hosts 2 and 3.
# Environment:
#   NFS_REHEARSAL_TIMEOUT  seconds the VM may run, boot included (default 900); then it is killed.
#   NFS_REHEARSAL_BIN      use this binary instead of `cargo build --release --locked`'s.
#   NFS_REHEARSAL_ROOTFS   see build-guest.sh (a ready rootfs instead of debootstrap).
#   NFS_REHEARSAL_SEED     seed of scenario l's random schedule of nemeses (default: the driver
#                          picks one and prints it: pass it here to replay a failure).
#   NFS_REHEARSAL_SCENARIOS  comma-separated scenario letters to run (default: all), e.g. j,k.
#   NFS_REHEARSAL_SCALE_USERS  users scenario m seeds and measures (default 100000, which
#                          takes m about 65 s).
#   NFS_REHEARSAL_SCALE_BIN  use this examples/scale.rs binary instead of building it.
# Results stay in target/nfs-rehearsal/last-run/ (console.log, share/out/). After the VM, the
# linearizability checker (examples/check_history.rs) reads the run's share/out/history.jsonl
# and writes a page per illegal user to last-run/linearizability/. Exits with the guest
# driver's exit code, else the checker's (0 linearizable, 1 illegal, 2 undecided, 3 malformed);
# 1 if the guest wrote no exit code, 124 if the VM ran out of time.
# Needs: qemu-system-x86, e2fsprogs, debootstrap (unless the guest is cached), cargo; run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE=rehearsal
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
TIMEOUT=${NFS_REHEARSAL_TIMEOUT:-900}
SEED=${NFS_REHEARSAL_SEED:-}
SCENARIOS=${NFS_REHEARSAL_SCENARIOS:-}
# These go into guest.env, which the guest sources: digits and letters only.
[[ $SEED =~ ^[0-9]*$ ]] || { echo "nfs-rehearsal: NFS_REHEARSAL_SEED must be a number" >&2; exit 2; }
[[ $SCENARIOS =~ ^[a-z,]*$ ]] || { echo "nfs-rehearsal: NFS_REHEARSAL_SCENARIOS must be letters and commas" >&2; exit 2; }
SCALE_USERS=${NFS_REHEARSAL_SCALE_USERS:-}
[[ $SCALE_USERS =~ ^[0-9]*$ ]] || { echo "nfs-rehearsal: NFS_REHEARSAL_SCALE_USERS must be a number" >&2; exit 2; }

for tool in qemu-system-x86_64:qemu-system-x86 mkfs.ext4:e2fsprogs; do
  command -v "${tool%%:*}" >/dev/null \
    || { echo "nfs-rehearsal: ${tool%%:*} not found (apt-get install ${tool#*:})" >&2; exit 1; }
done
if [ "$MODE" = rehearsal ] && [ ! -f scripts/nfs-rehearsal/rehearsal.py ]; then
  echo "nfs-rehearsal: scripts/nfs-rehearsal/rehearsal.py is missing" >&2; exit 1
fi

# One run at a time: they share the guest cache and last-run/.
mkdir -p target/nfs-rehearsal
exec 9>target/nfs-rehearsal/.lock
flock -n 9 || { echo "nfs-rehearsal: another run holds target/nfs-rehearsal/.lock" >&2; exit 1; }

t0=$(date +%s)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=${NFS_REHEARSAL_BIN:-}
SCALE_BIN=${NFS_REHEARSAL_SCALE_BIN:-}
build=()
[ -n "$BIN" ] || { build+=(--bin hello-birthday); BIN=$TARGET_DIR/release/hello-birthday; }
# Scenario m's measuring tool (examples/scale.rs).
[ -n "$SCALE_BIN" ] || { build+=(--example scale); SCALE_BIN=$TARGET_DIR/release/examples/scale; }
if [ ${#build[@]} -gt 0 ]; then
  echo "==> building ${build[*]}"
  # Only the last line when it builds, all of it when it does not.
  if ! out=$(cargo build --release --locked "${build[@]}" 2>&1); then
    echo "$out" >&2; exit 1
  fi
  echo "${out##*$'\n'}"
fi
t1=$(date +%s)
echo "==> building the guest (cached under target/nfs-rehearsal/)"
GUEST=$(scripts/nfs-rehearsal/build-guest.sh)
t2=$(date +%s)

# The share the guest mounts at /share: the binary, this folder, and out/ for the results.
# The guest's bookworm glibc is what the binary is built against here, so it runs unchanged.
RUN=target/nfs-rehearsal/last-run
SHARE=$RUN/share
rm -rf "$RUN"
mkdir -p "$SHARE/bin" "$SHARE/rehearsal" "$SHARE/out"
cp "$BIN" "$SHARE/bin/hello-birthday"
cp "$SCALE_BIN" "$SHARE/bin/scale"
cp -a scripts/nfs-rehearsal/. "$SHARE/rehearsal/"
cp scripts/lib/rehearsal_kit.py "$SHARE/rehearsal/"
# The guest keeps 30 s for its power-off and our margin; its deadline counts its uptime.
printf 'MODE=%s\nGUEST_DEADLINE=%s\nSEED=%s\nSCENARIOS=%s\nSCALE_USERS=%s\n' "$MODE" "$(( TIMEOUT - 30 ))" "$SEED" "$SCENARIOS" "$SCALE_USERS" >"$SHARE/guest.env"
CONSOLE=$RUN/console.log

# timeout passes a SIGTERM or SIGINT (CI cancelling, ^C) on to qemu, and ends it after
# NFS_REHEARSAL_TIMEOUT (exit code 124), with SIGKILL 5 s later if SIGTERM did not.
trap 'exit 143' TERM
trap 'exit 130' INT
trap '[ -z "${QEMU_PID:-}" ] || kill "$QEMU_PID" 2>/dev/null || true' EXIT

echo "==> booting the guest ($MODE, at most $TIMEOUT s; console also in $CONSOLE)"
# -accel tcg: /dev/kvm on these machines (kvm-pvm) cannot boot a stock kernel; TCG can.
# -nic none: the guest's namespaces and veths are its only network.
# snapshot=on: the guest's writes go to a throwaway overlay, so every run starts from the same
#   cached image (and the cache stays clean).
# The kernel's root is the ext4 image on virtio-blk (Debian's initramfs cannot mount a 9p root);
#   its init is build-guest.sh's stub, which mounts the share and runs guest-init.sh from it.
t3=$(date +%s)
timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot -nic none \
  -drive "file=$GUEST/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
  -virtfs "local,path=$SHARE,mount_tag=share,security_model=none" \
  -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" \
  -append "root=/dev/vda rootfstype=ext4 rw console=ttyS0 panic=-1 quiet init=/sbin/rehearsal-init" \
  </dev/null > >(tee "$CONSOLE") 2>&1 &
QEMU_PID=$!
qemu_rc=0
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=
timed_out=
[ "$qemu_rc" != 124 ] || timed_out=1
t4=$(date +%s)
sleep 0.2   # let tee write the console's last lines before ours

echo
echo "==> timings: binary $(( t1 - t0 )) s, guest build $(( t2 - t1 )) s, VM $(( t4 - t3 )) s, total $(( t4 - t0 )) s"
[ -f "$SHARE/out/timings.txt" ] && sed 's/^/    guest: /' "$SHARE/out/timings.txt"
if [ -f "$SHARE/out/report.txt" ]; then
  echo "==> report ($SHARE/out/report.txt)"
  cat "$SHARE/out/report.txt"
fi

# The linearizability checker, on the host, over every request of the run (the driver wrote
# them as operations: history.py). Whatever the guest's verdict, when there is a history.
HISTORY=$SHARE/out/history.jsonl
lin_code=0
if [ "$MODE" = rehearsal ]; then
  if [ ! -f "$HISTORY" ]; then
    echo "==> linearizability: no $HISTORY to check"
    lin_code=1
  elif [ ! -s "$HISTORY" ]; then
    # The driver wrote it, with nothing in it: scenarios that send no request of the history's
    # (m alone, whose load is examples/scale.rs's).
    echo "==> linearizability: $HISTORY holds no operations; nothing to check"
  else
    echo "==> linearizability: $HISTORY ($(wc -l <"$HISTORY") operations; a page per illegal user in $RUN/linearizability/)"
    t5=$(date +%s)
    set +e
    cargo run --quiet --release --locked --example check_history -- \
      --html-dir "$RUN/linearizability" "$HISTORY" 2>&1 | tee "$RUN/linearizability.txt"
    lin_code=${PIPESTATUS[0]}
    set -e
    echo "    checker exit code $lin_code ($(( $(date +%s) - t5 )) s with its build)"
  fi
fi

if [ -n "$timed_out" ]; then
  echo "FAIL: the VM did not power off within $TIMEOUT s (NFS_REHEARSAL_TIMEOUT); killed" >&2
  exit 124
fi
if [ ! -s "$SHARE/out/exit-code" ]; then
  echo "FAIL: the guest wrote no exit code (see $CONSOLE)" >&2
  exit 1
fi
code=$(cat "$SHARE/out/exit-code")
echo "==> guest exit code $code (results in $SHARE/out/)"
if [ "$code" = 0 ] && [ "$lin_code" != 0 ]; then
  echo "FAIL: the linearizability checker exited $lin_code (see $RUN/linearizability.txt)" >&2
  exit "$lin_code"
fi
exit "$code"
