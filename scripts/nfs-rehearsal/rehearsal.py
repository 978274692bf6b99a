#!/usr/bin/env python3
"""The NFSv4.1 rehearsal's scenario driver (python3 stdlib only).

Inside the guest (run as root by guest-init.sh, which sets up the NFS server, the hosts h1..h3
and their mounts) it starts, SIGKILLs and restarts an instance per host itself, runs scenarios
a..m in that order and checks every request and every change of the watched records against
invariants.py. Exits non-zero on any breach or scenario error; writes report.txt, report.json,
history.json and history.jsonl (the requests as operations for the linearizability checker,
history.py) to --out. This file is the arguments, running the scenarios chosen, the summary;
docs/testing.md says which file holds what.

    python3 rehearsal.py --out /share/out                     # in the guest
    python3 rehearsal.py --local --binary target/release/hello-birthday --out /tmp/reh
                                                              # on any Linux box: three
        instances on 127.0.0.1 sharing one local directory; only scenarios a, b, c, i, j, k;
        the checker as run.sh runs it: cargo run --release --example check_history -- /tmp/reh/history.jsonl
    python3 rehearsal.py --recheck /share/out/history.json   # the model again, offline
    python3 rehearsal.py --out /share/out --scenarios l --seed 42   # one scenario; l's schedule

Every wait is a poll with a deadline, every loop is bounded in count and time, the whole run
has a deadline (--deadline), and every process started here is killed by its pid on every
exit path.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import traceback
from dataclasses import asdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history  # noqa: E402
import invariants as inv  # noqa: E402
import scenarios_faults  # noqa: E402
import scenarios_nemesis  # noqa: E402
import scenarios_scale  # noqa: E402
import scenarios_sharing  # noqa: E402
from framework import Driver, Scenario, limits  # noqa: E402
from lab import DEADLINE_S, LOCK_TIMEOUT_MS, ORPHAN_AGE_S, STORAGE_TIMEOUT_MS, Output, RunDeadline, ScenarioError, now  # noqa: E402

# letter -> (title, function, seconds it needs, whether it needs the guest), run in letter order.
SCENARIOS = dict(sorted((scenarios_sharing.SCENARIOS | scenarios_faults.SCENARIOS | scenarios_nemesis.SCENARIOS | scenarios_scale.SCENARIOS).items()))


def restore(lab: Driver, sc: Scenario) -> None:
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
    ap.add_argument("--scale-binary", default="/share/bin/scale", help="scenario m's examples/scale.rs binary")
    ap.add_argument("--scale-users", type=int, default=100_000, help="scenario m: users seeded (default 100,000)")
    ap.add_argument("--scale-seconds", type=float, default=5, help="scenario m: seconds per load")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.recheck:
        return recheck(args.recheck)
    if not args.out:
        ap.error("--out is required")
    os.makedirs(args.out, exist_ok=True)
    out = Output()
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
        lab = Driver(args, out)
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


def report(args, out: Output, lab: Driver | None, scenarios: list[Scenario], fatal: list[str]) -> int:
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


def recheck(path: str) -> int:
    with open(path) as f:
        h = json.load(f)
    # check()'s arguments by name, as report() saved them.
    kinds = {"requests": inv.Request, "observations": inv.Observation, "leftovers": inv.Leftover, "down": inv.DownInterval, "finals": inv.FinalRecord}
    breaches = inv.check(**{name: [kind(**x) for x in h[name]] for name, kind in kinds.items()}, limits=limits())
    for b in breaches:
        print(b)
    print(f"{len(breaches)} breaches in {len(h['requests'])} requests, {len(h['observations'])} observations")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
