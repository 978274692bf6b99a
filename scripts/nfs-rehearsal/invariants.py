"""The history model of the NFS rehearsal and its invariant checks.

Pure: no I/O, no clock, no threads. rehearsal.py records what it sent and saw (requests with
monotonic timestamps, the watcher's server-side observations of each record, the temp and
probe files left after a sweep) and hands it to `check()`, which returns the breaches. The
same functions are unit-tested in test_invariants.py with hand-made histories.

How dates are made identifiable: a GET only answers "N days to the next birthday", so the
driver sends, as the k-th PUT of a user, the date 1990-01-01 + k days (k < 365, unique per
user; 1990 is not a leap year, so the 365 dates are 365 distinct month/days). Given the
server's UTC date T, N maps back to exactly one k; the driver records T at the GET's start and
at its end (a GET may straddle midnight), so a GET maps to one or two candidate k.

Timestamps are time.monotonic() values of the driver process, for requests and the watcher
alike, so they are comparable with each other (and never with wall-clock times: the instances'
wall clocks may each be set apart on purpose, and a record's updatedAt is only information).

The invariants (any breach fails the run). A PUT is "acknowledged" if answered 204, "definitely
failed" if its answer promises nothing changed (Request.definitely_failed); when it may take
effect at the latest is effect_bound(). What the answers to GETs say, the linearizability
checker judges over the whole run (history.py, run.sh); what it cannot see is here: what the
server holds, statuses and times, and the user's lock (invariant 2).
  1 date-sent: every record the watcher saw holds a date that a PUT of that user sent before.
  2 read-after-write, as far as the lock orders writes: the checker lets a PUT of unknown outcome
    land until its deadline, but one answered write-unconfirmed still holds the user's lock until
    its rename is carried out, so it cannot land over a PUT sent after that answer. For every PUT
    p acknowledged before a GET g started, a 200 answers p's date, or that of a PUT q that is not
    definitely failed and not known to precede p (q answered before p was sent).
  3 version-monotonic: in the watcher's log of a record, `version` (the count of the user's
    writes; a record without one is version 0) never decreases, a record that changes while
    both it and its predecessor carry a version has a larger one (two writes from the same
    predecessor both landed: the user's lock was not exclusive), and a record once present
    never vanishes. Not updatedAt: each host stamps its own wall clock, and they differ.
  4 no-effect-after-answer: a definitely failed PUT's date never appears in the record; any
    other PUT's date, when first seen in the record, was absent at a read that started no later
    than the PUT's effect bound.
  5 not-torn: every record read parses as {"schema":1,"username":<the user>,"dateOfBirth":
    "YYYY-MM-DD","updatedAt":<RFC 3339>} with an optional "version": <integer >= 0>.
  6 no-orphans: no temp/probe file is left after a sweep that ran at least the orphan age
    after the driver first saw the file.
  7 status-and-deadline: PUT answers 204 or a documented 503; GET 200, 404 user-not-found or a
    documented 503; every answer within the deadline; no timeout; a connection error only while
    the instance was down on purpose (SIGKILLed/stopped, until ready again); for a request
    under way while its instance was paused on purpose (SIGSTOP, until SIGCONT), the deadline
    counts from the SIGCONT, and no answer at all (the driver gave up first) is no breach.
  final-state: the record read at the end holds the date of a PUT that is not definitely failed
    and no older than any acknowledged PUT (same rule as 2); no record only if none was acked.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field

BASE_DATE = dt.date(1990, 1, 1)
DAYS = 365  # k ranges over 0..364

PROBLEM_PREFIX = "tag:hello-birthday,2026:"
# The 503 problem types of the contract, and whether each promises "nothing was changed".
DEFINITE_503 = frozenset({"storage-busy", "storage-unavailable", "storage-timeout"})
UNCONFIRMED_503 = frozenset({"write-unconfirmed"})
DOCUMENTED_503 = DEFINITE_503 | UNCONFIRMED_503

# Invariant names, as reported.
INV_DATE_SENT = "1-date-sent"
INV_FRESH = "2-read-after-write"
INV_MONOTONIC = "3-version-monotonic"
INV_NO_LATE_EFFECT = "4-no-effect-after-answer"
INV_NOT_TORN = "5-not-torn"
INV_NO_ORPHANS = "6-no-orphans"
INV_STATUS = "7-status-and-deadline"
INV_FINAL = "final-state"
INV_HISTORY = "history-malformed"


def date_of_k(k: int) -> dt.date:
    if not 0 <= k < DAYS:
        raise ValueError(f"k={k} is outside 0..{DAYS - 1}")
    return BASE_DATE + dt.timedelta(days=k)


def k_of_date(date: dt.date | str) -> int | None:
    """The k of a date the driver sends, or None for any other date."""
    if isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError:
            return None
    k = (date - BASE_DATE).days
    return k if 0 <= k < DAYS else None


def days_until_birthday(today: dt.date, birthday: dt.date) -> int:
    """Days from `today` to the next occurrence of `birthday`'s month/day (0 = today).
    Only for 1990 dates (never 29 February)."""
    this_year = birthday.replace(year=today.year)
    if this_year < today:
        this_year = birthday.replace(year=today.year + 1)
    return (this_year - today).days


@functools.lru_cache(maxsize=8)
def _k_by_days(today: dt.date) -> dict[int, int]:
    table = {}
    for k in range(DAYS):
        table[days_until_birthday(today, date_of_k(k))] = k
    # 365 distinct month/days within the next year: N determines k.
    assert len(table) == DAYS
    return table


_MESSAGE = re.compile(
    r"^Hello, (?P<user>.+)! (?:Your birthday is in (?P<n>\d+) day\(s\)|(?P<happy>Happy birthday!))$"
)


def parse_message(message: str) -> tuple[str, int] | None:
    """(username, N) of a GET 200 message, N = 0 for "Happy birthday!"; None if malformed."""
    m = _MESSAGE.match(message or "")
    if not m:
        return None
    return m.group("user"), (0 if m.group("happy") else int(m.group("n")))


def ks_of_answer(n: int, days: list[str]) -> set[int]:
    """The k a GET answering N could mean, given the server's UTC dates `days` (the GET's
    start and end dates: the server took "today" at one instant in between)."""
    ks = set()
    for day in days:
        k = _k_by_days(dt.date.fromisoformat(day)).get(n)
        if k is not None:
            ks.add(k)
    return ks


def timestamp_key(value: str) -> tuple[int, int] | None:
    """A sortable (epoch seconds, nanoseconds) for an RFC 3339 UTC timestamp as the service
    writes it (chrono: "2026-11-22T10:00:00.123456789Z", 0 to 9 fraction digits), or None.
    Not datetime.fromisoformat: Python 3.11 keeps at most microseconds."""
    m = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", value or ""
    )
    if not m:
        return None
    day, hh, mm, ss, frac, zone = m.groups()
    try:
        when = dt.datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None
    nanos = int((frac or "").ljust(9, "0"))
    return int(when.timestamp()), nanos


# ---------------------------------------------------------------------------------------------
# The history


@dataclass
class Request:
    """One HTTP request the driver sent and what came of it."""

    rid: int
    host: str  # "h1".."h3" (or "local" for the local-disk baseline)
    method: str  # "PUT" | "GET"
    user: str
    t_send: float  # monotonic, just before the request was written
    t_end: float  # monotonic, when the answer, the error or the client timeout came
    outcome: str  # "answer" | "conn-error" (refused/reset/closed) | "timeout" (no answer in time)
    status: int | None = None
    problem: str | None = None  # slug of an application/problem+json answer
    k: int | None = None  # PUT: the day index sent
    message: str | None = None  # GET 200: the message
    days: list[str] = field(default_factory=list)  # GET: server UTC dates at start and end
    scenario: str = ""
    tag: str = ""  # free text for the report, e.g. "fenced" or "x-loop"
    client: int | None = None  # the driver's thread that sent it (history.py: process ids)

    @property
    def acknowledged(self) -> bool:
        return self.method == "PUT" and self.outcome == "answer" and self.status == 204

    @property
    def definitely_failed(self) -> bool:
        """An answer that promises nothing was changed."""
        if self.outcome != "answer" or self.status is None:
            return False
        if self.status == 503 and self.problem in DEFINITE_503:
            return True
        # A rejected request (4xx) changes nothing on disk (docs/api.md, "Rules").
        return 400 <= self.status < 500


def outcome_label(r: Request | None) -> str:
    """What came of r, for reports: "204", "503 storage-busy", "timeout", "conn-error"."""
    if r is None or r.outcome != "answer":
        return r.outcome if r else "not sent"
    return f"{r.status} {r.problem}" if r.problem else str(r.status)


@dataclass
class Observation:
    """A change of one record's file as the watcher read it on the server (the authoritative
    view). The watcher logs the first read of each user, then every read whose bytes differ
    from the previous read.

    `t_before` is the start of the last read that still saw the previous state (None for the
    first read): whatever changed, changed after `t_before`. `t_seen` is the end of the read
    that saw this state: it was in place by then."""

    user: str
    t_before: float | None
    t_seen: float
    state: str  # "missing" | "ok" | "torn"
    date_of_birth: str | None = None
    updated_at: str | None = None  # the writing host's wall clock: information only
    detail: str = ""  # "torn": why (and a prefix of the bytes)
    version: int | None = None  # "ok": the record's version (None: it has none, i.e. 0)


@dataclass
class Leftover:
    """A temp or probe file present after an orphan sweep that ran at `sweep_at`.
    `first_seen` is when the driver first saw it (the watcher, or this scan)."""

    name: str
    first_seen: float
    sweep_at: float


@dataclass
class DownInterval:
    """An instance was SIGKILLed or stopped on purpose (from `start`) until it was ready again
    (`end`; None: never restarted): connection errors inside it are expected. With kind
    "paused" it was SIGSTOPped from `start` until SIGCONT at `end`: the kernel still accepts
    connections and queues requests, and the instance reads them, starts their deadlines and
    answers them only after `end`."""

    host: str
    start: float
    end: float | None
    kind: str = "down"  # "down" | "paused"


@dataclass
class FinalRecord:
    """A user's record read on the server at time `t`, after every host settled."""

    user: str
    t: float
    date_of_birth: str | None  # None: no record


