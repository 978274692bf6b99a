"""Unit tests of the pure parts of scenarios_nemesis.py: l's seeded schedule, the clock offsets
as libfaketime reads them, and the offset an instance's stamp shows.

Run: python3 -m unittest discover -s scripts/nfs-rehearsal -p 'test_*.py'
"""

import unittest

import scenarios_nemesis as nem


class Schedule(unittest.TestCase):
    def test_a_seed_replays_its_schedule(self):
        self.assertEqual(nem.schedule(7), nem.schedule(7))
        self.assertNotEqual(nem.schedule(7), nem.schedule(8))

    def test_events_come_one_at_a_time_within_the_time_given(self):
        for seed in range(200):
            events = nem.schedule(seed, seconds=50)
            self.assertTrue(events, seed)
            for a, b in zip(events, events[1:]):
                self.assertGreaterEqual(b.at, a.at + a.hold + 1.0, (seed, a, b))
            self.assertLessEqual(events[-1].at + events[-1].hold, 50, seed)

    def test_the_schedules_cover_every_nemesis_and_range(self):
        events = [e for seed in range(200) for e in nem.schedule(seed)]
        self.assertEqual({e.kind for e in events}, {"clock", "pause", "cut", "kill"})
        self.assertEqual({e.host for e in events}, {0, 1, 2})
        offsets = [e.offset for e in events if e.kind == "clock"]
        self.assertTrue(all(0.05 <= abs(o) <= 300 for o in offsets))
        self.assertTrue(any(o < -60 for o in offsets) and any(o > 60 for o in offsets))
        self.assertTrue(any(abs(o) < 1 for o in offsets))
        # Past --storage-timeout (5 s) and the NFS lease (15 s), and short ones too.
        for kind in ("pause", "cut"):
            holds = [e.hold for e in events if e.kind == kind]
            self.assertTrue(any(h > nem.NFS_LEASE_S for h in holds) and any(h < 5 for h in holds), kind)

    def test_events_print_what_they_do(self):
        self.assertEqual(str(nem.Event(2.5, "pause", 1, 12.0)), "+  2.5 s  SIGSTOP h2 for 12.0 s")
        self.assertEqual(str(nem.Event(3.0, "clock", 0, 0.0, -150.0)), "+  3.0 s  clock of h1 to -150.000 s")


class Clocks(unittest.TestCase):
    def test_offsets_are_signed_seconds(self):
        self.assertEqual(nem.offset_text(0.5), "+0.500")
        self.assertEqual(nem.offset_text(-180), "-180.000")
        self.assertEqual(nem.offset_text(0.0), "+0.000")

    def test_a_stamp_bounds_the_offset(self):
        # 2026-03-10T10:00:00Z is 1773136800 s after the epoch.
        lo, hi = nem.stamp_offset("2026-03-10T10:00:00.5Z", 1773136800.0, 1773136800.2)
        self.assertAlmostEqual(lo, 0.3, places=6)
        self.assertAlmostEqual(hi, 0.5, places=6)
        lo, hi = nem.stamp_offset("2026-03-10T09:57:30Z", 1773136800.0, 1773136800.1)
        self.assertAlmostEqual(lo, -150.1, places=6)
        self.assertAlmostEqual(hi, -150.0, places=6)
        self.assertIsNone(nem.stamp_offset("soon", 0.0, 1.0))


if __name__ == "__main__":
    unittest.main()
