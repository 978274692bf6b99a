"""The rehearsal's client-side history as operations for the linearizability checker.

Pure, like invariants.py: `operations()` turns the driver's requests (invariants.Request) into
the JSON Lines the checker reads (`cargo run --release --example check_history -- FILE`), one
operation per line:

    {"process": 7, "key": "alice", "op": "put", "value": "1990-01-05", "call": 1200000,
     "return": 3400000, "outcome": "ok"}
    {"process": 8, "key": "alice", "op": "get", "value": ["1990-01-05"], ...}

- call/return: the driver's time.monotonic() in integer nanoseconds (one clock for every
  request of the run); return is null when no answer came (a timeout, a broken connection).
- key: the username (each scenario makes its own users, so the keys of a run never collide).
- put value: the date sent. get value: the dates the greeting's "N day(s)" maps back to,
  given the instance's UTC date when the GET started and ended (one, or two around midnight;
  invariants.ks_of_answer), or [null] for 404 user-not-found.
- outcome: "ok" for a PUT 204, a GET 200 or 404 user-not-found; "fail" for an answer that
  promises nothing was changed (503 storage-busy / storage-unavailable / storage-timeout, any
  4xx) and for every other GET (a read with no answer has no effect); "info" for every other
  PUT (503 write-unconfirmed, an undocumented answer, a timeout, a connection error): it may
  have taken effect. An info PUT carries effect_by, the latest time it may take effect: its
  send time plus the deadline, or the SIGCONT plus the deadline if its instance was paused
  while it was under way (invariants.effect_bound, the same bound invariant 4 uses).
- process: one id per driver thread, and a new one after each info operation (as Jepsen
  does): the request may still be in flight while the thread goes on.

Not here: the watcher's direct reads of the record files and the final-state reads (the
driver reads those files on the server, not through the service): they are not client
operations. invariants.py checks them.

    python3 history.py history.json > history.jsonl   # a saved run's history, converted again
"""

from __future__ import annotations

import json
import sys

import invariants as inv

OK, FAIL, INFO = "ok", "fail", "info"


def nanos(t: float) -> int:
    return int(round(t * 1e9))


def outcome(r: inv.Request) -> str:
    """ok, fail or info, as the checker means them (see the module's docstring)."""
    answered = r.outcome == "answer"
    if r.method == "PUT":
        if r.acknowledged:
            return OK
        if r.definitely_failed:
            return FAIL
        return INFO
    if answered and (r.status == 200 or (r.status == 404 and r.problem == "user-not-found")):
        return OK
    return FAIL


def get_outputs(r: inv.Request) -> list[str | None]:
    """The outputs an answered GET may stand for: [None] for 404, the candidate dates for 200.
    An empty list for a greeting that maps to no date the driver can send (a malformed one, or
    another user's): no state explains it, and the checker says so."""
    if r.status == 404:
        return [None]
    parsed = inv.parse_message(r.message or "")
    if parsed is None or parsed[0] != r.user:
        return []
    return [inv.date_of_k(k).isoformat() for k in sorted(inv.ks_of_answer(parsed[1], r.days))]


def operations(requests: list[inv.Request], limits: inv.Limits | None = None, down: list[inv.DownInterval] = ()) -> list[dict]:
    """The checker's operations for these requests, in order of their call time. `down`: the
    instances' pauses (and stops), which move the effect bound of the PUTs under way in them."""
    limits = limits or inv.Limits()
    ordered = sorted(requests, key=lambda r: (r.t_send, r.rid))
    # Process ids: per driver thread (Request.client), renewed after an info operation. A
    # request with no client (a history saved before clients were recorded) gets one of its own.
    first_free = 1 + max([r.rid for r in requests] + [r.client or 0 for r in requests] + [0])
    next_process = iter(range(first_free, 2**62))
    process_of: dict[int, int] = {}
    ops = []
    for r in ordered:
        kind = outcome(r)
        if r.client is None:
            process = next(next_process)
        else:
            process = process_of.setdefault(r.client, next(next_process))
            if kind == INFO:
                process_of[r.client] = next(next_process)  # retired: the request may land later
        op: dict = {"process": process, "key": r.user}
        if r.method == "PUT":
            op |= {"op": "put", "value": inv.date_of_k(r.k).isoformat()}
        else:
            op |= {"op": "get", "value": get_outputs(r) if kind == OK else [None]}
        op |= {
            "call": nanos(r.t_send),
            "return": nanos(r.t_end) if r.outcome == "answer" else None,
            "outcome": kind,
        }
        if kind == INFO:
            op["effect_by"] = nanos(inv.effect_bound(r, limits, down))
        op["note"] = f"#{r.rid} {r.method} via {r.host}: {inv.outcome_label(r)} after {r.t_end - r.t_send:.3f} s; scenario {r.scenario} {r.tag}".rstrip()
        ops.append(op)
    return ops


def to_jsonl(ops: list[dict]) -> str:
    return "".join(json.dumps(op, separators=(",", ":")) + "\n" for op in ops)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        h = json.load(f)
    limits = inv.Limits(**h["limits"]) if "limits" in h else inv.Limits()
    down = [inv.DownInterval(**d) for d in h.get("down", [])]
    sys.stdout.write(to_jsonl(operations([inv.Request(**r) for r in h["requests"]], limits, down)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
