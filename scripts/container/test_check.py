"""Tests of check.py's pure parts: what it reads from /metrics, the image's file list, the
engine's health state, the stop and the logs.

Run: python3 -m unittest discover -s scripts/container -p 'test_*.py'
"""

import unittest

import check


class MetricsTests(unittest.TestCase):
    def test_the_commit_label_of_build_info(self):
        text = (
            "# HELP hello_birthday_build_info Build information; always 1.\n"
            "# TYPE hello_birthday_build_info gauge\n"
            'hello_birthday_build_info{commit="abc123",version="0.1.0"} 1\n'
            'http_requests_total{route="/x"} 3\n'
        )
        self.assertEqual(check.build_info_commits(text), {"abc123"})

    def test_no_sample_or_a_zero_sample_is_no_commit(self):
        self.assertEqual(check.build_info_commits("up 1\n"), set())
        self.assertEqual(check.build_info_commits('hello_birthday_build_info{commit="a"} 0\n'), set())


class ImageFilesTests(unittest.TestCase):
    def test_shells_anywhere_are_found_by_base_name(self):
        members = [("usr/bin/sh", True), ("bin", True), ("usr/local/bin/hello-birthday", True),
                   ("opt/busybox", True), ("usr/share/doc/bash/", False)]
        self.assertEqual(check.shells_in(members), ["opt/busybox", "usr/bin/sh", "usr/share/doc/bash/"])

    def test_executables_leave_out_libraries_and_the_engine_files(self):
        members = [
            ("usr/local/bin/hello-birthday", True, 0o755),
            ("usr/lib/x86_64-linux-gnu/libc.so.6", True, 0o755),
            ("usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", True, 0o755),
            (".dockerenv", True, 0o755),
            ("etc/hosts", True, 0o755),
            ("dev/console", True, 0o755),
            ("etc/passwd", True, 0o644),
            ("usr/bin", False, 0o755),
        ]
        self.assertEqual(check.executables_in(members), ["usr/local/bin/hello-birthday"])


class HealthTests(unittest.TestCase):
    def test_states(self):
        running = {"Running": True, "Status": "running"}
        self.assertEqual(check.health_step({**running, "Health": {"Status": "healthy"}}), "healthy")
        self.assertEqual(check.health_step({**running, "Health": {"Status": "starting"}}), "wait")
        verdict = check.health_step(
            {**running, "Health": {"Status": "unhealthy", "Log": [{"Output": "refused\n"}]}}
        )
        self.assertIn("unhealthy", verdict)
        self.assertIn("refused", verdict)
        self.assertIn("no health check", check.health_step(running))
        self.assertIn("exited", check.health_step({"Running": False, "Status": "exited", "ExitCode": 1}))

    def test_deadline_covers_the_start_period_and_every_retry(self):
        facts = {"container": {"healthCheck": {"interval": 15, "timeout": 5, "retries": 3, "startPeriod": 15}}}
        self.assertEqual(check.health_deadline(facts), 15 + 20 * 4 + 10)


class StopAndLogTests(unittest.TestCase):
    def test_a_clean_quick_stop_has_no_problem(self):
        self.assertEqual(check.stop_problems(0, 0.3, 30), [])

    def test_sigkill_and_slow_stops_are_problems(self):
        (killed,) = check.stop_problems(137, 1, 30)
        self.assertIn("SIGKILL", killed)
        self.assertEqual(len(check.stop_problems(0, 16, 30)), 1)
        self.assertEqual(len(check.stop_problems(1, 31, 30)), 2)

    def test_log_lines_must_be_json_objects(self):
        text = '{"message":"listening"}\n\n[1]\nplain text\n{"a":1}\n'
        self.assertEqual(check.non_json_lines(text), ["[1]", "plain text"])


if __name__ == "__main__":
    unittest.main()
