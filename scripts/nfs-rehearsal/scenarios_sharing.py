"""Scenarios a, b, c and i of the NFS rehearsal: the hosts sharing one directory as they should,
with no fault of the network or the server: flock between hosts, concurrent writers and readers
with read-after-write and negative lookups across hosts, an instance SIGKILLed in a write storm,
and latency on NFS against a local disk. None needs the guest's links or nfsd, so they also run
with --local.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

import roundtrips
from framework import Driver, Scenario, Workers, fmt_wall, outcome_label, percentile, storm, summarize_labels
from lab import DEADLINE_S, LOCK_TIMEOUT_MS, Host, Lab, ScenarioError, key_of, now, stripe_of


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
    """An exclusive flock on `path`, taken from `host` by a process of its own until release()."""

    def __init__(self, lab: Lab, host: Host, path: str):
        self.lab = lab
        self.p = lab.spawn(lock_holder_argv(lab, host, path), new_session=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Wait (bounded) for "held", which the shell writes as one line.
        if not select.select([self.p.stdout], [], [], 15)[0] or self.p.stdout.readline().strip() != b"held":
            self.release()
            raise ScenarioError(f"could not take the lock on {path} from {host.name}")

    def release(self) -> float:
        try:
            self.p.stdin.close()  # cat sees EOF, the shell exits, the lock is released
        except OSError:
            pass
        self.lab.reap(self.p, 10)
        return now()


def scenario_a(lab: Driver, sc: Scenario) -> None:
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


def scenario_b(lab: Driver, sc: Scenario, seconds: float = 15) -> None:
    hosts = lab.hosts
    pool = [sc.user("w") for _ in range(4)]
    w = Workers(lab, sc)
    storm(lab, sc, w, pool, seconds)  # read-after-write across hosts: each 204 read back at once

    def reader(b):
        def body(i):
            lab.get(hosts[b], pool[(i * 7 + b) % len(pool)], sc.letter, "reader")
            w.stop.wait(0.005)
        return body

    for a in range(3):
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
    sc.say(f"{sum(r.tag == 'raw' for r in sc.requests())} acknowledged PUTs were read back at once via another host; {len(sc.users)} users")
    sc.settle_and_read_finals()


def scenario_c(lab: Driver, sc: Scenario) -> None:
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
    rel = f"tmp/.{key}.json.tmp-planted-0"
    path = os.path.join(lab.server_root, rel)
    with open(path, "wb") as f:
        f.write(b'{"schema":1,"username":"')
    future = time.time() + 20 * 365 * 86400
    os.utime(path, (future, future))
    lab.watcher.note_temp(rel, now())
    sc.say(f"planted an orphan {rel} with mtime {fmt_wall(future)}")
    sc.sweep_check(h2)


def scenario_i(lab: Driver, sc: Scenario, n: int = 200) -> None:
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
    if lab.local:
        sc.say("round trips: not counted (no NFS mount in --local mode)")
    else:
        count_round_trips(lab, sc)
    sc.settle_and_read_finals([u for u in sc.users if not u.startswith("il")])


# What is counted, per user, in this order: (label, host index, counted). The uncounted PUTs
# via host 2 make the next request via host 1 meet a record another host has changed.
ROUND_TRIP_STEPS = [
    ("GET unknown user", 0, True),
    ("PUT new user", 0, True),
    ("PUT existing user, last written here", 0, True),
    ("GET known user, written here", 0, True),
    ("GET known user, unchanged since", 0, True),
    ("", 1, False),
    ("PUT existing user, written elsewhere", 0, True),
    ("", 1, False),
    ("GET known user, written elsewhere", 0, True),
]


NEW_FAN_OUT = "PUT new user, new fan-out directory"


def user_in(lab: Driver, sc: Scenario, fan_out: str) -> str:
    """A new user whose record goes to users/<fan_out>/ (one name in 256 does)."""
    for _ in range(20_000):
        user = lab.new_user(sc.letter + "rt", watch=False)
        if key_of(user)[:2] == fan_out:
            lab.watcher.add(user)
            sc.users.append(user)
            return user
    raise ScenarioError(f"no user name for fan-out directory {fan_out}")


def mount_ops(mount: str) -> dict[str, int]:
    with open("/proc/self/mountstats") as f:
        mounts = roundtrips.parse(f.read())
    if mount not in mounts:
        raise ScenarioError(f"no NFS mount at {mount} in /proc/self/mountstats")
    return mounts[mount]


def settled_ops(lab: Driver, mount: str) -> dict[str, int]:
    """The mount's counters once two reads 20 ms apart agree: an operation the client sends
    after the answer (an asynchronous FREE_STATEID, say) still belongs to the request before."""
    last = [mount_ops(mount)]

    def quiet() -> bool:
        time.sleep(0.02)
        ops = mount_ops(mount)
        same = ops == last[-1]
        last.append(ops)
        return same

    lab.wait_until(quiet, 1.0, 0)
    return last[-1]


def count_round_trips(lab: Driver, sc: Scenario, users: int = 12) -> None:
    """NFS round trips of each kind of request via host 1, from its NFS client's per-operation
    counters (roundtrips.py), one request at a time with nothing else sent to that host."""
    h1 = lab.hosts[0]
    samples: dict[str, list[dict[str, int]]] = {label: [] for label, _, counted in ROUND_TRIP_STEPS if counted}
    samples[NEW_FAN_OUT] = []
    latency: dict[str, list[float]] = {label: [] for label in samples}
    fan_out = None
    for _ in range(users):
        # After the first, users whose records share its fan-out directory: with many users
        # every directory exists, and a new user's PUT does not make one.
        user = sc.user("rt") if fan_out is None else user_in(lab, sc, fan_out)
        fan_out = key_of(user)[:2]
        for label, host, counted in ROUND_TRIP_STEPS:
            if label == "PUT new user" and not os.path.isdir(os.path.dirname(lab.record_path(user))):
                label = NEW_FAN_OUT
            before = settled_ops(lab, h1.data_dir) if counted else None
            send = lab.get if label.startswith("GET") else lab.put
            r = send(lab.hosts[host], user, sc.letter, "round-trips")
            want = (404 if label == "GET unknown user" else 200) if label.startswith("GET") else 204
            if r is None or r.status != want:
                raise ScenarioError(f"{label or 'PUT via ' + lab.hosts[host].name} for {user}: {outcome_label(r) if r else 'no dates left'}, not {want}")
            if counted:
                samples[label].append(roundtrips.delta(before, settled_ops(lab, h1.data_dir)))
                latency[label].append(r.t_end - r.t_send)
    summary = {label: roundtrips.summarize(s) for label, s in samples.items() if s}
    sc.timeline["round_trips"] = {label: dict(s, samples=samples[label]) for label, s in summary.items()}
    sc.say(f"NFS round trips per request via {h1.name} ({h1.data_dir}'s per-op counters in /proc/self/mountstats, {users} users, one request at a time):")
    sc.say(roundtrips.header())
    for label, s in summary.items():
        p50 = percentile(latency[label], 50)
        sc.say(roundtrips.format_row(label, s, None if p50 is None else 1000 * p50))
        for other, k in s["others"].items():
            sc.say(f"{'':42} {'':>6} {'':>6} {'':>7}  also: {other} ({k})")


SCENARIOS = {
    "a": ("flock exclusion between hosts, and a held stripe lock answers storage-busy", scenario_a, 20, False),
    "b": ("concurrent writers and readers on all hosts; negative lookups", scenario_b, 40, False),
    "c": ("SIGKILL of host 2 in a write storm", scenario_c, 45, False),
    "i": ("latency: NFS vs local disk; NFS round trips per request", scenario_i, 45, False),
}
