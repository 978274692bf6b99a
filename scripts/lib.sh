# Shared by the scripts in this folder: build in release mode, start the service on a free port
# and wait for it, poll with a deadline, install pinned PyPI tools, find apt's Debian mirror.
# Source it from the repository's root; it defines functions, TARGET_DIR and RELEASE only.

# Where cargo builds (CARGO_TARGET_DIR, else target/), as an absolute path; and its release/.
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
RELEASE=$TARGET_DIR/release
# release_build ARGS...: cargo build --release --locked ARGS, showing only its last line.
release_build() { cargo build --release --locked "$@" 2>&1 | tail -n 1; }

# start_server VAR COMMAND...: runs COMMAND (the binary and its arguments, possibly behind a
# wrapper such as fiu-run) with `--listen 127.0.0.1:0 --log-format json` appended, logs in
# $WORK/VAR.log, and sets VAR_PID and VAR_ADDR once the server logs its address.
start_server() {
  local var=$1; shift
  local log="$WORK/$var.log"
  : >"$log"  # before the job opens it: sed below may run first, and must find it
  "$@" --listen 127.0.0.1:0 --log-format json >"$log" 2>&1 &
  local pid=$! addr=
  for _ in $(seq 1 800); do  # up to 20 s on a loaded machine
    # sed stops at the first match itself: `| head` could kill it with SIGPIPE under pipefail.
    addr=$(sed -n '/"message":"listening"/{s/.*"addr":"\([^"]*\)".*/\1/p;q}' "$log")
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "$var exited at startup:" >&2; cat "$log" >&2; return 1; }
    sleep 0.025
  done
  [ -n "$addr" ] || { echo "$var did not start:" >&2; cat "$log" >&2; return 1; }
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_ADDR" '%s' "$addr"
}

# poll DEADLINE_SECS COMMAND...: runs COMMAND until it succeeds or the deadline passes.
poll() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

# python_tools VENV REQUIREMENTS: a virtualenv under target/ (git-ignored) holding the pinned
# PyPI tools of REQUIREMENTS, made on first use and made again whenever the pins change.
python_tools() {
  local venv=$1 requirements=$2
  cmp -s "$requirements" "$venv/.requirements" 2>/dev/null && return 0
  echo "==> installing $requirements into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    echo "python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
    return 1
  }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --requirement "$requirements"
  cp "$requirements" "$venv/.requirements"
}

# debian_mirror: prints the Debian mirror apt itself uses (never a host name written in a
# script): the first URIs: line of the deb822 sources, else the first deb line of
# sources.list (skipping its [options]). Returns 1 if there is none.
debian_mirror() {
  local mirror
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | sed -n 1p)
  if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' /etc/apt/sources.list 2>/dev/null | sed -n 1p)
  fi
  [ -n "$mirror" ] || return 1
  printf '%s\n' "$mirror"
}
