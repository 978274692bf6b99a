"""What a hostile or broken client does over a raw socket, and how its answer is read.

Each attack is a plain function over blocking or non-blocking sockets with a deadline; the
rehearsal (rehearsal.py) runs many at once against the release binary. The judging helpers at
the bottom are pure, so test_attacks.py can check them on made-up data. Stdlib only.
"""

import json
import re
import selectors
import socket
import time
from dataclasses import dataclass, field

PROBLEM_PREFIX = "tag:hello-birthday,2026:"

# Characters that could disguise a log line if written raw: controls other than tab, the line
# and paragraph separators, and the bidirectional marks, embeddings, overrides and isolates.
DISGUISING = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f\u0085\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


@dataclass
class Reply:
    """The first answer on a connection, or status None when the server closed (or reset)
    it without one."""

    status: int | None
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    def problem_slug(self):
        """The slug of a problem+json answer's `type`, or None."""
        if "problem+json" not in self.headers.get("content-type", ""):
            return None
        try:
            kind = json.loads(self.body).get("type", "")
        except ValueError:
            return None
        return kind[len(PROBLEM_PREFIX):] if kind.startswith(PROBLEM_PREFIX) else None


def parse_reply(data):
    """The first HTTP/1.1 response in `data` (a body by Content-Length only: the service sends
    no chunked answers to these requests). Reply(None) if no whole head arrived."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return Reply(None)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return Reply(None)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    return Reply(int(parts[1]), headers, rest[:length])


def connect(addr, timeout=5.0):
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock, deadline):
    """Everything the server sends until it closes the connection (EOF or reset) or the
    monotonic deadline passes; (bytes, closed)."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        except ConnectionError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def exchange(addr, raw, timeout=10.0):
    """Sends `raw` on a new connection and reads until the server closes it; (Reply, closed).
    A server that refuses a head part-way may close before all of it is sent: that is not an
    error here, what arrived is still read."""
    with connect(addr, timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed = read_until_closed(sock, time.monotonic() + timeout)
    return parse_reply(data), closed


def request(method, target, headers=(), body=None, version="HTTP/1.1"):
    """Raw request bytes; `headers` as (name, value) pairs, sent in order, Host not implied."""
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return raw + (body or b"")


def partial_head(size):
    """`size` bytes of a request head that never ends: a request line, a Host, then headers of
    15 KiB (each under the 16 KiB a header may have), and no blank line."""
    raw = b"GET /health/live HTTP/1.1\r\nHost: hostile\r\n"
    n = 0
    while len(raw) < size:
        raw += f"X-Hold-{n}: ".encode() + b"h" * min(15 * 1024, size) + b"\r\n"
        n += 1
    return raw[:size]


@dataclass
class Held:
    """One connection the attacker holds open: when it was opened, when the server closed it
    (None: still open at the deadline), and how many bytes the server sent on it."""

    opened: float
    closed: float | None = None
    received: int = 0


def hold_until_closed(socks, deadline):
    """Waits on held connections until the server closes each or the deadline passes.
    `socks` maps socket -> Held; closed sockets are closed here too."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    open_count = len(socks)
    while open_count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
            sock, held = key.fileobj, socks[key.fileobj]
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                chunk = b""
            held.received += len(chunk)
            if not chunk:
                held.closed = time.monotonic()
                sel.unregister(sock)
                sock.close()
                open_count -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()


def slow_heads(addr, count, head_bytes, deadline):
    """`count` connections, each sending `head_bytes` of a head that never ends, then held
    until the server closes them. The list of Held."""
    raw = partial_head(head_bytes)
    socks = {}
    for _ in range(count):
        sock = connect(addr)
        # The head timeout runs from the accept, so the clock starts before the send.
        socks[sock] = Held(time.monotonic())
        sock.sendall(raw)
    hold_until_closed(socks, deadline)
    return list(socks.values())


def trickled_heads(addr, count, interval, deadline):
    """`count` connections that each send one more byte of an endless head every `interval`
    seconds, until the server closes them. The list of Held."""
    raw = partial_head(64 * 1024)
    live = []
    for _ in range(count):
        live.append([connect(addr), Held(time.monotonic()), 0])
    done = []
    while live and time.monotonic() < deadline:
        for entry in list(live):
            sock, held, sent = entry
            sock.settimeout(0.0)
            try:
                chunk = sock.recv(65536)
                gone = not chunk
                held.received += len(chunk)
            except BlockingIOError:
                gone = False
            except ConnectionError:
                gone = True
            if not gone:
                try:
                    sock.send(raw[sent:sent + 1])
                    entry[2] = sent + 1
                except BlockingIOError:
                    pass
                except ConnectionError:
                    gone = True
            if gone:
                held.closed = time.monotonic()
                sock.close()
                live.remove(entry)
                done.append(held)
        time.sleep(interval)
    for sock, held, _ in live:
        sock.close()
        done.append(held)
    return done


@dataclass
class Timed:
    """A request whose answer was awaited: when its last byte was sent, the answer, and when
    the answer (or the close) came."""

    sent: float
    reply: Reply
    answered: float | None


def stalled_bodies(addr, users, deadline):
    """For each user a PUT announcing a 30-byte body that sends 10 bytes and then nothing. The
    list of Timed, `sent` being when the 10 bytes went."""
    socks = {}
    for user in users:
        sock = connect(addr)
        sock.sendall(request("PUT", f"/hello/{user}", [("Host", "hostile"),
                                                       ("Content-Type", "application/json"),
                                                       ("Content-Length", "30")]) + b'{"dateOfB')
        socks[sock] = Held(time.monotonic())
    return _answers(socks, deadline)


def trickled_bodies(addr, users, interval, deadline):
    """For each user a PUT announcing a 4000-byte body that sends one byte of it every
    `interval` seconds (each pause well under the chunk timeout), for ever. The list of Timed,
    `sent` being when the head went."""
    live = []
    for user in users:
        sock = connect(addr)
        sock.sendall(request("PUT", f"/hello/{user}", [("Host", "hostile"),
                                                       ("Content-Type", "application/json"),
                                                       ("Content-Length", "4000")]))
        live.append((sock, time.monotonic(), bytearray()))
    results = []
    while live and time.monotonic() < deadline:
        for entry in list(live):
            sock, sent, data = entry
            sock.settimeout(0.0)
            gone = False
            try:
                chunk = sock.recv(65536)
                data += chunk
                gone = not chunk
            except BlockingIOError:
                pass
            except ConnectionError:
                gone = True
            reply = parse_reply(bytes(data))
            if gone or reply.status is not None:
                results.append(Timed(sent, reply, time.monotonic()))
                sock.close()
                live.remove(entry)
                continue
            try:
                sock.send(b" ")
            except BlockingIOError:
                pass
            except ConnectionError:
                pass
        time.sleep(interval)
    for sock, sent, data in live:
        results.append(Timed(sent, parse_reply(bytes(data)), None))
        sock.close()
    return results


def idle_keep_alive(addr, count, deadline):
    """`count` connections that each make one request and then stay idle. The list of Held,
    `opened` being when the answer arrived; `received` counts only bytes after it."""
    socks = {}
    for _ in range(count):
        sock = connect(addr)
        sock.sendall(request("GET", "/health/live", [("Host", "hostile")]))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before answering a keep-alive request")
            data += chunk
        reply = parse_reply(data)
        if reply.status != 200 or len(reply.body) < int(reply.headers.get("content-length", 0)):
            # The body follows the head in the same segment for this tiny answer.
            raise ConnectionError(f"keep-alive request answered {reply.status}")
        socks[sock] = Held(time.monotonic())
    hold_until_closed(socks, deadline)
    return list(socks.values())


def _answers(socks, deadline):
    """Reads each held connection until a whole answer head or a close; the list of Timed."""
    sel = selectors.DefaultSelector()
    data = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        data[sock] = b""
    results = []
    while data and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                chunk = b""
            data[sock] += chunk
            reply = parse_reply(data[sock])
            if not chunk or reply.status is not None:
                results.append(Timed(socks[sock].opened, reply, time.monotonic()))
                sel.unregister(sock)
                sock.close()
                del data[sock]
    for sock, got in data.items():
        results.append(Timed(socks[sock].opened, parse_reply(got), None))
        sock.close()
    sel.close()
    return results


# ------------------------------------------------------------------------ judging ---------

def close_time_problems(what, held, expected, early, late):
    """Problems with connections the server should have closed, unanswered, `expected` seconds
    after they opened: closed more than `early` s before that, more than `late` s after it
    (or never), or answered with any byte."""
    problems = []
    for i, h in enumerate(held):
        if h.received:
            problems.append(f"{what} #{i}: the server sent {h.received} bytes instead of closing")
        if h.closed is None:
            problems.append(f"{what} #{i}: still open {expected + late:.1f} s after it opened")
            continue
        after = h.closed - h.opened
        if after < expected - early:
            problems.append(f"{what} #{i}: closed after {after:.2f} s, before {expected} s")
        elif after > expected + late:
            problems.append(f"{what} #{i}: closed after {after:.2f} s, over {expected} + {late} s")
    return problems


def answer_time_problems(what, timed, status, slug, expected, early, late):
    """Problems with requests that should each have been answered `status` `slug`, `expected`
    seconds after `sent`."""
    problems = []
    for i, t in enumerate(timed):
        if t.reply.status != status or t.reply.problem_slug() != slug:
            problems.append(f"{what} #{i}: answered {t.reply.status} {t.reply.problem_slug()}, "
                            f"expected {status} {slug}")
            continue
        after = t.answered - t.sent
        if not expected - early <= after <= expected + late:
            problems.append(f"{what} #{i}: answered after {after:.2f} s, expected {expected} s "
                            f"(-{early}/+{late})")
    return problems


def log_line_problems(line, max_bytes):
    """Why one line of the JSON log is not what a log reader can trust, or None."""
    if len(line) > max_bytes:
        return f"a line of {len(line)} bytes (limit {max_bytes})"
    text = line.decode("utf-8", errors="replace").rstrip("\n")
    if DISGUISING.search(text):
        return f"a raw disguising character in {text[:120]!r}"
    try:
        json.loads(text)
    except ValueError:
        return f"not one JSON object: {text[:120]!r}"
    return None


LATENCY = re.compile(r"latency p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, max ([0-9.]+) ms")
FAILED = re.compile(r"loadgen: (\d+) failed")


def loadgen_summary(output):
    """(p50 ms, p99 ms, failures) from `loadgen run`'s output; ValueError if absent."""
    latency, failed = LATENCY.search(output), FAILED.search(output)
    if not latency or not failed:
        raise ValueError(f"no loadgen summary in {output[-400:]!r}")
    return float(latency.group(1)), float(latency.group(2)), int(failed.group(1))


def vm_rss_kib(status_text):
    """VmRSS from the text of /proc/<pid>/status, in KiB."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line")
