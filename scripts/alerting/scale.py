"""A test-time copy of the shipped rules with every duration divided by a factor.

The rehearsal cannot wait an hour for a 1 h window or a `for: 1h`, so it loads a copy of
monitoring/rules.yml in which the range selectors (`[1h]`), `offset`s and `for:` durations
are all divided by the same factor: every burn-rate pair keeps the ratio of its windows, every
threshold stays as shipped. The shipped file is never edited. Stdlib only (no YAML parser:
the substitution is on the text, and the result is checked with `promtool check rules`).
"""

import re

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
PART = re.compile(r"(\d+)(ms|[smhdwy])")


def parse_duration(text):
    """A Prometheus duration (`1h30m`, `250ms`) in milliseconds."""
    if not DURATION.fullmatch(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * UNITS_MS[unit] for n, unit in PART.findall(text))


def scale_duration(text, factor):
    """`text` divided by `factor`, in whole milliseconds (at least 1 ms if non-zero): `1h` / 60
    is `60000ms`, which Prometheus reads as well as `1m`."""
    ms = parse_duration(text)
    return f"{max(1, round(ms / factor)) if ms else 0}ms"


RANGE = re.compile(r"\[(" + DURATION.pattern + r")(:(" + DURATION.pattern + r")?)?\]")
OFFSET = re.compile(r"\boffset\s+(-?)(" + DURATION.pattern + r")")
FOR = re.compile(r"^(\s*for:\s*)(" + DURATION.pattern + r")\s*$", re.M)


def scale_rules(text, factor):
    """The rules file `text` with its range selectors, subqueries' steps, offsets and `for`s
    divided by `factor`. Record names (`ratio_rate5m`) and thresholds are left as they are."""
    if factor <= 0:
        raise ValueError("the factor must be positive")

    def range_(m):
        step = ""
        if m.group(2):
            step = ":" + (scale_duration(m.group(3), factor) if m.group(3) else "")
        return f"[{scale_duration(m.group(1), factor)}{step}]"

    text = RANGE.sub(range_, text)
    text = OFFSET.sub(lambda m: f"offset {m.group(1)}{scale_duration(m.group(2), factor)}", text)
    return FOR.sub(lambda m: m.group(1) + scale_duration(m.group(2), factor), text)
