"""The NFS rehearsal's lab: the three hosts and their instances of the binary, the processes
the driver starts, the hosts' storage links, the NFS server, and the server's own view of the
records (read_record, scan_orphans, and the Watcher that logs every change of them).

Kept apart from what scenarios are written with (framework.py) and from the scenarios
themselves: everything here acts on the guest (or, with --local, on three processes sharing a
local directory), and every process started here is killed by its pid on every exit path.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass

import invariants as inv

# The Python rehearsals' kit: scripts/lib on the host, copied beside this file in the guest
# (run.sh), whose share holds only this folder.
sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from rehearsal_kit import free_ports, http, wait_until  # noqa: E402

LOCK_TIMEOUT_MS = 2000
STORAGE_TIMEOUT_MS = 5000
ORPHAN_AGE_S = 10
# An answer later than storage-timeout + 5 s is a hang (invariant 7); the client waits 5 s
# more than that before it gives up, so that a late answer is told apart from none at all.
DEADLINE_S = STORAGE_TIMEOUT_MS / 1000 + 5
CLIENT_TIMEOUT_S = DEADLINE_S + 5
WATCH_INTERVAL_S = 0.02
READY_TIMEOUT_S = 60  # TCG (no KVM) is slow to start a binary
STRIPES = 64


def now() -> float:
    return time.monotonic()


def key_of(user: str) -> str:
    return hashlib.sha256(user.encode("utf-8")).hexdigest()


def stripe_of(user: str) -> int:
    # The service's layout: the last byte of the hash, modulo the 64 lock files.
    return int(key_of(user)[62:], 16) % STRIPES


class RunDeadline(Exception):
    """The whole run's deadline passed."""


class ScenarioError(Exception):
    """A scenario could not do what it set out to (its premise failed): fails the run."""


class Output:
    """The run's lines: printed as they happen, kept for report.txt."""

    def __init__(self):
        self.t0 = now()
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def say(self, msg: str = "") -> None:
        line = f"[{now() - self.t0:6.1f}s] {msg}" if msg else ""
        with self.lock:
            self.lines.append(line)
            print(line, flush=True)


@dataclass
class Host:
    name: str
    index: int
    ip: str
    port: int
    data_dir: str  # the data directory as the instance sees it
    netns: str | None  # /run/netns/hN, or None in --local mode
    log_path: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    env: dict[str, str] | None = None  # extra environment of the instance (libfaketime's)
    clock_offset: float = 0.0  # how far the instance's wall clock is from the driver's, in s
    paused_at: float | None = None  # SIGSTOPped since (monotonic), until SIGCONT


