//! Hostile and broken clients, over raw sockets: requests no route can take, heads and
//! targets over the limits, clients too slow to send a head or a body, a kept-alive
//! connection left idle, a half-sent request at shutdown, and what a client can put into the
//! log. Each timeout test runs the server with timeouts of a few hundred milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::{Connection, Response, TestServer, base_command};

/// `raw` on a new connection, and the answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut connection = Connection::open(addr).unwrap();
    connection.send_raw(raw).unwrap();
    connection.read_response(false).unwrap()
}

#[track_caller]
fn assert_problem_type(response: &Response, status: u16, slug: &str) {
    let problem = response.assert_problem(status);
    assert_eq!(problem["type"], format!("tag:hello-birthday,2026:{slug}"));
}

fn metric(server: &TestServer, series: &str) -> u64 {
    let text = server.get("/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| value.parse().unwrap())
}

#[test]
fn connect_and_a_target_that_is_not_a_path_get_a_problem_that_is_logged_and_counted() {
    let server = TestServer::spawn();
    // warp panicked on these: the worker's connection died without an answer.
    let connect = server.request(
        "CONNECT",
        "example.com:443",
        &[("X-Request-Id", "tunnel-1")],
        None,
    );
    assert_problem_type(&connect, 501, "not-implemented");
    assert_eq!(connect.header("x-request-id"), Some("tunnel-1"));
    for target in ["example.com:443", "*"] {
        let response = server.request("GET", target, &[], None);
        assert_problem_type(&response, 400, "invalid-request-target");
    }

    server.wait_until("the CONNECT is logged", Duration::from_secs(5), || {
        server
            .logs()
            .iter()
            .any(|line| line["request_id"] == "tunnel-1" && line["status"] == 501)
    });
    assert_eq!(
        metric(
            &server,
            r#"http_requests_total{method="OTHER",route="unmatched",status="501"}"#
        ),
        1
    );
    assert_eq!(server.get("/health/live").status, 200);
}

#[test]
fn an_http_1_1_request_without_exactly_one_valid_host_is_a_400() {
    let server = TestServer::spawn();
    for (head, why) in [
        ("GET /health/live HTTP/1.1\r\n\r\n", "no Host"),
        (
            "GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "two",
        ),
        (
            "GET /health/live HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "one twice",
        ),
        (
            "GET /health/live HTTP/1.1\r\nHost: user@a\r\n\r\n",
            "user information",
        ),
        (
            "GET /health/live HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "two, HTTP/1.0",
        ),
    ] {
        let response = exchange(server.addr, head.as_bytes());
        assert_eq!(response.status, 400, "{why}");
        assert_problem_type(&response, 400, "invalid-host");
        assert_eq!(response.header("connection"), Some("close"), "{why}");
    }
    // HTTP/1.0 has no Host requirement (HAProxy's health checks send none).
    let old = exchange(server.addr, b"GET /health/live HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200);
}

#[test]
fn a_header_over_16_kib_or_a_head_over_64_kib_is_431_and_a_target_over_8_kib_is_414() {
    let server = TestServer::spawn();
    // A header line (name and value) may be 16 KiB, as the ALB allows; one byte more is 431.
    let value = |line: usize| "v".repeat(line - "x-big".len());
    let at_limit = value(16 * 1024);
    let fits = server.request("GET", "/health/live", &[("X-Big", &at_limit)], None);
    assert_eq!(fits.status, 200);
    let over = value(16 * 1024 + 1);
    let refused = server.request("GET", "/health/live", &[("X-Big", &over)], None);
    assert_problem_type(&refused, 431, "header-too-large");
    assert_eq!(refused.header("connection"), Some("close"));

    // The whole head over 64 KiB, each header under 16: hyper answers 431 itself, with no
    // body, and closes the connection (it stopped reading at 64 KiB).
    let headers: Vec<(String, String)> = (0..5)
        .map(|i| (format!("X-Part-{i}"), "v".repeat(15 * 1024)))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut connection = Connection::open(server.addr).unwrap();
    let response = connection
        .send("GET", "/health/live", &headers, None)
        .unwrap();
    assert_eq!(response.status, 431);
    assert!(response.body.is_empty());
    connection.wait_closed(Duration::from_secs(5)).unwrap();
    server.wait_until(
        "the refused head is counted",
        Duration::from_secs(5),
        || {
            metric(
                &server,
                r#"http_connections_aborted_total{reason="head_too_large"}"#,
            ) == 1
        },
    );

    let path = |bytes: usize| format!("/{}", "a".repeat(bytes - 1));
    assert_eq!(server.get(&path(8 * 1024)).status, 404);
    let long = server.get(&path(8 * 1024 + 1));
    assert_problem_type(&long, 414, "uri-too-long");
    assert_eq!(server.get("/health/live").status, 200);
}

#[test]
fn a_request_head_that_is_not_whole_within_the_head_timeout_is_closed_unanswered() {
    let server = TestServer::builder()
        .arg("--head-timeout")
        .arg("300")
        .spawn();
    let started = Instant::now();
    let mut silent = Connection::open(server.addr).unwrap();
    let mut partial = Connection::open(server.addr).unwrap();
    partial
        .send_raw(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    for connection in [&mut silent, &mut partial] {
        connection
            .wait_closed(Duration::from_secs(5))
            .expect("closed by the head timeout");
    }
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A byte every 50 ms keeps arriving, but the timeout is for the whole head.
    let mut trickle = Connection::open(server.addr).unwrap();
    let started = Instant::now();
    for byte in b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if trickle.send_raw(&[*byte]).is_err() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        metric(
            &server,
            r#"http_connections_aborted_total{reason="head_timeout"}"#
        ),
        3
    );
}

#[test]
fn a_kept_alive_connection_waits_the_keep_alive_timeout_for_its_next_request_then_closes() {
    let server = TestServer::builder()
        .arg("--head-timeout")
        .arg("200")
        .arg("--keep-alive-timeout")
        .arg("1000")
        .spawn();
    let mut connection = Connection::open(server.addr).unwrap();
    let first = connection.send("GET", "/health/live", &[], None).unwrap();
    assert_eq!(first.status, 200);
    // Idle for longer than the head timeout: waiting for a next request is not a slow head.
    std::thread::sleep(Duration::from_millis(500));
    let second = connection.send("GET", "/health/live", &[], None).unwrap();
    assert_eq!(second.status, 200);
    let answered = Instant::now();
    connection
        .wait_closed(Duration::from_secs(5))
        .expect("closed by the keep-alive timeout");
    assert!(
        answered.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        answered.elapsed()
    );
}

#[test]
fn a_body_that_stalls_or_trickles_past_its_timeouts_is_a_408_and_nothing_is_stored() {
    let server = TestServer::builder()
        .arg("--body-chunk-timeout")
        .arg("300")
        .arg("--body-timeout")
        .arg("1000")
        .spawn();
    let body = br#"{"dateOfBirth":"1990-01-15"}"#;
    let head = format!(
        "PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );

    // The head and one byte of the body, then nothing.
    let mut stalled = Connection::open(server.addr).unwrap();
    let started = Instant::now();
    stalled.send_raw(head.as_bytes()).unwrap();
    stalled.send_raw(&body[..1]).unwrap();
    let response = stalled.read_response(false).unwrap();
    assert_problem_type(&response, 408, "request-timeout");
    assert_eq!(response.header("connection"), Some("close"));
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(1000)).contains(&waited),
        "answered after {waited:?}"
    );
    stalled.wait_closed(Duration::from_secs(5)).unwrap();

    // A byte every 100 ms: never a 300 ms pause, but the whole body takes 2.8 s.
    let mut trickled = Connection::open(server.addr).unwrap();
    let mut writer = trickled.writer().unwrap();
    let started = Instant::now();
    writer.write_all(head.as_bytes()).unwrap();
    let sender = std::thread::spawn(move || {
        for byte in body {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let response = trickled.read_response(false).unwrap();
    let waited = started.elapsed();
    assert_problem_type(&response, 408, "request-timeout");
    assert!(
        response.json()["detail"]
            .as_str()
            .unwrap()
            .contains("in full")
    );
    assert!(
        (Duration::from_millis(1000)..Duration::from_millis(2500)).contains(&waited),
        "answered after {waited:?}"
    );
    sender.join().unwrap();
    assert_eq!(server.get("/hello/alice").status, 404);
}

#[test]
fn shutdown_closes_a_connection_holding_part_of_a_request_head_at_once_and_exits_0() {
    let mut server = TestServer::builder()
        .arg("--shutdown-timeout")
        .arg("10")
        .spawn();
    let mut partial = Connection::open(server.addr).unwrap();
    partial
        .send_raw(b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Le")
        .unwrap();
    assert_eq!(server.get("/health/live").status, 200);
    let signalled = Instant::now();
    server.signal("TERM");
    // Not a request in flight: nothing to wait the 10 s shutdown timeout for.
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    partial.wait_closed(Duration::from_secs(1)).unwrap();
}

#[test]
fn what_a_client_sends_is_logged_cut_to_its_limits_and_unable_to_disguise_the_line() {
    let server = TestServer::spawn();
    let user_agent = "curl\u{2028}{\"level\":\"ERROR\"}\u{202e}gnp.exe\u{2066}";
    let long_path = format!("/hello/{}", "a".repeat(3000));
    let response = server.request(
        "GET",
        &long_path,
        &[("User-Agent", user_agent), ("X-Request-Id", "cut-1")],
        None,
    );
    assert_eq!(response.status, 400);
    let long_method = "M".repeat(40);
    let response = server.request(
        &long_method,
        "/hello/alice",
        &[("X-Request-Id", "cut-2")],
        None,
    );
    assert_eq!(response.status, 405);

    let line = |id: &str| {
        server.wait_until("the request is logged", Duration::from_secs(5), || {
            server.log_lines().iter().any(|l| l.contains(id))
        });
        server
            .log_lines()
            .into_iter()
            .find(|l| l.contains(id))
            .unwrap()
    };
    let raw = line("cut-1");
    for disguise in ['\u{2028}', '\u{202e}', '\u{2066}'] {
        assert!(!raw.contains(disguise), "{disguise:?} unescaped: {raw}");
    }
    let logged: serde_json::Value = serde_json::from_str(&raw).unwrap();
    // Escaped as JSON escapes: a JSON reader gets the client's bytes back, as data.
    assert_eq!(logged["user_agent"], user_agent);
    let path = logged["path"].as_str().unwrap();
    assert_eq!(path, format!("{}…", &long_path[..1024]));

    let logged: serde_json::Value = serde_json::from_str(&line("cut-2")).unwrap();
    assert_eq!(logged["method"], format!("{}…", &long_method[..32]));
}

#[test]
fn the_text_log_format_writes_no_colour_codes_into_a_pipe_and_escapes_line_separators() {
    // Killed on drop, also when an assertion fails (std's `Child` would be left running).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = base_command()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut until = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no line with {needle:?} in {seen:?}"));
            seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    };
    let listening = until("listening");
    let addr: SocketAddr = listening
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .expect("an addr field")
        .parse()
        .unwrap();
    let response = Connection::open(addr)
        .unwrap()
        .send(
            "GET",
            "/health/live",
            &[("User-Agent", "a\u{2028}b"), ("X-Request-Id", "text-1")],
            None,
        )
        .unwrap();
    assert_eq!(response.status, 200);
    let line = until("text-1");
    drop(child);
    assert!(!line.contains('\u{2028}'), "{line}");
    assert!(line.contains(r"a\u{2028}b"), "{line}");
    for line in &seen {
        assert!(!line.contains('\x1b'), "a colour code in a pipe: {line:?}");
    }
}
