"""Tests of fs_calls.py, on made-up trace lines and on a trace strace itself writes."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import fs_calls

TRACE = """\
101 openat(AT_FDCWD</>, "/d/users/ab/alice", O_RDONLY|O_CLOEXEC) = 7</d/users/ab/alice>
101 read(7</d/users/ab/alice>, "{}", 8192) = 2
102 fsync(8</d/tmp/x> <unfinished ...>
101 read(9<socket:[123]>, "GET /", 8192) = 5
102 <... fsync resumed>) = 0
101 close(7</d/users/ab/alice>) = 0
101 openat(AT_FDCWD</>, "/elsewhere/x", O_RDONLY) = 3</elsewhere/x>
""".splitlines()


class Counting(unittest.TestCase):
    def test_calls_on_the_directory_each_once_and_nothing_else(self):
        self.assertEqual(fs_calls.count(TRACE, "/d/"),
                         {"openat": 1, "read": 1, "fsync": 1, "close": 1})

    def test_the_baseline_is_subtracted_and_what_the_work_did_not_add_left_out(self):
        per = fs_calls.per_unit({"openat": 10, "close": 3}, {"openat": 110, "close": 3,
                                                             "fsync": 200}, 100)
        self.assertEqual(per, {"fsync": 2.0, "openat": 1.0})
        self.assertEqual(fs_calls.summary(per, 2), "3.00 (fsync 2.00, openat 1.00)")
        self.assertEqual(fs_calls.summary({"getdents64": 257.0}, 0), "257 (getdents64 257)")

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_a_real_strace_trace_is_counted(self):
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work)
        data = os.path.join(work, "data")
        os.mkdir(data)
        traces = []
        for opens in (0, 3):
            trace = os.path.join(work, f"trace-{opens}")
            code = ("import os, sys\nfor i in range(int(sys.argv[2])):\n"
                    "    with open(os.path.join(sys.argv[1], str(i)), 'w') as f: f.write('x')")
            subprocess.run(["strace", "-f", "-y", "-qq", "-o", trace, "-e", "trace=%file,%desc",
                            sys.executable, "-c", code, data, str(opens)], check=True)
            traces.append(trace)
        with open(traces[0]) as base, open(traces[1]) as traced:
            per = fs_calls.per_unit(fs_calls.count(base, data), fs_calls.count(traced, data), 3)
        self.assertEqual((per["openat"], per["write"], per["close"]), (1.0, 1.0, 1.0))
        # A path with ".." in it names the same directory, but not as -y writes it.
        with self.assertRaises(SystemExit):
            fs_calls.main(os.path.join(work, "data", "..", "data"), "3", *traces)


if __name__ == "__main__":
    unittest.main()
