"""Run: python3 -m unittest discover -s scripts/rolling-deploy -p 'test_*.py'

haproxy.py against the installed HAProxy itself, run with the rehearsal's configuration: its
`show stat` as servers rise, serve, drain and fall, and its -db log (stderr's warnings and the
raw log lines interleaved, as the rehearsal's haproxy.log has them).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]
import haproxy  # noqa: E402
import launchers  # noqa: E402
from rehearsal_kit import Processes, free_ports, http, poll  # noqa: E402


class Ready(BaseHTTPRequestHandler):
    """Answers every GET 200 (in HTTP/1.0, closing each connection): a ready instance."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


@unittest.skipUnless(shutil.which("haproxy"), "haproxy not installed")
class RealHAProxy(unittest.TestCase):
    def test_haproxy_accepts_the_configuration(self):
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
            f.write(haproxy.config("/tmp/x.sock", 8000, [("s1", 8001), ("s2", 8002)],
                                   "200ms", "2s", 2, 2))
            f.flush()
            check = subprocess.run(["haproxy", "-c", "-f", f.name], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def serve(self, port=0):
        server = ThreadingHTTPServer(("127.0.0.1", port), Ready)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server

    def test_states_counters_and_log(self):
        """s1 answers its checks; s2 has nothing listening until a server starts there; s3
        accepts connections and never answers, so its checks time out."""
        work, procs = tempfile.mkdtemp(), Processes()
        self.addCleanup(shutil.rmtree, work)
        self.addCleanup(procs.stop_all)
        s1, silent = self.serve(), socket.create_server(("127.0.0.1", 0))
        self.addCleanup(silent.close)
        lb, s2_port = free_ports(2)
        sock, log = f"{work}/admin.sock", f"{work}/haproxy.log"
        with open(f"{work}/haproxy.cfg", "w") as f:
            f.write(haproxy.config(sock, lb, [("s1", s1.server_port), ("s2", s2_port),
                                              ("s3", silent.getsockname()[1])],
                                   "300ms", "200ms", 2, 2))
        procs.start(["haproxy", "-f", f"{work}/haproxy.cfg", "-db"], log)
        poll("HAProxy's admin socket", 10, lambda: os.path.exists(sock))

        def stat():
            return haproxy.parse_stat(haproxy.command(sock, "show stat"))

        def reaches(server, status):  # polled faster than a check interval: each state is seen
            poll(f"{server} {status}", 10, lambda: stat()[("app", server)]["status"] == status, 0.02)

        # Every server starts UP; one failed check, then FALL of them, take s2 down.
        reaches("s2", "UP 1/2")
        reaches("s2", "DOWN")
        reaches("s3", "DOWN")
        before = haproxy.totals(stat())
        for _ in range(10):
            self.assertEqual(http("GET", f"http://127.0.0.1:{lb}/x")[0], 200)
        # HAProxy counts an answer's class once its stream ends, which can be after the client
        # has read it (one run saw 2xx 9 here).
        poll("the tenth 2xx counted", 5, lambda: haproxy.totals(stat())["2xx"] - before["2xx"] == 10)
        now = stat()
        self.assertEqual([now[("app", s)]["stot"] for s in ("s1", "s2", "s3")], ["10", "0", "0"])
        self.assertEqual(now[("app", "s1")]["scur"], "0")
        self.assertEqual(haproxy.totals(now)["requests"] - before["requests"], 10)
        self.assertEqual(haproxy.counter_line("serve:", haproxy.totals(now), before),
                         "    serve: requests 10, 2xx 10, 4xx 0, 5xx 0, econ 0, eresp 0, wretr 0, "
                         "wredis 0, srv_abrt 0, connect 10, reuse 0")  # HTTP/1.0: no reuse

        self.serve(s2_port)
        reaches("s2", "DOWN 1/2")
        reaches("s2", "UP")
        haproxy.command(sock, "set server app/s2 state drain")
        reaches("s2", "DRAIN")
        before = haproxy.totals(now)
        s1.shutdown()
        s1.server_close()
        reaches("s1", "DOWN")
        self.assertEqual(http("GET", f"http://127.0.0.1:{lb}/x")[0], 503)  # s2 drains: no server
        self.assertTrue(haproxy.counter_line("drain:", haproxy.totals(stat()), before).startswith(
            "    drain: requests 1, 2xx 0, 4xx 0, 5xx 1,"))

        with open(log) as f:
            text = f.read()
        (failed,) = haproxy.failed_requests(text)
        self.assertIn("app/<NOSRV> status=503 term=SC--", failed)
        self.assertEqual(sorted(line.split(".")[0] for line in haproxy.state_changes(text)),
                         ["Server app/s1 is DOWN", "Server app/s2 enters drain state",
                          "Server app/s2 is DOWN", "Server app/s2 is UP", "Server app/s3 is DOWN",
                          "backend app has no server available!"])
        # -db writes each check result twice, as a [WARNING] and as the log line.
        timeouts = len(re.findall(r"Health check for server app/s3 .*timeout", text))
        self.assertEqual(haproxy.timeouts_line(text), f"    health checks that timed out: "
                         f"{timeouts // 2} (s3 {timeouts // 2})")
        self.assertGreater(timeouts, 0)
        self.assertEqual(haproxy.timeouts_line(""), "    health checks that timed out: 0")


class ContainerExit(unittest.TestCase):
    def test_docker_inspect_state(self):
        self.assertEqual(launchers.exit_of(["exited", "0"]), (0, True))
        self.assertEqual(launchers.exit_of(["exited", "1"]), (1, True))
        self.assertEqual(launchers.exit_of(["exited", "137"]), (137, False))
        self.assertEqual(launchers.exit_of(["running", "0"]), (-1, False))
        self.assertEqual(launchers.exit_of([]), (-1, False))


if __name__ == "__main__":
    unittest.main()
