"""Alerting rehearsal: the shipped rules, loaded by a real Prometheus that scrapes real
instances of the release binary and notifies a real Alertmanager, whose webhook lands here.
A clean rolling deploy must fire nothing; each injected fault (the storage ones are in
faults.py) must fire its alerts, which must resolve once it is gone; every query of the
dashboard must return data. docs/testing.md ("Alerts with real parts") has the details.

Usage (as root: the data directory is a tmpfs remounted read-only for one fault):
    python3 scripts/alerting/rehearsal.py --binary target/release/hello-birthday
"""

import argparse
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "lib")]
import faults  # noqa: E402
import rehearsal_kit as kit  # noqa: E402
from rehearsal_kit import T0, Failure, Processes, free_ports, listening_addr, log, metric_value, poll  # noqa: E402
from scale import scale_rules  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
JOB = "hello-birthday"


# ---------------------------------------------------------------- notifications ------------

class Notifications:
    """What Alertmanager's webhook delivered: each alert's last status, and when each alert
    name first fired and last resolved."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}  # (alertname, sorted labels) -> "firing" | "resolved"
        self.events = []  # (monotonic time, alertname, status)

    def receive(self, payload, now=None):
        now = time.monotonic() if now is None else now
        with self.lock:
            for alert in payload.get("alerts", []):
                labels = alert.get("labels", {})
                key = (labels.get("alertname", "?"), tuple(sorted(labels.items())))
                if self.status.get(key) != alert["status"]:
                    self.events.append((now, key[0], alert["status"]))
                self.status[key] = alert["status"]

    def firing(self):
        with self.lock:
            return {name for (name, _), status in self.status.items() if status == "firing"}

    def since(self, since, status="firing"):
        """{alert name: the times, in order, an alert of that name (any labels) went to `status`}
        since `since`."""
        out = {}
        with self.lock:
            for t, name, s in self.events:
                if t >= since and s == status:
                    out.setdefault(name, []).append(t)
        return out


def start_receiver(notifications):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            notifications.receive(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- instances ----------------

class Instance:
    """One hello-birthday process on the shared data directory."""

    def __init__(self, rehearsal, name, build="current"):
        self.name, self.build = name, build
        self.log_path = os.path.join(rehearsal.work, f"{name}.log")
        self.proc = rehearsal.procs.start(
            [rehearsal.binary, "--listen", "127.0.0.1:0", "--data-dir", rehearsal.data,
             "--log-format", "json", "--orphan-age", "1"], self.log_path)
        self.addr = poll(f"{name} to listen", 20, self._listening, 0.02)

    def _listening(self):
        if self.proc.poll() is not None:
            raise Failure(f"{self.name} exited at startup: {open(self.log_path).read()}")
        return listening_addr(self.log_path)


# ---------------------------------------------------------------- Prometheus ---------------

def write(path, text):
    """Replaces `path` at once: Prometheus rereads the targets file whenever it changes."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def prom_get(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    status, text = kit.http("GET", url, timeout=10)
    if status != 200:  # Prometheus answers 200 exactly when its status is "success"
        raise Failure(f"{url}: {status} {text}")
    return json.loads(text)["data"]


def dashboard_queries(dashboard, rate_interval):
    """(panel title, expr) of every target of every panel, $__rate_interval substituted."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"].replace("$__rate_interval", rate_interval)))
    return out


def prometheus_config(targets_file, alertmanager, rules_file=None):
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [rules_file] if rules_file else [],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{
            "job_name": JOB,
            "file_sd_configs": [{"files": [targets_file], "refresh_interval": "1s"}],
            # The stuck deploy: instances labelled build="next" are shown as another commit
            # (the rehearsal has one binary; its build_info labels are checked elsewhere).
            "metric_relabel_configs": [{
                "source_labels": ["__name__", "build"],
                "regex": "hello_birthday_build_info;next",
                "target_label": "commit",
                "replacement": "next-commit",
            }, {"regex": "build", "action": "labeldrop"}],
        }],
    }


ALERTMANAGER_CONFIG = """route:
  receiver: webhook
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


# ---------------------------------------------------------------- the rehearsal ------------

