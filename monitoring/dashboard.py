"""Writes monitoring/dashboard.json, the Grafana dashboard of hello-birthday, from the panel
list below: `python3 monitoring/dashboard.py`. The JSON is committed; a unit test
(scripts/alerting/test_dashboard.py) fails when it differs from what this prints, and the
alerting rehearsal runs every query against a live Prometheus.

Every query takes its data source from the `datasource` variable and rates over
`$__rate_interval`; the job is hello-birthday's scrape job.
"""

import json
import os

J = 'job="hello-birthday"'
HELLO = f'{J},route="/hello/{{username}}"'
R = "$__rate_interval"

# (row, title, panel type, unit, [(legend, expr)])
PANELS = [
    ("SLOs and error budget", "Availability: 5xx ratio of PUT/GET /hello (SLO 99.9 %)", "timeseries", "percentunit", [
        ("5m", 'slo:sli_error:ratio_rate5m{slo="availability"}'),
        ("1h", 'slo:sli_error:ratio_rate1h{slo="availability"}'),
        ("6h", 'slo:sli_error:ratio_rate6h{slo="availability"}'),
    ]),
    ("SLOs and error budget", "Availability: budget burn rate (page at 14.4 and 6)", "timeseries", "none", [
        ("1h", 'slo:sli_error:ratio_rate1h{slo="availability"} / 0.001'),
        ("6h", 'slo:sli_error:ratio_rate6h{slo="availability"} / 0.001'),
    ]),
    ("SLOs and error budget", "Availability: budget left over 3 days", "stat", "percentunit", [
        ("left", '1 - slo:sli_error:ratio_rate3d{slo="availability"} / 0.001'),
    ]),
    ("SLOs and error budget", "Latency: share of GETs over 25 ms (SLO 99 %)", "timeseries", "percentunit", [
        ("5m", 'slo:sli_error:ratio_rate5m{slo="latency"}'),
        ("1h", 'slo:sli_error:ratio_rate1h{slo="latency"}'),
        ("6h", 'slo:sli_error:ratio_rate6h{slo="latency"}'),
    ]),
    ("SLOs and error budget", "Latency: budget burn rate (page at 14.4 and 6)", "timeseries", "none", [
        ("1h", 'slo:sli_error:ratio_rate1h{slo="latency"} / 0.01'),
        ("6h", 'slo:sli_error:ratio_rate6h{slo="latency"} / 0.01'),
    ]),
    ("SLOs and error budget", "Latency: budget left over 3 days", "stat", "percentunit", [
        ("left", '1 - slo:sli_error:ratio_rate3d{slo="latency"} / 0.01'),
    ]),
    ("Requests", "Requests per second by route, method and status", "timeseries", "reqps", [
        ("{{method}} {{route}} {{status}}", f"sum by (route, method, status) (rate(http_requests_total{{{J}}}[{R}]))"),
    ]),
    ("Requests", "5xx per second by route and method", "timeseries", "reqps", [
        ("{{method}} {{route}}", f'sum by (route, method) (rate(http_requests_total{{{J},status=~"5.."}}[{R}]))'),
    ]),
    ("Requests", "Latency p50 and p99 by route and method", "timeseries", "s", [
        ("p99 {{method}} {{route}}", f"histogram_quantile(0.99, sum by (le, route, method) (rate(http_request_duration_seconds_bucket{{{J}}}[{R}])))"),
        ("p50 {{method}} {{route}}", f"histogram_quantile(0.5, sum by (le, route, method) (rate(http_request_duration_seconds_bucket{{{J}}}[{R}])))"),
    ]),
    ("Storage", "Storage latency p99 by operation (slot and lock waits included)", "timeseries", "s", [
        ("{{operation}}", f"histogram_quantile(0.99, sum by (le, operation) (rate(storage_operation_duration_seconds_bucket{{{J}}}[{R}])))"),
    ]),
    ("Storage", "Storage errors per second by operation and kind", "timeseries", "ops", [
        ("{{operation}} {{kind}}", f"sum by (operation, kind) (rate(storage_errors_total{{{J}}}[{R}]))"),
    ]),
    ("Storage", "Storage slots in use by instance (of --max-storage-ops)", "timeseries", "none", [
        ("{{instance}}", f"storage_operations_in_flight{{{J}}}"),
    ]),
    ("Storage", "Lock wait p99, and writes that gave up on a lock", "timeseries", "s", [
        ("lock wait p99", f"histogram_quantile(0.99, sum by (le) (rate(storage_lock_wait_seconds_bucket{{{J}}}[{R}])))"),
        ("lock timeouts/s", f"sum(rate(storage_lock_timeouts_total{{{J}}}[{R}]))"),
    ]),
    ("Storage", "Writes fenced (by reason) and unconfirmed, per second", "timeseries", "ops", [
        ("fenced {{reason}}", f"sum by (reason) (rate(storage_writes_fenced_total{{{J}}}[{R}]))"),
        ("unconfirmed", f"sum(rate(storage_writes_unconfirmed_total{{{J}}}[{R}]))"),
    ]),
    ("Storage", "Orphan sweep: temp files met, by outcome", "timeseries", "none", [
        ("{{outcome}}", f"sum by (outcome) (storage_orphans_swept_total{{{J}}})"),
    ]),
    ("Instances and deploys", "Scraped (up) and ready, by instance", "timeseries", "none", [
        ("up {{instance}}", f"up{{{J}}}"),
        ("ready {{instance}}", f"service_ready{{{J}}}"),
    ]),
    ("Instances and deploys", "Version and commit of each instance", "table", "none", [
        ("{{instance}} {{version}} {{commit}}", f"max by (instance, version, commit) (hello_birthday_build_info{{{J}}})"),
    ]),
    ("Instances and deploys", "Uptime by instance", "timeseries", "s", [
        ("{{instance}}", f"time() - process_start_time_seconds{{{J}}}"),
    ]),
    ("Instances and deploys", "Alerts firing", "table", "none", [
        ("{{alertname}} {{instance}}", 'ALERTS{alertstate="firing"}'),
    ]),
]


def build():
    ds = {"type": "prometheus", "uid": "${datasource}"}
    panels, y, pid, row_seen = [], 0, 1, None
    x = 0
    for row, title, kind, unit, queries in PANELS:
        if row != row_seen:
            if x:
                y, x = y + 8, 0
            panels.append({"id": pid, "type": "row", "title": row, "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
            pid, y, row_seen = pid + 1, y + 1, row
        panel = {
            "id": pid, "type": kind, "title": title, "datasource": ds,
            "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "datasource": ds, "expr": expr, "legendFormat": legend}
                        for i, (legend, expr) in enumerate(queries)],
        }
        if kind == "table":
            for target in panel["targets"]:
                target.update({"instant": True, "format": "table"})
        panels.append(panel)
        pid += 1
        x += 8
        if x >= 24:
            y, x = y + 8, 0
    return {
        "title": "hello-birthday",
        "uid": "hello-birthday",
        "tags": ["hello-birthday"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "options": [],
        }]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render():
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard.json")
    with open(path, "w") as f:
        f.write(render())
    print(f"wrote {path}")
