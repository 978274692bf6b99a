"""Scenario m's arithmetic, kept apart so that it is unit-tested (test_scaletable.py): the
`key=value` lines of examples/scale.rs, a process's CPU time from /proc, and the
cells of the table the scenario prints (row names as in docs/capacity-and-costs.md)."""

from __future__ import annotations


def parse_line(line: str) -> dict[str, str]:
    """One line of `scale`'s output: space-separated key=value pairs. Its last line, if it
    printed several (the binary's own logs may come first)."""
    last = [ln for ln in line.strip().splitlines() if "=" in ln]
    if not last:
        raise ValueError(f"no key=value line in {line!r}")
    fields = {}
    for part in last[-1].split():
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"not key=value: {part!r} in {last[-1]!r}")
        fields[key] = value
    return fields


def cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of /proc/<pid>/stat. The command name (field
    2) is in parentheses and may hold spaces, so the fields are counted after its last ')'."""
    rest = stat[stat.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(rest[11]) + int(rest[12])


def fmt_us(us: float) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def rate_cell(f: dict[str, str]) -> str:
    """A load or raw line as '1,234/s, p50 …, p99 …' (the local-disk table's form)."""
    return f"{float(f['ops_per_s']):,.0f}/s, p50 {fmt_us(float(f['p50_us']))}, p99 {fmt_us(float(f['p99_us']))}"


def cpu_per_request_us(ticks_before: int, ticks_after: int, clk_tck: int, requests: int) -> float | None:
    """The server's CPU time (user + system) over a load, per request, in µs."""
    if requests <= 0:
        return None
    return (ticks_after - ticks_before) / clk_tck * 1e6 / requests
