//! Probes, metrics, request ids and access logs.

use std::time::Duration;

use crate::helpers::{Connection, TestServer, record_files};

#[test]
fn liveness_and_readiness_answer_200_with_json() {
    let server = TestServer::spawn();
    let live = server.get("/health/live");
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "live");
    for path in ["/health/ready", "/health"] {
        let ready = server.get(path);
        assert_eq!(ready.status, 200, "{path}");
        assert_eq!(ready.header("content-type"), Some("application/json"));
        assert_eq!(ready.json()["status"], "ready");
        assert_eq!(ready.json()["checks"]["dataDir"], "ok");
    }
}

#[test]
fn readiness_fails_with_the_failing_check_when_the_data_dir_breaks_and_recovers() {
    let server = TestServer::spawn();
    assert_eq!(server.get("/health/ready").status, 200);

    // Replace the data directory with a file: every probe write now fails. (Root ignores
    // permission bits, so breaking the directory itself is what works for any user.)
    let moved = server.data_dir.with_extension("moved");
    std::fs::rename(&server.data_dir, &moved).unwrap();
    std::fs::write(&server.data_dir, b"not a directory").unwrap();
    server.wait_until("readiness turns 503", Duration::from_secs(10), || {
        server.get("/health/ready").status == 503
    });
    let problem = server.get("/health").assert_problem(503);
    assert!(
        problem["checks"]["dataDir"]
            .as_str()
            .unwrap()
            .starts_with("failed: "),
        "{problem}"
    );
    assert!(
        !problem
            .to_string()
            .contains(server.data_dir.to_str().unwrap()),
        "the probe leaks the path: {problem}"
    );
    // Liveness does not depend on storage.
    assert_eq!(server.get("/health/live").status, 200);
    assert!(server.get("/metrics").text().contains("service_ready 0"));

    std::fs::remove_file(&server.data_dir).unwrap();
    std::fs::rename(&moved, &server.data_dir).unwrap();
    server.wait_until("readiness recovers", Duration::from_secs(10), || {
        server.get("/health/ready").status == 200
    });
    assert!(server.get("/metrics").text().contains("service_ready 1"));
}

#[test]
fn metrics_expose_requests_by_route_template_storage_and_build_info() {
    let server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    server.get("/hello/alice");
    server.get("/hello/bob");
    server.get("/nowhere/at/all");
    server.get("/health/ready");

    let response = server.get("/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text();
    for expected in [
        r#"http_requests_total{method="PUT",route="/hello/{username}",status="204"} 1"#,
        r#"http_requests_total{method="GET",route="/hello/{username}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="/hello/{username}",status="404"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/hello/{username}",le="+Inf"} 2"#,
        r#"storage_operation_duration_seconds_count{operation="put"} 1"#,
        r#"storage_operation_duration_seconds_count{operation="get"} 2"#,
        "storage_lock_wait_seconds_count 1",
        "storage_lock_timeouts_total 0",
        "service_ready 1",
        r#"hello_birthday_build_info{commit="#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("alice"), "raw paths leaked into labels");
}

#[test]
fn request_ids_are_echoed_or_generated_and_logged_once_per_request() {
    let server = TestServer::spawn();
    let echoed = server.request("GET", "/hello/alice", &[("X-Request-Id", "abc-123")], None);
    assert_eq!(echoed.header("x-request-id"), Some("abc-123"));
    let generated = server.get("/health/live");
    let id = generated.header("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let forged = server.request("GET", "/health/live", &[("X-Request-Id", "a\"b")], None);
    assert_ne!(forged.header("x-request-id"), Some("a\"b"));

    server.wait_until("both requests are logged", Duration::from_secs(5), || {
        server
            .logs()
            .iter()
            .filter(|l| l["message"] == "request")
            .count()
            >= 3
    });
    let logs = server.logs();
    let line = logs
        .iter()
        .find(|l| l["request_id"] == "abc-123")
        .expect("a log line with the client's request id");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/hello/{username}");
    assert_eq!(line["status"], 404);
    assert!(line["duration_ms"].as_f64().is_some());
    assert_eq!(
        logs.iter()
            .filter(|l| l["request_id"] == id.as_str())
            .count(),
        1
    );
}

#[test]
fn a_flood_of_readiness_probes_costs_about_one_storage_probe_per_second() {
    let server = TestServer::spawn();
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(server.get("/health/ready").status, 200);
    }
    let seconds = started.elapsed().as_secs();
    let text = server.get("/metrics").text();
    let probes: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"storage_operation_duration_seconds_count{operation="probe"} "#)
        })
        .expect("probe count")
        .parse()
        .unwrap();
    assert!(probes >= 1, "readiness never probed storage");
    assert!(
        probes <= seconds + 2,
        "{probes} probes for 50 requests in {seconds}s: not cached"
    );
}

#[test]
fn a_client_that_hangs_up_mid_request_is_counted_and_not_logged_as_an_error() {
    let server = TestServer::spawn();
    // Half a request head, then the connection is gone (the end of a load test, a crashed
    // client). warp logged each at ERROR with nothing an operator could act on.
    let mut client = Connection::open(server.addr).unwrap();
    client
        .send_raw(b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Len")
        .unwrap();
    drop(client);

    server.wait_until("the hang-up is counted", Duration::from_secs(10), || {
        server
            .get("/metrics")
            .text()
            .contains(r#"http_connections_aborted_total{reason="incomplete_request"} 1"#)
    });
    let errors: Vec<_> = server
        .logs()
        .into_iter()
        .filter(|line| line["level"] == "ERROR" || line["level"] == "WARN")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn metrics_expose_the_start_time_and_what_the_orphan_sweep_met() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut first = TestServer::spawn();
    let text = first.get("/metrics").text();
    let started: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("process_start_time_seconds "))
        .unwrap_or_else(|| panic!("no process_start_time_seconds in\n{text}"))
        .parse()
        .unwrap();
    assert!(
        (before - 1.0..before + 60.0).contains(&started),
        "start time {started} is not about now ({before})"
    );
    for expected in [
        r#"storage_orphans_swept_total{outcome="error"} 0"#,
        r#"storage_orphans_swept_total{outcome="in_use"} 0"#,
        "storage_writes_unconfirmed_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    // A crashed writer's temp file, met by the next instance's startup sweep.
    first.put_date("alice", "1990-01-15");
    let record = record_files(&first.data_dir).pop().unwrap();
    let key = record.file_stem().unwrap().to_str().unwrap();
    let orphan = record.with_file_name(format!(".{key}.json.tmp-0123456789abcdef-7"));
    std::fs::write(&orphan, br#"{"schema":1,"user"#).unwrap();
    let data_dir = first.data_dir.clone();
    first.kill();
    let second = TestServer::builder()
        .data_dir(&data_dir)
        .arg("--orphan-age")
        .arg("0")
        .spawn();
    second.wait_until("the sweep is counted", Duration::from_secs(10), || {
        second
            .get("/metrics")
            .text()
            .contains(r#"storage_orphans_swept_total{outcome="removed"} 1"#)
    });
    assert!(!orphan.exists());
}
