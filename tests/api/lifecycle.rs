//! Startup, configuration, the healthcheck subcommand and graceful shutdown.

use std::process::Output;
use std::time::Duration;

use crate::helpers::{
    Connection, TestServer, base_command, forget_inherited_settings, hold_every_lock,
    listening_addr,
};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    base_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run hello-birthday")
}

/// Asserts a fast, non-zero exit with exactly one line on stderr containing `needle`.
#[track_caller]
fn assert_fails_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited 0; stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
}

#[test]
fn help_documents_every_setting_and_its_variable() {
    let output = run(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--listen",
        "LISTEN_ADDR",
        "--data-dir",
        "DATA_DIR",
        "--log-format",
        "LOG_FORMAT",
        "--lock-timeout",
        "LOCK_TIMEOUT_MS",
        "--storage-timeout",
        "STORAGE_TIMEOUT_MS",
        "--drain-delay",
        "DRAIN_DELAY_SECS",
        "--shutdown-timeout",
        "SHUTDOWN_TIMEOUT_SECS",
        "--max-storage-ops",
        "MAX_STORAGE_OPS",
        "--orphan-age",
        "ORPHAN_AGE_SECS",
        "--head-timeout",
        "HEAD_TIMEOUT_MS",
        "--body-chunk-timeout",
        "BODY_CHUNK_TIMEOUT_MS",
        "--body-timeout",
        "BODY_TIMEOUT_MS",
        "--keep-alive-timeout",
        "KEEP_ALIVE_TIMEOUT_MS",
        "healthcheck",
        "RUST_LOG",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}

#[test]
fn a_bad_listen_address_exits_at_once_naming_it() {
    assert_fails_with(&run(&["--listen", "not-an-address"], &[]), "not-an-address");
    assert_fails_with(
        &run(&[], &[("LISTEN_ADDR", "999.1.1.1:80")]),
        "999.1.1.1:80",
    );
}

#[test]
fn a_lock_timeout_longer_than_the_storage_timeout_exits_at_once_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--lock-timeout",
            "3000",
            "--storage-timeout",
            "2000",
        ],
        &[("DATA_DIR", dir.path().to_str().unwrap())],
    );
    assert_fails_with(
        &output,
        "--lock-timeout (3s) must not exceed --storage-timeout (2s)",
    );
}

#[test]
fn flags_win_over_environment_variables() {
    // The environment says garbage; the flag says something valid: the server starts.
    let server = TestServer::builder()
        .env("LISTEN_ADDR", "garbage")
        .env("LOG_FORMAT", "garbage")
        .spawn();
    assert_eq!(server.get("/health/live").status, 200);
}

#[test]
fn a_spawned_server_inherits_none_of_the_settings_of_the_tests_environment() {
    // As if the developer's shell set every variable the app reads to a value it refuses
    // (`STORAGE_TIMEOUT_MS` once leaked in this way: the helpers' list of them had drifted).
    let mut command = std::process::Command::new(crate::helpers::BINARY);
    for setting in hello_birthday::configuration::environment() {
        command.env(&setting.name, "not a valid value");
    }
    forget_inherited_settings(&mut command);
    let dir = tempfile::tempdir().unwrap();
    let mut child = command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        listening_addr(&line).is_some(),
        "did not start: {line:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-env");
    let mut child = base_command()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATA_DIR", &data)
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let log: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(log["message"], "listening");
    assert!(data.join("users").is_dir(), "DATA_DIR was not used");
}

#[test]
fn a_data_dir_that_is_a_file_or_cannot_be_created_exits_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let file_arg = file.to_str().unwrap();
    assert_fails_with(
        &run(&["--listen", "127.0.0.1:0", "--data-dir", file_arg], &[]),
        file_arg,
    );
    let below_file = file.join("data");
    let below_arg = below_file.to_str().unwrap();
    assert_fails_with(
        &run(&["--listen", "127.0.0.1:0", "--data-dir", below_arg], &[]),
        below_arg,
    );
}

