"""Unit tests of history.py: the rehearsal's requests as the linearizability checker's operations.

Run: python3 -m unittest discover -s scripts/nfs-rehearsal -p 'test_*.py'
"""

import json
import unittest

import history
import invariants as inv
from invariants import Limits, Request
from test_invariants import TODAY, message


def req(rid, method, t0, t1, *, k=None, status=None, problem=None, outcome="answer", msg=None, days=(TODAY, TODAY), client=None, user="alice", host="h1"):
    return Request(
        rid, host, method, user, t0, t1, outcome, status if outcome == "answer" else None, problem,
        k=k, message=msg, days=list(days) if method == "GET" else [], scenario="x", client=client,
    )


def one(r, limits=None):
    [op] = history.operations([r], limits)
    return op


class Puts(unittest.TestCase):
    def test_an_acknowledged_put(self):
        op = one(req(1, "PUT", 1.2, 3.4, k=4, status=204))
        self.assertEqual(
            {k: op[k] for k in ("key", "op", "value", "call", "return", "outcome")},
            {"key": "alice", "op": "put", "value": "1990-01-05", "call": 1_200_000_000, "return": 3_400_000_000, "outcome": "ok"},
        )
        self.assertNotIn("effect_by", op)

    def test_answers_that_promise_nothing_changed_fail(self):
        for status, problem in [(503, p) for p in sorted(inv.DEFINITE_503)] + [(400, "invalid-body"), (413, None)]:
            op = one(req(1, "PUT", 1.0, 2.0, k=1, status=status, problem=problem))
            self.assertEqual((op["outcome"], op["return"]), ("fail", 2_000_000_000), (status, problem))
            self.assertNotIn("effect_by", op)

    def test_write_unconfirmed_is_info_bounded_by_its_deadline(self):
        op = one(req(1, "PUT", 1.0, 6.0, k=1, status=503, problem="write-unconfirmed"), Limits(deadline=10.0))
        self.assertEqual((op["outcome"], op["return"], op["effect_by"]), ("info", 6_000_000_000, 11_000_000_000))

    def test_no_answer_is_info_with_no_return(self):
        for outcome in ("timeout", "conn-error"):
            op = one(req(1, "PUT", 1.0, 16.0, k=1, outcome=outcome), Limits(deadline=10.0))
            self.assertEqual((op["outcome"], op["return"], op["effect_by"]), ("info", None, 11_000_000_000), outcome)

    def test_a_put_under_way_in_a_pause_may_land_until_the_deadline_after_the_sigcont(self):
        r = req(1, "PUT", 1.0, 16.0, k=1, outcome="timeout")
        paused = [inv.DownInterval("h1", 1.01, 21.0, kind="paused")]
        [op] = history.operations([r], Limits(deadline=10.0), paused)
        self.assertEqual(op["effect_by"], 31_000_000_000)
        [op] = history.operations([r], Limits(deadline=10.0), [inv.DownInterval("h2", 1.01, 21.0, kind="paused")])
        self.assertEqual(op["effect_by"], 11_000_000_000)

    def test_effect_by_is_invariant_4s_bound(self):
        limits = Limits(deadline=10.0)
        for r in [
            req(1, "PUT", 1.0, 6.0, k=1, status=503, problem="write-unconfirmed"),
            req(2, "PUT", 1.0, 1.5, k=2, status=500, problem="storage-error"),  # undocumented: may have changed
            req(3, "PUT", 1.0, 3.0, k=3, outcome="conn-error"),
        ]:
            self.assertEqual(one(r, limits)["effect_by"], history.nanos(inv.effect_bound(r, limits)), r.rid)


