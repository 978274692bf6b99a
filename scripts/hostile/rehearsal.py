"""Hostile-client rehearsal: the release binary, with its default settings, on loopback,
against every attack its connection-level defences exist for, all at once, while well-behaved
clients (examples/loadgen.rs) keep using it.

Phases:
1. refusals: CONNECT, targets that are not paths, missing or doubled Host, a header, a head, a
   header count, a target and a body over their limits; each gets its exact answer.
2. a quiet run of the well-behaved clients: their p99 latency.
3. a stalled log pipe: the rehearsal stops reading the server's stdout during a flood of
   requests with long fields; every request is still answered, and the RSS grows by no more
   than the log queue's bound.
4. the wave, all at once: 2,000 connections each holding 65,000 bytes of a head that never
   ends; heads trickled a byte at a time; bodies that stall; bodies trickled a byte at a
   time; kept-alive connections left idle; the refusals and log bombs again and again; a fresh
   connection's health check every 200 ms. Every timeout must cut its clients at its time,
   the RSS must stay under its bound, fresh connections must be answered, and the
   well-behaved clients' p99 must stay within a factor of the quiet run's.
5. shutdown with a half-sent head and an idle connection open: exit 0 at once.
Throughout: every log line is one JSON object of at most 4 KiB with nothing that can disguise
a line, and nothing panics.

Every process started here is stopped by pid on every exit, every wait is a poll or a select
with a deadline. Stdlib only.

Usage: python3 scripts/hostile/rehearsal.py --binary target/release/hello-birthday \
           --loadgen target/release/examples/loadgen   (run.sh builds them and calls this)
"""

import argparse
from http.client import HTTPConnection
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]
import attacks as a  # noqa: E402
from rehearsal_kit import (Failure, LoadGen, Processes, http, log, metric_value, poll,  # noqa: E402
                           reset_peak_rss, status_kib, wait_until)

# The service's defaults (docs/api.md, "Limits and timeouts"); the rehearsal runs the binary
# without setting any of them.
HEAD_TIMEOUT = 10.0
BODY_CHUNK_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
KEEP_ALIVE_TIMEOUT = 75.0
MAX_LINE_BYTES = 4096
LOG_QUEUE_MIB = 32

SLOW_HEADS = 2000
SLOW_HEAD_BYTES = 65_000
# The RSS bound the docs state for 2,000 maximal partial heads: 80 KiB each (hyper's 64 KiB
# read buffer, the connection's state and the kernel's share are about 73 KiB) over a 64 MiB
# allowance for the process itself (about 20 MiB at start, more once the pool has run).
RSS_BOUND_MIB = 64 + SLOW_HEADS * 80 // 1024
# The well-behaved clients' p99 under the wave may be at most this many times the quiet
# run's, and never over the GET latency SLO's 25 ms (monitoring/rules.yml).
LATENCY_FACTOR = 10
LATENCY_SLO_MS = 25.0
# How late a timeout may cut its client on a loaded 2-core machine; never earlier than this.
LATE = 3.0
EARLY = 0.1
TIMED_OUT = (408, "request-timeout")

class Server:
    """The release binary with its default settings, JSON logs read line by line (and
    judged) by a thread that can be told to stop reading."""

    def __init__(self, procs, binary, data_dir, work):
        env = dict(os.environ, LISTEN_ADDR="127.0.0.1:0", DATA_DIR=data_dir, LOG_FORMAT="json")
        env.pop("RUST_LOG", None)
        self.stderr_path = os.path.join(work, "server.stderr")
        self.stdout_path = os.path.join(work, "server.stdout")
        self.proc = procs.start([binary], self.stderr_path, env=env, stdout=subprocess.PIPE)
        self.lines = 0
        self.problems = []
        self.by_request_id = {}
        self.addr = None
        self.reading = threading.Event()
        self.reading.set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        poll("the server to listen", 20, lambda: self.addr or self.proc.poll() is not None)
        if self.addr is None:
            raise Failure(f"the server exited {self.proc.returncode} before listening")

    def _read(self):
        with open(self.stdout_path, "wb") as copy:
            for line in self.proc.stdout:
                self.reading.wait()
                copy.write(line)
                self.lines += 1
                problem = a.log_line_problems(line, MAX_LINE_BYTES)
                if problem:
                    self.problems.append(problem)
                    continue
                record = json.loads(line)
                if record.get("message") == "listening":
                    host, _, port = record["addr"].rpartition(":")
                    self.addr = (host, int(port))
                if record.get("message") == "panic" or "panic" in str(record.get("error", "")):
                    self.problems.append(f"a panic: {line[:300]!r}")
                if record.get("request_id", "").startswith("bomb-"):
                    self.by_request_id[record["request_id"]] = (line, record)

    def rss_mib(self, field="VmRSS"):
        """The RSS now, or with VmHWM its peak since reset_peak_rss, in MiB."""
        return status_kib(self.proc.pid, field) / 1024

