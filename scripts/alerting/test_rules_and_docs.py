"""The shipped rules, their tests, the runbooks and the dashboard agree with each other."""

import json
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "monitoring"))
sys.path.insert(0, HERE)

import dashboard  # noqa: E402
from rehearsal import STICKY, Notifications, dashboard_queries  # noqa: E402


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


RULES = read("monitoring", "rules.yml")
ALERTS = re.findall(r"^\s*- alert: (\w+)$", RULES, re.M)


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


class RulesAndRunbooks(unittest.TestCase):
    def test_conventions(self):
        self.assertGreater(len(ALERTS), 10)
        for block in re.split(r"\n\s*- alert: ", RULES)[1:]:
            name = block.split("\n", 1)[0]
            with self.subTest(name):
                self.assertRegex(name, r"^HelloBirthday[A-Z][A-Za-z]+$")
                self.assertRegex(block, r"\n\s+for: \d+[smh]\n")
                self.assertRegex(block, r"severity: (critical|warning)")
                for key in ("summary", "description", "runbook_url"):
                    self.assertRegex(block, rf"\n\s+{key}: ")

    def test_every_runbook_url_names_a_heading_of_operations_md(self):
        anchors = {anchor(h) for h in re.findall(r"^#+ (.*)$", read("docs", "operations.md"), re.M)}
        urls = re.findall(r"runbook_url: docs/operations.md#(\S+)", RULES)
        self.assertEqual(len(urls), len(ALERTS))
        for url, name in zip(urls, ALERTS):
            self.assertEqual(url, name.lower())
            self.assertIn(url, anchors, f"docs/operations.md has no heading for {name}")

    def test_every_alert_is_tested_firing_and_silent(self):
        tests = read("monitoring", "tests.yml")
        cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", tests)
        for name in ALERTS:
            with self.subTest(name):
                self.assertIn((name, ""), cases, "no case where it fires")
                self.assertIn((name, " []"), cases, "no case where it stays silent")


class Rehearsed(unittest.TestCase):
    """Every alert is fired by a real fault in the alerting rehearsal, and docs/testing.md says
    which."""

    SOURCE = read("scripts", "alerting", "rehearsal.py")
    EXPECTED = {name for block in re.findall(r"expect=\{([^}]*)\}", SOURCE)
                for name in re.findall(r'"(HelloBirthday\w+)"', block)}

    def test_every_alert_is_expected_of_a_fault(self):
        # The slow-burn tickets fire too, but cannot resolve within the run.
        self.assertEqual(set(ALERTS) - self.EXPECTED - STICKY, set())
        self.assertLessEqual(self.EXPECTED | STICKY, set(ALERTS))

    def test_the_testing_doc_names_every_rehearsed_alert(self):
        testing = read("docs", "testing.md")
        section = testing.split("### Alerts with real parts", 1)[1].split("\n### ", 1)[0]
        for name in sorted(self.EXPECTED):
            with self.subTest(name):
                self.assertIn(f"`{name}`", section)


class Dashboard(unittest.TestCase):
    def test_the_committed_json_is_what_the_generator_writes(self):
        self.assertEqual(read("monitoring", "dashboard.json"), dashboard.render())

    def test_datasource_variable_and_rate_interval(self):
        board = json.loads(dashboard.render())
        self.assertEqual(board["templating"]["list"][0]["type"], "datasource")
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                self.assertEqual(target["datasource"]["uid"], "${datasource}")
                if "rate(" in target["expr"]:
                    self.assertIn("[$__rate_interval]", target["expr"])
                    self.assertNotRegex(target["expr"], r"\[\d")

    def test_queries_are_extracted_with_the_window_substituted(self):
        queries = dashboard_queries(json.loads(dashboard.render()), "10s")
        self.assertGreater(len(queries), 15)
        self.assertFalse([q for _, q in queries if "$__rate_interval" in q])


class WebhookState(unittest.TestCase):
    def payload(self, status, instance="a", name="A"):
        return {"alerts": [{"status": status, "labels": {"alertname": name, "instance": instance}}]}

    def test_firing_until_every_instance_of_the_alert_resolved(self):
        notes = Notifications()
        notes.receive(self.payload("firing", "a"), now=1)
        notes.receive(self.payload("firing", "b"), now=2)
        notes.receive(self.payload("resolved", "a"), now=3)
        self.assertEqual(notes.firing(), {"A"})
        notes.receive(self.payload("resolved", "b"), now=4)
        self.assertEqual(notes.firing(), set())
        self.assertEqual(notes.since(0), {"A": [1, 2]})
        self.assertEqual(notes.since(0, "resolved"), {"A": [3, 4]})
        self.assertEqual(notes.since(1.5), {"A": [2]})
        self.assertEqual(notes.since(2.5), {})

    def test_repeated_notifications_are_one_event(self):
        notes = Notifications()
        for t in range(3):
            notes.receive(self.payload("firing"), now=t)
        self.assertEqual(len(notes.events), 1)


if __name__ == "__main__":
    unittest.main()
