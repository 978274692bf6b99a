"""NFS round trips per request, from the NFS client's own per-operation counters.

/proc/self/mountstats has, for every NFS mount, one line per NFS operation under "per-op
statistics": `OPEN: ops transmissions timeouts bytes_sent bytes_received queue rtt execute
[errors]`. An NFSv4 request is one compound RPC that the client counts under its main operation
(OPEN, READ, CLOSE, LOCK, ...), so the growth of the first column between two reads is how many
round trips the mount made in between, by operation. Retransmissions are not round trips of
their own here: `ops` counts each request once.

The counters are per mount (per NFS server of one client); the client's lease renewals go over
the client's own RPC client, not the mount's, and are not counted.

Pure functions only (the scenario reads the file): parse, difference, summary.
"""

from __future__ import annotations

import statistics
from collections import Counter


def parse(text: str) -> dict[str, dict[str, int]]:
    """{mount point: {operation: requests sent}} for every NFS mount in a mountstats text,
    operations in the kernel's order. Other file systems are left out."""
    mounts: dict[str, dict[str, int]] = {}
    ops: dict[str, int] | None = None  # the current NFS mount's counters
    in_ops = False
    for line in text.splitlines():
        if line.startswith("device "):
            # device SERVER:/PATH mounted on /MOUNT with fstype nfs4 statvers=1.1
            words = line.split()
            ops, in_ops = None, False
            try:
                at = words.index("on") + 1
                fstype = words[words.index("fstype") + 1]
            except (ValueError, IndexError):
                continue
            if fstype in ("nfs", "nfs4"):
                ops = mounts.setdefault(unescape(words[at]), {})
            continue
        if ops is None:
            continue
        stripped = line.strip()
        if stripped == "per-op statistics":
            in_ops = True
        elif in_ops and ":" in stripped:
            name, _, counts = stripped.partition(":")
            fields = counts.split()
            if name and fields and fields[0].isdigit():
                ops[name] = int(fields[0])
    return mounts


def unescape(path: str) -> str:
    """Mount points as the kernel prints them: space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The operations sent between two reads of one mount's counters, those that grew only.
    A counter that went down means the mount was not the same one (remounted): an error."""
    out = {}
    for op, n in after.items():
        d = n - before.get(op, 0)
        if d < 0:
            raise ValueError(f"{op} went from {before[op]} to {n}: not the same mount")
        if d:
            out[op] = d
    return out


def breakdown(ops: dict[str, int]) -> str:
    """`OPEN, READ, CLOSE` (in the kernel's order), `LOCK x2` for repeats, `none` for nothing."""
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in ops.items()) or "none"


def summarize(samples: list[dict[str, int]]) -> dict:
    """What requests of one kind cost: the median, least and most round trips, and the most
    common set of operations with how many samples had exactly it."""
    if not samples:
        return {"n": 0}
    totals = [sum(s.values()) for s in samples]
    kinds = Counter(breakdown(s) for s in samples)
    typical, seen = kinds.most_common(1)[0]
    return {
        "n": len(samples),
        "median": statistics.median(totals),
        "min": min(totals),
        "max": max(totals),
        "typical": typical,
        "typical_n": seen,
        "others": {k: v for k, v in kinds.items() if k != typical},
    }


def format_row(label: str, s: dict, p50_ms: float | None) -> str:
    """One line of the table the scenario prints."""
    if not s["n"]:
        return f"{label:42} no samples"
    spread = f"{s['min']}" if s["min"] == s["max"] else f"{s['min']}-{s['max']}"
    median = f"{s['median']:g}"
    latency = "-" if p50_ms is None else f"{p50_ms:.1f}"
    return f"{label:42} {median:>6} {spread:>6} {latency:>7}  {s['typical']} ({s['typical_n']} of {s['n']})"


def header() -> str:
    return f"{'request':42} {'median':>6} {'range':>6} {'p50 ms':>7}  typical operations (how many had exactly these)"
