#!/usr/bin/env python3
"""Runs the built image as the ECS task definition does and checks what ECS relies on.

The container gets what the environment's task definition, as Terraform renders it, sets
(taskdef.py: read-only root file system, the task's environment, stop timeout, health check
timings, ulimits, CPU and memory) and a bind
mount at the task's data path owned by 65532:65532, as the EFS access point makes it. No
--user: the task definition sets none, so ECS runs the image's USER; passing one would hide an
image that lost it. Then:

  image    USER is 65532:65532; HEALTHCHECK runs the task's healthCheck command; EXPOSE is
           the task's containerPort; no shell (sh, bash, dash, ash, busybox...) anywhere in
           the image's file system (docker export of the container)
  process  every process of the container runs as uid/gid 65532 (not root): `docker top`
  http     PUT /hello/alice -> 204; GET -> 200 with alice's greeting; /health/ready 200;
           /metrics has hello_birthday_build_info with the commit it was built from
  health   the engine's health check turns `healthy` (polled, with a deadline)
  root fs  `docker diff` is empty: nothing was written outside the data mount
  stop     `docker stop -t <stopTimeout>`: exit code 0 (not SIGKILL's 137), in well under
           stopTimeout (at most half)
  volume   every file the app made in the data mount is owned by 65532:65532
  logs     every line the app wrote is a JSON object (LOG_FORMAT=json)

Usage: check.py IMAGE COMMIT [--env production]   (DOCKER_HOST must point at the engine;
       target/task-definitions/<env>.json rendered: see taskdef.py)
Exits 1 on the first failed check.
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "lib")]
import taskdef  # noqa: E402
from rehearsal_kit import Failure as CheckFailed, http, poll  # noqa: E402

SERVICE_UID = SERVICE_GID = 65532
LABEL = "hello-birthday.ci"
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "busybox", "toybox"}
# "Well within stopTimeout": a clean shutdown takes the drain delay plus in-flight requests,
# here about nothing; half the timeout is a loose bound that still catches a stop that only
# ended because something gave up waiting.
WELL_WITHIN = 0.5
CHECK_CWD = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# Pure parts (test_check.py).


def build_info_commits(metrics_text):
    """The `commit` labels of every hello_birthday_build_info sample whose value is 1."""
    commits = set()
    for line in metrics_text.splitlines():
        m = re.match(r"hello_birthday_build_info\{([^}]*)\}\s+(\S+)$", line.strip())
        if not m or float(m.group(2)) != 1:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if "commit" in labels:
            commits.add(labels["commit"])
    return commits


def shells_in(members):
    """Paths among tar members (name, is_file_or_link) whose base name is a shell."""
    return sorted(name for name, _ in members if os.path.basename(name.rstrip("/")) in SHELLS)


# What the engine itself puts into every container's file system.
ENGINE_FILES = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf"}


def executables_in(members_with_mode):
    """Regular files with an execute bit, from (name, is_regular_file, mode) triples; shared
    libraries and the files the engine adds to every container left out."""
    return sorted(
        name
        for name, regular, mode in members_with_mode
        if regular
        and mode & 0o111
        and name not in ENGINE_FILES
        and not name.startswith("dev/")
        and not re.search(r"\.so(\.|$)", os.path.basename(name))
    )


def health_step(state):
    """From `docker inspect`'s .State: 'healthy', 'wait', or a failure message."""
    if not state.get("Running"):
        return f"the container is {state.get('Status')} (exit code {state.get('ExitCode')})"
    health = (state.get("Health") or {}).get("Status")
    if health == "healthy":
        return "healthy"
    if health == "starting":
        return "wait"
    if health == "unhealthy":
        log = (state.get("Health") or {}).get("Log") or []
        last = log[-1].get("Output", "").strip() if log else ""
        return f"the health check turned unhealthy: {last!r}"
    return f"the container has no health check (Health: {state.get('Health')!r})"


def health_deadline(facts):
    """Seconds the engine's check may take to say healthy: the start period, then every retry
    at its interval and timeout, plus a margin for a loaded machine."""
    hc = facts["container"].get("healthCheck") or {}
    interval, timeout = hc.get("interval", 30), hc.get("timeout", 5)
    return hc.get("startPeriod", 0) + (interval + timeout) * (hc.get("retries", 3) + 1) + 10