class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.binary)
        self.work = tempfile.mkdtemp(prefix="alerting-")
        self.data = os.path.join(os.path.realpath(self.work), "data")
        self.layout = faults.Layout(self.data)
        self.plan = faults.Plan()
        self.procs = Processes()
        self.notes = Notifications()
        self.instances = []  # in service discovery
        self.timings = []  # (phase, alert, fired after s, resolved after s)
        self.traffic_stop = threading.Event()
        self.background = []  # faults running on threads of their own (background_fault)
        self.cleanups = []  # run before the processes are killed and the tmpfs unmounted

    # -- setup --
    def setup(self):
        os.makedirs(self.data)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", self.data], check=True)
        receiver = start_receiver(self.notes)
        am_port, prom_port = free_ports(2)
        am_dir = os.path.join(self.work, "alertmanager")
        os.makedirs(am_dir)
        write(f"{am_dir}/alertmanager.yml", ALERTMANAGER_CONFIG.format(url=f"http://127.0.0.1:{receiver.server_port}/"))
        self.procs.start(["prometheus-alertmanager", f"--config.file={am_dir}/alertmanager.yml",
                          f"--storage.path={am_dir}", f"--web.listen-address=127.0.0.1:{am_port}",
                          "--cluster.listen-address="], os.path.join(self.work, "alertmanager.log"))
        self.rules = os.path.join(self.work, "rules.yml")
        with open(os.path.join(ROOT, "monitoring", "rules.yml")) as f:
            write(self.rules, scale_rules(f.read(), self.args.scale))
        subprocess.run(["promtool", "check", "rules", self.rules], check=True, stdout=subprocess.DEVNULL)
        self.targets_file = os.path.join(self.work, "targets.json")
        # The first instances are in service discovery before Prometheus starts, as a
        # running service's are: no moment without a target.
        for n in range(3):
            self.instances.append(Instance(self, f"v1-{n}"))
        threading.Thread(target=self.health_checks, daemon=True).start()
        self.write_targets()
        # Without the rules at first: see load_rules.
        self.alertmanager = f"127.0.0.1:{am_port}"
        self.prom_config = os.path.join(self.work, "prometheus.yml")
        write(self.prom_config, json.dumps(prometheus_config(self.targets_file, self.alertmanager)))
        lookback = max(1, round(300 / self.args.scale))
        self.prom_proc = self.procs.start(["prometheus", f"--config.file={self.prom_config}",
                          f"--storage.tsdb.path={self.work}/tsdb",
                          f"--web.listen-address=127.0.0.1:{prom_port}",
                          "--rules.alert.resend-delay=1s", f"--query.lookback-delta={lookback}s"],
                         os.path.join(self.work, "prometheus.log"))
        self.prom = f"http://127.0.0.1:{prom_port}"
        for what, base in (("Prometheus", self.prom), ("Alertmanager", f"http://127.0.0.1:{am_port}")):
            poll(f"{what} to be ready", 30, lambda: kit.http("GET", f"{base}/-/ready", timeout=2)[0] == 200, 0.2)

    def load_rules(self):
        """Loads the rules into Prometheus (SIGHUP), once it has scraped the first instances.
        Its discovery hands targets to the scrapers in batches 5 s apart, so the first scrape
        comes about 5 s after its start: with the rules loaded from the start, absent(up) would
        hold TooFewInstances pending for just about its scaled `for` of 5 s."""
        poll("the first instances scraped", 20, lambda: self.scraped()[0] >= {i.addr for i in self.instances}, 0.2)
        write(self.prom_config, json.dumps(prometheus_config(self.targets_file, self.alertmanager, self.rules)))
        self.prom_proc.send_signal(signal.SIGHUP)
        poll("the rules loaded", 20, lambda: prom_get(self.prom, "/api/v1/rules")["groups"], 0.1)

    def write_targets(self):
        write(self.targets_file, json.dumps([{"targets": [i.addr], "labels": {"build": i.build}} for i in self.instances]))

    def scraped(self):
        """Addresses Prometheus has scraped healthily, and all it knows."""
        active = prom_get(self.prom, "/api/v1/targets", state="active")["activeTargets"]
        return ({t["labels"]["instance"] for t in active if t["health"] == "up"},
                {t["labels"]["instance"] for t in active})

    def add(self, *instances):
        self.instances.extend(instances)
        self.write_targets()
        addrs = {i.addr for i in instances}
        poll(f"{[i.name for i in instances]} scraped", 20, lambda: addrs <= self.scraped()[0], 0.2)

    def remove(self, *instances):
        for instance in instances:
            self.instances.remove(instance)
        self.write_targets()
        addrs = {i.addr for i in instances}
        poll(f"{[i.name for i in instances]} dropped by Prometheus", 20, lambda: not addrs & self.scraped()[1], 0.2)

    def start(self, name, build="current"):
        instance = Instance(self, name, build)
        self.add(instance)
        return instance

    def sigterm(self, instance):
        code, _ = Processes.stop(instance.proc, 30)  # -9: SIGKILLed after 30 s
        if code != 0:
            raise Failure(f"{instance.name} exited {code} after SIGTERM")

    # -- traffic: open-loop, as a load balancer spreads it: RATE requests per second to each
    # instance whatever its latency (a closed loop would send less to a slow instance and hide
    # it), half PUT and half GET over 676 users --
    def traffic(self, rate=15, max_in_flight=64):
        rng = random.Random(1)
        users = faults.traffic_users()
        in_flight = threading.Semaphore(max_in_flight * 4)

        def one(addr, put, user, day):
            try:
                kit.http("PUT" if put else "GET", f"http://{addr}/hello/{user}",
                         {"dateOfBirth": f"1990-01-{day:02d}"} if put else None, timeout=10)
            finally:
                in_flight.release()

        next_at = time.monotonic()
        while not self.traffic_stop.is_set():
            for instance in list(self.instances):
                if instance.proc.poll() is None and in_flight.acquire(blocking=False):
                    user = users[rng.randrange(len(users))]
                    threading.Thread(target=one, daemon=True, args=(
                        instance.addr, rng.random() < 0.5, user, rng.randrange(1, 29))).start()
            next_at += 1 / rate
            time.sleep(max(0, next_at - time.monotonic()))

    # -- the load balancer's health checks: service_ready is what the last probe found --
    def health_checks(self):
        while not self.traffic_stop.is_set():
            for instance in list(self.instances):
                kit.http("GET", f"http://{instance.addr}/health/ready", timeout=2)
            time.sleep(0.2)

    # -- checks --
    def alerts_in_prometheus(self, seconds):
        result = prom_get(self.prom, "/api/v1/query", query=f"max_over_time(ALERTS[{seconds}s])")["result"]
        return sorted({(r["metric"]["alertname"], r["metric"]["alertstate"]) for r in result})

    def _fire(self, label, expect, inject, fire_deadline):
        """inject(); wait until every alert of `expect` has fired. (start, {alert: seconds})."""
        started = time.monotonic()
        inject()
        poll(f"{sorted(expect)} to fire", fire_deadline, lambda: set(expect) <= self.notes.since(started).keys(), 0.25)
        firings = self.notes.since(started)
        fired = {name: firings[name][0] - started for name in expect}
        log(f"   {label}fired: " + ", ".join(f"{n} after {fired[n]:.1f} s" for n in sorted(expect)))
        return started, fired

    def _resolved(self, phase, expect, fired, healed, resolve_deadline):
        """Wait until every alert of `expect` has resolved; note the timings."""
        poll(f"{sorted(expect)} to resolve", resolve_deadline,
             lambda: not (set(expect) & self.notes.firing()), 0.25)
        resolutions = self.notes.since(healed, "resolved")
        for name in sorted(expect):
            resolved = resolutions[name][0]
            self.timings.append((phase, name, fired[name], resolved - healed))
            log(f"   {name}: fired {fired[name]:.1f} s after the fault, resolved {resolved - healed:.1f} s after the heal began")

    def fault(self, phase, expect, inject, heal, allow=(), resolve_deadline=120, fire_deadline=90):
        """inject(); every alert of `expect` fires; heal(); every one resolves. Nothing but
        `expect`, `allow`, the sticky slow-burn tickets and the alerts of background faults may
        fire meanwhile."""
        log(f"== {phase}: injecting")
        started, fired = self._fire("", expect, inject, fire_deadline)
        healed = time.monotonic()
        heal()
        log(f"   healing {healed - started:.1f} s after the fault; waiting for the alerts to resolve")
        self._resolved(phase, expect, fired, healed, resolve_deadline)
        # A background fault's alert is excused for the one time it fires, not for a second.
        background = {name for job in self.background for name in job["expect"]
                      if len(self.notes.since(job["started_at"]).get(name, [])) <= 1}
        seen = self.notes.since(started).keys()
        unexpected = seen - set(expect) - set(allow) - STICKY - background
        if unexpected:
            raise Failure(f"{phase}: unexpected alerts fired: {sorted(unexpected)}")
        # The next fault starts from quiet: an allowed alert still firing, or one still pending
        # (a burn rate's long window drains after the errors stop), would otherwise show in it.
        ignored = STICKY | {name for job in self.background for name in job["expect"]}
        also = sorted(seen & set(allow))
        poll("every alert of the fault, allowed ones and pending ones included, to clear", resolve_deadline,
             lambda: not (self.active_alerts() | self.notes.firing()) - ignored, 0.25)
        log(f"   all clear {time.monotonic() - healed:.1f} s after the heal began"
            + (f" (also fired, as allowed: {', '.join(also)})" if also else ""))

    def active_alerts(self):
        """Names of the alerts pending or firing in Prometheus now."""
        return {r["metric"]["alertname"] for r in prom_get(self.prom, "/api/v1/query", query="ALERTS")["result"]}

    def background_fault(self, phase, expect, inject, heal, fire_deadline=90, resolve_deadline=120):
        """fault(), for a fault whose alerts take long to fire or to resolve and which touches
        nothing the other faults are judged on: injected, awaited and healed on a thread of its
        own while the rehearsal goes on. Its alerts may fire during the other faults.
        background_healed() waits for the heal, background_resolved() for the resolution
        (resolve_deadline counted from the heal)."""
        job = {"phase": phase, "expect": set(expect), "error": None, "done": threading.Event(),
               "fire_deadline": fire_deadline, "resolve_deadline": resolve_deadline,
               "started_at": time.monotonic()}

        def run():
            try:
                job["started"], job["fired"] = self._fire(f"{phase}: ", expect, inject, fire_deadline)
                job["healed"] = time.monotonic()
                heal()
                log(f"   {phase}: healed {job['healed'] - job['started']:.1f} s after the fault")
            except Exception as e:  # noqa: BLE001 (raised again by background_healed)
                job["error"] = e
            finally:
                job["done"].set()
        log(f"== {phase}: injecting, in the background")
        self.background.append(job)
        threading.Thread(target=run, daemon=True).start()

    def background_healed(self):
        for job in self.background:
            if not job["done"].wait(job["fire_deadline"] + 30):
                raise Failure(f"{job['phase']}: neither fired nor failed within {job['fire_deadline'] + 30} s")
            if job["error"]:
                raise Failure(f"{job['phase']}: {job['error']}")

    def background_resolved(self):
        self.background_healed()
        for job in self.background:
            left = job["healed"] + job["resolve_deadline"] - time.monotonic()
            log(f"== {job['phase']}: waiting up to {max(left, 1):.0f} s for the alerts to resolve")
            self._resolved(job["phase"], job["expect"], job["fired"], job["healed"], max(left, 1))
            firings = self.notes.since(job["started_at"])
            again = sorted(n for n in job["expect"] if len(firings.get(n, [])) > 1)
            if again:
                raise Failure(f"{job['phase']}: fired more than once: {again}")

    # -- the storage faults (faults.py says what each touches) --
    def strace(self, instance, syscall, inject, paths=(), name=None):
        """faults.strace_command on `instance`, once strace says it is attached to every thread."""
        log_path = os.path.join(self.work, f"strace-{name or instance.name}.log")
        tracer = self.procs.start(faults.strace_command(instance.proc.pid, syscall, inject, paths), log_path)

        def attached():
            if tracer.poll() is not None:
                raise Failure(f"strace on {instance.name} exited {tracer.returncode}")
            with open(log_path) as f:
                return f"Process {instance.proc.pid} attached" in f.read()
        poll(f"strace attached to {instance.name}", 10, attached)
        return tracer

    def lock_lost(self):
        """A peer replaces a user's record by rename without its lock while that user's PUTs
        go to one instance, until one of them is fenced with lock_lost (the writer's second read
        of the record, just before its rename, differs from the one it took the lock with)."""
        instance, user = self.instances[1], self.plan.lock_lost_user
        peer = faults.LocklessPeer(self.layout, user)
        self.cleanups.append(peer.stop)
        peer.start()
        puts = []

        def fenced():
            puts.append(faults.put(instance.addr, user))
            _, text = kit.http("GET", f"http://{instance.addr}/metrics")
            return metric_value(text, 'storage_writes_fenced_total{reason="lock_lost"}') > 0
        try:
            poll("a write fenced with lock_lost", 20, fenced, 0)
        finally:
            peer.stop()
        log(f"   lock lost: {len(puts)} PUT(s) to {instance.name} ({puts[-1]}), {peer.renames} renames by the peer")

    def break_sweep(self):
        """Orphans for the sweep to remove, and one instance that cannot list tmp/ (openat of
        that directory fails with EIO there; writes open files in it, never the directory), so
        its sweeps fail outright."""
        instance = self.instances[0]
        self.sweep_tracer = self.strace(instance, "openat", "error=EIO", [self.layout.temp], "sweep")
        self.orphans = faults.plant_orphans(self.layout, self.plan.orphan_keys)
        log(f"   {len(self.orphans)} orphans planted; {self.layout.temp} unlistable on {instance.name}; "
            "the next sweeps are within a minute")

    def mend_sweep(self):
        Processes.stop(self.sweep_tracer, 10)
        left = sum(os.path.exists(p) for p in self.orphans)
        log(f"   {len(self.orphans) - left} of the {len(self.orphans)} orphans removed by the sweep")

    def storage_faults(self):
        """The faults of storage.md's own failure modes: locks held, calls stalled past the
        deadline on either side of the fence, a lock that did not exclude, the orphan sweep."""
        # Two faults whose alerts resolve slowly (an increase over the scaled 1 h and 6 h) run
        # on their own threads from here on; they touch one user, and files only the sweep
        # looks at.
        self.background_fault("a peer renaming a record without its lock",
                              expect={"HelloBirthdayWriteLockLost"},
                              inject=self.lock_lost, heal=lambda: None,
                              resolve_deadline=round(3600 / self.args.scale) + 60)
        self.background_fault(
            f"crashed writers' {len(self.plan.orphan_keys)} temp files, and a tmp/ one instance cannot list (EIO)",
            expect={"HelloBirthdayOrphansFound", "HelloBirthdaySweepFailing"},
            inject=self.break_sweep, heal=self.mend_sweep, fire_deadline=100,
            resolve_deadline=round(6 * 3600 / self.args.scale) + 60)

        holder = faults.StripeHolder(self.layout, self.plan.busy_stripes)
        self.cleanups.append(holder.release)
        # Lock waits of 2 s on a share of PUTs: 503 storage-busy (the busy and availability
        # alerts) and a slow p99 of storage puts (StorageSlow).
        self.fault(f"another writer holds {len(self.plan.busy_stripes)} lock stripes "
                   f"({self.plan.busy_share:.0%} of the users' writes wait on them)",
                   expect={"HelloBirthdayStorageBusy", "HelloBirthdayStorageSlow",
                           "HelloBirthdayAvailabilityFastBurn"},
                   allow={"HelloBirthdayAvailabilityMediumBurn"},
                   inject=lambda: poll("the stripes held", 10, holder.try_take, 0.01),
                   heal=holder.release)

        stalls = {}

        def stall():
            # On one instance the directory fsync after the rename of one user (alone in its
            # fan-out directory), past the fence: write-unconfirmed. On another the open of the
            # record under the lock of three users (a stripe each), before the fence:
            # storage-timeout (not their flock, which also unlocks: docs/testing.md says why).
            # Each loop's PUTs end every 5 s; the loops are staggered so that a fenced write
            # falls every 1.7 s.
            unconfirmed, fenced = self.instances[1], self.instances[2]
            user = self.plan.unconfirmed_user
            # Each user's record exists first: a writer that finds none looks again (its
            # directory, then the record) before it trusts that, and each look would stall too.
            for instance, name in [(unconfirmed, user)] + [(fenced, u) for u in self.plan.fenced_users]:
                if faults.put(instance.addr, name) != (204, None):
                    raise Failure(f"the first PUT of {name} failed")
            fan_out = os.path.dirname(self.layout.record(faults.record_key(user)))
            records = [self.layout.record(faults.record_key(u)) for u in self.plan.fenced_users]
            stalls["tracers"] = [self.strace(unconfirmed, "fsync", f"delay_enter={STALL_US}", [fan_out], "unconfirmed"),
                                 self.strace(fenced, "openat", f"delay_enter={STALL_US}", records, "fenced")]
            stalls["loops"] = [faults.PutLoop(unconfirmed.addr, user).start()] + [
                faults.PutLoop(fenced.addr, u, delay=n * STORAGE_TIMEOUT_S / len(self.plan.fenced_users)).start()
                for n, u in enumerate(self.plan.fenced_users)]
            self.cleanups.extend(loop.stop for loop in stalls["loops"])

        def unstall():
            for loop in stalls["loops"]:
                loop.stop()
            for tracer in stalls["tracers"]:
                Processes.stop(tracer, 10)
            for loop in stalls["loops"]:
                if not loop.join(10):
                    raise Failure(f"the PUT loop of {loop.username} did not stop")
                log(f"   PUTs of {loop.username}: {loop.answers}")
        self.fault(f"storage calls stalled {STALL_US // 1_000_000} s (one user's directory fsync on one instance, "
                   f"{len(self.plan.fenced_users)} users' record opens under the lock on another)",
                   expect={"HelloBirthdayWritesUnconfirmed", "HelloBirthdayWritesFencedByDeadline",
                           "HelloBirthdayStorageErrors"},
                   allow={"HelloBirthdayAvailabilityFastBurn", "HelloBirthdayAvailabilityMediumBurn",
                          "HelloBirthdayStorageSlow", "HelloBirthdayStorageBusy"},
                   inject=stall, heal=unstall)

    def run(self):
        self.setup()
        log(f"Prometheus {self.prom}, rules scaled 1/{self.args.scale}, work dir {self.work}")
        self.load_rules()
        threading.Thread(target=self.traffic, daemon=True).start()
        # Every window of the fast alerts has data before anything is judged.
        warm = max(10, round(3600 / self.args.scale / 4))
        log(f"warming up for {warm} s")
        time.sleep(warm)
        if self.notes.events or self.alerts_in_prometheus(warm):
            raise Failure(f"alerts before any fault: {self.alerts_in_prometheus(warm)}")

        log("== clean rolling deploy: for each instance start a new one, wait until scraped, deregister the old, SIGTERM it")
        roll_start = time.monotonic()
        for n, old in enumerate(list(self.instances)):
            self.start(f"v2-{n}")
            self.remove(old)
            self.sigterm(old)
        settle = max(10, round(900 / self.args.scale))
        log(f"   rolled in {time.monotonic() - roll_start:.1f} s; watching {settle} s more")
        time.sleep(settle)
        window = round(time.monotonic() - roll_start) + 1
        seen = self.alerts_in_prometheus(window)
        if seen or self.notes.since(roll_start):
            raise Failure(f"the clean roll raised alerts: {seen} {sorted(self.notes.since(roll_start))}")
        log(f"   nothing pending or firing over the {window} s of the roll and after it")

        self.storage_faults()

        # The sweep fails on a read-only directory if it finds anything to remove: the
        # background faults are over before it.
        self.background_healed()

        def remount(mode):
            subprocess.run(["mount", "-o", f"remount,{mode}", self.data], check=True)
        self.fault("storage failing (data directory remounted read-only)",
                   expect={"HelloBirthdayStorageErrors", "HelloBirthdayNotReady",
                           "HelloBirthdayAvailabilityFastBurn", "HelloBirthdayAvailabilityMediumBurn"},
                   inject=lambda: remount("ro"), heal=lambda: remount("rw"))

        tracers = []
        self.fault(f"storage slow ({self.args.slow_ms} ms added to every openat of every instance)",
                   expect={"HelloBirthdayStorageSlow", "HelloBirthdayLatencyFastBurn",
                           "HelloBirthdayLatencyMediumBurn"},
                   inject=lambda: tracers.extend(self.strace(i, "openat", f"delay_enter={self.args.slow_ms * 1000}")
                                                 for i in self.instances),
                   heal=lambda: [Processes.stop(t, 10) for t in tracers])

        victim = self.instances[-1]

        def replace():
            self.start("v2-replacement")
            self.remove(victim)
        self.fault("an instance killed (SIGKILL; replaced after the alerts fired)",
                   expect={"HelloBirthdayInstanceDown", "HelloBirthdayTooFewInstances"},
                   inject=victim.proc.kill, heal=replace)

        stuck = []

        def crash_loop_and_stuck_deploy():
            # Seven tasks that came up, were scraped and died, within a few seconds (one at a
            # time, Prometheus's discovery and scrape make it a minute: the whole scaled hour).
            crashing = [Instance(self, f"crashing-{n}") for n in range(7)]
            self.add(*crashing)
            self.remove(*crashing)
            for instance in crashing:
                instance.proc.kill()
            stuck.append(self.start("next-0", build="next"))

        def roll_back():
            self.remove(stuck[0])
            self.sigterm(stuck[0])
        # Two faults at once, to wait out their windows together: a crash loop, and a deploy
        # that stops with one instance of another build serving.
        self.fault("a crash loop (7 instances started and killed) and a stuck deploy (another build left serving)",
                   expect={"HelloBirthdayRestarting", "HelloBirthdayVersionSplit"},
                   inject=crash_loop_and_stuck_deploy, heal=roll_back)

        self.background_resolved()
        self.check_dashboard()

    def check_dashboard(self):
        with open(os.path.join(ROOT, "monitoring", "dashboard.json")) as f:
            dashboard = json.load(f)
        end = time.time()
        start = end - (time.monotonic() - T0)
        empty = []
        queries = dashboard_queries(dashboard, "10s")
        for title, expr in queries:
            result = prom_get(self.prom, "/api/v1/query_range", query=expr, start=start, end=end, step=2)["result"]
            values = [v for r in result for _, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
            if not values:
                empty.append((title, expr))
        if empty:
            raise Failure("dashboard queries without data:\n" + "\n".join(f"  {t}: {e}" for t, e in empty))
        log(f"dashboard: all {len(queries)} queries of {len(dashboard['panels'])} panels returned data")

    def cleanup(self):
        self.traffic_stop.set()
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception as e:  # noqa: BLE001 (the processes and the mount come next)
                print(f"cleanup: {e}", file=sys.stderr)
        self.procs.stop_all()
        if os.path.ismount(self.data):
            subprocess.run(["mount", "-o", "remount,rw", self.data], stderr=subprocess.DEVNULL)
            subprocess.run(["umount", self.data])
        if self.args.keep:
            print(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# Slow-burn tickets (1x over 3 d and 6 h) need the scaled 6 h window to empty before they
# resolve: longer than the rehearsal. They may fire after the first fault and stay firing.
STICKY = {"HelloBirthdayAvailabilitySlowBurn", "HelloBirthdayLatencySlowBurn"}

# The service's default --storage-timeout (the instances run with it), and a stalled storage
# call: one second longer.
STORAGE_TIMEOUT_S = 5
STALL_US = (STORAGE_TIMEOUT_S + 1) * 1_000_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--scale", type=int, default=60, help="divide every rule duration by this")
    parser.add_argument("--slow-ms", type=int, default=100, help="delay added to each openat")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("alerting rehearsal: needs root (it mounts a tmpfs)")
    rehearsal = Rehearsal(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        rehearsal.run()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print(f"notifications: {rehearsal.notes.events}", file=sys.stderr)
        sys.exit(1)
    finally:
        rehearsal.cleanup()
    log("timings (fault -> fired, heal -> resolved):")
    for phase, name, fired, resolved in rehearsal.timings:
        print(f"    {name:38} fired {fired:5.1f} s, resolved {resolved:5.1f} s   ({phase})")
    print(f"PASS in {time.monotonic() - T0:.0f} s")


if __name__ == "__main__":
    main()
