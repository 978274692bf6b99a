"""Unit tests of invariants.py: each breach class is fed a history that has it (and must be
reported) and a near miss that does not (and must not be).

Run: python3 -m unittest discover -s scripts/nfs-rehearsal -p 'test_*.py'
"""

import datetime as dt
import itertools
import unittest

import invariants as inv
from invariants import DownInterval, FinalRecord, Leftover, Limits, Observation, Request

TODAY = "2026-03-10"


def message(user: str, k: int, today: str = TODAY) -> str:
    n = inv.days_until_birthday(dt.date.fromisoformat(today), inv.date_of_k(k))
    return f"Hello, {user}! Happy birthday!" if n == 0 else f"Hello, {user}! Your birthday is in {n} day(s)"


class History:
    """Builds hand-made histories with readable times."""

    def __init__(self):
        self.requests = []
        self.observations = []
        self._ids = itertools.count(1)

    def put(self, k, t0, t1, status=204, problem=None, host="h1", user="alice", outcome="answer"):
        r = Request(next(self._ids), host, "PUT", user, t0, t1, outcome, status if outcome == "answer" else None, problem, k=k)
        self.requests.append(r)
        return r

    def get(self, k, t0, t1, host="h2", user="alice", status=200, problem=None, days=(TODAY, TODAY)):
        if status == 404 and problem is None:
            problem = "user-not-found"
        text = message(user, k, days[0]) if status == 200 else None
        r = Request(next(self._ids), host, "GET", user, t0, t1, "answer", status, problem, message=text, days=list(days))
        self.requests.append(r)
        return r

    def seen(self, t_before, t_seen, k=None, updated="2026-03-10T10:00:00Z", state=None, user="alice", detail="", version=None):
        if state is None:
            state = "missing" if k is None else "ok"
        dob = inv.date_of_k(k).isoformat() if k is not None else None
        ok = state == "ok"
        self.observations.append(Observation(user, t_before, t_seen, state, dob, updated if ok else None, detail, version if ok else None))

    def check(self, **kw):
        return inv.check(self.requests, self.observations, **kw)


def invariants_of(breaches):
    return sorted({b.invariant for b in breaches})


class DateMapping(unittest.TestCase):
    def test_k_round_trips_through_the_days_until_the_birthday(self):
        for today in ["2026-03-10", "2024-02-28", "2024-02-29", "2025-12-31", "2026-01-01"]:
            t = dt.date.fromisoformat(today)
            for k in range(inv.DAYS):
                n = inv.days_until_birthday(t, inv.date_of_k(k))
                self.assertEqual(inv.ks_of_answer(n, [today]), {k}, (today, k))

    def test_the_birthday_today_is_zero_days_away(self):
        self.assertEqual(inv.days_until_birthday(dt.date(2026, 1, 1), dt.date(1990, 1, 1)), 0)
        self.assertEqual(inv.days_until_birthday(dt.date(2026, 1, 2), dt.date(1990, 1, 1)), 364)

    def test_a_get_across_midnight_has_two_candidates(self):
        self.assertEqual(inv.ks_of_answer(0, ["2026-01-01", "2026-01-02"]), {0, 1})

    def test_messages_parse(self):
        self.assertEqual(inv.parse_message("Hello, bob! Your birthday is in 12 day(s)"), ("bob", 12))
        self.assertEqual(inv.parse_message("Hello, bob! Happy birthday!"), ("bob", 0))
        self.assertIsNone(inv.parse_message("Hello bob"))

    def test_timestamps_compare_at_nanosecond_precision(self):  # (parse_record's updatedAt check)
        a = inv.timestamp_key("2026-03-10T10:00:00.123456789Z")
        b = inv.timestamp_key("2026-03-10T10:00:00.12345679Z")
        self.assertLess(a, b)
        self.assertLess(inv.timestamp_key("2026-03-10T10:00:00Z"), a)
        self.assertIsNone(inv.timestamp_key("yesterday"))


