"""Tests of the attack primitives and the judging helpers, against small local servers whose
behaviour is known (so each measurement is checked against a known answer)."""

import socket
import socketserver
import threading
import time
import unittest

import attacks as a


class LocalServer(socketserver.ThreadingTCPServer):
    """A one-purpose TCP server on loopback: `handle(conn)` runs for each connection in a
    thread of its own, and the connection is closed when it returns."""

    daemon_threads = True

    def __init__(self, handle):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    handle(self.request)
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.addr = self.server_address
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


PROBLEM_BODY = b'{"type":"tag:hello-birthday,2026:request-timeout"}'
PROBLEM = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
           b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(PROBLEM_BODY)) + PROBLEM_BODY


class ParseReply(unittest.TestCase):
    def test_a_problem_answer_gives_its_status_slug_and_headers(self):
        reply = a.parse_reply(PROBLEM)
        self.assertEqual(reply.status, 408)
        self.assertEqual(reply.problem_slug(), "request-timeout")
        self.assertEqual(reply.headers["connection"], "close")

    def test_no_whole_head_or_no_http_status_line_is_no_answer(self):
        self.assertIsNone(a.parse_reply(b"").status)
        self.assertIsNone(a.parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n").status)
        self.assertIsNone(a.parse_reply(b"garbage\r\n\r\n").status)

    def test_a_slug_needs_a_problem_type_and_the_service_prefix(self):
        plain = b"HTTP/1.1 431 x\r\ncontent-length: 0\r\n\r\n"
        self.assertIsNone(a.parse_reply(plain).problem_slug())
        foreign = (b"HTTP/1.1 400 x\r\ncontent-type: application/problem+json\r\n"
                   b"content-length: 20\r\n\r\n" + b'{"type":"about:blank"}')
        self.assertIsNone(a.parse_reply(foreign).problem_slug())


class Requests(unittest.TestCase):
    def test_a_partial_head_has_the_size_asked_no_end_and_headers_under_16_kib(self):
        head = a.partial_head(65_000)
        self.assertEqual(len(head), 65_000)
        self.assertNotIn(b"\r\n\r\n", head)
        self.assertTrue(all(len(line) <= 16 * 1024 for line in head.split(b"\r\n")))

    def test_a_request_sends_headers_in_order_and_no_implied_host(self):
        raw = a.request("GET", "/x", [("B", "2"), ("A", "1")])
        self.assertEqual(raw, b"GET /x HTTP/1.1\r\nB: 2\r\nA: 1\r\n\r\n")


class AgainstLocalServers(unittest.TestCase):
    def test_slow_heads_measure_when_a_server_closes_them_unanswered(self):
        def close_after_a_while(conn):
            time.sleep(0.4)  # the behaviour under test: a server that closes at 0.4 s

        server = LocalServer(close_after_a_while)
        self.addCleanup(server.close)
        held = a.slow_heads(server.addr, 3, 1000, time.monotonic() + 5)
        self.assertEqual(len(held), 3)
        self.assertEqual(a.timing_problems("head", held, 3, 0.4, 0.1, 0.3), [])
        # The same measurements judged against another timeout or count are reported.
        self.assertEqual(len(a.timing_problems("head", held, 3, 2.0, 0.1, 0.3)), 3)
        self.assertIn("3 of 4 ran", a.timing_problems("head", held, 4, 0.4, 0.1, 0.3)[0])

    def test_a_slow_head_that_gets_an_answer_is_reported(self):
        def answer(conn):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad\r\ncontent-length: 0\r\n\r\n")

        server = LocalServer(answer)
        self.addCleanup(server.close)
        held = a.slow_heads(server.addr, 1, 100, time.monotonic() + 5)
        problems = a.timing_problems("head", held, 1, 0.0, 1.0, 1.0)
        self.assertTrue(any("sent" in p for p in problems), problems)

    def test_a_connection_never_closed_is_reported_still_open(self):
        release = threading.Event()
        server = LocalServer(lambda conn: release.wait(5))
        self.addCleanup(server.close)
        self.addCleanup(release.set)
        held = a.slow_heads(server.addr, 1, 100, time.monotonic() + 0.3)
        self.assertIsNone(held[0].closed)
        self.assertIn("still open", a.timing_problems("head", held, 1, 0.1, 0.1, 0.1)[0])

    def test_trickled_heads_keep_sending_until_closed(self):
        got = []

        def count_bytes_then_close(conn):
            end = time.monotonic() + 0.5
            n = 0
            while time.monotonic() < end:
                conn.settimeout(0.1)
                try:
                    n += len(conn.recv(10))
                except socket.timeout:
                    pass
            got.append(n)

        server = LocalServer(count_bytes_then_close)
        self.addCleanup(server.close)
        held = a.trickled_heads(server.addr, 2, 0.05, time.monotonic() + 5)
        self.assertEqual(a.timing_problems("trickle", held, 2, 0.5, 0.1, 0.4), [])
        # One byte every 50 ms for 0.5 s: several bytes, far fewer than a burst would send.
        self.assertTrue(all(3 <= n <= 15 for n in got), got)

    def test_stalled_and_trickled_bodies_time_the_answer_from_the_send(self):
        def answer_408_after(conn):
            read_head(conn)
            time.sleep(0.3)  # the behaviour under test: answering 408 0.3 s later
            conn.sendall(PROBLEM)
            time.sleep(1)  # and only then closes: the answer, not the close, is timed

        server = LocalServer(answer_408_after)
        self.addCleanup(server.close)
        stalled = a.stalled_bodies(server.addr, ["x", "y"], time.monotonic() + 5)
        timed_out = (408, "request-timeout")
        self.assertEqual(a.timing_problems("stalled", stalled, 2, 0.3, 0.1, 0.3, timed_out), [])
        trickled = a.trickled_bodies(server.addr, ["z"], 0.05, time.monotonic() + 5)
        self.assertEqual(a.timing_problems("trickled", trickled, 1, 0.3, 0.1, 0.3, timed_out), [])
        wrong = a.timing_problems("stalled", stalled, 2, 0.3, 1, 1, (413, "payload-too-large"))
        self.assertEqual(len(wrong), 2)

    def test_exchange_reads_an_answer_to_a_head_the_server_stopped_reading(self):
        def refuse_early(conn):
            conn.recv(100)
            conn.sendall(b"HTTP/1.1 431 x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            conn.shutdown(socket.SHUT_WR)
            time.sleep(0.2)

        server = LocalServer(refuse_early)
        self.addCleanup(server.close)
        reply, closed = a.exchange(server.addr, b"GET / HTTP/1.1\r\n" + b"x" * 100_000, 5)
        self.assertEqual((reply.status, closed), (431, True))


class Judging(unittest.TestCase):
    def test_log_lines_over_the_cap_raw_separators_or_not_json_are_reported(self):
        self.assertIsNone(a.log_line_problems(b'{"path":"/a\\u2028"}\n', 4096))
        self.assertIn("bytes", a.log_line_problems(b'{"a":"' + b"x" * 5000 + b'"}\n', 4096))
        raw_separator = '{"path":"/a\u2028"}\n'.encode()
        self.assertIn("disguising", a.log_line_problems(raw_separator, 4096))
        self.assertIn("disguising", a.log_line_problems('{"a":"\u202e"}'.encode(), 4096))
        self.assertIn("JSON", a.log_line_problems(b"INFO request\n", 4096))

    def test_early_late_and_answered_closes_are_each_reported(self):
        held = [a.Held(0.0, 10.0), a.Held(0.0, 9.0), a.Held(0.0, 14.0), a.Held(0.0, 10.0, b"12345")]
        problems = a.timing_problems("c", held, 4, 10.0, 0.1, 3.0)
        self.assertEqual(len(problems), 3)
        self.assertIn("before", problems[0])
        self.assertIn("over", problems[1])
        self.assertIn("sent 5 bytes", problems[2])

    def test_the_loadgen_latency_is_read_and_its_absence_is_an_error(self):
        output = ("loadgen: 100 requests\nloadgen: latency p50 0.83 ms, p99 2.80 ms, "
                  "max 9.10 ms\nloadgen: 64 users' last acknowledged writes read back\n"
                  "loadgen: 0 failed\n")
        self.assertEqual(a.loadgen_latency(output), (0.83, 2.80))
        with self.assertRaises(ValueError):
            a.loadgen_latency("loadgen: panicked")


if __name__ == "__main__":
    unittest.main()
