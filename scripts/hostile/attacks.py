"""What a hostile or broken client does over a raw socket, and how its answer is read.

Each attack is a plain function over blocking or non-blocking sockets with a deadline; the
rehearsal (rehearsal.py) runs many at once against the release binary. The judging helpers at
the bottom are pure, so test_attacks.py can check them on made-up data; the last two read the
kernel's record of a process's memory. Stdlib only.
"""

from http.client import HTTPConnection
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


def exchange(addr, raw, timeout=10.0):
    """Sends `raw` on a new connection and reads until the server closes it; (Reply, closed)."""
    held = hold(opened(addr, [raw]), time.monotonic() + timeout)[0]
    return held.reply, held.closed is not None


def request(method, target, headers=(), body=None):
    """Raw request bytes; `headers` as (name, value) pairs, sent in order, Host not implied."""
    lines = [f"{method} {target} HTTP/1.1"] + [f"{n}: {v}" for n, v in headers]
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
    """One connection the attacker holds open: when it was opened (or its last byte of a
    request sent), when the server closed it or answered (None: neither by the deadline), the
    bytes the server sent on it, and how many bytes of a trickle went out."""

    opened: float
    closed: float | None = None
    data: bytes = b""
    sent: int = 0

    @property
    def received(self):
        return len(self.data)

    @property
    def reply(self):
        return parse_reply(self.data)


def hold(socks, deadline, answer=False, trickle=b"", interval=0.5):
    """Waits on held connections (socket -> Held) until the server closes each (with `answer`:
    or sends a whole answer head) or the deadline passes; each is then closed here. With
    `trickle`, every `interval` s each connection still held is sent its next byte of it.
    Returns the list of Held."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    next_send = time.monotonic()
    while sel.get_map() and time.monotonic() < deadline:
        if trickle and time.monotonic() >= next_send:
            for key in list(sel.get_map().values()):
                held = socks[key.fileobj]
                try:
                    held.sent += key.fileobj.send(trickle[held.sent:held.sent + 1])
                except (BlockingIOError, ConnectionError):
                    pass  # a full buffer or a reset: the read below tells which
            next_send += interval
        wake = min(deadline, next_send) if trickle else deadline
        for key, _ in sel.select(timeout=min(0.5, max(0.0, wake - time.monotonic()))):
            sock, held = key.fileobj, socks[key.fileobj]
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                chunk = b""
            held.data += chunk
            if not chunk or (answer and held.reply.status is not None):
                held.closed = time.monotonic()
                sel.unregister(sock)
                sock.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return list(socks.values())


def opened(addr, raws):
    """A new connection for each of `raws`, sent it: socket -> Held (the clock starts before the
    send: the head timeout runs from the accept; loopback takes the bytes at once)."""
    socks = {}
    for raw in raws:
        sock = socket.create_connection(addr, timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks[sock] = Held(time.monotonic())
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a server that refuses a head part-way may close before all of it is sent
    return socks


def slow_heads(addr, count, head_bytes, deadline):
    """`count` connections, each sending `head_bytes` of a head that never ends, then held
    until the server closes them. The list of Held."""
    return hold(opened(addr, [partial_head(head_bytes)] * count), deadline)


def trickled_heads(addr, count, interval, deadline):
    """`count` connections that each send one more byte of an endless head every `interval`
    seconds, until the server closes them. The list of Held."""
    return hold(opened(addr, [b""] * count), deadline, trickle=partial_head(64 * 1024),
                interval=interval)


def put_heads(users, length, body_start=b""):
    return [request("PUT", f"/hello/{user}", [("Host", "hostile"), ("Content-Length", str(length)),
                                             ("Content-Type", "application/json")]) + body_start
            for user in users]


def stalled_bodies(addr, users, deadline):
    """For each user a PUT announcing a 30-byte body that sends 9 bytes and then nothing. The
    list of Held, `closed` being when the answer came."""
    return hold(opened(addr, put_heads(users, 30, b'{"dateOfB')), deadline, answer=True)


def trickled_bodies(addr, users, interval, deadline):
    """For each user a PUT announcing a 4000-byte body that sends one byte of it every
    `interval` seconds (each pause well under the chunk timeout), for ever. The list of Held,
    `closed` being when the answer came."""
    return hold(opened(addr, put_heads(users, 4000)), deadline, answer=True,
                trickle=b" " * 4000, interval=interval)


def kept_alive(addr, count):
    """`count` connections that have each made one request and been answered: socket -> Held,
    `opened` being when the answer arrived."""
    socks = {}
    for _ in range(count):
        conn = HTTPConnection(*addr, timeout=5)
        conn.request("GET", "/health/live", headers={"Host": "hostile"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise ConnectionError(f"keep-alive request answered {response.status}")
        socks[conn.sock] = Held(time.monotonic())
    return socks


def idle_keep_alive(addr, count, deadline):
    """`count` connections that each make one request and then stay idle. The list of Held;
    `received` counts only bytes after the answer."""
    return hold(kept_alive(addr, count), deadline)


# ------------------------------------------------------------------------ judging ---------

def timing_problems(what, held, count, expected, early, late, answer=None):
    """Problems with `count` connections (Held) that the server should each have answered
    `answer` (status, problem slug), or with None closed unanswered, `expected` seconds after
    Held.opened: not `count` of them, another answer (or any byte), an answer or close more
    than `early` s before that or more than `late` s after it (or never)."""
    problems = [] if len(held) == count else [f"{what}: {len(held)} of {count} ran"]
    for i, h in enumerate(held):
        got = (h.reply.status, h.reply.problem_slug())
        if answer is None and h.received:
            problems.append(f"{what} #{i}: the server sent {h.received} bytes instead of closing")
        elif answer is not None and got != answer:
            problems.append(f"{what} #{i}: answered {got}, expected {answer}")
        elif h.closed is None:
            problems.append(f"{what} #{i}: still open {expected + late:.1f} s after it opened")
        elif h.closed - h.opened < expected - early:
            problems.append(f"{what} #{i}: after {h.closed - h.opened:.2f} s, before {expected} s")
        elif h.closed - h.opened > expected + late:
            problems.append(f"{what} #{i}: after {h.closed - h.opened:.2f} s, "
                            f"over {expected} + {late} s")
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


def loadgen_latency(output):
    """(p50 ms, p99 ms) from `loadgen run`'s output (whose exit status says whether any request
    failed); ValueError if absent."""
    latency = LATENCY.search(output)
    if not latency:
        raise ValueError(f"no loadgen summary in {output[-400:]!r}")
    return float(latency.group(1)), float(latency.group(2))