class Inv1DateSent(unittest.TestCase):
    def test_a_record_holding_an_unsent_date_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.seen(None, 0.0)
        h.seen(0.02, 0.06, k=1)
        self.assertEqual(h.check(), [])
        h.seen(0.5, 0.6, k=7, updated="2026-03-10T10:00:01Z")
        self.assertEqual(invariants_of(h.check()), [inv.INV_DATE_SENT])


class Inv2ReadAfterWrite(unittest.TestCase):
    def test_a_stale_read_across_hosts_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.1, host="h1")
        h.put(2, 0.2, 0.3, host="h3")
        h.get(1, 0.4, 0.5, host="h2")
        self.assertEqual(invariants_of(h.check()), [inv.INV_FRESH])

    def test_a_concurrent_later_write_may_win(self):
        h = History()
        h.put(1, 0.0, 0.3)  # acknowledged
        h.put(2, 0.1, 0.4, status=503, problem="write-unconfirmed")  # overlaps: may be later
        h.get(2, 0.5, 0.6)
        h.get(1, 0.7, 0.8)  # also fine: #2 may not have landed
        self.assertEqual(h.check(), [])

    def test_a_write_known_to_precede_the_acknowledged_one_is_stale(self):
        h = History()
        h.put(2, 0.0, 0.1, status=503, problem="write-unconfirmed")
        h.put(1, 0.2, 0.3)
        h.get(2, 0.4, 0.5)
        self.assertEqual(invariants_of(h.check()), [inv.INV_FRESH])

    def test_an_unanswered_put_may_still_be_later(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(2, 0.2, 0.3, outcome="conn-error", host="h2")
        h.get(2, 0.4, 0.5)
        self.assertEqual(invariants_of(h.check(down=[DownInterval("h2", 0.25, 1.0)])), [])

    def test_a_read_that_started_before_the_ack_may_be_old(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(2, 0.2, 0.5)
        h.get(1, 0.4, 0.6)
        self.assertEqual(h.check(), [])


class Inv3Monotonic(unittest.TestCase):
    def test_version_going_back_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(2, 0.2, 0.3)
        h.seen(None, 0.0)
        h.seen(0.02, 0.05, k=1, version=2)
        h.seen(0.22, 0.25, k=2, version=1)
        self.assertEqual(invariants_of(h.check()), [inv.INV_MONOTONIC])

    def test_version_going_forward_is_fine_whatever_updated_at_says(self):
        # Host 2's clock is behind host 1's: its later write carries an earlier updatedAt.
        h = History()
        h.put(1, 0.0, 0.1, host="h1")
        h.put(2, 0.2, 0.3, host="h2")
        h.seen(None, 0.0)
        h.seen(0.02, 0.05, k=1, updated="2026-03-10T10:00:00.5Z", version=1)
        h.seen(0.22, 0.25, k=2, updated="2026-03-10T10:00:00.1Z", version=2)
        self.assertEqual(h.check(), [])

    def test_a_change_that_keeps_its_version_is_reported(self):
        # Two writers found version 1 under "the" lock and both renamed.
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(2, 0.2, 0.3)
        h.put(3, 0.2, 0.35)
        h.seen(None, 0.0)
        h.seen(0.02, 0.05, k=1, version=1)
        h.seen(0.22, 0.25, k=2, version=2)
        self.assertEqual(h.check(), [])
        h.seen(0.3, 0.32, k=3, version=2)
        self.assertEqual(invariants_of(h.check()), [inv.INV_MONOTONIC])

    def test_records_without_a_version_count_as_version_0(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(2, 0.2, 0.3)
        h.put(3, 0.4, 0.5)
        h.seen(None, 0.0)
        h.seen(0.02, 0.05, k=1)  # written before versions existed: 0
        h.seen(0.22, 0.25, k=2)  # still none: no evidence either way
        h.seen(0.42, 0.45, k=3, version=1)  # the first write that counts
        self.assertEqual(h.check(), [])
        h.put(4, 0.6, 0.7)
        h.seen(0.62, 0.65, k=4)  # a versionless write over version 1: back to 0
        self.assertEqual(invariants_of(h.check()), [inv.INV_MONOTONIC])

    def test_a_record_vanishing_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.seen(None, 0.0)
        h.seen(0.02, 0.05, k=1)
        h.seen(0.3, 0.32)
        self.assertEqual(invariants_of(h.check()), [inv.INV_MONOTONIC])


class Inv4NoLateEffect(unittest.TestCase):
    def test_a_definitely_failed_put_in_the_record_is_reported(self):
        for problem in sorted(inv.DEFINITE_503):
            h = History()
            h.put(1, 0.0, 0.1)
            h.put(2, 0.2, 2.2, status=503, problem=problem, host="h1")
            h.seen(None, 0.0)
            h.seen(0.02, 0.05, k=1, updated="2026-03-10T10:00:00.1Z")
            h.seen(0.5, 0.55, k=2, updated="2026-03-10T10:00:00.2Z")  # before its answer, still a breach
            self.assertEqual(invariants_of(h.check()), [inv.INV_NO_LATE_EFFECT], problem)

    def test_a_write_unconfirmed_may_land_after_its_answer_within_its_deadline(self):
        # The rename was sent when the storage stopped answering; it is carried out when the
        # storage answers again, after the 503 went out.
        h = History()
        h.put(1, 0.0, 5.0, status=503, problem="write-unconfirmed")
        h.seen(None, 0.0)
        h.seen(5.2, 5.25, k=1)
        self.assertEqual(h.check(), [])

    def test_a_write_unconfirmed_landing_after_its_deadline_is_reported(self):
        h = History()
        h.put(1, 0.0, 5.0, status=503, problem="write-unconfirmed")
        h.seen(None, 0.0)
        h.seen(10.5, 10.55, k=1)  # the deadline is 10 s after the send
        self.assertEqual(invariants_of(h.check()), [inv.INV_NO_LATE_EFFECT])

    def test_a_write_unconfirmed_landing_over_a_later_acknowledged_put_is_reported(self):
        h = History()
        h.put(1, 0.0, 5.0, status=503, problem="write-unconfirmed")
        h.put(2, 5.1, 5.2)  # acknowledged after the 503
        h.seen(None, 0.0)
        h.seen(5.15, 5.16, k=2, version=1)
        # k=1, written from the record as it found it (none: version 1 too), lands over k=2.
        h.seen(5.3, 5.31, k=1, version=1)
        self.assertIn(inv.INV_MONOTONIC, invariants_of(h.check()))
        # And the final record holds a write answered before the acknowledged one was sent.
        self.assertIn(inv.INV_FINAL, invariants_of(h.check(finals=[FinalRecord("alice", 6.0, inv.date_of_k(1).isoformat())])))

    def test_an_effect_before_the_answer_is_fine(self):
        h = History()
        h.put(1, 0.0, 0.5, status=503, problem="write-unconfirmed")
        h.seen(None, 0.0)
        h.seen(0.4, 0.62, k=1)  # absent at 0.4 at the latest: may have landed before 0.5
        self.assertEqual(h.check(), [])

    def test_an_acknowledged_put_landing_late_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.5)
        h.seen(None, 0.0)
        h.seen(0.7, 0.72, k=1)
        self.assertEqual(invariants_of(h.check()), [inv.INV_NO_LATE_EFFECT])

    def test_a_killed_put_is_bounded_by_its_deadline(self):
        down = [DownInterval("h2", 0.1, 3.0)]
        h = History()
        h.put(1, 0.0, 0.1, outcome="conn-error", host="h2")
        h.seen(None, 0.0)
        h.seen(5.0, 5.1, k=1)  # within 10 s of its send
        self.assertEqual(h.check(down=down), [])
        h.observations[-1] = Observation("alice", 10.5, 10.6, "ok", inv.date_of_k(1).isoformat(), "2026-03-10T10:00:00Z")
        self.assertEqual(invariants_of(h.check(down=down)), [inv.INV_NO_LATE_EFFECT])


    def test_a_put_under_way_in_a_pause_is_bounded_by_the_sigcont(self):
        # Sent just before its instance was SIGSTOPped for 20 s: the kernel queued it, the
        # instance read it (and started its deadline) after the SIGCONT, when the client had
        # long given up.
        paused = [DownInterval("h1", 0.01, 20.0, kind="paused")]
        h = History()
        h.put(1, 0.0, 15.0, outcome="timeout", host="h1")
        h.seen(None, 0.0)
        h.seen(20.1, 20.3, k=1, version=1)
        self.assertEqual(h.check(down=paused), [])
        self.assertEqual(invariants_of(h.check()), [inv.INV_NO_LATE_EFFECT, inv.INV_STATUS])
        h.observations[-1] = Observation("alice", 30.5, 30.6, "ok", inv.date_of_k(1).isoformat(), "2026-03-10T10:00:00Z", "", 1)
        self.assertEqual(invariants_of(h.check(down=paused)), [inv.INV_NO_LATE_EFFECT])

    def test_a_put_answered_before_a_pause_keeps_its_bound(self):
        h = History()
        h.put(1, 0.0, 0.1, status=503, problem="write-unconfirmed", host="h1")
        paused = [DownInterval("h1", 0.2, 20.0, kind="paused")]
        self.assertEqual(inv.effect_bound(h.requests[0], Limits(), paused), 10.0)
        self.assertEqual(inv.effect_bound(h.requests[0], Limits(), [DownInterval("h1", 0.05, 20.0, kind="paused")]), 30.0)


class Inv5NotTorn(unittest.TestCase):
    def test_a_torn_record_is_reported(self):
        h = History()
        h.seen(None, 0.0, state="torn", detail="not JSON")
        self.assertEqual(invariants_of(h.check()), [inv.INV_NOT_TORN])

    def test_parse_record(self):
        good = b'{"schema":1,"username":"alice","dateOfBirth":"1990-01-02","updatedAt":"2026-03-10T10:00:00.5Z","version":3}\n'
        self.assertEqual(inv.parse_record(good, "alice")[:4], ("ok", "1990-01-02", "2026-03-10T10:00:00.5Z", 3))
        # Written before versions existed: fine, version None (counts as 0).
        old = good.replace(b',"version":3', b"")
        self.assertEqual(inv.parse_record(old, "alice")[:4], ("ok", "1990-01-02", "2026-03-10T10:00:00.5Z", None))
        for raw in [
            good[:40],
            good.replace(b'"alice"', b'"bob"'),
            good.replace(b'"schema":1', b'"schema":"1"'),
            good.replace(b"1990-01-02", b"1990-02-30"),
            good.replace(b"2026-03-10T10:00:00.5Z", b"soon"),
            good.replace(b'"version":3', b'"version":"3"'),
            good.replace(b'"version":3', b'"version":-1'),
            good.replace(b'"version":3', b'"version":1.5'),
            good.replace(b'"version":3', b'"version":true'),
            good.replace(b'"version":3', b'"version":null'),
            b"[]",
            b"\xff",
        ]:
            self.assertEqual(inv.parse_record(raw, "alice")[0], "torn", raw)


class Inv6NoOrphans(unittest.TestCase):
    def test_an_old_orphan_left_after_a_sweep_is_reported(self):
        b = inv.check([], leftovers=[Leftover(".abc.json.tmp-x-1", first_seen=0.0, sweep_at=12.0)])
        self.assertEqual(invariants_of(b), [inv.INV_NO_ORPHANS])

    def test_a_young_temp_file_is_fine(self):
        self.assertEqual(inv.check([], leftovers=[Leftover(".probe-x", first_seen=5.0, sweep_at=12.0)]), [])


class Inv7Status(unittest.TestCase):
    def one(self, **kw):
        h = History()
        h.put(1, 0.0, kw.pop("t1", 0.1), **kw)
        return invariants_of(h.check(down=[DownInterval("h3", 0.0, None)]))

    def test_documented_answers_are_fine(self):
        for problem in sorted(inv.DOCUMENTED_503):
            self.assertEqual(self.one(status=503, problem=problem), [], problem)
        self.assertEqual(self.one(), [])

    def test_undocumented_answers_are_reported(self):
        for status, problem in [(500, "storage-error"), (503, "not-ready"), (502, None), (400, "invalid-body"), (200, None)]:
            self.assertEqual(self.one(status=status, problem=problem), [inv.INV_STATUS], (status, problem))

    def test_a_late_answer_is_reported(self):
        self.assertEqual(self.one(t1=10.5, status=503, problem="storage-timeout"), [inv.INV_STATUS])

    def test_no_answer_is_reported(self):
        self.assertEqual(self.one(t1=15.0, outcome="timeout"), [inv.INV_STATUS])

    def test_a_connection_error_is_reported_unless_the_instance_was_down(self):
        self.assertEqual(self.one(outcome="conn-error", host="h1"), [inv.INV_STATUS])
        self.assertEqual(self.one(outcome="conn-error", host="h3"), [])

    def test_a_late_answer_or_none_is_fine_only_while_the_instance_was_paused(self):
        def one(t1, outcome, down):
            h = History()
            h.put(1, 0.0, t1, status=503, problem="storage-timeout", host="h1", outcome=outcome)
            return invariants_of(h.check(down=down))

        paused = [DownInterval("h1", 0.05, 20.0, kind="paused")]
        killed = [DownInterval("h1", 0.05, 20.0)]
        elsewhere = [DownInterval("h2", 0.05, 20.0, kind="paused")]
        self.assertEqual(one(25.0, "answer", paused), [])  # within the deadline of the SIGCONT
        self.assertEqual(one(15.0, "timeout", paused), [])
        self.assertEqual(one(30.5, "answer", paused), [inv.INV_STATUS])  # 10.5 s after the SIGCONT
        for down in (killed, elsewhere, []):
            self.assertEqual(one(25.0, "answer", down), [inv.INV_STATUS], down)
            self.assertEqual(one(15.0, "timeout", down), [inv.INV_STATUS], down)

    def test_a_get_of_an_unknown_route_is_reported(self):
        h = History()
        h.get(None, 0.0, 0.1, status=404, problem="not-found")
        self.assertEqual(invariants_of(h.check()), [inv.INV_STATUS])


class FinalState(unittest.TestCase):
    def history(self):
        h = History()
        h.put(1, 0.0, 0.1, host="h1")
        h.put(2, 0.2, 0.3, host="h2")
        h.put(3, 0.4, 2.4, status=503, problem="storage-timeout", host="h1")
        h.put(4, 0.5, 0.9, status=503, problem="write-unconfirmed", host="h3")
        return h

    def test_the_last_acknowledged_or_a_later_possible_write_is_fine(self):
        for k in (2, 4):
            self.assertEqual(self.history().check(finals=[FinalRecord("alice", 5.0, inv.date_of_k(k).isoformat())]), [], k)

    def test_an_older_write_is_reported(self):
        b = self.history().check(finals=[FinalRecord("alice", 5.0, inv.date_of_k(1).isoformat())])
        self.assertEqual(invariants_of(b), [inv.INV_FINAL])

    def test_a_fenced_write_is_reported(self):
        b = self.history().check(finals=[FinalRecord("alice", 5.0, inv.date_of_k(3).isoformat())])
        self.assertEqual(invariants_of(b), [inv.INV_FINAL])

    def test_a_missing_record_is_reported(self):
        self.assertEqual(invariants_of(self.history().check(finals=[FinalRecord("alice", 5.0, None)])), [inv.INV_FINAL])


class Malformed(unittest.TestCase):
    def test_a_k_sent_twice_is_reported(self):
        h = History()
        h.put(1, 0.0, 0.1)
        h.put(1, 0.2, 0.3)
        self.assertEqual(invariants_of(h.check()), [inv.INV_HISTORY])


if __name__ == "__main__":
    unittest.main()
