#!/usr/bin/env python3
"""The NFSv4.1 rehearsal's scenario driver (python3 stdlib only).

Inside the guest (see CONTRACT: run as root by guest-init.sh): the root network namespace is the
NFS server exporting /srv/export; hosts h1..h3 are network namespaces, each with its NFS mount
at /mnt/hN and an instance of the release binary that this driver starts, SIGKILLs and
restarts itself. Scenarios a..l (in that order; j, k and l, the clock, pause and mixed
nemeses, are in scenarios_nemesis.py) each print what they did and saw; every request and
every change of the watched records goes into one history that invariants.py checks. Exits
non-zero on any breach or scenario error; writes report.txt, report.json, history.json and
history.jsonl (the requests as operations for the linearizability checker, history.py) to --out.

    python3 rehearsal.py --out /share/out                     # in the guest
    python3 rehearsal.py --local --binary target/release/hello-birthday --out /tmp/reh
                                                              # on any Linux box: three
        instances on 127.0.0.1 sharing one local directory; only scenarios a, b, c, i, j, k
    python3 rehearsal.py --recheck /share/out/history.json   # the model again, offline
    python3 rehearsal.py --out /share/out --scenarios l --seed 42   # one scenario; l's schedule

Every wait is a poll with a deadline, every loop is bounded in count and time, the whole run
has a deadline (--deadline), and every process started here is killed by its pid on every
exit path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import hashlib
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history  # noqa: E402
import invariants as inv  # noqa: E402

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


def utc_day(offset: float = 0.0) -> str:
    """An instance's "today": the guest's hosts share one kernel clock with the driver, and an
    instance run under libfaketime (scenarios_nemesis.py) sees it `offset` seconds apart."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)).date().isoformat()


def key_of(user: str) -> str:
    return hashlib.sha256(user.encode("utf-8")).hexdigest()


def stripe_of(user: str) -> int:
    # The service's layout: the last byte of the hash, modulo the 64 lock files.
    return int(key_of(user)[62:], 16) % STRIPES


def letters(n: int, width: int = 3) -> str:
    """n as base-26 letters: usernames must be letters only."""
    out = ""
    while n or len(out) < width:
        n, d = divmod(n, 26)
        out = chr(ord("a") + d) + out
    return out


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


class RunDeadline(Exception):
    """The whole run's deadline passed."""


class ScenarioError(Exception):
    """A scenario could not do what it set out to (its premise failed): fails the run."""


# ---------------------------------------------------------------------------------------------
# Output


class Output:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.t0 = now()
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def say(self, msg: str = "") -> None:
        line = f"[{now() - self.t0:6.1f}s] {msg}" if msg else ""
        with self.lock:
            self.lines.append(line)
            print(line, flush=True)


