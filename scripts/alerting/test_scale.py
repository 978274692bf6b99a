import unittest

from scale import parse_duration, scale_duration, scale_rules


class Durations(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parse_duration("5m"), 300_000)
        self.assertEqual(parse_duration("1h30m"), 5_400_000)
        self.assertEqual(parse_duration("250ms"), 250)
        self.assertEqual(parse_duration("3d"), 259_200_000)
        for bad in ("", "5", "m5", "5 m", "1.5h"):
            with self.assertRaises(ValueError):
                parse_duration(bad)

    def test_scale(self):
        self.assertEqual(scale_duration("1h", 60), "60000ms")
        self.assertEqual(scale_duration("5m", 60), "5000ms")
        self.assertEqual(scale_duration("3d", 60), "4320000ms")
        self.assertEqual(scale_duration("0m", 60), "0ms")
        self.assertEqual(scale_duration("1s", 10_000), "1ms")  # never rounded to zero


class Rules(unittest.TestCase):
    RULES = """groups:
  - name: g
    rules:
      - record: slo:sli_error:ratio_rate5m
        expr: sum(rate(x[5m])) / sum(rate(y[5m]))
      - alert: A
        expr: |
          slo:sli_error:ratio_rate1h > (14.4 * 0.001)
          and changes(z[1h:1m]) > 0 unless z offset 1h
        for: 2m
        labels: {severity: critical}
        annotations:
          summary: over 5m and 1h
"""

    def test_windows_offsets_and_for_are_divided(self):
        out = scale_rules(self.RULES, 60)
        self.assertIn("rate(x[5000ms])", out)
        self.assertIn("changes(z[60000ms:1000ms])", out)
        self.assertIn("z offset 60000ms", out)
        self.assertIn("for: 2000ms", out)

    def test_names_thresholds_and_text_are_kept(self):
        out = scale_rules(self.RULES, 60)
        self.assertIn("record: slo:sli_error:ratio_rate5m", out)
        self.assertIn("slo:sli_error:ratio_rate1h > (14.4 * 0.001)", out)
        self.assertIn("summary: over 5m and 1h", out)

    def test_factor_one_keeps_every_duration(self):
        out = scale_rules(self.RULES, 1)
        for kept in ("x[300000ms]", "y[300000ms]", "z[3600000ms:60000ms]", "offset 3600000ms", "for: 120000ms"):
            self.assertIn(kept, out)

    def test_the_factor_must_be_positive(self):
        with self.assertRaises(ValueError):
            scale_rules(self.RULES, 0)


if __name__ == "__main__":
    unittest.main()
