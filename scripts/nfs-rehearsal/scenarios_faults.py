"""Scenarios d to h of the NFS rehearsal: what NFS itself can do to the hosts, so the guest only:
a host cut off from the server while it holds a user's lock, and while idle; the NFS server
restarted under load; the export full; a writer killed during its create.
"""

from __future__ import annotations

import os
import threading
import time

import invariants as inv
from framework import Driver, Scenario, Workers, fmt_wall, outcome_label, poll_until_204, storm, summarize_labels
from lab import Host, ScenarioError, now, stripe_of


def serve(lab: Driver, sc: Scenario, w: Workers, host: Host, users: list[str]):
    """A worker's body: PUT and GET `users` in turn via `host`, tagged "others"."""
    def body(i):
        u = users[i % len(users)]
        lab.put(host, u, sc.letter, "others")
        lab.get(host, u, sc.letter, "others")
        w.stop.wait(0.1)
    return body


def scenario_d(lab: Driver, sc: Scenario) -> None:
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
    ok, tries = poll_until_204(lab, sc, h1, sc.user("r"), "h1-recovery", 90, "of the heal")
    tl["h1_recovered_at"] = sc.at(tries[-1].t_end) if ok else None
    tl["h1_recovered_after_heal_s"] = round(tries[-1].t_end - t_heal, 2) if ok else None
    tl["h1_recovery_answers"] = summarize_labels(tries)
    g = lab.get(h1, x, sc.letter, "h1-after")
    sc.say(f"GET {x} via {h1.name} after recovery -> {outcome_label(g)}")
    for k, v in tl.items():
        sc.say(f"timeline {k}: {v}")
    sc.settle_and_read_finals()


def scenario_e(lab: Driver, sc: Scenario) -> None:
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
    ok, tries = poll_until_204(lab, sc, h3, e, "h3-recovery", 90, "of the heal")
    sc.timeline["h3_recovered_at"] = sc.at(tries[-1].t_end) if ok else None
    sc.say(f"after the heal, {h3.name} answered: {summarize_labels(tries)}")
    sc.settle_and_read_finals()


def scenario_f(lab: Driver, sc: Scenario) -> None:
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


def scenario_g(lab: Driver, sc: Scenario) -> None:
    hosts = lab.hosts
    users = [sc.user() for _ in range(3)]
    for i, u in enumerate(users):
        r = lab.put(hosts[i], u, sc.letter, "setup")
        sc.expect(r.status == 204, f"setup PUT answered {outcome_label(r)}")
    lab.fill_path = os.path.join(lab.server_root, f".rehearsal-fill-{lab.run_tag}")
    # To the last page the tmpfs has (a write stops short at it), bounded: 64 MiB.
    dd = lab.run(["dd", "if=/dev/zero", f"of={lab.fill_path}", "bs=1M", "count=64"], check=False)
    if "No space left on device" not in dd.stderr:
        raise ScenarioError(f"dd did not fill the export: {dd.stderr.strip()}")
    st = os.statvfs(lab.server_root)
    sc.say(f"filled the export with {os.path.getsize(lab.fill_path) >> 10} KiB; {st.f_bavail * st.f_frsize} bytes left")
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
        ok, tries = poll_until_204(lab, sc, h, users[0], "freed", 30, "of freeing the space", 0.2)
        sc.say(f"{h.name} after freeing: {summarize_labels(tries)}")
    sc.settle_and_read_finals()


def scenario_h(lab: Driver, sc: Scenario) -> None:
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
    sc.sweep_check(h1)  # h1's start, once the orphan is older than the orphan age, sweeps it
    r = lab.put(h1, u, sc.letter, "after")
    sc.say(f"PUT {u} via {h1.name} after the restart -> {outcome_label(r)}")
    sc.settle_and_read_finals()


SCENARIOS = {
    "d": ("host 1 cut off while it holds a user's lock", scenario_d, 100, True),
    "e": ("host 3 cut off while idle", scenario_e, 50, True),
    "f": ("NFS server restarted under load", scenario_f, 60, True),
    "g": ("export full", scenario_g, 30, True),
    "h": ("writer killed during its create", scenario_h, 45, True),
}