# ------------------------------------------------------------------ well-behaved clients --

def healthy(procs, loadgen, addr, work, name):
    """Four keep-alive connections, PUTs and GETs over 64 users, every answer checked."""
    return LoadGen(procs, loadgen, f"{addr[0]}:{addr[1]}", os.path.join(work, f"{name}.out"),
                   "--connections", "4", "--users", "64", "--pause-us", "2000")


def latency(load):
    """(p50, p99) of the well-behaved clients, stopped now; Failure if any request failed."""
    code, output = load.finish(30)
    if code != 0:
        raise Failure(f"well-behaved clients saw failures (exit {code}):\n{output}")
    return a.loadgen_latency(output)


# ------------------------------------------------------------------------ the refusals ----

def refusals():
    """(what, raw request, expected status, expected problem slug or None for hyper's bare
    431). Each must also close the connection."""
    h = ("Host", "hostile")
    big = [(f"X-Part-{i}", "v" * 15 * 1024) for i in range(5)]
    many = [(f"X-N-{i}", "1") for i in range(101)]
    return [
        ("CONNECT", a.request("CONNECT", "example.com:443", [("Host", "example.com:443")]),
         501, "not-implemented"),
        ("authority-form target", a.request("GET", "example.com:80", [h]),
         400, "invalid-request-target"),
        ("asterisk-form target", a.request("OPTIONS", "*", [h]), 400, "invalid-request-target"),
        ("no Host", a.request("GET", "/health/live", []), 400, "invalid-host"),
        ("two Hosts", a.request("GET", "/health/live", [h, ("Host", "other")]),
         400, "invalid-host"),
        ("a Host with user information", a.request("GET", "/health/live", [("Host", "u@x")]),
         400, "invalid-host"),
        ("a 16 KiB + 1 header line", a.request(
            "GET", "/health/live", [h, ("X-Big", "v" * (16 * 1024 + 1 - len("X-Big")))]),
         431, "header-too-large"),
        ("a head over 64 KiB", a.request("GET", "/health/live", [h] + big), 431, None),
        ("101 headers", a.request("GET", "/health/live", [h] + many), 431, None),
        ("an 8 KiB + 1 target", a.request("GET", "/" + "a" * 8 * 1024, [h]),
         414, "uri-too-long"),
        ("a 4097-byte body", a.request(
            "PUT", "/hello/bodybomb", [h, ("Content-Type", "application/json"),
                                      ("Content-Length", "4097")], b" " * 4097),
         413, "payload-too-large"),
        ("a chunked body over 4096 bytes", a.request(
            "PUT", "/hello/chunkbomb", [h, ("Transfer-Encoding", "chunked")],
            b"1001\r\n" + b" " * 4097 + b"\r\n0\r\n\r\n"),
         413, "payload-too-large"),
    ]


def check_refusals(addr, cases):
    problems = []
    for what, raw, status, slug in cases:
        reply, closed = a.exchange(addr, raw)
        got = (reply.status, reply.problem_slug())
        if got != (status, slug):
            problems.append(f"{what}: answered {got}, expected {(status, slug)}")
        elif not closed:
            problems.append(f"{what}: connection left open after the refusal")
    return problems


def log_bomb(addr, n):
    """A request whose logged fields are far over their cuts and full of characters that
    could disguise a line; returns its request id."""
    request_id = f"bomb-{n}"
    # Raw UTF-8 in a header value is obs-text, which HTTP lets through (control characters
    # are refused by the parser before anything is logged).
    agent = ("\u2028\u202e\u2066" * 40 + "x" * 15_000).encode("utf-8")
    raw = (f"GET /{'p' * 7000} HTTP/1.1\r\nHost: hostile\r\nX-Request-Id: {request_id}"
           f"\r\nConnection: close\r\nUser-Agent: ").encode() + agent + b"\r\n\r\n"
    reply, _ = a.exchange(addr, raw)
    if reply.status != 404:
        raise Failure(f"log bomb answered {reply.status}")
    return request_id


