"""Run: python3 -m unittest discover -s scripts/rolling-deploy -p 'test_*.py'

testdata/ is HAProxy 2.6's own output, captured from the rehearsal's configuration with three
slots: `show stat` as servers rise, serve, drain and fall, and its -db log (stderr's warnings
and the raw log lines interleaved, as the rehearsal's haproxy.log has them).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]
import haproxy  # noqa: E402
import launchers  # noqa: E402


def testdata(name):
    with open(os.path.join(HERE, "testdata", name)) as f:
        return f.read()


class Stat(unittest.TestCase):
    def statuses(self, name):
        return {sv: row["status"] for (px, sv), row in haproxy.parse_stat(testdata(name)).items()
                if px == "app"}

    def test_each_state_a_server_passes_through(self):
        self.assertEqual(self.statuses("stat-rising.csv"),
                         {"s1": "DOWN 1/2", "s2": "DOWN", "s3": "DOWN", "BACKEND": "DOWN"})
        self.assertEqual(self.statuses("stat-two-up.csv")["s2"], "UP")
        self.assertEqual(self.statuses("stat-s2-drain.csv")["s2"], "DRAIN")
        self.assertEqual(self.statuses("stat-falling.csv")["s1"], "UP 1/2")

    def test_sessions_per_server(self):
        stat = haproxy.parse_stat(testdata("stat-two-up.csv"))
        self.assertEqual([stat[("app", s)]["stot"] for s in ("s1", "s2", "s3")], ["25", "25", "0"])
        self.assertEqual(stat[("app", "s1")]["scur"], "0")

    def test_counters_and_what_changed_between_two_reads(self):
        before = haproxy.totals(haproxy.parse_stat(testdata("stat-two-up.csv")))
        now = haproxy.totals(haproxy.parse_stat(testdata("stat-no-server.csv")))
        self.assertEqual((now["requests"], now["4xx"], now["5xx"], now["econ"], now["reuse"]),
                         (53, 50, 3, 3, 48))
        self.assertEqual(
            haproxy.counter_line("roll 1:", now, before),
            "    roll 1: requests 3, 2xx 0, 4xx 0, 5xx 3, econ 3, eresp 0, wretr 0, wredis 0, "
            "srv_abrt 0, connect 0, reuse 0")
        self.assertTrue(haproxy.counter_line("start:", before, {}).startswith(
            "    start: requests 50, 2xx 0, 4xx 50,"))


class Log(unittest.TestCase):
    log = testdata("haproxy.log")

    def test_failed_requests_are_the_logged_requests(self):
        failed = haproxy.failed_requests(self.log)
        self.assertEqual(len(failed), 3)
        self.assertIn("app/<NOSRV> status=503 term=SC--", failed[0])

    def test_state_changes_are_counted_once_not_with_their_stderr_copy(self):
        changes = haproxy.state_changes(self.log)
        self.assertEqual(len(changes), 12)
        self.assertEqual(changes[-1], "backend app has no server available!")

    def test_check_timeouts_per_server_once_each(self):
        self.assertEqual(haproxy.timeouts_line(self.log), "    health checks that timed out: 1 (s3 1)")
        self.assertEqual(haproxy.timeouts_line(""), "    health checks that timed out: 0")


class Admin(unittest.TestCase):
    def test_a_command_is_one_line_and_the_answer_runs_to_the_close(self):
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work)
        path, got = os.path.join(work, "admin.sock"), []
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)

        def answer():
            conn, _ = server.accept()
            got.append(conn.recv(1024))
            conn.sendall(testdata("stat-two-up.csv").encode())
            conn.close()
        thread = threading.Thread(target=answer)
        thread.start()
        self.assertEqual(haproxy.command(path, "show stat"), testdata("stat-two-up.csv"))
        thread.join()
        server.close()
        self.assertEqual(got, [b"show stat\n"])

    @unittest.skipUnless(shutil.which("haproxy"), "haproxy not installed")
    def test_haproxy_accepts_the_configuration(self):
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
            f.write(haproxy.config("/tmp/x.sock", 8000, [("s1", 8001), ("s2", 8002)],
                                   "200ms", "2s", 2, 2))
            f.flush()
            check = subprocess.run(["haproxy", "-c", "-f", f.name], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


class ContainerExit(unittest.TestCase):
    def test_docker_inspect_state(self):
        self.assertEqual(launchers.exit_of(["exited", "0"]), (0, True))
        self.assertEqual(launchers.exit_of(["exited", "1"]), (1, True))
        self.assertEqual(launchers.exit_of(["exited", "137"]), (137, False))
        self.assertEqual(launchers.exit_of(["running", "0"]), (-1, False))
        self.assertEqual(launchers.exit_of([]), (-1, False))


if __name__ == "__main__":
    unittest.main()
