"""What every Python rehearsal needs: a log with the time since start, waits with deadlines,
free ports, one HTTP request, a metric's value, the processes it starts, each ended by pid, their
memory (the RSS and the kernel's peak), and the load generator run until its stop file. Stdlib only; test_rehearsal_kit.py.

A rehearsal imports it with sys.path.insert(0, <this folder>); see scripts/hostile/rehearsal.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPException

T0 = time.monotonic()


class Failure(Exception):
    """A check failed or a wait ran out: the rehearsal fails with this message."""


def log(message):
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", flush=True)


def wait_until(deadline_s, check, interval=0.05):
    """check() until it returns a true value (returned), or None once deadline_s have passed.
    For waits whose end is no failure (a delay that ends early, a state that must not come)."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


def poll(what, deadline_s, check, interval=0.05):
    """check() until it returns a true value (returned), or Failure after deadline_s."""
    value = wait_until(deadline_s, check, interval)
    if not value:
        raise Failure(f"timed out after {deadline_s} s waiting for {what}")
    return value


def free_ports(n):
    """n distinct ports free on 127.0.0.1: all bound at once, so none is handed out twice."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http(method, url, body=None, timeout=5):
    """(status, text) of one request, body sent as JSON; (0, the error) when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (OSError, HTTPException) as e:  # refused, reset, cut off mid-answer
        return 0, str(e)


def metric_value(exposition, series):
    """The value of series (`name` or `name{labels}`, as exposed) in a Prometheus text
    exposition, 0 if absent."""
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def listening_addr(log_path):
    """The "host:port" a hello-birthday process logged (JSON) it listens on, or None yet."""
    with open(log_path, errors="replace") as f:
        for line in f:
            if '"message":"listening"' in line:
                return json.loads(line)["addr"]
    return None


class Processes:
    """Every process a rehearsal starts, each in a session of its own (a ^C to the terminal
    reaches the rehearsal, whose cleanup ends them) and ended by its pid in stop_all."""

    def __init__(self):
        self.procs = []

    def start(self, args, log_path=os.devnull, **popen):
        """args, its stdout and stderr (those popen does not redirect) into log_path."""
        with open(log_path, "wb") as out:  # the child has its own copy of the descriptor
            popen.setdefault("stdout", out)
            popen.setdefault("stderr", subprocess.STDOUT if popen["stdout"] is out else out)
            proc = subprocess.Popen(args, start_new_session=True, **popen)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, deadline_s, sig=signal.SIGTERM):
        """Sends sig (unless None) and waits up to deadline_s for the exit; then SIGKILL.
        Returns (exit code, whether it exited in time)."""
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=deadline_s), True
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(), False

    def stop_all(self):
        """SIGKILL to every process still running (Popen never signals a reaped pid)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"pid {proc.pid} did not die after SIGKILL", file=sys.stderr)


class LoadGen:
    """`loadgen run` (examples/loadgen.rs: well-behaved clients that check every answer, exit 1
    on any failure) with ARGS against target, its output in out_path, until finish()."""

    def __init__(self, procs, loadgen, target, out_path, *args):
        self.stop_file, self.out_path = out_path + ".stop", out_path
        self.proc = procs.start([loadgen, "run", "--target", target, "--stop-file",
                                 self.stop_file, *args], out_path)

    def finish(self, deadline_s):
        """Creates the stop file; (exit code, output), or Failure if it runs on deadline_s."""
        open(self.stop_file, "w").close()
        code, in_time = Processes.stop(self.proc, deadline_s, sig=None)
        if not in_time:
            raise Failure(f"loadgen did not stop within {deadline_s} s of its stop file")
        with open(self.out_path) as f:
            return code, f.read()


def status_kib(pid, field):
    """A kB field (VmRSS, VmHWM) of /proc/<pid>/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def reset_peak_rss(pid):
    """Sets the kernel's record of the process's peak RSS (VmHWM) to its RSS now (Linux 4.0+,
    proc(5) clear_refs), so that VmHWM is the exact peak from then on, not a sampled one."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
