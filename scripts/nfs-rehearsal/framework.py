"""What the NFS rehearsal's scenarios are written with: the users and the requests sent for
them through the hosts, recorded into one history (Driver, the lab as the driver uses it);
Workers, bounded loops on threads; Scenario, which checks what one scenario recorded against
the invariants and prints it; polling until a host acknowledges again; load; summaries.

Nothing here knows a scenario: the scenarios are in scenarios_*.py, the lab in lab.py.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import socket
import threading
import traceback
from collections import Counter
from dataclasses import asdict

import invariants as inv
from invariants import outcome_label  # noqa: F401 - the scenarios' too
from lab import CLIENT_TIMEOUT_S, DEADLINE_S, ORPHAN_AGE_S, WATCH_INTERVAL_S, Host, Lab, RunDeadline, now


def utc_day(offset: float = 0.0) -> str:
    """An instance's "today": the guest's hosts share one kernel clock with the driver, and an
    instance run under libfaketime (scenarios_nemesis.py) sees it `offset` seconds apart."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)).date().isoformat()


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


class Driver(Lab):
    """The lab, and what the driver does through it: users, requests, and their history."""

    def __init__(self, args, out):
        super().__init__(args, out)
        self.history_lock = threading.Lock()
        self.requests: list[inv.Request] = []
        self.rids = iter(range(1, 10**9))
        self.client_ids = itertools.count(1)  # one per thread that sends requests
        self.client_of = threading.local()
        self.users_lock = threading.Lock()
        self.next_k: dict[str, int] = {}
        self.user_count = 0

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


# ---------------------------------------------------------------------------------------------
# Scenario plumbing


class Workers:
    """Threads that loop a body until stopped, a time limit or a count: always bounded."""

    def __init__(self, lab: Driver, sc: "Scenario"):
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
    def __init__(self, lab: Driver, letter: str, title: str):
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


def summarize(reqs: list[inv.Request]) -> dict:
    counts = Counter(f"{r.host} {r.method} {outcome_label(r)}" for r in reqs)
    lat: dict[str, list[float]] = {}
    for r in reqs:
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


def summarize_labels(reqs: list[inv.Request]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in Counter(map(outcome_label, reqs)).items())


def poll_until_204(lab: Driver, sc: Scenario, host: Host, user: str, tag: str, timeout: float, since: str, interval: float = 0.5) -> tuple[bool, list[inv.Request]]:
    """PUTs via `host` until one is acknowledged; a scenario error if none is within `timeout`
    (seconds `since` some moment, for the message)."""
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
    sc.expect(ok, f"{host.name} did not acknowledge a PUT within {timeout:.0f} s {since}: {summarize_labels(tries)}")
    return ok, tries


def storm(lab: Driver, sc: Scenario, w: Workers, users: list[str], seconds: float, per_host: int = 2, pace: float = 0.0) -> None:
    """Writers on every host over `users`; each 204 is read back at once via another host. A
    user whose 365 dates are all used is replaced in `users` by a new one."""
    hosts = lab.hosts
    replacing = threading.Lock()

    def writer(a, j):
        def body(i):
            user = users[(i + j + a) % len(users)]
            r = lab.put(hosts[a], user, sc.letter, "storm")
            if r is None:
                with replacing:
                    if user in users:
                        users[users.index(user)] = sc.user("w")
                return
            if r.outcome != "answer":
                w.stop.wait(0.05)  # the host is down: do not spin
            elif r.status == 204:
                lab.get(hosts[(a + 1 + i % 2) % 3], user, sc.letter, "raw")
            if pace:
                w.stop.wait(pace)
        return body

    for a in range(3):
        for j in range(per_host):
            w.spawn(f"{sc.letter}-writer-h{a + 1}-{j}", writer(a, j), seconds)


def fmt_wall(t: float) -> str:
    try:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def limits() -> inv.Limits:
    """The invariants' limits: for each scenario's check, the export and --recheck alike."""
    return inv.Limits(DEADLINE_S, ORPHAN_AGE_S)

