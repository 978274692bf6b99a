import fcntl
import json
import os
import re
import tempfile
import time
import unittest

import faults


class LayoutAsTheServiceHasIt(unittest.TestCase):
    """The values src/storage/layout.rs's own tests pin."""

    ALICE = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"

    def test_alice(self):
        key = faults.record_key("alice")
        self.assertEqual(key, self.ALICE)
        self.assertEqual(faults.fan_out_of(key), "2b")
        self.assertEqual(faults.stripe_of(key), 0x90 % 64)
        layout = faults.Layout("/data")
        self.assertEqual(layout.record(key), f"/data/users/2b/{key}.json")
        self.assertEqual(layout.lock_file(faults.stripe_of(key)), "/data/locks/16.lock")
        self.assertEqual(layout.lock_file(3), "/data/locks/03.lock")
        self.assertEqual(layout.temp_file(key, "abc123", 7), f"/data/tmp/.{key}.json.tmp-abc123-7")

    def test_nfc_and_nfd_spellings_share_a_key(self):
        self.assertEqual(faults.record_key("Jos\u00e9"), faults.record_key("Jose\u0301"))
        self.assertNotEqual(faults.record_key("Alice"), faults.record_key("alice"))


class ThePlan(unittest.TestCase):
    plan = faults.Plan()
    load = [faults.record_key(u) for u in faults.traffic_users()]

    def stripe(self, user):
        return faults.stripe_of(faults.record_key(user))

    def test_the_load_is_676_users(self):
        self.assertEqual(len(set(faults.traffic_users())), 676)

    def test_fault_users_are_valid_names_outside_the_load(self):
        users = [self.plan.lock_lost_user, self.plan.unconfirmed_user] + self.plan.fenced_users
        for user in users:
            self.assertRegex(user, r"^[a-z]{1,64}$")
            self.assertNotIn(user, faults.traffic_users())
        self.assertEqual(len(set(users)), len(users))

    def test_holding_the_busy_stripes_makes_over_1_percent_of_operations_busy(self):
        # Half of the load is PUT; StorageBusy wants more than 1 % of GETs and PUTs busy.
        self.assertEqual(len(self.plan.busy_stripes), 6)
        self.assertGreater(self.plan.busy_share / 2, 0.03)

    def test_other_faults_stay_off_the_busy_stripes(self):
        busy = set(self.plan.busy_stripes)
        self.assertNotIn(self.stripe(self.plan.lock_lost_user), busy)
        for user in self.plan.fenced_users:
            self.assertNotIn(self.stripe(user), busy)
        for key in self.plan.orphan_keys:
            self.assertNotIn(faults.stripe_of(key), busy)
        self.assertGreater(len(self.plan.orphan_keys), 5)  # OrphansFound: more than 5

    def test_fenced_users_have_stripes_of_their_own(self):
        stripes = [self.stripe(u) for u in self.plan.fenced_users]
        stripes.append(self.stripe(self.plan.lock_lost_user))
        self.assertEqual(len(set(stripes)), len(stripes))

    def test_the_stalled_directory_holds_nobody_else(self):
        others = self.load + self.plan.orphan_keys + [
            faults.record_key(u) for u in self.plan.fenced_users + [self.plan.lock_lost_user]]
        used = {faults.fan_out_of(k) for k in others}
        mine = faults.fan_out_of(faults.record_key(self.plan.unconfirmed_user))
        self.assertNotIn(mine, used)


class Strace(unittest.TestCase):
    def test_command(self):
        args = faults.strace_command(42, "openat", "delay_enter=6000000", ["/a/b"])
        self.assertEqual(args[:2], ["strace", "-f"])
        self.assertNotIn("-q", "".join(args))  # its "attached" message is awaited
        self.assertIn(os.path.realpath("/a/b"), args)
        self.assertEqual(args[args.index(os.path.realpath("/a/b")) - 1], "-P")
        self.assertIn("trace=openat", args)
        self.assertIn("inject=openat:delay_enter=6000000", args)
        self.assertEqual(args[-2:], ["-p", "42"])
        self.assertNotIn("-P", faults.strace_command(42, "openat", "delay_enter=1"))


class OnDisk(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.layout = faults.Layout(self.dir.name)
        os.makedirs(self.layout.locks)

    def tearDown(self):
        self.dir.cleanup()

    def test_held_stripes_exclude_another_flock_until_released(self):
        holder = faults.StripeHolder(self.layout, [1, 2])
        self.assertTrue(holder.try_take())
        fd = os.open(self.layout.lock_file(1), os.O_RDWR)
        try:
            with self.assertRaises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.release()
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Now it is this descriptor that holds stripe 1: the holder takes only stripe 2.
            self.assertFalse(holder.try_take())
            self.assertEqual(list(holder.fds), [2])
        finally:
            os.close(fd)
            holder.release()

    def test_orphans_are_named_as_the_service_names_temp_files(self):
        keys = [faults.record_key(n) for n in ("a", "b")]
        paths = faults.plant_orphans(self.layout, keys)
        for key, path in zip(keys, paths):
            self.assertTrue(os.path.isfile(path))
            self.assertEqual(os.path.dirname(path), os.path.join(self.layout.data, "tmp"))
            self.assertRegex(os.path.basename(path), r"^\." + key + re.escape(".json.tmp-") + r"[0-9a-f]+-\d+$")

    def test_the_lockless_peer_replaces_the_record_and_leaves_no_temp_file(self):
        peer = faults.LocklessPeer(self.layout, "bob")
        peer.start()
        record = self.layout.record(faults.record_key("bob"))
        deadline = time.monotonic() + 10
        while peer.renames < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        peer.stop()
        self.assertGreaterEqual(peer.renames, 10)
        with open(record) as f:
            stored = json.load(f)
        self.assertEqual(stored["username"], "bob")
        self.assertGreater(stored["version"], 1_000_000)
        self.assertEqual(os.listdir(os.path.dirname(record)), [os.path.basename(record)])


if __name__ == "__main__":
    unittest.main()
