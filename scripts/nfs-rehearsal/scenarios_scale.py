"""Scenario m of the NFS rehearsal: the service at scale on NFS, measured by examples/scale.rs
over host 1's mount as docs/capacity-and-costs.md measures a local disk (docs/testing.md). Its
directory is not the other scenarios' one (no watched user, no orphan the end-of-run sweep must
see), and it is removed at the end.
"""

from __future__ import annotations

import os
import shutil

import scaletable as st
from framework import Driver, Scenario
from lab import ScenarioError, free_ports, now

# On the path once lab is imported.
from rehearsal_kit import http, metric_value, status_kib  # noqa: E402

CONNECTIONS = 16
RAW_THREADS = 4
SCALE_PORT = 8081
EXPORT_SIZE = "32m"  # guest-init.sh's, restored at the end


def scale(lab: Driver, args: list[str], timeout: float, host=None) -> dict[str, str]:
    """One `scale` command (in `host`'s network namespace, if given), its key=value line."""
    argv = (lab.ns(host) if host else []) + [lab.args.scale_binary] + args
    r = lab.run(argv, timeout=min(timeout, max(1.0, lab.remaining())))
    return st.parse_line(r.stdout)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def scenario_m(lab: Driver, sc: Scenario) -> None:
    n, seconds = lab.args.scale_users, lab.args.scale_seconds
    h1 = lab.hosts[0]
    server_dir = os.path.join(lab.server_root, "scale")
    mount_dir = os.path.join(h1.data_dir, "scale")  # the same directory, through h1's NFS mount
    rows: dict[str, str] = {}
    if not lab.local:
        # ~4 KiB of tmpfs per record, and the directories: far more than the export's 32 MiB.
        size_mib = 64 + n * 6 // 1024
        lab.run(["mount", "-o", f"remount,size={size_mib}m", lab.server_root])
        sc.say(f"export resized to {size_mib} MiB for {n:,} records")
    instance = None
    try:
        t = now()
        seeded = scale(lab, ["seed", "--data-dir", server_dir, "--users", str(n)], 900)
        sc.say(f"seeded {n:,} users on the server side in {now() - t:.1f} s (not measured: the export's local directory, no fsync)")

        flags = lab.flags
        f = scale(lab, ["startup", "--data-dir", mount_dir, "--runs", "3", "--", lab.binary] + flags, 600, h1)
        rows["start to ready, median of 3 (max)"] = f"{float(f['ready_median_ms']):,.0f} ms ({float(f['ready_max_ms']):,.0f} ms)"
        rows["startup sweep (lists every fan-out directory), median of 3 (max)"] = f"{float(f['startup_sweep_median_ms']):,.0f} ms ({float(f['startup_sweep_max_ms']):,.0f} ms)"
        f = scale(lab, ["sweep", "--data-dir", mount_dir, "--scope", "in-flight", "--runs", "5"], 120)
        rows["periodic sweep (lists `tmp/`), median of 5"] = f"{float(f['median_ms']):.2f} ms"

        # The instance under load: host 1, the lab's flags, its own port.
        ip, port = (h1.ip, SCALE_PORT) if not lab.local else ("127.0.0.1", free_ports(1)[0])
        log_path = os.path.join(lab.args.out, "scale.log")
        instance = lab.spawn(lab.ns(h1) + [lab.binary, "--listen", f"{ip}:{port}", "--data-dir", mount_dir] + flags, log_path=log_path)
        # Load only once its startup sweep is over: it lists every user and would be measured too.
        def swept() -> bool:
            status, text = http("GET", f"http://{ip}:{port}/metrics")
            return status == 200 and metric_value(text, 'storage_operation_duration_seconds_count{operation="sweep"}') >= 1

        if not lab.wait_until(lambda: instance.poll() is not None or swept(), 300, 0.5) or instance.poll() is not None:
            raise ScenarioError(f"the scale instance was not ready and swept within 300 s (see {log_path})")
        clk_tck = os.sysconf("SC_CLK_TCK")
        cpu = {}
        for kind, label in (("known", "GET known user"), ("unknown", "GET unknown user (404)"), ("put", "PUT")):
            before = st.cpu_ticks(read(f"/proc/{instance.pid}/stat"))
            f = scale(lab, ["load", "--target", f"{ip}:{port}", "--users", str(n), "--kind", kind, "--connections", str(CONNECTIONS), "--seconds", str(seconds)], seconds + 120)
            after = st.cpu_ticks(read(f"/proc/{instance.pid}/stat"))
            cpu[kind] = st.cpu_per_request_us(before, after, clk_tck, int(f["ops"]))
            rows[label] = st.rate_cell(f)
            sc.say(f"{label}: {' '.join(f'{k}={v}' for k, v in f.items())}, server CPU {cpu[kind] or 0:.0f} µs a request, load average {os.getloadavg()[0]:.2f}")
        rows["server RSS after the load (peak)"] = f"{status_kib(instance.pid, 'VmRSS') / 1024:.1f} MB (peak {status_kib(instance.pid, 'VmHWM') / 1024:.1f} MB)"
        rows["server CPU per request: GET known / unknown / PUT"] = " / ".join(f"{cpu[k]:,.0f} µs" if cpu[k] is not None else "-" for k in ("known", "unknown", "put"))
        f = scale(lab, ["raw", "--data-dir", mount_dir, "--users", str(n), "--threads", str(RAW_THREADS), "--seconds", str(seconds)], seconds + 120)
        rows[f"raw open+read+close, {RAW_THREADS} threads"] = st.rate_cell(f)

        sc.timeline["scale"] = {"users": n, "seed_s": float(seeded.get("seed_s", "nan")), "rows": rows}
        sc.say(f"{n:,} users on NFS via h1, {CONNECTIONS} connections, {seconds:g} s per load (software emulation: compare with each other, not with hardware):")
        width = max(len(k) for k in rows)
        for k, v in rows.items():
            sc.say(f"  {k:{width}}  {v}")
    finally:
        if instance is not None:
            if instance.poll() is None:
                instance.terminate()
            lab.reap(instance, 30)
        t = now()
        shutil.rmtree(server_dir, ignore_errors=True)
        if not lab.local:
            lab.run(["mount", "-o", f"remount,size={EXPORT_SIZE}", lab.server_root])
        sc.say(f"removed the scale directory in {now() - t:.1f} s" + ("" if lab.local else f", export back to {EXPORT_SIZE}"))


SCENARIOS = {
    "m": ("scale: many users on NFS (--scale-users)", scenario_m, 90, False),
}