def check_bomb_lines(server, ids):
    problems = []
    for request_id in ids:
        found = server.by_request_id.get(request_id)
        if not found:
            problems.append(f"{request_id}: no access-log line")
            continue
        line, record = found
        if len(record["path"].encode()) > 1024 + 3 or not record["path"].endswith("…"):
            problems.append(f"{request_id}: path logged {len(record['path'])} chars, uncut")
        if len(record["user_agent"].encode()) > 256 + 3 or b"\\u2028" not in line:
            problems.append(f"{request_id}: user agent not cut or its U+2028 not escaped")
    return problems


# --------------------------------------------------------------------------- the phases ---

class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="hostile-")
        self.data = os.path.join(self.work, "data")
        os.mkdir(self.data)
        self.procs = Processes()
        self.server = None
        self.problems = []
        self.numbers = {}

    def expect(self, problems):
        self.problems.extend(problems)
        for problem in problems[:10]:
            log(f"   PROBLEM {problem}")
        if len(problems) > 10:
            log(f"   ... and {len(problems) - 10} more")

    def run(self):
        # 2,000 held connections need 2,000 descriptors here and in the server (which inherits
        # this limit); a Fargate task's limit is 65,536.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.server = Server(self.procs, self.args.binary, self.data, self.work)
        addr = self.server.addr
        log(f"server listening on {addr[0]}:{addr[1]} (pid {self.server.proc.pid})")

        log("phase 1: refusals")
        self.expect(check_refusals(addr, refusals()))

        log("phase 2: the well-behaved clients alone")
        quiet = healthy(self.procs, self.args.loadgen, addr, self.work, "quiet")
        time.sleep(self.args.quiet_seconds)  # a measurement window, not a wait for a state
        quiet_p50, quiet_p99 = latency(quiet)
        rss_before = self.server.rss_mib()
        log(f"   quiet: p50 {quiet_p50:.2f} ms, p99 {quiet_p99:.2f} ms; RSS {rss_before:.0f} MiB")

        # Before the wave: the allocator keeps what the wave's connections freed, which would
        # hide the log queue's growth.
        self.stalled_log_pipe(addr)
        self.wave(addr, quiet_p99)
        self.shutdown(addr)

    def wave(self, addr, quiet_p99):
        log(f"phase 4: the wave ({SLOW_HEADS} slow heads of {SLOW_HEAD_BYTES} bytes, trickled "
            "heads and bodies, stalled bodies, idle keep-alive, refusals, log bombs)")
        end = time.monotonic() + KEEP_ALIVE_TIMEOUT + 2 * LATE + 10
        stall_users = [f"stall{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(20)]
        trickle_users = [f"trickle{chr(97 + i)}" for i in range(10)]
        stop_repeating = threading.Event()

        def repeat_refusals_and_bombs():
            problems, ids, n = [], [], 0
            while not stop_repeating.is_set():
                problems += check_refusals(addr, refusals())
                ids.append(log_bomb(addr, n))
                n += 1
                stop_repeating.wait(0.5)
            return problems, ids

        def probe_fresh_connections():
            slow = []
            while not stop_repeating.is_set():
                sent = time.monotonic()
                reply, _ = a.exchange(addr, a.request("GET", "/health/live",
                                                      [("Host", "hostile"),
                                                       ("Connection", "close")]), timeout=5)
                took = time.monotonic() - sent
                if reply.status != 200 or took > 1.0:
                    slow.append(f"a fresh connection's health check: {reply.status} "
                                f"after {took:.2f} s")
                stop_repeating.wait(0.2)
            return slow

        # Each held connection's attack: (the call, how many, when each must end, and with
        # what answer; None: closed unanswered).
        held = {
            "slow head": ((a.slow_heads, addr, SLOW_HEADS, SLOW_HEAD_BYTES, end), SLOW_HEADS,
                          HEAD_TIMEOUT, None),
            "trickled head": ((a.trickled_heads, addr, 20, 0.5, end), 20, HEAD_TIMEOUT, None),
            "stalled body": ((a.stalled_bodies, addr, stall_users, end), 20, BODY_CHUNK_TIMEOUT,
                             TIMED_OUT),
            "trickled body": ((a.trickled_bodies, addr, trickle_users, 2.0, end), 10, BODY_TIMEOUT,
                              TIMED_OUT),
            "idle keep-alive": ((a.idle_keep_alive, addr, 50, end), 50, KEEP_ALIVE_TIMEOUT, None),
        }
        jobs = {name: spec[0] for name, spec in held.items()}
        jobs.update({"refusals and log bombs": (repeat_refusals_and_bombs,),
                     "fresh connections": (probe_fresh_connections,)})
        reset_peak_rss(self.server.proc.pid)
        busy = healthy(self.procs, self.args.loadgen, addr, self.work, "wave")
        pool = ThreadPoolExecutor(len(jobs))
        futures = {name: pool.submit(*job) for name, job in jobs.items()}
        # The well-behaved clients measure while the slow heads are sent and held and the
        # bodies stall and trickle: up to the body timeout.
        time.sleep(BODY_TIMEOUT + LATE)  # a measurement window, not a wait for a state
        wave_p50, wave_p99 = latency(busy)
        peak = self.server.rss_mib("VmHWM")
        stop_repeating.set()
        if wait(futures.values(), timeout=max(1.0, end - time.monotonic() + 30)).not_done:
            raise Failure("an attack did not finish by its deadline")
        pool.shutdown()
        errors = {name: f.exception() for name, f in futures.items() if f.exception()}
        self.expect([f"{name}: {type(e).__name__}: {e}" for name, e in errors.items()])
        results = {name: f.result() for name, f in futures.items() if name not in errors}

        budget = min(LATENCY_FACTOR * quiet_p99, LATENCY_SLO_MS)
        log(f"   well-behaved clients under the wave: p50 {wave_p50:.2f} ms, p99 {wave_p99:.2f}"
            f" ms (bound {budget:.1f} ms); RSS peak {peak:.0f} MiB (bound {RSS_BOUND_MIB} MiB)")
        if wave_p99 > budget:
            self.expect([f"p99 under attack {wave_p99:.2f} ms > {budget:.1f} ms"])
        if peak > RSS_BOUND_MIB:
            self.expect([f"RSS peaked at {peak:.0f} MiB > {RSS_BOUND_MIB} MiB"])
        self.numbers.update(quiet_p99=quiet_p99, wave_p99=wave_p99, rss_peak=peak)

        for name, (_, count, expected, answer) in held.items():
            self.expect(a.timing_problems(name, results.get(name, []), count, expected, EARLY,
                                          LATE, answer))
        refused, bombs = results.get("refusals and log bombs", ([], []))
        self.expect(refused)
        self.expect(results.get("fresh connections", []))
        heads = results.get("slow head", [])
        lasted = [h.closed - h.opened for h in heads if h.closed]
        if lasted:
            sent_in = max(h.opened for h in heads) - min(h.opened for h in heads)
            log(f"   {len(heads)} slow heads opened and sent in {sent_in:.1f} s, "
                f"closed after {min(lasted):.2f}-{max(lasted):.2f} s "
                f"(head timeout {HEAD_TIMEOUT} s); {len(bombs)} rounds of refusals and bombs")
        for user in stall_users + trickle_users:
            reply, _ = a.exchange(addr, a.request("GET", f"/hello/{user}",
                                                     [("Host", "h"), ("Connection", "close")]))
            if reply.status != 404:
                self.expect([f"{user}: a body that never arrived stored something "
                             f"({reply.status})"])
        poll("the bombs' log lines", 10,
             lambda: all(i in self.server.by_request_id for i in bombs))
        self.expect(check_bomb_lines(self.server, bombs))
        _, text = http("GET", f"http://{self.server.addr[0]}:{self.server.addr[1]}/metrics")
        counted = metric_value(text, 'http_connections_aborted_total{reason="head_timeout"}')
        if counted < SLOW_HEADS + 20:
            self.expect([f"head timeouts counted {counted:.0f}, expected {SLOW_HEADS + 20}"])

    def stalled_log_pipe(self, addr):
        n = self.args.flood_requests
        log(f"phase 3: the log pipe stalled during {n} requests with long logged fields")
        lines_before = self.server.lines
        self.server.reading.clear()
        start = time.monotonic()
        reset_peak_rss(self.server.proc.pid)
        rss_start = self.server.rss_mib()
        per_thread = n // 4
        late, errors = [], []

        def flood(k):
            try:
                conn = HTTPConnection(*addr, timeout=5)
                for _ in range(per_thread):
                    sent = time.monotonic()
                    conn.request("GET", "/" + "f" * 2000, headers={"Host": "hostile", "User-Agent": "u" * 1000})
                    response = conn.getresponse()
                    response.read()
                    if response.status != 404:
                        errors.append(f"flood answered {response.status}")
                    if time.monotonic() - sent > 1.0:
                        late.append(time.monotonic() - sent)
                conn.close()
            except Exception as e:  # noqa: BLE001
                errors.append(f"flood {k}: {type(e).__name__}: {e}")

        pool = ThreadPoolExecutor(4)
        if wait([pool.submit(flood, k) for k in range(4)], timeout=120).not_done:
            raise Failure("the flood did not end within 120 s")
        took = time.monotonic() - start
        peak = self.server.rss_mib("VmHWM")
        self.server.reading.set()
        self.expect(errors)
        if late:
            self.expect([f"{len(late)} flood requests took over 1 s (max {max(late):.2f} s)"])
        grew = peak - rss_start
        log(f"   {per_thread * 4} requests answered in {took:.1f} s with stdout unread; "
            f"RSS {rss_start:.0f} -> peak {peak:.0f} MiB (+{grew:.1f}, bound {LOG_QUEUE_MIB})")
        if grew > LOG_QUEUE_MIB:
            self.expect([f"RSS grew {grew:.1f} MiB with the log pipe stalled"])
        # Once read again, the queue drains; lines past its 8,192 were dropped, not requests.
        poll("the log queue to drain", 30, lambda: self.server.proc.poll() is None and
             self.probe_logged(addr))
        logged = self.server.lines - lines_before
        log(f"   {logged} log lines came out for {per_thread * 4} requests (the rest dropped)")
        self.numbers.update(flood_rss_growth=grew, flood_lines=logged)

    def probe_logged(self, addr):
        """Whether a fresh request's line comes out: the writer has caught up."""
        request_id = f"bomb-probe-{time.monotonic_ns()}"
        raw = a.request("GET", "/health/live", [("Host", "h"), ("X-Request-Id", request_id),
                                                 ("Connection", "close")])
        a.exchange(addr, raw)
        return wait_until(1, lambda: request_id in self.server.by_request_id)

    def shutdown(self, addr):
        log("phase 5: SIGTERM with a half-sent head and an idle kept-alive connection open")
        held = {**a.opened(addr, [b"GET /health/live HTTP/1.1\r\nHost: h\r\nX-Half: "]),
                **a.kept_alive(addr, 1)}
        sent = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        held = a.hold(held, sent + 5)
        try:
            code = self.server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure("the server did not exit within 10 s of SIGTERM")
        took = time.monotonic() - sent
        closes = [h.closed - sent for h in held if h.closed]
        log(f"   exit {code} after {took:.2f} s; connections closed after "
            f"{', '.join(f'{c:.2f}' for c in closes)} s")
        if code != 0:
            self.expect([f"exit status {code} after SIGTERM"])
        if len(closes) != 2 or max(closes) > 2.0:
            self.expect(["SIGTERM did not close the half-sent and idle connections within 2 s"])

    def finish(self):
        self.server.reader.join(timeout=10)
        self.expect(self.server.problems)
        with open(self.server.stderr_path, errors="replace") as f:
            stderr = f.read()
        if "panic" in stderr:
            self.expect([f"stderr mentions a panic: {stderr[:500]}"])

    def cleanup(self):
        self.procs.stop_all()
        if os.environ.get("CI") != "true" and self.problems:
            log(f"kept {self.work} (server.stdout, server.stderr, loadgen output)")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    parser.add_argument("--flood-requests", type=int, default=20_000)
    args = parser.parse_args()
    rehearsal = Rehearsal(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run.sh's timeout: clean up too
    try:
        rehearsal.run()
        rehearsal.finish()
    except Failure as e:
        rehearsal.problems.append(str(e))
        log(f"FAILED: {e}")
    finally:
        rehearsal.cleanup()
    if rehearsal.problems:
        log(f"hostile-client rehearsal: FAILED ({len(rehearsal.problems)} problems)")
        sys.exit(1)
    n = rehearsal.numbers
    log(f"hostile-client rehearsal: PASS (p99 quiet {n['quiet_p99']:.2f} ms, under attack "
        f"{n['wave_p99']:.2f} ms; RSS peak {n['rss_peak']:.0f} MiB; log stall "
        f"+{n['flood_rss_growth']:.1f} MiB)")


if __name__ == "__main__":
    main()
