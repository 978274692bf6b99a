"""Run: python3 -m unittest discover -s scripts/lib -p 'test_*.py'"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rehearsal_kit as kit  # noqa: E402

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
# Ignores SIGTERM, as a process that hangs in its shutdown would.
STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('up', flush=True); time.sleep(60)"]


class Waits(unittest.TestCase):
    def test_poll_returns_the_first_true_value(self):
        values = iter([None, 0, "", "addr"])
        self.assertEqual(kit.poll("x", 5, lambda: next(values), 0), "addr")

    def test_poll_fails_at_its_deadline_naming_what_it_waited_for(self):
        t0 = time.monotonic()
        with self.assertRaisesRegex(kit.Failure, "after 0.2 s waiting for the moon"):
            kit.poll("the moon", 0.2, lambda: False, 0.01)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_wait_until_gives_none_at_its_deadline(self):
        self.assertIsNone(kit.wait_until(0.05, lambda: False, 0.01))
        self.assertEqual(kit.wait_until(1, lambda: 7), 7)


class Http(unittest.TestCase):
    def test_status_and_body_of_a_json_request_and_no_answer(self):
        import http.server
        import threading

        class Echo(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(404 if self.path == "/missing" else 200)
                self.end_headers()
                self.wfile.write(self.headers["Content-Type"].encode() + b" " + body)

            def do_GET(self):  # no HTTP answer at all: http.client raises, not urllib
                self.wfile.write(b"garbage\r\n\r\n")

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            self.assertEqual(kit.http("PUT", f"{base}/x", {"a": 1}), (200, 'application/json {"a": 1}'))
            self.assertEqual(kit.http("PUT", f"{base}/missing", {})[0], 404)
            self.assertEqual(kit.http("GET", f"{base}/x")[0], 0)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(kit.http("GET", f"http://127.0.0.1:{kit.free_ports(1)[0]}/", timeout=2)[0], 0)


class Metrics(unittest.TestCase):
    def test_the_value_of_one_series_or_zero(self):
        text = ('# HELP fenced_total x\nfenced_total{reason="deadline"} 3\n'
                'fenced_total{reason="lock_lost"} 1\nunconfirmed_total 2\n')
        self.assertEqual(kit.metric_value(text, 'fenced_total{reason="lock_lost"}'), 1)
        self.assertEqual(kit.metric_value(text, "unconfirmed_total"), 2)
        self.assertEqual(kit.metric_value(text, "fenced_total"), 0)
        self.assertEqual(kit.metric_value(text, "nothing"), 0)


class Ports(unittest.TestCase):
    def test_free_ports_are_distinct_and_bindable(self):
        ports = kit.free_ports(5)
        self.assertEqual(len(set(ports)), 5)
        for port in ports:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))


class Logs(unittest.TestCase):
    def test_listening_addr_is_read_from_the_json_log(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write('{"message":"starting"}\n')
        self.addCleanup(os.unlink, f.name)
        self.assertIsNone(kit.listening_addr(f.name))
        with open(f.name, "a") as f2:
            f2.write('{"level":"INFO","message":"listening","addr":"127.0.0.1:4242"}\n')
        self.assertEqual(kit.listening_addr(f.name), "127.0.0.1:4242")


class Processes(unittest.TestCase):
    def setUp(self):
        self.procs = kit.Processes()
        self.addCleanup(self.procs.stop_all)
        self.log = tempfile.NamedTemporaryFile(delete=False).name
        self.addCleanup(os.unlink, self.log)

    def started(self, args):
        proc = self.procs.start(args, self.log)
        kit.poll("the child's output", 10, lambda: Path(self.log).read_text() == "up\n", 0.01)
        return proc

    def test_output_goes_to_the_log_and_sigterm_ends_it(self):
        proc = self.started(SLEEPER)
        self.assertNotEqual(os.getsid(proc.pid), os.getsid(0))
        self.assertEqual(kit.Processes.stop(proc, 5), (-signal.SIGTERM, True))

    def test_stderr_goes_to_the_log_when_stdout_is_piped(self):
        proc = self.procs.start([sys.executable, "-c", "import sys; print('out'); "
                                 "print('err', file=sys.stderr)"], self.log, stdout=subprocess.PIPE)
        self.assertEqual(proc.communicate(timeout=10)[0], b"out\n")
        self.assertEqual(Path(self.log).read_text(), "err\n")

    def test_a_process_that_ignores_sigterm_is_killed_at_the_deadline(self):
        proc = self.started(STUBBORN)
        t0 = time.monotonic()
        self.assertEqual(kit.Processes.stop(proc, 0.3), (-signal.SIGKILL, False))
        self.assertLess(time.monotonic() - t0, 3)

    def test_stop_all_kills_what_runs_and_leaves_the_reaped_alone(self):
        done = self.procs.start([sys.executable, "-c", "pass"], self.log)
        done.wait(timeout=10)
        running = self.started(STUBBORN)
        self.procs.stop_all()
        self.assertEqual((done.returncode, running.returncode), (0, -signal.SIGKILL))


# Waits for the stop file `loadgen run` is given, then says what it saw and exits with the
# status in its last argument; with "hang" there, it never stops.
FAKE_LOADGEN = """#!/usr/bin/env python3
import os, sys, time
stop = sys.argv[sys.argv.index("--stop-file") + 1]
while not os.path.exists(stop) or sys.argv[-1] == "hang":
    time.sleep(0.01)
print("loadgen: 0 failed", flush=True)
sys.exit(int(sys.argv[-1]))
"""


class LoadGen(unittest.TestCase):
    def test_it_runs_until_its_stop_file_then_gives_its_status_and_output(self):
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work)
        fake = Path(work, "loadgen")
        fake.write_text(FAKE_LOADGEN)
        fake.chmod(0o755)
        procs = kit.Processes()
        self.addCleanup(procs.stop_all)
        load = kit.LoadGen(procs, str(fake), "127.0.0.1:1", f"{work}/load.out", "1")
        hung = kit.LoadGen(procs, str(fake), "127.0.0.1:1", f"{work}/hung.out", "hang")
        self.assertIsNone(kit.wait_until(0.3, lambda: load.proc.poll() is not None))
        self.assertEqual(load.finish(10), (1, "loadgen: 0 failed\n"))
        with self.assertRaises(kit.Failure):
            hung.finish(0.3)


class Memory(unittest.TestCase):
    def test_the_peak_rss_is_the_kernels_and_starts_again_at_a_reset(self):
        touched = bytearray(64 * 1024 * 1024)
        touched[::4096] = b"x" * len(range(0, len(touched), 4096))  # make the pages resident
        del touched  # an allocation this large is an mmap: freeing it gives the pages back
        rss = kit.status_kib("self", "VmRSS")
        self.assertGreater(kit.status_kib("self", "VmHWM"), rss + 60 * 1024)
        kit.reset_peak_rss("self")
        self.assertLess(kit.status_kib("self", "VmHWM"), rss + 4 * 1024)


if __name__ == "__main__":
    unittest.main()