def stop_problems(exit_code, seconds, stop_timeout):
    problems = []
    if exit_code != 0:
        killed = " (137: SIGKILLed after the stop timeout)" if exit_code == 137 else ""
        problems.append(f"exit code {exit_code}{killed}, not 0")
    if seconds > stop_timeout * WELL_WITHIN:
        problems.append(f"took {seconds:.1f} s, more than {WELL_WITHIN:g} x stopTimeout ({stop_timeout} s)")
    return problems


def non_json_lines(text):
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad


# ---------------------------------------------------------------------------------------------
# The engine and the container.


def docker(*args, check=True, capture=True, timeout=120):
    try:
        out = subprocess.run(
            ["docker", *args], capture_output=capture, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"docker {' '.join(args)} did not finish within {timeout} s") from None
    if check and out.returncode != 0:
        raise CheckFailed(f"docker {' '.join(args)} failed: {out.stderr.strip()}")
    return out


def inspect(obj):
    return json.loads(docker("inspect", obj).stdout)[0]


def ok(what, detail=""):
    print(f"    ok  {what}" + (f" ({detail})" if detail else ""), flush=True)


def check_image(image, facts):
    config = inspect(image)["Config"]
    if config.get("User") != f"{SERVICE_UID}:{SERVICE_GID}":
        raise CheckFailed(f"image USER is {config.get('User')!r}, not {SERVICE_UID}:{SERVICE_GID}")
    ok("image USER", config["User"])
    want = taskdef.fact(facts, "container.healthCheck.command")
    got = (config.get("Healthcheck") or {}).get("Test")
    if got != want:
        raise CheckFailed(f"image HEALTHCHECK {got!r} is not the task's healthCheck.command {want!r}")
    ok("image HEALTHCHECK is the task's command", " ".join(got[1:]))
    port = f"{taskdef.container_port(facts)}/tcp"
    if port not in (config.get("ExposedPorts") or {}):
        raise CheckFailed(f"image exposes {list(config.get('ExposedPorts') or {})}, not the task's {port}")
    ok("image EXPOSE is the task's containerPort", port)

    # The image's file system as a container would see it.
    cid = docker("create", "--label", LABEL, image).stdout.strip()
    try:
        out = subprocess.run(["docker", "export", cid], capture_output=True, timeout=120, check=False)
        if out.returncode != 0:
            raise CheckFailed(f"docker export failed: {out.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
            members = tar.getmembers()
    finally:
        docker("rm", "-f", cid, check=False)
    found = shells_in((m.name, m.isfile() or m.issym()) for m in members)
    if found:
        raise CheckFailed(f"the image has a shell: {found}")
    executables = executables_in((m.name, m.isfile(), m.mode) for m in members)
    ok("no shell in the image", f"{len(members)} entries; executables: {', '.join(executables)}")


def run_checks(image, commit, facts, nofile_limit):
    args, notes = taskdef.run_args(facts, nofile_limit)
    for note in notes:
        print(f"    note: {note}")
    data_path = taskdef.data_mount(facts)
    port = taskdef.container_port(facts)
    stop_timeout = int(taskdef.fact(facts, "container.stopTimeout"))
    check_image(image, facts)

    volume = Path(tempfile.mkdtemp(prefix="hb-check-data.", dir=CHECK_CWD / "target" / "container"))
    os.chown(volume, SERVICE_UID, SERVICE_GID)
    os.chmod(volume, 0o755)
    name = f"hb-check-{os.getpid()}"
    try:
        docker(
            "run", "-d", "--name", name, "--label", LABEL,
            "-p", f"127.0.0.1::{port}", "-v", f"{volume}:{data_path}", *args, image,
        )
        print(f"    container {name}: docker run {' '.join(args)} -v {volume}:{data_path} {image}")
        # Every process of the container (the engine runs ps on them): real, effective, saved
        # and file-system ids.
        top = docker("top", name, "-o", "pid,ruid,euid,suid,fsuid,rgid,egid,sgid,fsgid").stdout
        procs = [[int(x) for x in line.split()] for line in top.splitlines()[1:]]
        if not procs or any(set(p[1:5]) != {SERVICE_UID} or set(p[5:]) != {SERVICE_GID} for p in procs):
            raise CheckFailed(f"not every process runs as {SERVICE_UID}:{SERVICE_GID}:\n{top}")
        ok("every process runs as 65532:65532, not root", f"host pids {[p[0] for p in procs]}")

        host_port = docker("port", name, f"{port}/tcp").stdout.split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{host_port}"

        def ready():
            status, _ = http("GET", f"{base}/health/ready", timeout=2)  # 0: nothing answered yet
            return status if status == 200 else None

        poll("GET /health/ready 200", 30, ready, 0.2)
        ok("GET /health/ready", "200")
        status, body = http("PUT", f"{base}/hello/alice", {"dateOfBirth": "2000-01-01"})
        if status != 204:
            raise CheckFailed(f"PUT /hello/alice -> {status} {body}")
        ok("PUT /hello/alice", "204")
        status, body = http("GET", f"{base}/hello/alice")
        message = json.loads(body).get("message", "") if status == 200 else ""
        if status != 200 or not message.startswith("Hello, alice!"):
            raise CheckFailed(f"GET /hello/alice -> {status} {body}")
        ok("GET /hello/alice", f"200 {message!r}")
        status, body = http("GET", f"{base}/metrics")
        commits = build_info_commits(body) if status == 200 else set()
        if commits != {commit}:
            raise CheckFailed(f"/metrics -> {status}; hello_birthday_build_info commits {commits}, not {commit}")
        ok("/metrics hello_birthday_build_info", f"commit {commit}")

        deadline = health_deadline(facts)
        t0 = time.monotonic()

        def healthy():
            verdict = health_step(inspect(name)["State"])
            if verdict == "wait":
                return None
            if verdict != "healthy":
                raise CheckFailed(verdict)
            return verdict

        poll("the engine's health check to say healthy", deadline, healthy, 0.2)
        ok("health check healthy", f"after {time.monotonic() - t0:.1f} s more; deadline {deadline} s")

        diff = docker("diff", name).stdout.split("\n")
        diff = [d for d in diff if d.strip()]
        if diff:
            raise CheckFailed(f"the container wrote outside {data_path}: {diff[:10]}")
        ok("nothing written outside the data mount", "docker diff is empty")

        t0 = time.monotonic()
        docker("stop", "-t", str(stop_timeout), name, timeout=stop_timeout + 30)
        took = time.monotonic() - t0
        state = inspect(name)["State"]
        problems = stop_problems(state["ExitCode"], took, stop_timeout)
        if state.get("OOMKilled"):
            problems.append("OOM-killed")
        if problems:
            raise CheckFailed(f"docker stop -t {stop_timeout}: " + "; ".join(problems))
        ok(f"docker stop -t {stop_timeout}", f"exit code 0 after {took:.2f} s")

        def find(*test):
            return subprocess.run(["find", str(volume), *test, "-printf", "/%P (%U:%G)\n"],
                                  capture_output=True, text=True, check=True).stdout.splitlines()

        foreign = find("(", "!", "-uid", str(SERVICE_UID), "-o", "!", "-gid", str(SERVICE_GID), ")")
        files = find("-type", "f")
        if foreign or not files:
            raise CheckFailed(f"volume: {len(files)} files; not owned by 65532:65532: {foreign[:10]}")
        ok("volume files owned by 65532:65532", f"{len(find())} entries, {len(files)} files")

        out = docker("logs", name)
        logs = out.stdout + out.stderr
        bad = non_json_lines(logs)
        if bad:
            raise CheckFailed(f"log lines that are not JSON objects: {bad[:3]}")
        ok("logs are JSON lines", f"{len(logs.splitlines())} lines")
    finally:
        docker("rm", "-f", name, check=False)
        subprocess.run(["rm", "-rf", str(volume)], check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the image as the ECS task does and check it.")
    parser.add_argument("image")
    parser.add_argument("commit")
    parser.add_argument("--env", default="production")
    args = parser.parse_args(argv)
    import resource

    try:
        facts = taskdef.load(args.env)
        print(f"==> container check: {args.image} as {facts['source']}")
        run_checks(args.image, args.commit, facts, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    except (CheckFailed, taskdef.TaskDefError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("container check: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