class Lab:
    """The hosts and their instances, the processes started, the links, nfsd, the export."""

    def __init__(self, args, out: Output):
        self.args = args
        self.out = out
        self.local = args.local
        self.binary = args.binary
        self.run_deadline = now() + args.deadline
        self.procs: dict[int, subprocess.Popen] = {}  # every process started and not yet reaped
        self.procs_lock = threading.Lock()
        self.down: list[inv.DownInterval] = []
        self.seed = args.seed
        self.run_tag = "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        self.cut_links: set[int] = set()
        self.netem_links: set[int] = set()
        self.fill_path: str | None = None
        self.nfsd_threads_to_restore: str | None = None
        self.tmpdir: str | None = None
        if self.local:
            self.tmpdir = tempfile.mkdtemp(prefix="nfs-rehearsal-")
            self.server_root = os.path.join(self.tmpdir, "shared")
            os.makedirs(self.server_root)
            ports = free_ports(4)
            self.hosts = [
                Host(f"h{i}", i, "127.0.0.1", ports[i - 1], self.server_root, None, os.path.join(args.out, f"h{i}.log"))
                for i in (1, 2, 3)
            ]
            self.local_host = Host("local", 4, "127.0.0.1", ports[3], os.path.join(self.tmpdir, "local-disk"), None, os.path.join(args.out, "local.log"))
        else:
            self.server_root = "/srv/export"
            self.hosts = [
                Host(f"h{i}", i, f"10.1.{i}.2", 8080, f"/mnt/h{i}", f"/run/netns/h{i}", os.path.join(args.out, f"h{i}.log"))
                for i in (1, 2, 3)
            ]
            self.local_host = Host("local", 4, "127.0.0.1", 8090, "/srv/local", None, os.path.join(args.out, "local.log"))
        self.flags = self._instance_flags()
        self.watcher = Watcher(self)

    # -- time

    def remaining(self) -> float:
        return self.run_deadline - now()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise RunDeadline("the run's deadline passed")

    def wait_until(self, pred, timeout: float, interval: float = 0.05) -> bool:
        """Polls pred() until it is true or `timeout` (capped by the run deadline) passes."""
        return bool(wait_until(min(timeout, self.remaining()), pred, interval))

    # -- processes

    def _instance_flags(self) -> list[str]:
        help_text = subprocess.run([self.binary, "--help"], capture_output=True, text=True, timeout=30).stdout
        flags = ["--log-format", "json", "--lock-timeout", str(LOCK_TIMEOUT_MS)]
        # The lead is adding --storage-timeout; an older binary would reject it.
        if "--storage-timeout" in help_text:
            flags += ["--storage-timeout", str(STORAGE_TIMEOUT_MS)]
        else:
            self.out.say(f"note: {self.binary} has no --storage-timeout; running without it")
        return flags + ["--orphan-age", str(ORPHAN_AGE_S)]

    def spawn(self, argv: list[str], *, log_path: str | None = None, new_session: bool = False, **kw) -> subprocess.Popen:
        if log_path:
            with open(log_path, "ab") as log:
                p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=new_session, **kw)
        else:
            p = subprocess.Popen(argv, start_new_session=new_session, **kw)
        with self.procs_lock:
            self.procs[p.pid] = p
        return p

    def reap(self, p: subprocess.Popen, timeout: float = 10) -> int | None:
        """Waits for p to exit (SIGKILL after `timeout`), then forgets it."""
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_proc(p)
            rc = p.wait(timeout=10)
        with self.procs_lock:
            self.procs.pop(p.pid, None)
        return rc

    def kill_proc(self, p: subprocess.Popen) -> None:
        """SIGKILL by pid (its whole process group if it leads one that we made)."""
        if p.poll() is not None:
            return
        try:
            if os.getpgid(p.pid) == p.pid:
                os.killpg(p.pid, signal.SIGKILL)  # our own session: the holder's children too
            else:
                p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass

    def ns(self, host: Host) -> list[str]:
        return ["nsenter", f"--net={host.netns}"] if host.netns else []

    def start(self, host: Host, timeout: float = READY_TIMEOUT_S) -> None:
        if host.proc is not None and host.proc.poll() is None:
            raise ScenarioError(f"{host.name} is already running")
        argv = self.ns(host) + [self.binary, "--listen", f"{host.ip}:{host.port}", "--data-dir", host.data_dir] + self.flags
        host.started_at = now()
        host.paused_at = None
        # nsenter without --pid execs the binary: the pid we hold is the instance's own.
        env = dict(os.environ, **host.env) if host.env else None
        host.proc = self.spawn(argv, log_path=host.log_path, env=env)
        if not self.wait_until(lambda: host.proc.poll() is not None or self.ready(host), timeout, 0.1):
            raise ScenarioError(f"{host.name} not ready within {timeout:.0f} s")
        if host.proc.poll() is not None:
            raise ScenarioError(f"{host.name} exited at startup with {host.proc.returncode} (see {host.log_path})")
        self.end_down(host, now())

    def ready(self, host: Host) -> bool:
        return http("GET", f"http://{host.ip}:{host.port}/health/ready", timeout=3)[0] == 200

    def kill(self, host: Host) -> float:
        """SIGKILLs the instance; returns the time. Connection errors are expected from now
        until it is ready again."""
        t = now()
        if host.paused_at is not None:  # SIGKILL ends a stopped process too; the pause ends here
            host.paused_at = None
            self.end_down(host, t, "paused")
        self.down.append(inv.DownInterval(host.name, t, None))
        if host.proc is not None:
            self.kill_proc(host.proc)
            self.reap(host.proc)
            host.proc = None
        return t

    def stop(self, host: Host, timeout: float = 30) -> int | None:
        """SIGTERM (graceful), wait for the exit."""
        if host.proc is None:
            return None
        self.resume(host)
        self.down.append(inv.DownInterval(host.name, now(), None))
        if host.proc.poll() is None:
            host.proc.send_signal(signal.SIGTERM)
        rc = self.reap(host.proc, timeout)
        host.proc = None
        return rc

    def pause(self, host: Host) -> float:
        """SIGSTOP the instance (its process; nsenter exec'd it). It keeps its sockets, its
        open files and its NFS locks, and answers nothing until resume()."""
        if host.proc is None or host.proc.poll() is not None or host.paused_at is not None:
            raise ScenarioError(f"{host.name} is not running, or already paused")
        host.paused_at = now()
        self.down.append(inv.DownInterval(host.name, host.paused_at, None, kind="paused"))
        host.proc.send_signal(signal.SIGSTOP)
        return host.paused_at

    def resume(self, host: Host) -> float:
        """SIGCONT a paused instance (no-op if it is not paused)."""
        if host.paused_at is None:
            return now()
        if host.proc is not None and host.proc.poll() is None:
            host.proc.send_signal(signal.SIGCONT)
        t = now()
        host.paused_at = None
        self.end_down(host, t, "paused")  # requests under way in the pause: their deadlines start now
        return t

    def end_down(self, host: Host, t: float, kind: str | None = None) -> None:
        """Ends the host's open down intervals (of `kind` only, if given) at `t`."""
        for d in self.down:
            if d.host == host.name and d.end is None and kind in (None, d.kind):
                d.end = t

    def restart(self, host: Host) -> float:
        """Graceful restart; returns when the new process was started (its sweep runs then)."""
        self.stop(host)
        t = now()
        self.start(host)
        return t

    def run(self, argv: list[str], timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise ScenarioError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()[:300]}")
        return r

    # -- links and the server (guest only)

    def cut(self, host: Host) -> float:
        self.cut_links.add(host.index)
        self.run(["ip", "link", "set", f"st{host.index}", "down"])
        return now()

    def heal(self, host: Host) -> float:
        self.run(["ip", "link", "set", f"st{host.index}", "up"])
        self.cut_links.discard(host.index)
        return now()

    def netem(self, host: Host, delay_ms: int) -> None:
        self.netem_links.add(host.index)
        self.run(["tc", "qdisc", "replace", "dev", f"st{host.index}", "root", "netem", "delay", f"{delay_ms}ms"])

    def netem_off(self, host: Host) -> None:
        self.run(["tc", "qdisc", "del", "dev", f"st{host.index}", "root"], check=False)
        self.netem_links.discard(host.index)

    def nfsd_stop(self) -> None:
        # Writing the thread count keeps every other nfsd setting (versions, lease, grace);
        # `rpc.nfsd 8` without flags would re-enable the versions guest-init turned off.
        # Through a child process with a timeout: the write waits for the threads to finish.
        threads = open("/proc/fs/nfsd/threads").read().strip()
        self.nfsd_threads_to_restore = threads if threads not in ("", "0") else "8"
        self.run(["sh", "-c", "echo 0 >/proc/fs/nfsd/threads"], timeout=30)

    def nfsd_start(self) -> None:
        self.run(["sh", "-c", f"echo {int(self.nfsd_threads_to_restore or 8)} >/proc/fs/nfsd/threads"], timeout=30)
        self.nfsd_threads_to_restore = None

    # -- the server's view

    def record_path(self, user: str) -> str:
        key = key_of(user)
        return os.path.join(self.server_root, "users", key[:2], f"{key}.json")

    def read_record(self, user: str) -> inv.FinalRecord:
        t = now()
        try:
            with open(self.record_path(user), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return inv.FinalRecord(user, t, None)
        state, dob, _, _, detail = inv.parse_record(raw, user)
        if state != "ok":
            raise ScenarioError(f"final record of {user} is torn: {detail}")
        return inv.FinalRecord(user, t, dob)

    def temps_of(self, user: str) -> list[str]:
        """`user`'s temp files on the server (a write under way, or its orphan), as paths
        relative to the export. Temp files live in tmp/, apart from the records."""
        return [r for r in self.scan_orphans(fan_out=False) if r.startswith(f"tmp/.{key_of(user)}.json.tmp-")]

    def scan_orphans(self, fan_out: bool = True) -> list[str]:
        """Temp and probe files on the server, as paths relative to the export: tmp/, the probes
        at the top, and (fan_out) the fan-out directories, where versions before tmp/ left them."""
        fans = sorted(listdir(os.path.join(self.server_root, "users"))) if fan_out else []
        dirs = ["tmp"] + [f"users/{fan}" for fan in fans]
        found = [f"{d}/{n}" for d in dirs for n in listdir(os.path.join(self.server_root, d)) if is_temp_name(n)]
        return found + [n for n in listdir(self.server_root) if n.startswith(".probe-")]

    # -- the end

    def undo_steps(self) -> list:
        """What is still done to the lab (a pause, a cut or slowed link, nfsd stopped, the export
        filled), as (what, how to undo it): after each scenario (rehearsal.restore) and at the end."""
        steps = []
        for h in self.hosts:
            if h.paused_at is not None:
                steps.append((f"SIGCONT {h.name}", lambda h=h: self.resume(h)))
            if h.index in self.cut_links:
                steps.append((f"heal {h.name}", lambda h=h: self.heal(h)))
            if h.index in self.netem_links:
                steps.append((f"netem off {h.name}", lambda h=h: self.netem_off(h)))
        if self.nfsd_threads_to_restore is not None:
            steps.append(("restart nfsd", self.nfsd_start))
        if self.fill_path:
            steps.append(("free the export", lambda: (os.unlink(self.fill_path), setattr(self, "fill_path", None))))
        return steps

    def cleanup(self) -> None:
        """Every exit path: undo what is still done to the lab, kill what we started."""
        for _, step in self.undo_steps():
            try:
                step()
            except Exception:  # noqa: BLE001 - the next steps must still run
                pass
        self.watcher.stop()
        with self.procs_lock:
            procs = list(self.procs.values())
        for p in procs:
            self.kill_proc(p)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"pid {p.pid} did not exit after SIGKILL", file=sys.stderr)
        if self.tmpdir and not self.args.keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and ".json.tmp-" in name


