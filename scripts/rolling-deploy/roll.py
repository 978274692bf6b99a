"""Rolling-deploy rehearsal: an ECS rolling deploy re-enacted on loopback with real parts
(docs/testing.md, "Zero downtime", says what each step shows). HAProxy plays the ALB: it
health-checks /health/ready on six server slots (a slot with nothing behind it is DOWN) and,
like an ALB, never retries or redispatches a request. While a load generator sends a PUT/GET
mix through it on keep-alive connections and checks every answer:

  roll 1 (what ECS does): start the new instance, wait until UP, deregister the old one (state
         drain) until it has no sessions or the deregistration delay has passed, SIGTERM, exit 0
  roll 2 (SIGTERM only): no deregistration; readiness turns 503 and --drain-delay keeps the
         old instance serving until HAProxy has taken it out
  roll 3 (bad version): live, never ready (its data directory breaks under it); the roll waits
         as for a good one, stops, and the old instances keep serving (the circuit breaker)

Passes with zero failed requests, every acknowledged write read back, every replaced instance
exiting 0 within the stop timeout, no request to a deregistered instance or to the bad version,
and no HAProxy retry or redispatch. Every process it starts is ended by pid on exit; every wait
has a deadline. What an instance is, is the launcher's (launchers.py). run.sh builds what it
runs and calls it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]
import haproxy  # noqa: E402
import launchers  # noqa: E402
from rehearsal_kit import Failure, LoadGen, Processes, free_ports, http, poll, wait_until  # noqa: E402

# The Terraform target group (terraform/modules/load-balancer), its times divided by 50,
# except the check timeout: the readiness probe fsyncs a file on the disk all instances share,
# and on a busy machine one fsync can take over a second. With 100 ms (5 s / 50) one run lost
# all three instances at once, and HAProxy, which unlike an ALB does not "fail open" when no
# target is healthy, answered 957 requests with 503 NOSRV.
CHECK_INTER = "200ms"   # health_check.interval 10 s
CHECK_TIMEOUT = "2s"    # health_check.timeout 5 s, not scaled (above)
RISE = 2                # healthy_threshold
FALL = 2                # unhealthy_threshold
DEREG_DELAY_S = 0.4     # deregistration_delay 20 s (ends early once no request is in flight)
# The task (terraform/modules/service), in whole seconds as the app takes them, not scaled.
# The app's --shutdown-timeout is left at its default (20 s), as in the task definition;
# stopTimeout (SIGTERM to exit, else SIGKILL; here: SIGKILL and FAIL) is read from Terraform.
ROLL1_DRAIN_DELAY_S = 0  # DRAIN_DELAY_SECS of the task definition (unset there: 0)
# Roll 2 has no deregistration: the old instance must keep serving until HAProxy has seen FALL
# failed checks, FALL x INTER = 0.4 s after SIGTERM (its readiness answers 503 at once). On
# ECS that is 20 s. Set ROLL2_DRAIN_DELAY_SECS=0 to watch the roll fail without it.
ROLL2_DRAIN_DELAY_S = int(os.environ.get("ROLL2_DRAIN_DELAY_SECS", "1"))
HEALTHY_DEADLINE_S = 15  # how long a new instance (good or bad) gets to become UP
SLOTS = ["s1", "s2", "s3", "s4", "s5", "s6"]


def ms_since(t0):
    return round((time.monotonic() - t0) * 1000)


class Roll:
    def __init__(self, args, procs, work):
        self.args, self.procs, self.work = args, procs, work
        self.stop_timeout = int(launchers.taskdef.fact(launchers.taskdef.load(),
                                                       "container.stopTimeout"))
        self.launcher = launchers.make(args.launcher, procs, args.binary, args.image,
                                       self.stop_timeout)
        self.lb_port, *ports = free_ports(7)
        self.port = dict(zip(SLOTS, ports))
        self.sock, self.hlog = f"{work}/haproxy.sock", f"{work}/haproxy.log"
        self.data = f"{work}/data"
        self.drain_of, self.instances, self.stopped, self.last = {}, 0, 0, {}

    def hap(self, line):
        return haproxy.command(self.sock, line)

    def stat(self, proxy, server):
        return haproxy.parse_stat(self.hap("show stat"))[(proxy, server)]

    def status(self, slot):
        return self.stat("app", slot)["status"]

    def await_state(self, slot, state, deadline_s, since):
        """Until HAProxy shows slot in state for good: not "UP 1/2" or "DOWN 1/2" (one check
        passed or failed since), else FAIL."""
        if not wait_until(deadline_s, lambda: self.status(slot) == state):
            raise Failure(f"{slot} not {state} within {deadline_s} s of {since}: it is "
                          f"{self.status(slot)}")

    def served(self, slot):
        return int(self.stat("app", slot)["stot"])

    def haproxy_log(self):
        with open(self.hlog, errors="replace") as f:
            return f.read()

    def errors_seen(self):
        failed = haproxy.failed_requests(self.haproxy_log())
        return "\n".join([f"    HAProxy logged {len(failed)} failed or aborted requests"] +
                         [f"      {line}" for line in failed[:20]])

    def counters(self, label):
        now = haproxy.totals(haproxy.parse_stat(self.hap("show stat")))
        print(haproxy.counter_line(label, now, self.last), flush=True)
        self.last = now

    def start_instance(self, slot, drain, data=None):
        if self.status(slot) != "DOWN":
            raise Failure(f"slot {slot} is {self.status(slot)}, not DOWN, before its instance starts")
        self.instances += 1
        self.drain_of[slot] = drain
        self.launcher.launch(slot, self.port[slot], drain, data or self.data,
                             f"{self.work}/instance{self.instances}-{slot}.log")

    def reap(self, slot):
        """After the stop signal: exit 0 within the stop timeout, else FAIL."""
        code, in_time = self.launcher.await_exit(slot, self.stop_timeout)
        if not in_time or code != 0:
            print("\n".join(self.launcher.log(slot).splitlines()[-5:]), file=sys.stderr)
            raise Failure(f"instance {slot} exited {code}" if in_time else
                          f"instance {slot} still running {self.stop_timeout} s after SIGTERM: "
                          f"SIGKILLed (exit code {code})")
        self.stopped += 1

    def replace(self, old, new, deregister, drain):
        """One step of a rolling deploy. drain is the new instance's --drain-delay, for the
        roll that will stop it."""
        t0 = time.monotonic()
        self.start_instance(new, drain)
        self.await_state(new, "UP", HEALTHY_DEADLINE_S, "its start")
        print(f"    {new} UP after {ms_since(t0)} ms ({RISE} passing checks)")
        if deregister:
            self.hap(f"set server app/{old} state drain")
            served = self.served(old)
            wait_until(DEREG_DELAY_S, lambda: self.stat("app", old)["scur"] == "0", 0.02)
            t0 = time.monotonic()
            self.launcher.signal_stop(old)
            self.reap(old)
            # The ALB sends a deregistered target nothing new; neither may HAProxy in drain.
            got = self.served(old) - served
            if got:
                raise Failure(f"{old} got {got} requests after its deregistration")
            print(f"    {old} deregistered, SIGTERM, exited 0 after {ms_since(t0)} ms; requests "
                  f"it got after deregistration: 0")
            # The slot is free again once HAProxy has seen nothing listen there.
            self.await_state(old, "DOWN", 10, "its instance's exit")
            self.hap(f"set server app/{old} state ready")
        else:
            t0 = time.monotonic()
            self.launcher.signal_stop(old)
            self.await_state(old, "DOWN", self.stop_timeout, "SIGTERM")
            down = ms_since(t0)
            if down >= self.drain_of[old] * 1000:
                print(f"    WARNING: HAProxy took {old} out after {down} ms, after its drain "
                      f"delay of {self.drain_of[old]} s")
            self.reap(old)
            print(f"    {old} SIGTERM: DOWN in HAProxy after {down} ms (drain delay "
                  f"{self.drain_of[old]} s), exited 0 after {ms_since(t0)} ms")

    def run(self):
        self.launcher.prepare_data_dir(self.data)
        print(f"==> instances: {self.launcher.describe()}")
        print(f"==> starting HAProxy on 127.0.0.1:{self.lb_port} and three instances sharing "
              f"{self.data}", flush=True)
        with open(f"{self.work}/haproxy.cfg", "w") as f:
            f.write(haproxy.config(self.sock, self.lb_port, list(self.port.items()),
                                   CHECK_INTER, CHECK_TIMEOUT, RISE, FALL))
        proc = self.procs.start(["haproxy", "-f", f"{self.work}/haproxy.cfg", "-db"], self.hlog)
        if not wait_until(10, lambda: os.path.exists(self.sock) or proc.poll() is not None) \
                or proc.poll() is not None:
            print(self.haproxy_log(), file=sys.stderr)
            raise Failure("HAProxy did not start")
        # HAProxy starts every server UP; slots with nothing behind them fall to DOWN.
        for slot in SLOTS:
            self.await_state(slot, "DOWN", 10, "HAProxy's start")
        for slot in SLOTS[:3]:
            self.start_instance(slot, ROLL1_DRAIN_DELAY_S)
        for slot in SLOTS[:3]:
            self.await_state(slot, "UP", HEALTHY_DEADLINE_S, "its start")
        self.counters("start:")

        print("==> load: 16 keep-alive connections, 320 users, PUT/GET mix through HAProxy")
        # Every request is recorded; at the end the whole history is checked for
        # linearizability and kept, with a timeline of any failing user, in
        # target/rolling-deploy/history-<launcher>/.
        load = LoadGen(self.procs, self.args.loadgen, f"127.0.0.1:{self.lb_port}",
                       f"{self.work}/load.out", "--connections", "16", "--users", "320",
                       "--pause-us", "3000",
                       "--history", f"target/rolling-deploy/history-{self.args.launcher}")
        time.sleep(1)  # a window of steady load to count, not a wait for a state

        self.counters("steady load before the rolls:")
        print(f"==> roll 1: deregister (state drain), then SIGTERM; drain delay "
              f"{ROLL1_DRAIN_DELAY_S} s")
        # The new instances of roll 1 are the old ones of roll 2: they get roll 2's drain delay.
        for old, new in [("s1", "s4"), ("s2", "s5"), ("s3", "s6")]:
            self.replace(old, new, True, ROLL2_DRAIN_DELAY_S)
        self.counters("roll 1:")

        print(f"==> roll 2: SIGTERM only (readiness 503 + drain delay {ROLL2_DRAIN_DELAY_S} s)")
        for old, new in [("s4", "s1"), ("s5", "s2"), ("s6", "s3")]:
            self.replace(old, new, False, ROLL1_DRAIN_DELAY_S)
        self.counters("roll 2:")

        self.bad_version()
        time.sleep(1)  # the load goes on against the old version for a second more
        self.counters("roll 3:")

        load_code, output = load.finish(60)
        print(output, end="")
        backend = self.stat("app", "BACKEND")
        print(f"HAProxy retries (wretr) {backend['wretr']}, redispatches (wredis) "
              f"{backend['wredis']}")
        if load_code != 0:
            raise Failure("the load saw failures")
        if backend["wretr"] != "0" or backend["wredis"] != "0":
            raise Failure("HAProxy retried or redispatched requests")
        print(self.errors_seen())
        # Per server. No request goes to a server that is not UP, so these cost time, not
        # requests. With containers, a new container's published port drops connections (no
        # refusal) for about half a second while the engine wires its network: checks in that
        # window time out.
        print(haproxy.timeouts_line(self.haproxy_log()))
        if self.stopped != 6:
            raise Failure(f"{self.stopped} instances replaced, not 6")
        print(f"rolling-deploy ({self.args.launcher}): PASS (6 instances replaced, each exited 0; "
              "bad version stopped; 0 failed requests, 0 retries)")

    def bad_version(self):
        print("==> roll 3: a bad new version (live, never ready) replacing s1")
        # HAProxy takes a fresh instance UP after RISE checks, possibly before the rehearsal
        # could break it; so the slot is held in drain (checked, but given no request) until
        # it is broken and DOWN.
        self.hap("set server app/s4 state drain")
        served = self.served("s4")
        bad = f"{self.work}/bad-data"
        self.launcher.prepare_data_dir(bad)
        self.start_instance("s4", 0, bad)
        poll("the bad version to start", HEALTHY_DEADLINE_S,
             lambda: '"message":"listening"' in self.launcher.log("s4"))
        # Its data directory breaks under it (the launcher's way: gone, or unreadable): every
        # probe fails from now on.
        self.launcher.break_data_dir(bad)
        # Once it has answered FALL checks with 503 (it answers nothing else from then on) and
        # HAProxy shows it DOWN, no check can pass any more.
        failed_probe = re.compile(r'"route":"/health/ready".*"status":503')
        poll("the bad version, its data directory gone, to be DOWN", 10,
             lambda: len(failed_probe.findall(self.launcher.log("s4"))) >= FALL
             and self.status("s4") == "DOWN")
        base = f"http://127.0.0.1:{self.port['s4']}"
        live, _ = http("GET", f"{base}/health/live")
        ready, body = http("GET", f"{base}/health/ready")
        detail = json.loads(body)["detail"] if ready == 503 else body
        print(f"    bad version: /health/live {live}, /health/ready {ready}: {detail}")
        if (live, ready) != (200, 503):
            raise Failure("the bad version is not live-but-unready")
        t0 = time.monotonic()
        self.hap("set server app/s4 state ready")  # from here, the roll as for a good instance
        if wait_until(HEALTHY_DEADLINE_S, lambda: self.status("s4") == "UP"):
            raise Failure("the bad version became healthy")
        print(f"    s4 not UP after {int(time.monotonic() - t0)} s: roll stopped; s1 neither "
              "deregistered nor stopped")
        got = self.served("s4") - served
        if got:
            raise Failure(f"the bad version got {got} requests")
        self.launcher.signal_stop("s4")  # what the circuit breaker does to the new tasks
        if not self.launcher.await_exit("s4", self.stop_timeout)[1]:
            raise Failure(f"the bad version did not exit within {self.stop_timeout} s of SIGTERM")
        for slot in SLOTS[:3]:
            self.await_state(slot, "UP", 5, "the stopped roll")
        print("    the bad version got 0 requests and was stopped; s1 s2 s3 (the old version) "
              "still UP")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launcher", choices=["binary", "container"], default="binary")
    parser.add_argument("--binary", help="the release binary the binary launcher runs")
    parser.add_argument("--loadgen", required=True, help="examples/loadgen, built for release")
    parser.add_argument("--image", help="the image the container launcher runs")
    args = parser.parse_args()
    # A SIGTERM or SIGINT (CI cancelling, ^C) leaves through the cleanup below too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    procs, work = Processes(), tempfile.mkdtemp()
    roll = None
    try:
        roll = Roll(args, procs, work)
        roll.run()
    except (Failure, launchers.taskdef.TaskDefError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        if roll and os.path.exists(roll.hlog):
            changes = haproxy.state_changes(roll.haproxy_log())[-12:]
            print(roll.errors_seen() + "\n    HAProxy's last server state changes:\n" +
                  "\n".join(f"      {line}" for line in changes), file=sys.stderr)
        sys.exit(1)
    finally:
        procs.stop_all()
        if roll:
            roll.launcher.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
