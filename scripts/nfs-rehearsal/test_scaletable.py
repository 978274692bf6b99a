import unittest

import scaletable as st

STAT = "4242 (hello birthday) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 123456 2000 1844 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"


class ScaleTableTest(unittest.TestCase):
    def test_parses_the_last_key_value_line(self):
        out = '{"level":"info","msg":"x"}\nkind=get_known ops=812 ops_per_s=162 mean_us=98000.5 p50_us=90000.0 p99_us=310000.0 failures=0\n'
        f = st.parse_line(out)
        self.assertEqual(f["kind"], "get_known")
        self.assertEqual(f["ops"], "812")
        self.assertEqual(f["p99_us"], "310000.0")

    def test_a_line_without_pairs_is_an_error(self):
        with self.assertRaises(ValueError):
            st.parse_line("scale: connecting to 10.1.1.2:8081: refused\n")
        with self.assertRaises(ValueError):
            st.parse_line("kind=raw ops=3 oops")

    def test_cpu_ticks_are_utime_plus_stime_after_a_name_with_spaces(self):
        self.assertEqual(st.cpu_ticks(STAT), 1234 + 567)

    def test_cpu_per_request(self):
        # 250 ticks of 100 Hz = 2.5 s over 1,000 requests = 2,500 µs each.
        self.assertAlmostEqual(st.cpu_per_request_us(1000, 1250, 100, 1000), 2500.0)
        self.assertIsNone(st.cpu_per_request_us(1000, 1250, 100, 0))

    def test_rate_cell(self):
        f = {"ops_per_s": "1234.4", "p50_us": "950.0", "p99_us": "31500.0"}
        self.assertEqual(st.rate_cell(f), "1,234/s, p50 950 µs, p99 31.5 ms")


if __name__ == "__main__":
    unittest.main()
