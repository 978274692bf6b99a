"""The storage faults of the alerting rehearsal: what they touch on disk, and the small pieces
of machinery that inject them (a peer holding lock files, a peer that renames without a lock,
PUT loops, strace filtered by path).

The on-disk names follow src/storage/layout.rs, which is a format every running copy shares:
a record key is the lowercase hex SHA-256 of the NFC username, its fan-out directory the
key's first two digits, its lock stripe the key's last two digits modulo 64, and a temp file
`tmp/.<key>.json.tmp-<instance>-<n>`. test_faults.py pins them to the values
layout.rs's own tests pin. Stdlib only.
"""

import errno
import fcntl
import hashlib
import json
import os
import string
import sys
import threading
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import rehearsal_kit as kit  # noqa: E402

LOCK_STRIPES = 64
TEMP_MARKER = ".json.tmp-"


def record_key(username):
    return hashlib.sha256(unicodedata.normalize("NFC", username).encode()).hexdigest()


def stripe_of(key):
    return int(key[62:], 16) % LOCK_STRIPES


def fan_out_of(key):
    return key[:2]


class Layout:
    """Paths under a data directory (layout.rs)."""

    def __init__(self, data):
        self.data = data
        self.users = os.path.join(data, "users")
        self.locks = os.path.join(data, "locks")
        self.temp = os.path.join(data, "tmp")

    def fan_out_dir(self, fan_out):
        return os.path.join(self.users, fan_out)

    def record(self, key):
        return os.path.join(self.fan_out_dir(fan_out_of(key)), key + ".json")

    def lock_file(self, stripe):
        return os.path.join(self.locks, f"{stripe:02}.lock")

    def temp_file(self, key, instance, sequence):
        return os.path.join(self.temp, f".{key}{TEMP_MARKER}{instance}-{sequence}")


def record_json(username, date_of_birth, version):
    """A record as the service writes it (record.rs)."""
    return (json.dumps({"schema": 1, "username": username, "dateOfBirth": date_of_birth,
                        "updatedAt": "2026-01-01T00:00:00Z", "version": version},
                       separators=(",", ":")) + "\n").encode()


# ---------------------------------------------------------------- who is where -------------

def traffic_users():
    """The 676 users of the rehearsal's load: `user` and two lowercase letters."""
    return names("user")


def names(prefix):
    """Usernames (letters only, as the API wants) made of `prefix` and two letters."""
    return [prefix + a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]


class Plan:
    """Which stripes, users and directories each storage fault uses, chosen so that the faults
    leave each other and the load alone where they can:
    - busy_stripes: the stripes with the most users of the load (holding them makes 503s);
    - lock_lost_user, orphan_keys, fenced_users: on stripes outside busy_stripes, so that the
      busy fault, which runs at the same time as the first two, cannot hold them up, and the
      fenced users each on a stripe of their own (their writers would otherwise queue on
      each other instead of reaching the stalled record open);
    - unconfirmed_user: in a fan-out directory no user of the load (nor any other fault) is
      in, so that delaying that directory's fsync delays only its writes.
    """

    def __init__(self, busy=6, orphans=10, fenced=3):
        load = [record_key(u) for u in traffic_users()]
        counts = {}
        for key in load:
            counts[stripe_of(key)] = counts.get(stripe_of(key), 0) + 1
        self.busy_stripes = sorted(sorted(counts, key=lambda s: (-counts[s], s))[:busy])
        # The share of the load's writes that hit the held stripes.
        self.busy_share = sum(counts[s] for s in self.busy_stripes) / len(load)
        taken = set(self.busy_stripes)

        def free_stripe(name):
            return stripe_of(record_key(name)) not in taken

        self.lock_lost_user = next(n for n in names("locklost") if free_stripe(n))
        taken.add(stripe_of(record_key(self.lock_lost_user)))
        self.orphan_keys = [record_key(n) for n in names("orphan") if free_stripe(n)][:orphans]
        self.fenced_users = []
        for name in names("fenced"):
            if len(self.fenced_users) == fenced:
                break
            if free_stripe(name):
                self.fenced_users.append(name)
                taken.add(stripe_of(record_key(name)))
        used = {fan_out_of(k) for k in load + self.orphan_keys} | {
            fan_out_of(record_key(n)) for n in self.fenced_users + [self.lock_lost_user]}
        unused = [f"{n:02x}" for n in range(256) if f"{n:02x}" not in used]
        self.unconfirmed_user = next(
            n for n in names("unconfirmed") if fan_out_of(record_key(n)) in unused)


