"""Scenarios j, k and l of the NFS rehearsal (docs/testing.md has what each does): clocks apart
(each instance under libfaketime), an instance SIGSTOPped mid-write, and a seeded random mix of
those nemeses with partitions and kills (`--seed` replays its schedule).

The instances stay under libfaketime (offsets back to +0) after j, k or l: restarting them
without it would cost seconds per host under TCG and change nothing that follows.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import invariants as inv
from framework import Workers, outcome_label, poll_until_204, summarize_labels
from lab import CLIENT_TIMEOUT_S, ScenarioError, now

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
NFS_LEASE_S = 15  # guest-init.sh's nfsv4leasetime
PAUSE_S = 22  # k: longer than --storage-timeout (5 s) and the lease (15 s)


# ---------------------------------------------------------------------------------------------
# Clocks


def offset_text(offset: float) -> str:
    """libfaketime's relative offset: seconds with a sign, "." for the fraction (the service
    never calls setlocale, so its C locale reads ".")."""
    return f"{offset:+.3f}"


def clock_file(lab, host) -> str:
    return os.path.join(tempfile.gettempdir(), f"nfs-rehearsal-{lab.run_tag}-clock-{host.name}")


def set_clock(lab, host, offset: float) -> float:
    """Sets the instance's wall clock `offset` seconds from the real one; returns when. The
    first time, restarts the instance under libfaketime."""
    path = clock_file(lab, host)
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(offset_text(offset) + "\n")
    os.replace(tmp, path)  # libfaketime never reads half a file
    t = now()
    host.clock_offset = offset
    if host.env is None:
        if not os.path.exists(LIBFAKETIME):
            raise ScenarioError(f"{LIBFAKETIME} is missing (Debian's faketime package; build-guest.sh installs it)")
        # NO_CACHE: the file is read at every clock read, so an offset changes (or steps back)
        # without a restart; the monotonic clock stays real, as the service's deadlines need.
        host.env = {
            "LD_PRELOAD": LIBFAKETIME,
            "FAKETIME_TIMESTAMP_FILE": path,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        lab.restart(host)
    return t


def restore_steps(lab) -> list:
    """For rehearsal.restore(): every faked clock back to +0 (no restart)."""
    return [
        (f"{h.name}'s clock back to +0", lambda h=h: set_clock(lab, h, 0.0))
        for h in lab.hosts
        if h.env is not None and h.clock_offset != 0.0
    ]


def stamp_offset(stamp: str, wall_send: float, wall_end: float) -> tuple[float, float] | None:
    """The range of offsets an instance's clock can have had, given the updatedAt it stamped
    on a write sent at wall_send and answered at wall_end (the driver's wall clock)."""
    key = inv.timestamp_key(stamp)
    if key is None:
        return None
    at = key[0] + key[1] / 1e9
    return at - wall_end, at - wall_send


def measure_offset(lab, sc, host, user: str) -> str:
    """PUTs `user` (nobody else writes it) via `host` and reads the updatedAt it stamped."""
    delta = time.time() - now()  # the driver's wall clock minus its monotonic clock
    r = lab.put(host, user, sc.letter, "clock-probe")
    if r is None or r.status != 204:
        return f"{host.name}: probe PUT answered {outcome_label(r)}"
    try:
        with open(lab.record_path(user), "rb") as f:
            _, dob, stamp, _, _ = inv.parse_record(f.read(), user)
    except OSError as e:
        return f"{host.name}: record unreadable: {e}"
    if dob != inv.date_of_k(r.k).isoformat():
        return f"{host.name}: record holds {dob}, not the probe's date"
    lo, hi = stamp_offset(stamp or "", r.t_send + delta, r.t_end + delta) or (float("nan"),) * 2
    ok = lo - 0.05 <= host.clock_offset <= hi + 0.05
    sc.expect(ok, f"{host.name} stamped {stamp}: an offset of {lo:+.3f}..{hi:+.3f} s, not the {host.clock_offset:+.3f} s set")
    return f"{host.name} set {host.clock_offset:+.3f} s, stamps {lo:+.3f}..{hi:+.3f} s"


def sequential_pairs(lab, sc, users: list[str]) -> tuple[int, int]:
    """For every ordered pair of hosts (a, b): PUT via a, PUT via b, then GET via every host.
    Returns (pairs with both PUTs acknowledged, of which every GET answered 200). Whether each
    answered b's date is the linearizability checker's to judge (run.sh), over the whole run."""
    hosts = lab.hosts
    acked = fresh = 0
    for n, (a, b) in enumerate(itertools.permutations(hosts, 2)):
        u = users[n % len(users)]
        p1 = lab.put(a, u, sc.letter, f"seq-{a.name}")
        p2 = lab.put(b, u, sc.letter, f"seq-{b.name}")
        if p1 is None or p2 is None or p1.status != 204 or p2.status != 204:
            sc.say(f"sequential {a.name} -> {b.name}: PUTs answered {outcome_label(p1)}, {outcome_label(p2)}")
            continue
        acked += 1
        gets = [lab.get(h, u, sc.letter, "seq-read") for h in hosts]
        failed = [f"{g.host}: {outcome_label(g)}" for g in gets if g.status != 200]
        if failed:
            sc.error(f"{u}: PUT via {a.name} ({a.clock_offset:+.1f} s) then via {b.name} ({b.clock_offset:+.1f} s), both 204; GETs failed: {failed}")
        else:
            fresh += 1
    return acked, fresh


def mixed_load(lab, sc, w, users: list[str], seconds: float, pace: float = 0.05) -> None:
    """A writer and a reader on every host over `users`, for `seconds`."""
    rng = random.Random(lab.seed)  # which user each request names; reproducible enough

    def writer(h):
        def body(i):
            r = lab.put(h, users[(i + h.index) % len(users)], sc.letter, "load")
            w.stop.wait(pace if r is None or r.outcome == "answer" else 0.2)
        return body

    def reader(h):
        picks = [rng.randrange(len(users)) for _ in range(64)]

        def body(i):
            r = lab.get(h, users[picks[i % len(picks)]], sc.letter, "load")
            w.stop.wait(pace if r.outcome == "answer" else 0.2)
        return body

    for h in lab.hosts:
        w.spawn(f"{sc.letter}-writer-{h.name}", writer(h), seconds)
        w.spawn(f"{sc.letter}-reader-{h.name}", reader(h), seconds)


def final_reads(lab, sc, users: list[str]) -> None:
    """Every user read through every host, once every nemesis is over (in the history: the
    checker sees the final state as clients do)."""
    for u in users:
        for h in lab.hosts:
            lab.get(h, u, sc.letter, "final")


# ---------------------------------------------------------------------------------------------
# j. Clocks apart


CLOCK_PHASES = [
    ("under a second", {"h1": +0.5, "h2": -0.5, "h3": +0.2}),
    ("minutes", {"h1": -150.0, "h2": +240.0, "h3": -0.3}),
]
CLOCK_STEP = ("h2", -180.0)  # in the minutes phase, mid-load: +4 min -> -3 min


def scenario_j(lab, sc) -> None:
    by_name = {h.name: h for h in lab.hosts}
    seq_users = [sc.user("s") for _ in range(2)]
    load_users = [sc.user("c") for _ in range(2)]
    probe = {h.name: sc.user("p") for h in lab.hosts}
    t0 = now()
    for h in lab.hosts:
        set_clock(lab, h, CLOCK_PHASES[0][1][h.name])
    sc.say(f"instances restarted under libfaketime in {now() - t0:.1f} s (offsets in {clock_file(lab, lab.hosts[0])[:-2]}hN)")
    for name, offsets in CLOCK_PHASES:
        for h in lab.hosts:
            set_clock(lab, h, offsets[h.name])
        sc.say(f"clocks {name}: " + "; ".join(measure_offset(lab, sc, h, probe[h.name]) for h in lab.hosts))
        acked, fresh = sequential_pairs(lab, sc, seq_users)
        sc.say(f"clocks {name}: sequential PUTs via a then b, read via every host: {fresh} of {acked} pairs read back (6 pairs)")
        sc.timeline[f"sequential_{name}"] = f"{fresh}/{acked}"
        w = Workers(lab, sc)
        mixed_load(lab, sc, w, load_users, 8)
        if name == "minutes":
            lab.wait_until(lambda: False, 4)
            step_host, step_to = by_name[CLOCK_STEP[0]], CLOCK_STEP[1]
            before = step_host.clock_offset
            t = set_clock(lab, step_host, step_to)
            sc.timeline["step_back_at"] = sc.at(t)
            sc.say(f"{step_host.name}'s clock stepped back from {before:+.0f} s to {step_to:+.0f} s at {sc.at(t)}, under load")
        w.join(let_run=True)
        if name == "minutes":
            sc.say("after the step: " + measure_offset(lab, sc, by_name[CLOCK_STEP[0]], probe[CLOCK_STEP[0]]))
    load = [r for r in sc.requests() if r.tag == "load"]
    sc.say(f"concurrent load: {summarize_labels([r for r in load if r.method == 'PUT'])} PUTs; {summarize_labels([r for r in load if r.method == 'GET'])} GETs")
    for h in lab.hosts:
        set_clock(lab, h, 0.0)
    final_reads(lab, sc, seq_users + load_users)
    sc.settle_and_read_finals()


# ---------------------------------------------------------------------------------------------
# k. A paused instance


def nfsd_locks() -> dict[str, list[str]]:
    """The files nfsd holds lock states on, per client host (by the client's address, 10.0.N.2
    on host N's storage link), from /proc/fs/nfsd/clients/*/{info,states}; {} where that is
    not readable (--local). Read here, not with nfs-utils' nfsdclnts: that takes seconds under
    TCG, and k reads the states at a set moment of its pause."""
    out: dict[str, list[str]] = {}
    for client in Path("/proc/fs/nfsd/clients").glob("*"):
        try:
            info, states = (client / "info").read_text(), (client / "states").read_text()
        except OSError:
            continue
        m = re.search(r"10\.0\.(\d+)\.2", info)
        host = f"h{m.group(1)}" if m else client.name
        for line in states.splitlines():
            if "type: lock" in line:
                f = re.search(r'filename: "([^"]*)"', line)
                out.setdefault(host, []).append(f.group(1) if f else "?")
    return out


def scenario_k(lab, sc) -> None:
    h1, h2, h3 = lab.hosts
    x = sc.user("x")
    r = lab.put(h2, x, sc.letter, "setup")
    sc.expect(r is not None and r.status == 204, f"setup PUT of {x} answered {outcome_label(r)}")

    paused_put: list[inv.Request] = []
    w = Workers(lab, sc)
    if not lab.local:
        lab.netem(h1, 100)  # each NFS call of host 1 takes 100 ms more: the pause lands mid-write
    w.spawn("k-paused-put", lambda i: paused_put.append(lab.request(h1, "PUT", x, sc.letter, k=lab.take_k(x), tag="paused", client_timeout=PAUSE_S + CLIENT_TIMEOUT_S)), PAUSE_S + 30, 1)
    # On NFS (netem) the write takes a second or more, and the temp file shows when its lock is
    # held; on a local disk (--local) it is over in a millisecond and the pause lands after it.
    seen = lab.wait_until(lambda: bool(lab.temps_of(x)) or bool(paused_put), 10, 0.002) and not paused_put
    t_stop = lab.pause(h1)
    if not lab.local:
        lab.netem_off(h1)
    temps = lab.temps_of(x)
    for rel in temps:
        lab.watcher.note_temp(rel, t_stop)
    where = f"its temp file {[os.path.basename(r) for r in temps]} on the server (lock held, rename to come)" if seen else "no temp file seen: the pause landed elsewhere in (or after) the write"
    sc.say(f"SIGSTOP {h1.name} at {sc.at(t_stop)}, PUT of {x} in flight: {where}; paused for {PAUSE_S} s")
    sc.timeline["paused_at"] = sc.at(t_stop)
    sc.timeline["pause_landed"] = "temp file present" if seen else "elsewhere"

    # Meanwhile hosts 2 and 3 write and read the same user; host 1 gets a GET too.
    w2 = Workers(lab, sc)

    def peer_put(h):
        def body(i):
            lab.put(h, x, sc.letter, f"peer-put-{h.name}")
            w2.stop.wait(0.2)
        return body

    def peer_get(i):
        lab.get(lab.hosts[1 + i % 2], x, sc.letter, "peer-get")
        w2.stop.wait(0.3)

    after = 8  # seconds of load after SIGCONT
    w2.spawn("k-put-h2", peer_put(h2), PAUSE_S + after)
    w2.spawn("k-put-h3", peer_put(h3), PAUSE_S + after)
    w2.spawn("k-get", peer_get, PAUSE_S + after)
    w2.spawn("k-get-h1", lambda i: lab.request(h1, "GET", x, sc.letter, tag="h1-get-paused", client_timeout=PAUSE_S + CLIENT_TIMEOUT_S), PAUSE_S, 1)
    lab.wait_until(lambda: False, PAUSE_S - 2)
    locks = nfsd_locks()
    sc.timeline["nfsd_lock_states_before_sigcont"] = locks
    lab.wait_until(lambda: now() >= t_stop + PAUSE_S, 3)
    t_cont = lab.resume(h1)
    sc.timeline["resumed_at"] = sc.at(t_cont)
    sc.say(f"SIGCONT {h1.name} at {sc.at(t_cont)} ({t_cont - t_stop:.1f} s paused); nfsd's lock states 2 s before: {locks or 'not readable'}")
    w.join(let_run=True)
    w2.join(let_run=True)

    p = paused_put[0] if paused_put else None
    if p is not None:
        late = "" if p.outcome != "answer" else (f", {p.t_end - t_cont:+.2f} s after SIGCONT" if p.t_end > t_stop else ", before the pause")
        sc.say(f"the paused PUT (k={p.k}) -> {outcome_label(p)} after {p.t_end - p.t_send:.2f} s{late}")
        sc.timeline["paused_put"] = f"{outcome_label(p)} after {p.t_end - p.t_send:.2f} s"
        with lab.watcher.lock:
            landed = any(o.user == x and o.date_of_birth == inv.date_of_k(p.k).isoformat() for o in lab.watcher.observations)
        sc.timeline["paused_put_in_record"] = landed
        sc.say(f"the paused PUT's date {'WAS' if landed else 'was never'} seen in the record")
    sc.expect(p is not None, "the paused PUT was never sent")
    reqs = sc.requests()
    during = [r for r in reqs if r.tag.startswith("peer-put") and r.t_send >= t_stop and r.t_end <= t_cont]
    after_reqs = [r for r in reqs if r.tag.startswith("peer-put") and r.t_end > t_cont]
    first_204 = min((r.t_end for r in reqs if r.tag.startswith("peer-put") and r.status == 204 and r.t_send >= t_stop), default=None)
    sc.timeline["peer_puts_during_pause"] = summarize_labels(during)
    sc.timeline["peer_puts_after_sigcont"] = summarize_labels(after_reqs)
    sc.timeline["first_peer_204_after_sigstop_s"] = None if first_204 is None else round(first_204 - t_stop, 2)
    sc.timeline["peer_gets_during_pause"] = summarize_labels([r for r in reqs if r.tag == "peer-get" and t_stop <= r.t_send and r.t_end <= t_cont])
    sc.timeline["h1_get_during_pause"] = [f"{outcome_label(r)} after {r.t_end - r.t_send:.2f} s" for r in reqs if r.tag == "h1-get-paused"]
    for k, v in sc.timeline.items():
        sc.say(f"timeline {k}: {v}")
    sc.expect(any(r.status == 204 for r in after_reqs), f"no peer PUT of {x} was acknowledged after SIGCONT")
    final_reads(lab, sc, [x])
    sc.settle_and_read_finals()


# ---------------------------------------------------------------------------------------------
# l. A seeded mix


@dataclass
class Event:
    at: float  # seconds from the start of the schedule
    kind: str  # "clock" | "pause" | "cut" | "kill"
    host: int  # 0..2
    hold: float  # seconds the nemesis lasts (clock: 0, the offset stays until the next one)
    offset: float = 0.0  # clock: the new offset, seconds

    def __str__(self) -> str:
        what = {
            "clock": f"clock of h{self.host + 1} to {offset_text(self.offset)} s",
            "pause": f"SIGSTOP h{self.host + 1} for {self.hold:.1f} s",
            "cut": f"cut h{self.host + 1}'s storage link for {self.hold:.1f} s",
            "kill": f"SIGKILL h{self.host + 1}, restart after {self.hold:.1f} s",
        }[self.kind]
        return f"+{self.at:5.1f} s  {what}"


def schedule(seed: int, seconds: float = 50.0) -> list[Event]:
    """The nemeses of scenario l, one at a time, from `seed` alone: the same seed, the same
    schedule. Every event ends within `seconds`. Pauses and cuts range from a moment to past
    --storage-timeout and the NFS lease; clock offsets from a fraction of a second to 5
    minutes, ahead and behind, so a new offset may step a clock backwards."""
    rng = random.Random(seed)
    events: list[Event] = []
    t = rng.uniform(1.0, 3.0)
    while True:
        kind = rng.choice(["clock", "clock", "pause", "cut", "kill"])
        host = rng.randrange(3)
        offset = 0.0
        if kind == "clock":
            hold = 0.0
            offset = rng.choice([-1, 1]) * rng.choice([rng.uniform(0.05, 1.0), rng.uniform(1.0, 60.0), rng.uniform(60.0, 300.0)])
            offset = round(offset, 3)
        elif kind == "pause":
            hold = rng.choice([rng.uniform(0.5, 4.0), rng.uniform(6.0, 20.0)])
        elif kind == "cut":
            hold = rng.choice([rng.uniform(1.0, 4.0), rng.uniform(6.0, 20.0)])
        else:
            hold = rng.uniform(0.0, 2.0)
        if t + hold > seconds:
            break
        events.append(Event(round(t, 2), kind, host, round(hold, 2), offset))
        t += hold + rng.uniform(1.0, 4.0)
    return events


def scenario_l(lab, sc) -> None:
    events = schedule(lab.seed)
    sc.say(f"seed {lab.seed}: {len(events)} nemeses, one at a time:")
    for e in events:
        sc.say(f"  {e}")
    users = [sc.user("m") for _ in range(3)]
    for h in lab.hosts:
        if h.env is None:
            set_clock(lab, h, 0.0)
    seconds = (events[-1].at + events[-1].hold if events else 0.0) + 4
    w = Workers(lab, sc)
    t0 = now()
    mixed_load(lab, sc, w, users, seconds + 30)  # stopped below, once the schedule is done
    done = []
    try:
        for e in events:
            lab.wait_until(lambda: now() >= t0 + e.at, e.at + 60)
            lab.check_deadline()
            h = lab.hosts[e.host]
            start = now()
            if e.kind == "clock":
                before = h.clock_offset
                set_clock(lab, h, e.offset)
                note = f"{h.name} {before:+.3f} -> {e.offset:+.3f} s" + (" (backwards)" if e.offset < before else "")
            elif e.kind == "pause":
                lab.pause(h)
                lab.wait_until(lambda: False, e.hold)
                lab.resume(h)
                note = f"{h.name} paused {now() - start:.1f} s"
            elif e.kind == "cut":
                lab.cut(h)
                lab.wait_until(lambda: False, e.hold)
                lab.heal(h)
                note = f"{h.name} cut {now() - start:.1f} s"
            else:
                lab.kill(h)
                lab.wait_until(lambda: False, e.hold)
                lab.start(h)
                note = f"{h.name} killed, ready again after {now() - start:.1f} s"
            done.append(f"{sc.at(start)} {note}")
            sc.say(f"nemesis at {sc.at(start)}: {note}")
        lab.wait_until(lambda: False, 4)  # load after the last nemesis
    finally:
        w.join()
    sc.timeline["nemeses"] = done
    reqs = sc.requests()
    for h in lab.hosts:
        mine = [r for r in reqs if r.host == h.name and r.tag == "load"]
        sc.say(f"{h.name}: PUTs {summarize_labels([r for r in mine if r.method == 'PUT'])}; GETs {summarize_labels([r for r in mine if r.method == 'GET'])}")
    for h in lab.hosts:
        if h.clock_offset != 0.0:
            set_clock(lab, h, 0.0)
    # Every host must serve again: bounded polls, as after d's and e's partitions.
    for h in lab.hosts:
        poll_until_204(lab, sc, h, users[h.index - 1], "recovery", 60, "of the last nemesis")
    final_reads(lab, sc, users)
    sc.settle_and_read_finals()


SCENARIOS = {
    "j": ("clocks apart: offsets under a second and of minutes, ahead and behind, a step back", scenario_j, 60, False),
    "k": ("an instance SIGSTOPped mid-write past the storage timeout and the NFS lease", scenario_k, 50, False),
    "l": ("a seeded random mix of clock, pause, partition and kill nemeses", scenario_l, 110, True),
}