class Gets(unittest.TestCase):
    def test_a_greeting_maps_back_to_the_date(self):
        op = one(req(1, "GET", 1.0, 1.1, status=200, msg=message("alice", 9)))
        self.assertEqual((op["op"], op["value"], op["outcome"]), ("get", ["1990-01-10"], "ok"))

    def test_a_greeting_across_midnight_has_two_candidates(self):
        op = one(req(1, "GET", 1.0, 1.1, status=200, msg="Hello, alice! Happy birthday!", days=("2026-01-01", "2026-01-02")))
        self.assertEqual(op["value"], ["1990-01-01", "1990-01-02"])

    def test_not_found_is_null(self):
        op = one(req(1, "GET", 1.0, 1.1, status=404, problem="user-not-found"))
        self.assertEqual((op["value"], op["outcome"]), ([None], "ok"))

    def test_a_greeting_that_names_no_date_explains_nothing(self):
        for msg in ["Hello, bob! Happy birthday!", "Hello alice", None]:
            self.assertEqual(one(req(1, "GET", 1.0, 1.1, status=200, msg=msg))["value"], [], msg)

    def test_other_answers_and_no_answer_fail(self):
        for r in [
            req(1, "GET", 1.0, 6.0, status=503, problem="storage-timeout"),
            req(2, "GET", 1.0, 1.1, status=404, problem="not-found"),
            req(3, "GET", 1.0, 16.0, outcome="timeout"),
            req(4, "GET", 1.0, 1.1, outcome="conn-error"),
        ]:
            op = one(r)
            self.assertEqual(op["outcome"], "fail", r.rid)
            self.assertNotIn("effect_by", op)
        # The checker needs a return time for an answered (ok/fail) operation; a GET that got
        # no answer has the time the driver gave up.
        self.assertEqual(one(req(3, "GET", 1.0, 16.0, outcome="timeout"))["return"], None)


class Processes(unittest.TestCase):
    def test_a_thread_keeps_its_process_until_an_info_operation(self):
        rs = [
            req(1, "PUT", 1.0, 1.1, k=1, status=204, client=1),
            req(2, "GET", 1.2, 1.3, status=200, msg=message("alice", 1), client=1),
            req(3, "PUT", 1.4, 6.4, k=2, status=503, problem="write-unconfirmed", client=1),
            req(4, "PUT", 6.5, 6.6, k=3, status=204, client=1),
            req(5, "PUT", 1.05, 1.15, k=4, status=503, problem="storage-busy", client=2),
            req(6, "PUT", 1.5, 1.6, k=5, status=204, client=2),
        ]
        ops = {op["note"].split()[0]: op["process"] for op in history.operations(rs)}
        self.assertEqual(ops["#1"], ops["#2"])
        self.assertEqual(ops["#2"], ops["#3"])  # the info operation itself is still the thread's
        self.assertNotEqual(ops["#3"], ops["#4"])  # then a new process: #3 may land later
        self.assertEqual(ops["#5"], ops["#6"])  # a fail is not retired
        self.assertEqual(len({ops["#1"], ops["#4"], ops["#5"]}), 3)

    def test_a_request_with_no_thread_is_a_process_of_its_own(self):
        rs = [req(i, "PUT", float(i), i + 0.1, k=i, status=204) for i in (1, 2)]
        self.assertEqual(len({op["process"] for op in history.operations(rs)}), 2)


class Format(unittest.TestCase):
    def test_operations_are_in_call_order_one_json_object_a_line(self):
        rs = [
            req(1, "PUT", 2.0, 2.1, k=1, status=204),
            req(2, "GET", 1.0, 1.1, status=404, problem="user-not-found", user="bob"),
        ]
        lines = history.to_jsonl(history.operations(rs)).splitlines()
        self.assertEqual([json.loads(line)["key"] for line in lines], ["bob", "alice"])
        for line in lines:
            op = json.loads(line)
            self.assertTrue(isinstance(op["call"], int) and isinstance(op["process"], int))
            self.assertLessEqual(op["call"], op["return"])

    def test_a_saved_history_converts(self):
        import io
        import os
        import sys
        import tempfile

        saved = {
            "requests": [vars(req(1, "PUT", 1.0, 1.1, k=0, status=204)) | {"client": None}],
            "limits": {"deadline": 10.0, "orphan_age": 10.0},
        }
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "history.json")
            with open(path, "w") as f:
                json.dump(saved, f)
            out, sys.stdout = sys.stdout, io.StringIO()
            try:
                self.assertEqual(history.main(["history.py", path]), 0)
                text = sys.stdout.getvalue()
            finally:
                sys.stdout = out
        self.assertEqual(json.loads(text)["value"], "1990-01-01")


if __name__ == "__main__":
    unittest.main()
