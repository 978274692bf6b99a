"""File-system calls on one directory per unit of work, from two `strace -f -y` traces: a run
that did N units minus a run that did none (what starting and stopping cost). scripts/bench.sh
counts them per request, scripts/scale-curve.sh per sweep. Stdlib only; test_fs_calls.py.

    python3 scripts/lib/fs_calls.py DIR N BASELINE_TRACE TRACE
    4.00 (close 1.00, openat 1.00, read 1.00, statx 1.00)
"""

import collections
import os
import re
import sys

# A call's first line: `-f` puts the thread id first. The rest of an interrupted call comes on
# a `<... NAME resumed>` line, which this does not match: each call counts once.
CALL = re.compile(r"(?:\d+ +)?(\w+)\(")


def count(lines, directory):
    """Calls per name among the lines that name directory (-y writes each descriptor's path)."""
    return collections.Counter(m.group(1) for line in lines
                               if directory in line and (m := CALL.match(line)))


def per_unit(baseline, traced, n):
    """Name -> (traced - baseline) / n, in name order, for the calls the work added (0.01 or
    more per unit)."""
    added = {name: (traced[name] - baseline.get(name, 0)) / n for name in sorted(traced)}
    return {name: c for name, c in added.items() if c >= 0.01}


def summary(per, digits):
    total = f"{sum(per.values()):.{digits}f}"
    return f"{total} ({', '.join(f'{name} {c:.{digits}f}' for name, c in per.items())})"


def main(directory, n, baseline, traced):
    if os.path.realpath(directory) != directory:  # -y names each descriptor by its real path
        sys.exit(f"fs_calls.py: {directory} is not a real path: it is {os.path.realpath(directory)}")
    counts = []
    for path in (baseline, traced):
        with open(path, errors="replace") as f:
            counts.append(count(f, directory))
    print(summary(per_unit(*counts, int(n)), 2 if int(n) > 1 else 0))


if __name__ == "__main__":
    main(*sys.argv[1:])