# ---------------------------------------------------------------------------------------------
# The lab: hosts, processes, links, the NFS server


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
    def __init__(self, args, out: Output):
        self.args = args
        self.out = out
        self.local = args.local
        self.binary = args.binary
        self.run_deadline = now() + args.deadline
        self.procs: dict[int, subprocess.Popen] = {}  # every process started and not yet reaped
        self.procs_lock = threading.Lock()
        self.history_lock = threading.Lock()
        self.requests: list[inv.Request] = []
        self.down: list[inv.DownInterval] = []
        self.rids = iter(range(1, 10**9))
        self.client_ids = itertools.count(1)  # one per thread that sends requests
        self.client_of = threading.local()
        self.seed = args.seed
        self.users_lock = threading.Lock()
        self.next_k: dict[str, int] = {}
        self.user_count = 0
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
        end = min(now() + timeout, self.run_deadline)
        while True:
            if pred():
                return True
            if now() >= end:
                return False
            time.sleep(min(interval, max(0.0, end - now())))

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
        try:
            conn = http.client.HTTPConnection(host.ip, host.port, timeout=3)
            try:
                conn.request("GET", "/health/ready")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False

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

    # -- users and requests

    def new_user(self, prefix: str, watch: bool = True) -> str:
        with self.users_lock:
            self.user_count += 1
            user = f"{prefix}{self.run_tag}{letters(self.user_count)}"
            self.next_k[user] = 0
        if watch:
            self.watcher.add(user)
        return user

    def take_k(self, user: str) -> int | None:
        """The next unused day index of `user` (None once all 365 are used)."""
        with self.users_lock:
            k = self.next_k[user]
            if k >= inv.DAYS:
                return None
            self.next_k[user] = k + 1
            return k

    def put(self, host: Host, user: str, scenario: str, tag: str = "") -> inv.Request | None:
        k = self.take_k(user)
        if k is None:
            return None
        return self.request(host, "PUT", user, scenario, k=k, tag=tag)

    def get(self, host: Host, user: str, scenario: str, tag: str = "") -> inv.Request:
        return self.request(host, "GET", user, scenario, tag=tag)

    def client(self) -> int:
        """This thread's client id (history.py makes process ids of it)."""
        c = getattr(self.client_of, "id", None)
        if c is None:
            c = self.client_of.id = next(self.client_ids)
        return c

    def request(self, host: Host, method: str, user: str, scenario: str, k: int | None = None, tag: str = "", client_timeout: float = CLIENT_TIMEOUT_S) -> inv.Request:
        self.check_deadline()
        body = json.dumps({"dateOfBirth": inv.date_of_k(k).isoformat()}).encode() if method == "PUT" else None
        headers = {"Content-Type": "application/json", "Connection": "close"} if body else {"Connection": "close"}
        day0 = utc_day(host.clock_offset)
        status = problem = message = None
        # A fresh connection per request: an error then belongs to this request alone, never
        # to a keep-alive connection the server closed while idle.
        conn = http.client.HTTPConnection(host.ip, host.port, timeout=client_timeout)
        t0 = now()
        try:
            conn.request(method, f"/hello/{user}", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            t1 = now()
            outcome, status = "answer", resp.status
            if "json" in (resp.getheader("Content-Type") or ""):
                try:
                    doc = json.loads(data)
                    if isinstance(doc, dict):
                        kind = doc.get("type") or ""
                        problem = kind[len(inv.PROBLEM_PREFIX):] if kind.startswith(inv.PROBLEM_PREFIX) else None
                        message = doc.get("message")
                except ValueError:
                    message = None
        except (socket.timeout, TimeoutError):
            t1, outcome = now(), "timeout"
        except (OSError, http.client.HTTPException):
            t1, outcome = now(), "conn-error"
        finally:
            conn.close()
        r = inv.Request(
            next(self.rids), host.name, method, user, t0, t1, outcome, status, problem, k=k,
            message=message if method == "GET" and status == 200 else None,
            days=[day0, utc_day(host.clock_offset)] if method == "GET" else [], scenario=scenario, tag=tag,
            client=self.client(),
        )
        with self.history_lock:
            self.requests.append(r)
        return r

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
        relative to the export."""
        key = key_of(user)
        fan = os.path.join(self.server_root, "users", key[:2])
        try:
            return [f"users/{key[:2]}/{n}" for n in os.listdir(fan) if n.startswith(f".{key}.json.tmp-")]
        except FileNotFoundError:
            return []

    def scan_orphans(self) -> list[str]:
        """Temp and probe files on the server, as paths relative to the export."""
        found = []
        users = os.path.join(self.server_root, "users")
        for fan in sorted(os.listdir(users)) if os.path.isdir(users) else []:
            d = os.path.join(users, fan)
            if os.path.isdir(d):
                found += [f"users/{fan}/{n}" for n in os.listdir(d) if is_temp_name(n)]
        found += [n for n in os.listdir(self.server_root) if n.startswith(".probe-")]
        return found

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
            with self.procs_lock:
                self.procs.pop(p.pid, None)
        if self.tmpdir and not self.args.keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and ".json.tmp-" in name


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


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
        dirs = set()
        for user, path in users:
            dirs.add(os.path.dirname(path))
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
        for d in dirs:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            rel = os.path.relpath(d, self.lab.server_root)
            for n in names:
                if is_temp_name(n):
                    self.note_temp(f"{rel}/{n}", t)
        try:
            for n in os.listdir(self.lab.server_root):
                if n.startswith(".probe-"):
                    self.note_temp(n, t)
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.is_set() and now() < self.lab.run_deadline:
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a watcher crash must show, not end the run silently
                self.lab.out.say("watcher error: " + traceback.format_exc(limit=3))
            self._stop.wait(WATCH_INTERVAL_S)


# ---------------------------------------------------------------------------------------------
# Scenario plumbing


class Workers:
    """Threads that loop a body until stopped, a time limit or a count: always bounded."""

    def __init__(self, lab: Lab, sc: "Scenario"):
        self.lab, self.sc = lab, sc
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.untils: list[float] = []

    def spawn(self, name: str, body, seconds: float, max_iter: int = 100_000) -> None:
        until = now() + seconds
        self.untils.append(until)

        def run():
            i = 0
            try:
                while i < max_iter and not self.stop.is_set() and now() < until and self.lab.remaining() > 0:
                    body(i)
                    i += 1
            except RunDeadline:
                pass
            except Exception:  # noqa: BLE001
                self.sc.error(f"worker {name} crashed: {traceback.format_exc(limit=4)}")

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def join(self, let_run: bool = False) -> None:
        """Stops the workers (or, with let_run, lets them run out their time) and joins them."""
        end = now() + CLIENT_TIMEOUT_S + 5
        if let_run:
            end += max([0.0] + [u - now() for u in self.untils])
        else:
            self.stop.set()
        # A request can take at most CLIENT_TIMEOUT_S: that bounds every worker's last turn.
        for t in self.threads:
            t.join(max(0.0, end - now()))
        self.stop.set()
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            self.sc.error(f"workers did not finish: {stuck}")


class Scenario:
    def __init__(self, lab: Lab, letter: str, title: str):
        self.lab, self.letter, self.title = lab, letter, title
        self.users: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.breaches: list[inv.Breach] = []
        self.finals: list[inv.FinalRecord] = []
        self.leftovers: list[inv.Leftover] = []
        self.timeline: dict[str, object] = {}
        self.t_start = now()
        self.t_end: float | None = None
        self.stats: dict = {}

    def say(self, msg: str) -> None:
        self.notes.append(msg)
        self.lab.out.say(f"  {self.letter}: {msg}")

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        self.lab.out.say(f"  {self.letter}: ERROR {msg}")

    def expect(self, cond: bool, msg: str) -> bool:
        if not cond:
            self.error(msg)
        return cond

    def user(self, role: str = "", watch: bool = True) -> str:
        u = self.lab.new_user(self.letter + role, watch)
        self.users.append(u)
        return u

    def at(self, t: float | None) -> str:
        return "-" if t is None else f"+{t - self.t_start:.2f}s"

    def requests(self) -> list[inv.Request]:
        with self.lab.history_lock:
            return [r for r in self.lab.requests if r.scenario == self.letter]

    def settle_and_read_finals(self, users=None) -> None:
        """After every host is ready again, the server's record of each user."""
        for h in self.lab.hosts:
            if h.proc is not None and not self.lab.wait_until(lambda h=h: self.lab.ready(h), 30, 0.2):
                self.error(f"{h.name} not ready at the end of the scenario")
        # Two watcher rounds, so its log has the final state too.
        self.lab.wait_until(lambda: False, 3 * WATCH_INTERVAL_S, WATCH_INTERVAL_S)
        for u in users if users is not None else self.users:
            self.finals.append(self.lab.read_record(u))

    def sweep_check(self, host: Host) -> None:
        """Invariant 6: once every temp/probe file is older than the orphan age (by our own
        clock: the file's mtime can lie), restart `host` so that its startup sweep runs, and
        record what is still there afterwards."""
        lab = self.lab
        seen = lab.watcher.temp_first_seen

        def first_seen(rel):
            lab.watcher.note_temp(rel, now())
            return seen[rel]

        present = lab.scan_orphans()
        if present:
            newest = max(first_seen(r) for r in present)
            lab.wait_until(lambda: now() >= newest + ORPHAN_AGE_S + 0.5, ORPHAN_AGE_S + 1)
        sweep_at = lab.restart(host)
        old = lambda: [r for r in lab.scan_orphans() if sweep_at - first_seen(r) >= ORPHAN_AGE_S]  # noqa: E731
        # The sweep runs in the background right after the instance listens.
        lab.wait_until(lambda: not old(), 10, 0.2)
        left = lab.scan_orphans()
        self.leftovers += [inv.Leftover(r, first_seen(r), sweep_at) for r in left]
        self.say(f"sweep check: {len(present)} temp/probe files before the restart of {host.name}, {len(left)} after: {left[:5]}")

    def finish(self) -> None:
        self.t_end = now()
        reqs = self.requests()
        users = set(self.users)
        with self.lab.watcher.lock:
            obs = [o for o in self.lab.watcher.observations if o.user in users]
        self.breaches = inv.check(reqs, obs, self.leftovers, self.lab.down, self.finals, limits())
        self.stats = summarize(reqs)
        self.lab.watcher.retire(users)
        for line in format_stats(self.stats):
            self.lab.out.say(f"  {self.letter}: {line}")
        shown: dict[str, int] = {}
        for b in self.breaches:  # all of them go to report.json; the console gets a sample
            shown[b.invariant] = shown.get(b.invariant, 0) + 1
            if shown[b.invariant] <= 10:
                self.lab.out.say(f"  {self.letter}: BREACH {b}")
        for name, n in shown.items():
            if n > 10:
                self.lab.out.say(f"  {self.letter}: ... and {n - 10} more breaches of {name} (report.json)")
        verdict = "ok" if not self.breaches and not self.errors else f"FAILED ({len(self.breaches)} breaches, {len(self.errors)} errors)"
        self.lab.out.say(f"  {self.letter}: {verdict} in {self.t_end - self.t_start:.1f} s")

    def to_json(self) -> dict:
        return {
            "scenario": self.letter, "title": self.title,
            "duration_s": None if self.t_end is None else round(self.t_end - self.t_start, 2),
            "notes": self.notes, "errors": self.errors,
            "breaches": [asdict(b) for b in self.breaches], "timeline": self.timeline,
            "stats": self.stats, "users": self.users,
        }


def outcome_label(r: inv.Request) -> str:
    if r.outcome != "answer":
        return r.outcome
    return f"{r.status} {r.problem}" if r.problem else str(r.status)


def summarize(reqs: list[inv.Request]) -> dict:
    counts: dict[str, int] = {}
    lat: dict[str, list[float]] = {}
    for r in reqs:
        key = f"{r.host} {r.method} {outcome_label(r)}"
        counts[key] = counts.get(key, 0) + 1
        if r.outcome == "answer":
            lat.setdefault(f"{r.host} {r.method}", []).append(r.t_end - r.t_send)
    pct = {
        k: {f"p{p}": round(1000 * percentile(v, p), 1) for p in (50, 95, 99)} | {"n": len(v), "max": round(1000 * max(v), 1)}
        for k, v in sorted(lat.items())
    }
    return {"counts": dict(sorted(counts.items())), "latency_ms": pct}


def format_stats(stats: dict) -> list[str]:
    lines = ["answers: " + ", ".join(f"{k}: {v}" for k, v in stats["counts"].items()) if stats["counts"] else "answers: none"]
    for k, v in stats["latency_ms"].items():
        lines.append(f"latency {k}: n={v['n']} p50={v['p50']} p95={v['p95']} p99={v['p99']} max={v['max']} ms")
    return lines


def lock_holder_argv(lab: Lab, host: Host, path: str) -> list[str]:
    """The flock command, holding an exclusive lock on `path` until its stdin closes (60 s at
    most, should the driver die). The file is opened read-write (bash's `<>`): on NFS, Linux
    emulates flock with a whole-file POSIX write lock, which a read-only descriptor (flock's
    own default) cannot take."""
    script = 'exec 9<>"$1" || exit 3; flock -x -w 10 9 || exit 4; echo held; exec timeout 60 cat >/dev/null'
    return lab.ns(host) + ["bash", "-c", script, "holder", path]


def try_lock_argv(lab: Lab, host: Host, path: str) -> list[str]:
    """`flock -n`: exit 0 if the lock could be taken at once (released again on exit), 1 if not."""
    return lab.ns(host) + ["bash", "-c", 'exec 9<>"$1" || exit 3; flock -n -x 9', "try", path]


class LockHolder:
    def __init__(self, lab: Lab, host: Host, path: str):
        self.lab = lab
        self.p = lab.spawn(lock_holder_argv(lab, host, path), new_session=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait (bounded) for "held": a reader thread, since readline itself cannot time out.
        self.line: list[bytes] = []
        t = threading.Thread(target=lambda: self.line.append(self.p.stdout.readline()), daemon=True)
        t.start()
        t.join(15)
        if not self.line or self.line[0].strip() != b"held":
            self.release()
            raise ScenarioError(f"could not take the lock on {path} from {host.name}")

    def release(self) -> float:
        try:
            self.p.stdin.close()  # cat sees EOF, the shell exits, the lock is released
        except OSError:
            pass
        self.lab.reap(self.p, 10)
        return now()


# ---------------------------------------------------------------------------------------------
# The scenarios


def scenario_a(lab: Lab, sc: Scenario) -> None:
    h1, h2 = lab.hosts[0], lab.hosts[1]
    name = f".rehearsal-{lab.run_tag}.lock"  # a dot name: no sweeper or listing cares
    p1, p2 = os.path.join(h1.data_dir, name), os.path.join(h2.data_dir, name)
    holder = LockHolder(lab, h1, p1)
    try:
        busy = lab.run(try_lock_argv(lab, h2, p2), check=False).returncode
        sc.say(f"flock held via {h1.name}: flock -n via {h2.name} exits {busy} (expect 1)")
        sc.expect(busy == 1, f"flock -n via {h2.name} exited {busy} while {h1.name} held the lock")
    finally:
        t_rel = holder.release()
    # After the release the next try must succeed; NFS may take a moment to pass the unlock on.
    codes = []
    ok = lab.wait_until(lambda: codes.append(lab.run(try_lock_argv(lab, h2, p2), check=False).returncode) or codes[-1] == 0, 10, 0.2)
    sc.say(f"after release: flock -n via {h2.name} exits {codes[-1]} after {now() - t_rel:.2f} s ({len(codes)} tries)")
    sc.expect(ok, f"flock -n via {h2.name} still fails after the release: {codes[-5:]}")
    try:
        os.unlink(os.path.join(lab.server_root, name))
    except OSError:
        pass

    # Through the service: hold X's stripe lock from host 1, PUT X via host 2.
    x = sc.user("x")
    stripe = stripe_of(x)
    lock_file = os.path.join(h1.data_dir, "locks", f"{stripe:02}.lock")
    holder = LockHolder(lab, h1, lock_file)
    try:
        r = lab.put(h2, x, sc.letter, "held")
        took = r.t_end - r.t_send
        sc.say(f"stripe {stripe:02} held via {h1.name}: PUT {x} via {h2.name} -> {outcome_label(r)} after {took:.2f} s")
        sc.expect(r.status == 503 and r.problem == "storage-busy", f"PUT while the lock was held answered {outcome_label(r)}, expected 503 storage-busy")
        sc.expect(LOCK_TIMEOUT_MS / 1000 * 0.9 <= took <= DEADLINE_S, f"storage-busy after {took:.2f} s, expected about the lock timeout ({LOCK_TIMEOUT_MS} ms)")
    finally:
        holder.release()
    answers = []
    for _ in range(5):  # bounded: one should do
        r = lab.put(h2, x, sc.letter, "released")
        answers.append(outcome_label(r))
        if r.status == 204:
            break
    sc.say(f"after release: PUT {x} via {h2.name} -> {', '.join(answers)}")
    sc.expect(answers[-1] == "204", f"PUT after the release answered {answers}")
    g = lab.get(h1, x, sc.letter)
    sc.say(f"GET {x} via {h1.name} -> {outcome_label(g)} {g.message or ''}")
    sc.settle_and_read_finals()


def scenario_b(lab: Lab, sc: Scenario, seconds: float = 15) -> None:
    hosts = lab.hosts
    pool_lock = threading.Lock()
    pool = [sc.user("w") for _ in range(4)]
    raw_ok = {"n": 0}

    def pick(i):
        with pool_lock:
            return pool[i % len(pool)]

    def replace(user):
        with pool_lock:
            if user in pool:
                pool[pool.index(user)] = sc.user("w")

    w = Workers(lab, sc)

    def writer(a, j):
        def body(i):
            user = pick(i + j)
            r = lab.put(hosts[a], user, sc.letter, "storm")
            if r is None:  # all 365 dates of this user used: continue with a fresh one
                replace(user)
                return
            if r.status == 204:
                # Read-after-write across hosts: at once, via another host.
                lab.get(hosts[(a + 1 + i % 2) % 3], user, sc.letter, "raw")
                raw_ok["n"] += 1
        return body

    def reader(b):
        def body(i):
            lab.get(hosts[b], pick(i * 7 + b), sc.letter, "reader")
            w.stop.wait(0.005)
        return body

    for a in range(3):
        for j in range(2):
            w.spawn(f"b-writer-h{a + 1}-{j}", writer(a, j), seconds)
        w.spawn(f"b-reader-h{a + 1}", reader(a), seconds)

    # Negative lookups: GET via host 1 (404, cached by its NFS client), PUT via host 2, GET via
    # host 1 at once must see it.
    neg = []
    for n in range(5):
        if lab.remaining() < 30:
            break
        u = sc.user("n")
        g1 = lab.get(hosts[0], u, sc.letter, "neg-before")
        p = lab.put(hosts[1], u, sc.letter, "neg-put")
        g2 = lab.get(hosts[0], u, sc.letter, "neg-after")
        neg.append(f"{outcome_label(g1)} / {outcome_label(p)} / {outcome_label(g2)}")
        sc.expect(g1.status == 404, f"GET of new user {u} answered {outcome_label(g1)}, expected 404")
        if p.status == 204:
            sc.expect(g2.status == 200, f"GET of {u} via h1 right after its PUT via h2 answered {outcome_label(g2)}")
        w.stop.wait(0.5)
    sc.say("negative lookups (GET h1 / PUT h2 / GET h1): " + "; ".join(neg))
    w.join(let_run=True)
    sc.say(f"{raw_ok['n']} acknowledged PUTs were read back at once via another host; {len(sc.users)} users")
    sc.settle_and_read_finals()


def storm(lab: Lab, sc: Scenario, w: Workers, users: list[str], seconds: float, per_host: int = 2, pace: float = 0.0) -> None:
    """Writers on every host over `users`; each 204 is read back via the next host."""
    hosts = lab.hosts

    def writer(a, j):
        def body(i):
            user = users[(i + j + a) % len(users)]
            r = lab.put(hosts[a], user, sc.letter, "storm")
            if r is None:
                w.stop.wait(0.05)
                return
            if r.outcome != "answer":
                w.stop.wait(0.05)  # the host is down: do not spin
            elif r.status == 204:
                lab.get(hosts[(a + 1) % 3], user, sc.letter, "raw")
            if pace:
                w.stop.wait(pace)
        return body

    for a in range(3):
        for j in range(per_host):
            w.spawn(f"{sc.letter}-writer-h{a + 1}-{j}", writer(a, j), seconds)


def scenario_c(lab: Lab, sc: Scenario) -> None:
    h2 = lab.hosts[1]
    users = [sc.user() for _ in range(6)]
    w = Workers(lab, sc)
    storm(lab, sc, w, users, 12)
    lab.wait_until(lambda: False, 3)  # let the storm run: nothing to poll for
    t_kill = lab.kill(h2)
    sc.say(f"SIGKILLed {h2.name} at {sc.at(t_kill)} in the middle of the storm")
    # Restart at once (a crashed task is replaced); the storm keeps going on all hosts.
    lab.start(h2)
    sc.say(f"{h2.name} restarted and ready at {sc.at(now())}")
    w.join(let_run=True)
    sc.settle_and_read_finals()
    # A SIGKILL rarely lands between a writer's create and its rename, so plant an orphan as
    # such a writer leaves it on NFS: half a record, and the far-future mtime of an NFSv4
    # exclusive create whose SETATTR never came (the create verifier). The sweep must remove it.
    key = key_of(users[0])
    rel = f"users/{key[:2]}/.{key}.json.tmp-planted-0"
    path = os.path.join(lab.server_root, rel)
    with open(path, "wb") as f:
        f.write(b'{"schema":1,"username":"')
    future = time.time() + 20 * 365 * 86400
    os.utime(path, (future, future))
    lab.watcher.note_temp(rel, now())
    sc.say(f"planted an orphan {rel} with mtime {fmt_wall(future)}")
    sc.sweep_check(h2)


def serve(lab: Lab, sc: Scenario, w: Workers, host: Host, users: list[str]):
    """A worker's body: PUT and GET `users` in turn via `host`, tagged "others"."""
    def body(i):
        u = users[i % len(users)]
        lab.put(host, u, sc.letter, "others")
        lab.get(host, u, sc.letter, "others")
        w.stop.wait(0.1)
    return body


def scenario_d(lab: Lab, sc: Scenario) -> None:
    h1, h2, h3 = lab.hosts
    x = sc.user("x")
    others = []
    while len(others) < 4:  # other users, on other stripes than X, so X's lock blocks none
        u = sc.user("o")
        if stripe_of(u) != stripe_of(x):
            others.append(u)
    tl = sc.timeline
    r = lab.put(h2, x, sc.letter, "setup")
    sc.expect(r.status == 204, f"setup PUT of {x} answered {outcome_label(r)}")
    for u in others:
        lab.put(h2, u, sc.letter, "setup")

    lab.netem(h1, 150)
    cut = threading.Event()
    in_flight: list[inv.Request] = []
    w = Workers(lab, sc)

    def x_loop(i):
        if cut.is_set():
            w.stop.wait(0.1)
            return
        r = lab.put(h1, x, sc.letter, "x-h1")
        if r is not None:
            in_flight.append(r)

    w.spawn("d-x-loop-h1", x_loop, 40, 400)
    seen = lab.wait_until(lambda: bool(lab.temps_of(x)), 20, 0.002)
    if not seen:
        w.join()
        lab.netem_off(h1)
        raise ScenarioError(f"no temp file of {x} from {h1.name} appeared within 20 s")
    t_cut = lab.cut(h1)
    cut.set()
    temps = lab.temps_of(x)
    for rel in temps:
        lab.watcher.note_temp(rel, t_cut)
    lab.netem_off(h1)
    tl["cut_at"] = sc.at(t_cut)
    sc.say(f"{h1.name}'s temp file {[os.path.basename(r) for r in temps]} of {x} appeared on the server; cut st1 at {sc.at(t_cut)}, netem removed")

    # During the cut: host 2 PUTs X again and again; hosts 2 and 3 serve other users; host 1
    # gets a request now and then, each of which must be answered within the deadline.
    cut_len = 35
    first_204 = {}

    def h2_x(i):
        r = lab.put(h2, x, sc.letter, "x-h2")
        if r is not None and r.status == 204:
            first_204.setdefault("t", r.t_end)
            w.stop.wait(0.2)

    def poke_h1(i):
        (lab.get if i % 2 == 0 else lab.put)(h1, others[i % len(others)], sc.letter, "h1-during-cut")
        w.stop.wait(2)

    w2 = Workers(lab, sc)
    w2.spawn("d-x-h2", h2_x, cut_len, 200)
    w2.spawn("d-serve-h2", serve(lab, sc, w, h2, others), cut_len, 2000)
    w2.spawn("d-serve-h3", serve(lab, sc, w, h3, others), cut_len, 2000)
    w2.spawn("d-poke-h1", poke_h1, cut_len - 5, 20)
    lab.wait_until(lambda: False, cut_len)  # the cut's length: nothing to poll for
    t_heal = lab.heal(h1)
    tl["heal_at"] = sc.at(t_heal)
    w.join()
    w2.join()
    tl["first_h2_204_at"] = sc.at(first_204.get("t"))
    tl["first_h2_204_after_cut_s"] = round(first_204["t"] - t_cut, 2) if "t" in first_204 else None
    served = [r for r in sc.requests() if r.tag == "others" and t_cut < r.t_send < t_heal and r.status in (200, 204)]
    tl["others_served_during_cut"] = {h.name: sum(r.host == h.name for r in served) for h in (h2, h3)}
    sc.expect(all(tl["others_served_during_cut"].values()), "host 2 or 3 served no other user during the cut")
    fenced = [r for r in in_flight if r.t_end > t_cut]
    tl["h1_x_puts_over_the_cut"] = [f"{outcome_label(r)} after {r.t_end - r.t_send:.2f} s (answered {sc.at(r.t_end)})" for r in fenced]
    with lab.watcher.lock:
        dates_seen = {o.date_of_birth for o in lab.watcher.observations if o.user == x and o.state == "ok"}
    tl["h1_fenced_put_in_record"] = [
        f"k={r.k} ({outcome_label(r)}): {'SEEN in the record' if inv.date_of_k(r.k).isoformat() in dates_seen else 'never seen'} so far"
        for r in fenced
    ]
    h1_during = [r for r in sc.requests() if r.tag == "h1-during-cut"]
    tl["h1_answers_during_cut"] = [f"{r.method} {outcome_label(r)} in {r.t_end - r.t_send:.2f} s" for r in h1_during]
    sc.expect(bool(fenced), f"no PUT of {x} via {h1.name} was in flight at the cut")
    sc.expect("t" in first_204, f"{h2.name} never got its PUT of {x} acknowledged during the {cut_len} s cut (host 1's lease never expired?)")

    # Host 1 recovers: poll (bounded) until it acknowledges PUTs again.
    ok, tries = poll_until_204(lab, sc, h1, sc.user("r"), "h1-recovery", 90)
    tl["h1_recovered_at"] = sc.at(tries[-1].t_end) if ok else None
    tl["h1_recovered_after_heal_s"] = round(tries[-1].t_end - t_heal, 2) if ok else None
    tl["h1_recovery_answers"] = summarize_labels(tries)
    sc.expect(ok, f"{h1.name} did not answer a PUT with 204 within 90 s of the heal")
    g = lab.get(h1, x, sc.letter, "h1-after")
    sc.say(f"GET {x} via {h1.name} after recovery -> {outcome_label(g)}")
    for k, v in tl.items():
        sc.say(f"timeline {k}: {v}")
    sc.settle_and_read_finals()


def poll_until_204(lab: Lab, sc: Scenario, host: Host, user: str, tag: str, timeout: float, interval: float = 0.5) -> tuple[bool, list[inv.Request]]:
    """PUTs via `host` until one is acknowledged (bounded by `timeout`)."""
    tries: list[inv.Request] = []
    users = [user]

    def once() -> bool:
        r = lab.put(host, users[-1], sc.letter, tag)
        if r is None:  # all 365 dates of this user used
            users.append(sc.user("r"))
            return False
        tries.append(r)
        return r.status == 204

    ok = lab.wait_until(once, timeout, interval)
    return ok, tries


def summarize_labels(reqs: list[inv.Request]) -> str:
    counts: dict[str, int] = {}
    for r in reqs:
        counts[outcome_label(r)] = counts.get(outcome_label(r), 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in counts.items())


def scenario_e(lab: Lab, sc: Scenario) -> None:
    h1, h2, h3 = lab.hosts
    e = sc.user("e")
    others = [sc.user("o") for _ in range(3)]
    r = lab.put(h1, e, sc.letter, "setup")
    sc.expect(r.status == 204, f"setup PUT answered {outcome_label(r)}")
    t_cut = lab.cut(h3)
    sc.timeline["cut_at"] = sc.at(t_cut)
    w = Workers(lab, sc)
    w.spawn("e-serve-h1", serve(lab, sc, w, h1, others), 30, 1000)
    w.spawn("e-serve-h2", serve(lab, sc, w, h2, others), 30, 1000)
    p = lab.put(h3, e, sc.letter, "h3-cut")
    g = lab.get(h3, e, sc.letter, "h3-cut")
    sc.say(f"{h3.name} cut while idle; PUT {e} via {h3.name} -> {outcome_label(p)} in {p.t_end - p.t_send:.2f} s; GET -> {outcome_label(g)} in {g.t_end - g.t_send:.2f} s")
    sc.expect(p.status == 503, f"PUT via the cut {h3.name} answered {outcome_label(p)}, expected a 503")
    lab.wait_until(lambda: False, 2)  # a little more serving by hosts 1 and 2 during the cut
    t_heal = lab.heal(h3)
    sc.timeline["heal_at"] = sc.at(t_heal)
    w.join()
    served = [r for r in sc.requests() if r.tag == "others" and t_cut < r.t_send < t_heal and r.status in (200, 204)]
    sc.expect(len(served) > 0, "hosts 1 and 2 served nothing while host 3 was cut")
    ok, tries = poll_until_204(lab, sc, h3, e, "h3-recovery", 90)
    sc.timeline["h3_recovered_at"] = sc.at(tries[-1].t_end) if ok else None
    sc.say(f"after the heal, {h3.name} answered: {summarize_labels(tries)}")
    sc.expect(ok, f"{h3.name} did not answer a PUT with 204 within 90 s of the heal")
    sc.settle_and_read_finals()


def scenario_f(lab: Lab, sc: Scenario) -> None:
    hosts = lab.hosts
    users = [sc.user() for _ in range(6)]
    w = Workers(lab, sc)
    storm(lab, sc, w, users, 75, per_host=1, pace=0.05)
    lab.wait_until(lambda: False, 3)  # steady load first
    t0 = now()
    lab.nfsd_stop()
    # Held down a moment, as a real restart would be.
    lab.wait_until(lambda: False, 1)
    lab.nfsd_start()
    t1 = now()
    sc.timeline["nfsd_restart"] = f"{sc.at(t0)} .. {sc.at(t1)}"
    sc.say(f"nfsd restarted (threads 0, then back) at {sc.at(t0)}; grace period follows")

    def served_again(h):
        return any(r.host == h.name and r.method == "PUT" and r.status == 204 and r.t_send > t1 for r in sc.requests())

    ok = lab.wait_until(lambda: all(served_again(h) for h in hosts), 60, 0.2)
    for h in hosts:
        first = min((r.t_end for r in sc.requests() if r.host == h.name and r.status == 204 and r.method == "PUT" and r.t_send > t1), default=None)
        sc.timeline[f"{h.name}_first_204_after_restart"] = sc.at(first)
    sc.expect(ok, "not every host acknowledged a PUT within 60 s of the nfsd restart")
    lab.wait_until(lambda: False, 2)  # a little steady load after the recovery
    w.join()
    for k, v in sc.timeline.items():
        sc.say(f"timeline {k}: {v}")
    sc.settle_and_read_finals()


def scenario_g(lab: Lab, sc: Scenario) -> None:
    hosts = lab.hosts
    users = [sc.user() for _ in range(3)]
    for i, u in enumerate(users):
        r = lab.put(hosts[i], u, sc.letter, "setup")
        sc.expect(r.status == 204, f"setup PUT answered {outcome_label(r)}")
    lab.fill_path = os.path.join(lab.server_root, f".rehearsal-fill-{lab.run_tag}")
    filled = 0
    fd = os.open(lab.fill_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):  # down to the last byte
            buf = b"\0" * chunk
            for _ in range((64 << 20) // chunk if chunk > 1 else 8192):  # bounded: 64 MiB
                try:
                    filled += os.write(fd, buf)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(lab.server_root)
    sc.say(f"filled the export with {filled >> 10} KiB; {st.f_bavail * st.f_frsize} bytes left")
    try:
        full = []
        for i, h in enumerate(hosts):
            for j in range(3):
                full.append(lab.put(h, users[(i + j) % 3], sc.letter, "full"))
            for u in users:
                full.append(lab.get(h, u, sc.letter, "full"))
        puts = [r for r in full if r.method == "PUT"]
        gets = [r for r in full if r.method == "GET"]
        sc.say(f"while full: PUTs {summarize_labels(puts)}; GETs {summarize_labels(gets)}")
        sc.expect(all(r.status == 503 and r.problem in ("storage-unavailable", "write-unconfirmed") for r in puts), "a PUT on the full export answered something else than storage-unavailable or write-unconfirmed")
        sc.expect(all(r.status == 200 for r in gets), "a GET on the full export did not answer 200")
    finally:
        os.unlink(lab.fill_path)
        lab.fill_path = None
    sc.say("freed the space")
    for h in hosts:
        ok, tries = poll_until_204(lab, sc, h, users[0], "freed", 30, 0.2)
        sc.say(f"{h.name} after freeing: {summarize_labels(tries)}")
        sc.expect(ok, f"{h.name} did not acknowledge a PUT within 30 s of freeing the space")
    sc.settle_and_read_finals()


def scenario_h(lab: Lab, sc: Scenario) -> None:
    h1 = lab.hosts[0]
    u = sc.user()
    lab.netem(h1, 300)
    result: list[inv.Request] = []
    w = Workers(lab, sc)
    w.spawn("h-put-h1", lambda i: result.append(lab.put(h1, u, sc.letter, "killed")), 30, 1)
    try:
        if not lab.wait_until(lambda: bool(lab.temps_of(u)), 20, 0.002):
            raise ScenarioError(f"no temp file of {u} appeared within 20 s")
        t_kill = lab.kill(h1)
    finally:
        lab.netem_off(h1)
        w.join()  # the PUT was answered or cut off by the kill: bounded by the client timeout
    temps = lab.temps_of(u)
    for rel in temps:
        lab.watcher.note_temp(rel, t_kill)
    sc.say(f"SIGKILLed {h1.name} at {sc.at(t_kill)}, when its temp file appeared; its PUT -> {outcome_label(result[0]) if result else 'not sent'}")
    wall = time.time()
    for rel in temps:
        n = os.path.basename(rel)
        try:
            st = os.stat(os.path.join(lab.server_root, rel))
            sc.say(f"orphan {n}: mtime {fmt_wall(st.st_mtime)} ({st.st_mtime - wall:+.0f} s from now), ctime {fmt_wall(st.st_ctime)} ({st.st_ctime - wall:+.0f} s), size {st.st_size}")
            sc.timeline["orphan_mtime_offset_s"] = round(st.st_mtime - wall)
        except FileNotFoundError:
            sc.say(f"orphan {n} is already gone")
    sc.expect(bool(temps), "no orphan left by the kill")
    # After the orphan age (by our clock), the restart's startup sweep must remove it.
    lab.wait_until(lambda: now() >= t_kill + ORPHAN_AGE_S + 0.5, ORPHAN_AGE_S + 1)
    sweep_at = now()
    lab.start(h1)
    gone = lab.wait_until(lambda: not lab.temps_of(u), 15, 0.2)
    sc.say(f"{h1.name} restarted at {sc.at(sweep_at)}; orphan {'removed' if gone else 'STILL THERE'} {sc.at(now())}")
    sc.leftovers += [inv.Leftover(rel, lab.watcher.temp_first_seen.get(rel, t_kill), sweep_at) for rel in lab.temps_of(u)]
    r = lab.put(h1, u, sc.letter, "after")
    sc.say(f"PUT {u} via {h1.name} after the restart -> {outcome_label(r)}")
    sc.settle_and_read_finals()


def fmt_wall(t: float) -> str:
    try:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def scenario_i(lab: Lab, sc: Scenario, n: int = 200) -> None:
    h1, local = lab.hosts[0], lab.local_host
    os.makedirs(local.data_dir, exist_ok=True)
    lab.start(local)
    try:
        table = {}
        for host, label in ((h1, "NFS via h1" if not lab.local else "shared dir via h1"), (local, "local disk")):
            users = [sc.user("l" if host is local else "n", watch=host is not local) for _ in range(20)]
            puts = [lab.put(host, users[i % 20], sc.letter, "latency") for i in range(n)]
            gets = [lab.get(host, users[i % 20], sc.letter, "latency") for i in range(n)]
            for kind, rs in (("PUT", puts), ("GET", gets)):
                ok = [r.t_end - r.t_send for r in rs if r.status in (200, 204)]
                sc.expect(len(ok) == len(rs), f"{label} {kind}: {len(rs) - len(ok)} of {len(rs)} failed: {summarize_labels(rs)}")
                table[f"{label} {kind}"] = {f"p{p}": round(1000 * percentile(ok, p), 2) if ok else None for p in (50, 95, 99)}
        sc.timeline["latency_ms"] = table
        sc.say(f"{'':24} {'p50':>8} {'p95':>8} {'p99':>8}  (ms, {n} sequential requests each)")
        for k, v in table.items():
            sc.say(f"{k:24} " + " ".join(f"{v[p] if v[p] is not None else '-':>8}" for p in ("p50", "p95", "p99")))
    finally:
        lab.stop(local)
    sc.settle_and_read_finals([u for u in sc.users if not u.startswith("il")])


SCENARIOS = {
    "a": ("flock exclusion between hosts, and a held stripe lock answers storage-busy", scenario_a, 20, False),
    "b": ("concurrent writers and readers on all hosts; negative lookups", scenario_b, 40, False),
    "c": ("SIGKILL of host 2 in a write storm", scenario_c, 45, False),
    "d": ("host 1 cut off while it holds a user's lock", scenario_d, 100, True),
    "e": ("host 3 cut off while idle", scenario_e, 50, True),
    "f": ("NFS server restarted under load", scenario_f, 60, True),
    "g": ("export full", scenario_g, 30, True),
    "h": ("writer killed during its exclusive create", scenario_h, 45, True),
    "i": ("latency: NFS vs local disk", scenario_i, 30, False),
}
# j, k, l: clocks apart, a paused instance, a seeded mix (scenarios_nemesis.py). It imports
# this module by name: make that name this very module when it runs as a script.
sys.modules.setdefault("rehearsal", sys.modules[__name__])
import scenarios_nemesis  # noqa: E402

SCENARIOS |= scenarios_nemesis.SCENARIOS


# ---------------------------------------------------------------------------------------------
# Main


def restore(lab: Lab, sc: Scenario) -> None:
    """Whatever the scenario did to the lab (and did not undo, say after an error), undo it
    before the next one. Each step on its own: one failing must not skip the others."""
    for what, step in lab.undo_steps() + scenarios_nemesis.restore_steps(lab):
        try:
            step()
            sc.say(f"restored: {what}")
        except Exception as e:  # noqa: BLE001
            sc.error(f"could not {what}: {e}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="directory for report.txt, report.json, history.json and logs")
    ap.add_argument("--binary", default="/share/bin/hello-birthday")
    ap.add_argument("--local", action="store_true", help="three instances on 127.0.0.1 sharing a local directory; no NFS scenarios")
    ap.add_argument("--scenarios", help="comma-separated letters (default: all that the mode supports)")
    ap.add_argument("--deadline", type=float, default=480, help="seconds for the whole run")
    ap.add_argument("--keep", action="store_true", help="--local: keep the data directory")
    ap.add_argument("--recheck", metavar="HISTORY_JSON", help="run the model on a saved history and exit")
    ap.add_argument("--seed", type=int, help="seed of scenario l's random schedule of nemeses (default: a random one, printed)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.recheck:
        return recheck(args.recheck)
    if not args.out:
        ap.error("--out is required")
    os.makedirs(args.out, exist_ok=True)
    out = Output(args.out)
    wanted = [s for s in (args.scenarios.split(",") if args.scenarios else SCENARIOS)]
    for s in wanted:
        if s not in SCENARIOS:
            ap.error(f"no scenario {s!r}")

    # SIGTERM (guest-init's timeout) must still end in cleanup: turn it into an exception.
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    lab = None
    scenarios: list[Scenario] = []
    fatal: list[str] = []
    try:
        lab = Lab(args, out)
        out.say(f"rehearsal: mode {'local' if args.local else 'guest (NFSv4.1)'}, binary {args.binary}, flags {' '.join(lab.flags)}, run deadline {args.deadline:.0f} s")
        out.say(f"seed {args.seed} (to replay l's schedule: --seed {args.seed}, or NFS_REHEARSAL_SEED={args.seed} run.sh)")
        lab.watcher.start()
        for h in lab.hosts:
            lab.start(h)
        out.say("instances ready: " + ", ".join(f"{h.name} {h.ip}:{h.port} pid {h.proc.pid}" for h in lab.hosts))
        for letter in wanted:
            title, fn, budget, needs_nfs = SCENARIOS[letter]
            sc = Scenario(lab, letter, title)
            scenarios.append(sc)
            out.say("")
            out.say(f"== {letter}. {title}")
            if needs_nfs and args.local:
                sc.say("skipped: needs the guest (NFS, links, nfsd)")
                sc.t_end = now()
                sc.notes.append("skipped")
                continue
            if lab.remaining() < budget:
                sc.error(f"not run: {lab.remaining():.0f} s left of the run's deadline, it needs about {budget} s")
                sc.t_end = now()
                continue
            try:
                for h in lab.hosts:  # every scenario starts with three serving instances
                    if h.proc is None or h.proc.poll() is not None:
                        sc.say(f"{h.name} was not running; starting it")
                        h.proc = None
                        lab.start(h)
                fn(lab, sc)
            except (ScenarioError, RunDeadline) as e:
                sc.error(str(e))
            except Exception:  # noqa: BLE001 - report it and go on with the next scenario
                sc.error(traceback.format_exc(limit=6))
            finally:
                restore(lab, sc)
                sc.finish()

        # The end: a sweep of everything left, then graceful stops.
        if lab.remaining() > ORPHAN_AGE_S + 20 and all(h.proc is not None for h in lab.hosts):
            final = Scenario(lab, "z", "end of run: orphan sweep and graceful stop")
            scenarios.append(final)
            out.say("")
            out.say("== end of run")
            try:
                final.sweep_check(lab.hosts[2])
                for h in lab.hosts:
                    rc = lab.stop(h)
                    final.expect(rc == 0, f"{h.name} exited {rc} on SIGTERM")
            except (ScenarioError, RunDeadline) as e:
                final.error(str(e))
            final.finish()
        else:
            fatal.append("no time or no instances left for the final orphan sweep")
    except (ScenarioError, RunDeadline) as e:
        fatal.append(str(e))
        out.say(f"FATAL: {e}")
    except BaseException as e:  # noqa: BLE001 - SIGTERM, ^C, bugs: still clean up and report
        fatal.append(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
        out.say(f"FATAL: {fatal[-1]}")
    finally:
        if lab is not None:
            lab.cleanup()
    return report(args, out, lab, scenarios, fatal)


def report(args, out: Output, lab: Lab | None, scenarios: list[Scenario], fatal: list[str]) -> int:
    breaches = sum(len(s.breaches) for s in scenarios)
    errors = sum(len(s.errors) for s in scenarios) + len(fatal)
    out.say("")
    out.say("== summary")
    for s in scenarios:
        state = "skipped" if "skipped" in s.notes else ("ok" if not s.breaches and not s.errors else f"FAILED: {len(s.breaches)} breaches, {len(s.errors)} errors")
        out.say(f"  {s.letter}. {s.title}: {state}")
    for f in fatal:
        out.say(f"  fatal: {f}")
    if lab is not None:
        out.say(f"  requests: {len(lab.requests)}, watcher observations: {len(lab.watcher.observations)}, watcher read errors: {lab.watcher.read_errors}")
    verdict = "PASS" if breaches == 0 and errors == 0 else "FAIL"
    if lab is not None:
        saved = {
            "requests": [asdict(r) for r in lab.requests],
            "observations": [asdict(o) for o in lab.watcher.observations],
            "leftovers": [asdict(x) for s in scenarios for x in s.leftovers],
            "finals": [asdict(x) for s in scenarios for x in s.finals],
            "down": [asdict(d) for d in lab.down],
            "limits": asdict(limits()),
        }
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump(saved, f)
        # The same requests as operations for the linearizability checker (run.sh runs it).
        ops = history.operations(lab.requests, limits(), lab.down)
        with open(os.path.join(args.out, "history.jsonl"), "w") as f:
            f.write(history.to_jsonl(ops))
        out.say(f"  history.jsonl: {len(ops)} operations over {len({op['key'] for op in ops})} users, for the linearizability checker")
    out.say(f"{verdict}: {breaches} breaches, {errors} scenario errors")
    with open(os.path.join(args.out, "report.txt"), "w") as f:
        f.write("\n".join(out.lines) + "\n")
    doc = {
        "verdict": verdict, "breaches": breaches, "errors": errors, "fatal": fatal,
        "mode": "local" if args.local else "guest", "seed": args.seed,
        "limits": {"deadline_s": DEADLINE_S, "orphan_age_s": ORPHAN_AGE_S, "lock_timeout_ms": LOCK_TIMEOUT_MS, "storage_timeout_ms": STORAGE_TIMEOUT_MS},
        "scenarios": [s.to_json() for s in scenarios],
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return 0 if verdict == "PASS" else 1


def limits() -> inv.Limits:
    """The invariants' limits: for each scenario's check, the export and --recheck alike."""
    return inv.Limits(DEADLINE_S, ORPHAN_AGE_S)


def recheck(path: str) -> int:
    with open(path) as f:
        h = json.load(f)
    breaches = inv.check(
        [inv.Request(**r) for r in h["requests"]],
        [inv.Observation(**o) for o in h["observations"]],
        [inv.Leftover(**x) for x in h["leftovers"]],
        [inv.DownInterval(**d) for d in h["down"]],
        [inv.FinalRecord(**x) for x in h["finals"]],
        limits(),
    )
    for b in breaches:
        print(b)
    print(f"{len(breaches)} breaches in {len(h['requests'])} requests, {len(h['observations'])} observations")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
