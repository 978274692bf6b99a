"""Unit tests of roundtrips.py: the mountstats parser, the differences and the summary.

Run: python3 -m unittest discover -s scripts/nfs-rehearsal -p 'test_*.py'
"""

import unittest

import roundtrips as rt

# As Debian bookworm's kernel prints it (statvers=1.1), cut down: a root file system, two NFS
# mounts of different hosts, one with a space in its mount point.
SAMPLE = """\
device /dev/vda mounted on / with fstype ext4
device proc mounted on /proc with fstype proc
device 10.0.1.1:/srv/export mounted on /mnt/h1 with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,acregmin=3,acregmax=60,acdirmin=30,acdirmax=60,hard,noresvport,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.1.2,local_lock=none
\tage:\t57
\tcaps:\tcaps=0x3ffbffff,wtmult=512,dtsize=1048576,bsize=0,namlen=255
\tnfsv4:\tbm0=0xfdffbfff,bm1=0xf9be3e,bm2=0x68800,acl=0x3,sessions,pnfs=not configured,lease_time=15,lease_expired=0
\tsec:\tflavor=1,pseudoflavor=1
\tevents:\t12 80 0 6 14 5 113 21 0 4 0 0 0 0 14 0 0 9 0 0 4 0 0 0 0 0 0
\tbytes:\t1020 2112 0 0 1020 2112 2 2
\tRPC iostats version: 1.1  p/v: 100003/4 (nfs)
\txprt:\ttcp 0 0 1 0 57 251 251 0 251 0 2 0 0
\tper-op statistics
\t        NULL: 1 1 0 44 24 0 0 0 0
\t        READ: 2 2 0 260 1192 0 2 2 0
\t       WRITE: 3 3 0 1180 276 0 3 3 0
\t      COMMIT: 0 0 0 0 0 0 0 0 0
\t        OPEN: 20 20 0 5400 7800 0 31 32 2
\t       CLOSE: 18 18 0 3240 1872 0 12 12 0
\t     SETATTR: 3 3 0 756 828 0 2 2 0
\t        LOCK: 4 4 0 1008 448 0 3 3 0
\t       LOCKU: 4 4 0 720 416 0 2 2 0
\t      RENAME: 3 3 0 900 804 0 4 4 0
\tFREE_STATEID: 4 4 0 512 352 0 1 1 0

device 10.0.2.1:/srv/export mounted on /mnt/h\\0402 with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.1
\tper-op statistics
\t        READ: 9 9 0 0 0 0 0 0 0
\t        OPEN: 7 7 0 0 0 0 0 0 0
"""


class Parse(unittest.TestCase):
    def test_every_nfs_mount_and_its_operations_in_the_kernels_order(self):
        mounts = rt.parse(SAMPLE)
        self.assertEqual(sorted(mounts), ["/mnt/h 2", "/mnt/h1"])
        h1 = mounts["/mnt/h1"]
        self.assertEqual(list(h1)[:4], ["NULL", "READ", "WRITE", "COMMIT"])
        self.assertEqual(h1["OPEN"], 20)
        self.assertEqual(h1["FREE_STATEID"], 4)  # the widest name, no leading blanks
        self.assertEqual(mounts["/mnt/h 2"], {"READ": 9, "OPEN": 7})

    def test_only_the_per_op_lines_count(self):
        h1 = rt.parse(SAMPLE)["/mnt/h1"]
        # "events:", "bytes:", "xprt:" look like counters too, but come before "per-op".
        for name in ("events", "bytes", "xprt", "opts", "age", "RPC iostats version"):
            self.assertNotIn(name, h1)

    def test_other_file_systems_and_an_empty_text_give_nothing(self):
        self.assertEqual(rt.parse("device /dev/vda mounted on / with fstype ext4\n"), {})
        self.assertEqual(rt.parse(""), {})


class Delta(unittest.TestCase):
    def test_what_grew_between_two_reads_and_nothing_else(self):
        before = rt.parse(SAMPLE)["/mnt/h1"]
        after = dict(before, OPEN=before["OPEN"] + 1, READ=before["READ"] + 1, CLOSE=before["CLOSE"] + 1)
        self.assertEqual(rt.delta(before, after), {"READ": 1, "OPEN": 1, "CLOSE": 1})
        self.assertEqual(rt.breakdown(rt.delta(before, after)), "READ, OPEN, CLOSE")
        self.assertEqual(rt.delta(before, before), {})

    def test_an_operation_seen_for_the_first_time_counts_from_zero(self):
        self.assertEqual(rt.delta({"OPEN": 3}, {"OPEN": 3, "LOOKUP": 2}), {"LOOKUP": 2})

    def test_a_counter_that_went_down_is_another_mount(self):
        with self.assertRaises(ValueError):
            rt.delta({"OPEN": 3}, {"OPEN": 2})


class Summary(unittest.TestCase):
    def test_median_range_and_the_most_common_set_of_operations(self):
        three = {"OPEN": 1, "READ": 1, "CLOSE": 1}
        two = {"OPEN": 1, "CLOSE": 1}
        s = rt.summarize([three, two, three, {"OPEN": 1, "READ": 1, "CLOSE": 1, "READDIR": 2}])
        self.assertEqual((s["n"], s["median"], s["min"], s["max"]), (4, 3, 2, 5))
        self.assertEqual((s["typical"], s["typical_n"]), ("OPEN, READ, CLOSE", 2))
        self.assertEqual(s["others"], {"OPEN, CLOSE": 1, "OPEN, READ, CLOSE, READDIR x2": 1})

    def test_a_request_that_sent_nothing(self):
        s = rt.summarize([{}, {}])
        self.assertEqual((s["median"], s["typical"]), (0, "none"))

    def test_the_printed_row(self):
        s = rt.summarize([{"OPEN": 1, "CLOSE": 1}, {"OPEN": 1, "READ": 1, "CLOSE": 1}, {"OPEN": 1, "CLOSE": 1}])
        row = rt.format_row("GET known user", s, 12.34)
        self.assertEqual(row.split(), ["GET", "known", "user", "2", "2-3", "12.3", "OPEN,", "CLOSE", "(2", "of", "3)"])
        self.assertIn("no samples", rt.format_row("x", rt.summarize([]), None))


if __name__ == "__main__":
    unittest.main()