#[test]
fn an_address_in_use_exits_naming_it() {
    let server = TestServer::spawn();
    let addr = server.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &[
            "--listen",
            &addr,
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_fails_with(&output, &addr);
}

#[test]
fn a_missing_data_dir_is_created() {
    let server = TestServer::spawn();
    assert!(server.data_dir.join("users").is_dir());
    assert!(server.data_dir.join("locks").is_dir());
}

#[test]
fn the_healthcheck_subcommand_reflects_liveness() {
    let server = TestServer::spawn();
    // Bound to 0.0.0.0 in a container: the check goes to loopback.
    let port = server.addr.port();
    let ok = run(
        &["--listen", &format!("0.0.0.0:{port}"), "healthcheck"],
        &[],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = run(
        &["healthcheck"],
        &[("LISTEN_ADDR", &server.addr.to_string())],
    );
    assert!(ok.status.success());

    drop(server);
    let down = run(
        &["--listen", &format!("127.0.0.1:{port}"), "healthcheck"],
        &[],
    );
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let mut server = TestServer::spawn();
    // A PUT whose body has not fully arrived is in flight when the signal comes.
    let mut in_flight = Connection::open(server.addr).unwrap();
    let body = br#"{"dateOfBirth":"1990-01-15"}"#;
    in_flight
        .send_raw(
            format!(
                "PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    in_flight.send_raw(&body[..10]).unwrap();
    // Make sure the server has accepted that connection before signalling.
    assert_eq!(server.get("/health/live").status, 200);

    server.signal("TERM");
    // Once the listener is closed the server has begun shutting down.
    server.wait_until("the listener closes", Duration::from_secs(10), || {
        std::net::TcpStream::connect(server.addr).is_err()
    });
    in_flight.send_raw(&body[10..]).unwrap();
    let response = in_flight.read_response(false).unwrap();
    assert_eq!(
        response.status, 204,
        "the in-flight request was not answered"
    );
    assert_eq!(response.header("connection"), Some("close"));

    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let restarted = TestServer::builder().data_dir(&server.data_dir).spawn();
    assert_eq!(
        restarted.get("/hello/alice").status,
        200,
        "the write was not kept"
    );
}

#[test]
fn during_the_drain_delay_readiness_is_503_while_requests_are_still_served() {
    let mut server = TestServer::builder().arg("--drain-delay").arg("2").spawn();
    server.put_date("alice", "1990-01-15");
    server.signal("TERM");
    server.wait_until("readiness turns 503", Duration::from_secs(5), || {
        server.get("/health/ready").status == 503
    });
    let problem = server.get("/health").assert_problem(503);
    assert_eq!(problem["checks"]["shutdown"], "in progress");
    let greeting = server.get("/hello/alice");
    assert_eq!(
        greeting.status, 200,
        "stopped serving during the drain delay"
    );
    assert_eq!(greeting.header("connection"), Some("close"));
    assert_eq!(server.get("/health/live").status, 200);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_request_that_outlives_the_shutdown_timeout_makes_the_exit_non_zero() {
    let mut server = TestServer::builder()
        .arg("--shutdown-timeout")
        .arg("1")
        .spawn();
    let mut stuck = Connection::open(server.addr).unwrap();
    stuck
        .send_raw(
            b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nX-Request-Id: stuck-1\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    assert_eq!(server.get("/health/live").status, 200);
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(1));
    // The request it cut off is logged as such, with its id.
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line["request_id"] == "stuck-1"
                && line["message"] == "request cancelled before its answer"),
        "{:?}",
        server.logs()
    );
}

#[test]
fn a_write_stuck_on_a_lock_does_not_keep_the_process_alive_after_the_shutdown_timeout() {
    let mut server = TestServer::builder()
        .arg("--shutdown-timeout")
        .arg("1")
        .arg("--lock-timeout")
        .arg("50000")
        .arg("--storage-timeout")
        .arg("50000")
        .spawn();
    let _held = hold_every_lock(&server.data_dir);
    // The write waits for the lock on a blocking thread, for up to the 50 s lock timeout.
    let _stuck = server.put_that_waits_for_a_lock(&[]);

    let signalled = std::time::Instant::now();
    server.signal("TERM");
    // Shutdown timeout (1 s) plus the grace for blocking calls (1 s), not the lock timeout.
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited after {:?}",
        signalled.elapsed()
    );
}

#[test]
fn a_log_reader_that_stops_reading_does_not_stop_the_server() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    // Killed on drop, also when an assertion fails (std's `Child` would be left running).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = base_command()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    // Read up to the address, then never again: the pipe (64 KiB) fills with access-log lines,
    // as it would behind a stalled log driver.
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "exited before listening"
        );
        if let Some(addr) = listening_addr(&line) {
            break addr;
        }
    };

    // About 600 KB of access log, ten times what the pipe holds. Were lines written on the
    // async workers, each would block in write(2) and the requests would stop being answered.
    let mut connection = Connection::open(addr).unwrap();
    for _ in 0..3000 {
        let response = connection.send("GET", "/health/live", &[], None).unwrap();
        assert_eq!(response.status, 200);
    }
    drop(child);
    drop(stdout);
}