def listdir(path: str) -> list[str]:
    """The names in `path`; none if it is not there (yet), or not a directory."""
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---------------------------------------------------------------------------------------------
# The watcher: the server's authoritative view of the records under test


class Watcher:
    """Polls the record files of the watched users on the server every ~20 ms and logs each
    change (invariants 3, 4, 5), and notes when each temp and probe file was first seen
    (invariant 6). Reads the export directly: on the server it is a local tmpfs."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.lock = threading.Lock()
        self.users: dict[str, str] = {}  # user -> record path
        self.last: dict[str, tuple[bytes | None, float]] = {}  # user -> (bytes, read start)
        self.observations: list[inv.Observation] = []
        self.temp_first_seen: dict[str, float] = {}
        self.read_errors = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(5)

    def add(self, user: str) -> None:
        with self.lock:
            self.users[user] = self.lab.record_path(user)

    def retire(self, users) -> None:
        """Stops watching (after the scenario's final check): keeps each poll short."""
        with self.lock:
            for u in users:
                self.users.pop(u, None)

    def note_temp(self, rel: str, t: float) -> None:
        with self.lock:
            self.temp_first_seen.setdefault(rel, t)

    def poll_once(self) -> None:
        with self.lock:
            users = list(self.users.items())
        for user, path in users:
            t0 = now()
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                raw = None
            except OSError:
                self.read_errors += 1
                continue
            t1 = now()
            prev = self.last.get(user)
            if prev is None or prev[0] != raw:
                if raw is None:
                    obs = inv.Observation(user, prev[1] if prev else None, t1, "missing")
                else:
                    state, dob, updated, version, detail = inv.parse_record(raw, user)
                    obs = inv.Observation(user, prev[1] if prev else None, t1, state, dob, updated, detail, version)
                with self.lock:
                    self.observations.append(obs)
            self.last[user] = (raw, t0)
        t = now()
        for rel in self.lab.scan_orphans(fan_out=False):
            self.note_temp(rel, t)

    def _run(self) -> None:
        while not self._stop.is_set() and now() < self.lab.run_deadline:
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a watcher crash must show, not end the run silently
                self.lab.out.say("watcher error: " + traceback.format_exc(limit=3))
            self._stop.wait(WATCH_INTERVAL_S)