@dataclass
class Breach:
    invariant: str
    what: str
    rids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.what}"


@dataclass
class Limits:
    deadline: float = 10.0  # storage-timeout (5 s) + 5 s slack: an answer later is a hang
    orphan_age: float = 10.0


def parse_record(raw: bytes, user: str) -> tuple[str, str | None, str | None, int | None, str]:
    """(state, dateOfBirth, updatedAt, version, detail) of a record's bytes, as the watcher logs
    them: "ok" only for the documented JSON of this user. version is None for a record without
    one (written before versions existed: it counts as 0)."""
    def torn(why: str) -> tuple[str, None, None, None, str]:
        return "torn", None, None, None, f"{why}: {raw[:120]!r}"

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return torn(f"not JSON ({e})")
    if not isinstance(doc, dict):
        return torn("not an object")
    if doc.get("schema") != 1:
        return torn("schema is not 1")
    if doc.get("username") != user:
        return torn(f"username {doc.get('username')!r} is not {user!r}")
    dob, updated = doc.get("dateOfBirth"), doc.get("updatedAt")
    if not isinstance(dob, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", dob):
        return torn("dateOfBirth is not YYYY-MM-DD")
    try:
        dt.date.fromisoformat(dob)
    except ValueError:
        return torn("dateOfBirth is not a calendar date")
    if not isinstance(updated, str) or timestamp_key(updated) is None:
        return torn("updatedAt is not an RFC 3339 UTC timestamp")
    version = doc.get("version")
    if "version" in doc and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
        return torn("version is not an integer >= 0")
    return "ok", dob, updated, version, ""


# ---------------------------------------------------------------------------------------------
# The checks


def resumed_at(r: Request, down: list[DownInterval] = ()) -> float:
    """When r's instance can have read r at the latest, as far as pauses go: its send time, or
    the SIGCONT of a pause of its instance that r was under way in (the kernel queued r, and
    the instance's deadline for it started when it read it, after the SIGCONT)."""
    t = r.t_send
    for d in down:
        if d.host == r.host and d.kind == "paused" and d.start <= r.t_end and r.t_send <= (d.end if d.end is not None else float("inf")):
            t = max(t, d.end if d.end is not None else float("inf"))
    return t


def effect_bound(p: Request, limits: Limits, down: list[DownInterval] = ()) -> float:
    """The latest time at which PUT p may take effect: its answer (a 204 or an error), and in
    any case its deadline. A PUT cut off by a SIGKILL of its instance ("conn-error") or never
    answered has only the deadline, and so has one answered write-unconfirmed: that answer
    says the rename was sent or done when the storage stopped answering, and a rename already
    sent is carried out when the storage answers again, after the answer (docs/storage.md,
    "what no check can close"). Its writer still holds the user's lock until then, so it cannot
    land over a later write: invariants 2 and 3 would see that. The deadline counts from the
    send, or from the SIGCONT of a pause the PUT was under way in (resumed_at)."""
    deadline = resumed_at(p, down) + limits.deadline
    if p.outcome == "answer" and p.problem not in UNCONFIRMED_503:
        return min(p.t_end, deadline)
    return deadline


def could_follow(q: Request, p: Request) -> bool:
    """Whether PUT q may have taken effect after acknowledged PUT p did: q may have changed
    something, and q is not known to precede p (q answered before p was sent)."""
    if q.definitely_failed:
        return False
    return not (q.outcome == "answer" and q.t_end < p.t_send)


def _fresh_enough(q: Request | None, acked_before: list[Request]) -> Request | None:
    """The acknowledged PUT that a read of q's date (None: of no record) is staler than."""
    for p in acked_before:
        if q is None or (q is not p and not could_follow(q, p)):
            return p
    return None


def check(
    requests: list[Request],
    observations: list[Observation] = (),
    leftovers: list[Leftover] = (),
    down: list[DownInterval] = (),
    finals: list[FinalRecord] = (),
    limits: Limits | None = None,
) -> list[Breach]:
    """Every breach of the invariants in this history (empty: the run holds)."""
    limits = limits or Limits()
    breaches: list[Breach] = []
    puts_by_user: dict[str, dict[int, Request]] = {}
    for r in requests:
        if r.method == "PUT":
            if r.k is None:
                breaches.append(Breach(INV_HISTORY, f"PUT #{r.rid} has no k", [r.rid]))
                continue
            seen = puts_by_user.setdefault(r.user, {})
            if r.k in seen:
                breaches.append(
                    Breach(INV_HISTORY, f"user {r.user}: k={r.k} sent twice (#{seen[r.k].rid}, #{r.rid})", [r.rid])
                )
                continue
            seen[r.k] = r
    acked_by_user: dict[str, list[Request]] = {}
    for r in requests:
        if r.acknowledged:
            acked_by_user.setdefault(r.user, []).append(r)

    breaches += _check_status(requests, down, limits)
    breaches += _check_reads(requests, puts_by_user, acked_by_user)
    breaches += _check_observations(observations, puts_by_user, limits, down)
    breaches += _check_leftovers(leftovers, limits)
    breaches += _check_finals(finals, puts_by_user, acked_by_user)
    return breaches


def _in_down_interval(r: Request, down: list[DownInterval]) -> bool:
    for d in down:
        if d.host != r.host or d.kind != "down":
            continue
        end = d.end if d.end is not None else float("inf")
        # The request's life [t_send, t_end] overlaps the interval.
        if r.t_send <= end and r.t_end >= d.start:
            return True
    return False


def _check_status(requests: list[Request], down: list[DownInterval], limits: Limits) -> list[Breach]:
    """Invariant 7: only documented answers, all within the deadline."""
    out = []
    for r in requests:
        label = f"{r.method} {r.user} via {r.host} #{r.rid}"
        start = resumed_at(r, down)  # the send, or the SIGCONT of a pause r was under way in
        if r.outcome == "timeout":
            if start == r.t_send:  # a client that gave up during a pause: no breach
                out.append(Breach(INV_STATUS, f"{label}: no answer within {r.t_end - r.t_send:.1f} s (hang)", [r.rid]))
            continue
        if r.outcome == "conn-error":
            if not _in_down_interval(r, down):
                out.append(Breach(INV_STATUS, f"{label}: connection failed while the instance was meant to be up", [r.rid]))
            continue
        if r.outcome != "answer":
            out.append(Breach(INV_HISTORY, f"{label}: unknown outcome {r.outcome!r}", [r.rid]))
            continue
        took = r.t_end - start
        if took > limits.deadline:
            since = "" if start == r.t_send else f" since the SIGCONT of its instance ({start - r.t_send:.2f} s after the send)"
            out.append(Breach(INV_STATUS, f"{label}: answered {r.status} after {took:.2f} s{since} > {limits.deadline:.0f} s", [r.rid]))
        s = r.status
        expected = (r.method == "PUT" and s == 204) or (r.method == "GET" and s == 200)
        expected = expected or (r.method == "GET" and s == 404 and r.problem == "user-not-found")
        expected = expected or (s == 503 and r.problem in DOCUMENTED_503)
        if not expected:
            out.append(Breach(INV_STATUS, f"{label}: unexpected {s} {r.problem or ''}".rstrip(), [r.rid]))
    return out


def _check_reads(
    requests: list[Request],
    puts_by_user: dict[str, dict[int, Request]],
    acked_by_user: dict[str, list[Request]],
) -> list[Breach]:
    """Invariant 2. Any other wrong answer to a GET is the checker's (the module's docstring)."""
    out = []
    for g in requests:
        parsed = parse_message(g.message or "") if g.method == "GET" and g.status == 200 else None
        if parsed is None or parsed[0] != g.user:
            continue
        acked_before = [p for p in acked_by_user.get(g.user, []) if p.t_end < g.t_send]
        puts = puts_by_user.get(g.user, {})
        stale = [(puts[k], _fresh_enough(puts[k], acked_before)) for k in sorted(ks_of_answer(parsed[1], g.days)) if k in puts and puts[k].t_send < g.t_end]
        if stale and all(p is not None for _, p in stale):
            q, p = stale[0]
            out.append(Breach(INV_FRESH, f"GET {g.user} via {g.host} #{g.rid}: stale: answered PUT #{q.rid} (k={q.k}) but PUT #{p.rid} (k={p.k}) was acknowledged before the GET, after #{q.rid} was answered", [g.rid, q.rid, p.rid]))
    return out


def _check_observations(
    observations: list[Observation], puts_by_user: dict[str, dict[int, Request]], limits: Limits, down: list[DownInterval] = ()
) -> list[Breach]:
    """Invariants 3, 4 and 5 on the watcher's log."""
    out = []
    by_user: dict[str, list[Observation]] = {}
    for o in observations:
        by_user.setdefault(o.user, []).append(o)
    for user, log in by_user.items():
        log.sort(key=lambda o: o.t_seen)
        last: Observation | None = None
        was_present = False
        first_seen_k: dict[int, Observation] = {}
        for o in log:
            if o.state == "torn":
                out.append(Breach(INV_NOT_TORN, f"record of {user} torn at t={o.t_seen:.3f}: {o.detail}"))
                continue
            if o.state == "missing":
                if was_present:
                    out.append(Breach(INV_MONOTONIC, f"record of {user} vanished at t={o.t_seen:.3f}"))
                continue
            was_present = True
            if last is not None:
                before, now = last.version or 0, o.version or 0
                if now < before:
                    out.append(Breach(INV_MONOTONIC, f"record of {user}: version went back from {before} ({last.date_of_birth}) to {now} ({o.date_of_birth}) at t={o.t_seen:.3f}"))
                elif now == before and last.version is not None and o.version is not None:
                    out.append(Breach(INV_MONOTONIC, f"record of {user}: changed from {last.date_of_birth} to {o.date_of_birth} at t={o.t_seen:.3f} with version {now} both times: two writes of one version landed"))
            last = o
            k = k_of_date(o.date_of_birth or "")
            if k is None or k not in puts_by_user.get(user, {}):
                out.append(Breach(INV_DATE_SENT, f"record of {user} holds {o.date_of_birth}, which no PUT sent"))
                continue
            first_seen_k.setdefault(k, o)
        for k, o in first_seen_k.items():
            p = puts_by_user[user][k]
            if p.t_send > o.t_seen:
                out.append(Breach(INV_DATE_SENT, f"record of {user} held k={k} at t={o.t_seen:.3f}, before PUT #{p.rid} sent it", [p.rid]))
            elif p.definitely_failed:
                out.append(Breach(INV_NO_LATE_EFFECT, f"record of {user} holds k={k} of PUT #{p.rid} via {p.host}, answered {p.status} {p.problem} (nothing changed)", [p.rid]))
            elif o.t_before is not None and o.t_before > effect_bound(p, limits, down):
                late = o.t_before - effect_bound(p, limits, down)
                out.append(Breach(INV_NO_LATE_EFFECT, f"record of {user}: PUT #{p.rid} via {p.host} ({p.outcome} {p.status or ''} {p.problem or ''}) took effect after its answer/deadline: still absent {late:.3f} s after it", [p.rid]))
    return out


def _check_leftovers(leftovers: list[Leftover], limits: Limits) -> list[Breach]:
    """Invariant 6: a sweep removes every temp/probe file that was already older than the
    orphan age when it ran (age as the driver saw it, not the file's mtime)."""
    return [
        Breach(INV_NO_ORPHANS, f"{f.name} left after the sweep at t={f.sweep_at:.1f}, seen since t={f.first_seen:.1f} ({f.sweep_at - f.first_seen:.1f} s before the sweep)")
        for f in leftovers
        if f.sweep_at - f.first_seen >= limits.orphan_age
    ]


def _check_finals(
    finals: list[FinalRecord],
    puts_by_user: dict[str, dict[int, Request]],
    acked_by_user: dict[str, list[Request]],
) -> list[Breach]:
    """The final record holds the last acknowledged PUT's date or a later possible one."""
    out = []
    for f in finals:
        acked = [p for p in acked_by_user.get(f.user, []) if p.t_end < f.t]
        if f.date_of_birth is None:
            if acked:
                out.append(Breach(INV_FINAL, f"{f.user}: no record, but {len(acked)} PUTs were acknowledged", [acked[-1].rid]))
            continue
        k = k_of_date(f.date_of_birth)
        q = puts_by_user.get(f.user, {}).get(k) if k is not None else None
        if q is None:
            out.append(Breach(INV_FINAL, f"{f.user}: final record holds {f.date_of_birth}, which no PUT sent"))
            continue
        if q.definitely_failed:
            out.append(Breach(INV_FINAL, f"{f.user}: final record holds PUT #{q.rid}, answered {q.status} {q.problem} (nothing changed)", [q.rid]))
            continue
        p = _fresh_enough(q, acked)
        if p is not None:
            out.append(Breach(INV_FINAL, f"{f.user}: final record holds PUT #{q.rid} (k={q.k}), older than acknowledged PUT #{p.rid} (k={p.k})", [q.rid, p.rid]))
    return out