# ---------------------------------------------------------------- strace -------------------

def strace_command(pid, syscall, inject, paths=()):
    """strace attached to every thread of `pid`, acting on `syscall` (only when it names one of
    `paths`, if any: -P, a path argument or a descriptor open on that path; for a call with two
    paths, strace 6.1 looks at the first only). Not -q: its "Process <pid> attached" on stderr,
    written once every thread is, is what the rehearsal waits for."""
    args = ["strace", "-f"]
    for path in paths:
        args += ["-P", os.path.realpath(path)]
    return args + ["-e", f"trace={syscall}", "-e", f"inject={syscall}:{inject}",
                   "-o", "/dev/null", "-p", str(pid)]


# ---------------------------------------------------------------- peers --------------------

class StripeHolder:
    """Another writer holding lock stripes: the same `flock` on the same lock files as the
    service's writers (StdFs::try_lock), taken without waiting."""

    def __init__(self, layout, stripes):
        self.layout, self.stripes, self.fds = layout, list(stripes), {}

    def try_take(self):
        """Takes every stripe not yet held; True once all are held (a writer of the service may
        hold one for a moment: try again)."""
        for stripe in self.stripes:
            if stripe in self.fds:
                continue
            fd = os.open(self.layout.lock_file(stripe), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno != errno.EWOULDBLOCK:
                    raise
                continue
            self.fds[stripe] = fd
        return len(self.fds) == len(self.stripes)

    def release(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class LocklessPeer:
    """Another writer that ignores the lock: it replaces a user's record again and again by the
    same atomic rename the service uses, as a host whose lock was lost (its NFS lease ran out)
    would. Its temp file is not named like the service's, so the sweep never counts it."""

    def __init__(self, layout, username):
        self.username = username
        self.record = layout.record(record_key(username))
        self.temp = os.path.join(os.path.dirname(self.record), ".lockless-peer")
        self.stop_event = threading.Event()
        self.thread = None
        self.renames = 0

    def start(self):
        os.makedirs(os.path.dirname(self.record), exist_ok=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            self.renames += 1
            with open(self.temp, "wb") as f:
                f.write(record_json(self.username, "1990-02-01", 1_000_000 + self.renames))
            os.rename(self.temp, self.record)

    def stop(self):
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout=10)
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


def put(addr, username, timeout=20):
    """One PUT: its status and problem type, (204, None) on success, (0, the error) if unanswered."""
    status, text = kit.http("PUT", f"http://{addr}/hello/{username}", {"dateOfBirth": "1990-01-02"}, timeout)
    if status and text:
        return status, json.loads(text)["type"].rsplit(":", 1)[-1]
    return status, text or None


class PutLoop:
    """PUTs of one user to one instance, one after another, until stopped: a client that
    retries at once. Counts answers by problem type. Starts after `delay` seconds (to stagger
    several loops), on a stop event that also cuts the delay short."""

    def __init__(self, addr, username, delay=0.0):
        self.addr, self.username, self.delay = addr, username, delay
        self.stop_event = threading.Event()
        self.answers = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        if self.stop_event.wait(self.delay):
            return
        while not self.stop_event.is_set():
            status, kind = put(self.addr, self.username)
            key = kind or str(status)
            self.answers[key] = self.answers.get(key, 0) + 1

    def stop(self):
        self.stop_event.set()

    def join(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def plant_orphans(layout, keys, instance="00000000dead0000"):
    """Temp files as writers killed between create and rename leave them: half a record each,
    named as layout.rs names temp files. Returns their paths."""
    paths = []
    for n, key in enumerate(keys):
        path = layout.temp_file(key, instance, n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(record_json("orphan", "1990-01-01", 1)[:20])
        paths.append(path)
    return paths


