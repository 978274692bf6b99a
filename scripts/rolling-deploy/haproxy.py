"""HAProxy as the rehearsal's ALB: its configuration, its admin socket (`show stat`, `set
server`), and what its log says. Stdlib only; test_haproxy.py runs it with the installed HAProxy.
"""

import csv
import io
import re
import socket
from collections import Counter

# What `counters` reports: the frontend's requests and answers; the backend's connection
# errors, response errors (a backend connection closed under a request), retries,
# redispatches, server aborts, backend connections opened and reused.
FRONTEND_COUNTERS = [("requests", "req_tot"), ("2xx", "hrsp_2xx"), ("4xx", "hrsp_4xx"),
                     ("5xx", "hrsp_5xx")]
BACKEND_COUNTERS = [(f, f) for f in ("econ", "eresp", "wretr", "wredis", "srv_abrt", "connect",
                                     "reuse")]


def config(sock, lb_port, slots, check_inter, check_timeout, rise, fall):
    """slots: [(name, port)]. Every server is checked; one with nothing listening is DOWN."""
    servers = "".join(f"    server {name} 127.0.0.1:{port} check\n" for name, port in slots)
    return f"""global
    stats socket {sock} mode 600 level admin
    log stdout format raw local0
defaults
    mode http
    log global
    # Only failed or aborted requests are logged, with the id that the app logs too.
    option dontlog-normal
    unique-id-format %{{+X}}o%ci-%cp-%Ts-%rt
    unique-id-header X-Request-Id
    log-format "%tr id=%ID %b/%s status=%ST term=%tsc Tc=%Tc Tr=%Tr retries=%rc %{{+Q}}r"
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    # As an ALB: a request is sent once. A refused or closed backend connection is an error
    # answered to the client (503/502), never retried nor sent to another server.
    retries 0
    retry-on none
    # As an ALB: any request may go out on any idle pooled backend connection (HAProxy's
    # default, "safe", never puts a client's first request on one).
    http-reuse always
    option http-buffer-request
frontend lb
    bind 127.0.0.1:{lb_port}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health/ready
    option log-health-checks
    http-check expect status 200
    timeout check {check_timeout}
    default-server inter {check_inter} rise {rise} fall {fall}
{servers}"""


def command(sock, line, timeout=10):
    """One command on the admin socket; HAProxy answers and closes the connection."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def parse_stat(text):
    """`show stat` CSV -> {(proxy, server): {field: value}}. Its header line starts "# "."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    return {(r["pxname"], r["svname"]): r for r in rows if r.get("svname")}


def totals(stat):
    """The counters (FRONTEND_COUNTERS, BACKEND_COUNTERS) as {name: int}."""
    front, back = stat[("lb", "FRONTEND")], stat[("app", "BACKEND")]
    return {**{name: int(front[f]) for name, f in FRONTEND_COUNTERS},
            **{name: int(back[f]) for name, f in BACKEND_COUNTERS}}


def counter_line(label, now, before):
    """'LABEL requests N, 2xx N, ...': what changed since `before` (same keys, or empty)."""
    return f"    {label} " + ", ".join(f"{k} {v - before.get(k, 0)}" for k, v in now.items())


def failed_requests(log_text):
    """Lines of failed or aborted requests (with dontlog-normal, the only requests logged)."""
    return [line for line in log_text.splitlines() if " status=" in line]


def state_changes(log_text):
    """Lines saying a server or the backend changed state (UP, DOWN, no server available)."""
    return [line for line in log_text.splitlines()
            if line.startswith(("Server app/", "backend app"))]


def timeouts_line(log_text):
    """'    health checks that timed out: N (s4 1, s5 1)', each check once: -db writes each
    result twice into the log, as a [WARNING] on stderr and as the log line on stdout."""
    per = Counter(re.findall(r"^Health check for server app/(\S+) .*timeout", log_text, re.M))
    return f"    health checks that timed out: {per.total()}" + (
        f" ({', '.join(f'{s} {n}' for s, n in sorted(per.items()))})" if per else "")
