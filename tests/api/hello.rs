//! The `/hello/<username>` contract.

use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate};

use crate::helpers::{Connection, TestServer, hold_every_lock, on_a_stable_date, snapshot, today};

/// A date of birth whose birthday is `days` days from `today`, in a leap year so that
/// 29 February works too.
fn born_days_from(today: NaiveDate, days: u64) -> NaiveDate {
    let day = today + Days::new(days);
    NaiveDate::from_ymd_opt(2000, day.month(), day.day()).unwrap()
}

#[test]
fn put_answers_204_with_an_empty_body_for_create_and_update() {
    let server = TestServer::spawn();
    for date in ["1990-01-15", "1991-02-16"] {
        let response = server.put_date("alice", date);
        assert_eq!(response.status, 204);
        assert!(response.body.is_empty());
    }
    let record: Vec<_> = crate::helpers::record_files(&server.data_dir);
    assert_eq!(record.len(), 1, "update replaced the record: {record:?}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record[0]).unwrap()).unwrap();
    assert_eq!(stored["dateOfBirth"], "1991-02-16");
    assert_eq!(stored["username"], "alice");
    assert_eq!(stored["schema"], 1);
}

#[test]
fn get_answers_the_exact_greeting() {
    let server = TestServer::spawn();
    on_a_stable_date(|today| {
        for (days, expected) in [
            (0, "Hello, alice! Happy birthday!".to_owned()),
            (1, "Hello, alice! Your birthday is in 1 day(s)".to_owned()),
            (5, "Hello, alice! Your birthday is in 5 day(s)".to_owned()),
        ] {
            let born = born_days_from(today, days);
            assert_eq!(server.put_date("alice", &born.to_string()).status, 204);
            let response = server.get("/hello/alice");
            assert_eq!(response.status, 200);
            assert_eq!(response.header("content-type"), Some("application/json"));
            let body = response.text();
            let wanted = serde_json::json!({ "message": expected }).to_string();
            if body != wanted {
                return Err(format!("born {born}: got {body}, wanted {wanted}"));
            }
        }
        Ok(())
    });
}

#[test]
fn yesterdays_birthday_is_a_year_away() {
    let server = TestServer::spawn();
    on_a_stable_date(|today| {
        let yesterday = today - Days::new(1);
        let born = NaiveDate::from_ymd_opt(1980, yesterday.month(), yesterday.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(1980, 2, 29).unwrap());
        server.put_date("bob", &born.to_string());
        let next = born
            .with_year(today.year() + 1)
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(today.year() + 1, 2, 28).unwrap());
        let days = (next - today).num_days();
        let message = server.get("/hello/bob").json()["message"].clone();
        let wanted = format!("Hello, bob! Your birthday is in {days} day(s)");
        (message == wanted.as_str())
            .then_some(())
            .ok_or(format!("{message} != {wanted}"))
    });
}

#[test]
fn unicode_names_are_users_and_nfd_and_nfc_are_the_same_user() {
    let server = TestServer::spawn();
    assert_eq!(server.put_date("J%C3%BCrgen", "1990-01-15").status, 204);
    let message = server.get("/hello/J%C3%BCrgen").json()["message"].clone();
    assert!(
        message.as_str().unwrap().starts_with("Hello, Jürgen! "),
        "{message}"
    );

    // "José" sent decomposed (e + U+0301) is stored and greeted as NFC "José".
    assert_eq!(server.put_date("Jose%CC%81", "1985-03-03").status, 204);
    let message = server.get("/hello/Jos%C3%A9").json()["message"].clone();
    assert!(
        message.as_str().unwrap().starts_with("Hello, Jos\u{e9}! "),
        "{message}"
    );
}

#[test]
fn names_are_case_sensitive_and_case_preserving() {
    let server = TestServer::spawn();
    server.put_date("Alice", "1990-01-15");
    assert!(
        server.get("/hello/Alice").json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Hello, Alice!")
    );
    server.get("/hello/alice").assert_problem(404);
    server.get("/hello/ALICE").assert_problem(404);
}

#[test]
fn unknown_users_are_404_problems() {
    let server = TestServer::spawn();
    let problem = server.get("/hello/nobody").assert_problem(404);
    assert!(
        problem["detail"].as_str().unwrap().contains("nobody"),
        "{problem}"
    );
}

#[test]
fn invalid_usernames_are_400_on_put_and_get() {
    let server = TestServer::spawn();
    let long = "a".repeat(65);
    let cases = [
        ("alice1", "digit"),
        ("al_ice", "underscore"),
        ("al-ice", "hyphen"),
        ("a.b", "dot"),
        ("a%2Fb", "encoded slash"),
        ("a%00b", "encoded NUL"),
        ("a%20b", "encoded space"),
        ("%F0%9F%98%80", "emoji"),
        ("%FF%FE", "invalid UTF-8"),
        ("%", "truncated escape, taken literally"),
        ("", "empty"),
        (long.as_str(), "65 letters"),
    ];
    for (name, why) in cases {
        let path = format!("/hello/{name}");
        let put = server.put_date(name, "1990-01-15");
        put.assert_problem(400);
        let get = server.get(&path);
        let problem = get.assert_problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("username"),
            "{why}: {problem}"
        );
    }
    assert!(crate::helpers::record_files(&server.data_dir).is_empty());
    // 64 letters is the longest accepted name.
    assert_eq!(server.put_date(&"a".repeat(64), "1990-01-15").status, 204);
}

#[test]
fn invalid_dates_and_bodies_are_400_and_change_nothing() {
    let server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    let before = snapshot(&server.data_dir.join("users"));
    let today = today();
    let tomorrow = today + Days::new(1);
    let bodies = [
        format!(r#"{{"dateOfBirth":"{today}"}}"#),
        format!(r#"{{"dateOfBirth":"{tomorrow}"}}"#),
        r#"{"dateOfBirth":"2030-01-01"}"#.into(),
        r#"{"dateOfBirth":"1990-02-30"}"#.into(),
        r#"{"dateOfBirth":"1999-02-29"}"#.into(),
        r#"{"dateOfBirth":"1990-5-1"}"#.into(),
        r#"{"dateOfBirth":"15-01-1990"}"#.into(),
        r#"{"dateOfBirth":"1990-01-15T00:00:00Z"}"#.into(),
        r#"{"dateOfBirth":19900115}"#.into(),
        r#"{"dateOfBirth":null}"#.into(),
        r#"{"birthday":"1990-01-15"}"#.into(),
        "{}".into(),
        r#"["1990-01-15"]"#.into(),
        "\"1990-01-15\"".into(),
        "{".into(),
        "not json".into(),
        "".into(),
    ];
    for body in &bodies {
        let problem = server.put_json("/hello/alice", body).assert_problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("dateOfBirth")
                || problem["detail"].as_str().unwrap().contains("body"),
            "{body}: {problem}"
        );
    }
    assert_eq!(snapshot(&server.data_dir.join("users")), before);
    assert!(server.get("/hello/alice").json()["message"].is_string());
}

#[test]
fn the_future_date_message_names_the_rule_and_the_value() {
    let server = TestServer::spawn();
    let problem = server
        .put_json("/hello/alice", r#"{"dateOfBirth":"2030-01-01"}"#)
        .assert_problem(400);
    assert_eq!(
        problem["detail"],
        "dateOfBirth must be a date before today (UTC), got 2030-01-01"
    );
    assert_eq!(problem["title"], "Invalid date of birth");
}

#[test]
fn unknown_fields_are_ignored() {
    let server = TestServer::spawn();
    let response = server.put_json(
        "/hello/alice",
        r#"{"dateOfBirth":"1990-01-15","nickname":"al","x":[1]}"#,
    );
    assert_eq!(response.status, 204);
}

#[test]
fn content_types() {
    let server = TestServer::spawn();
    let body = br#"{"dateOfBirth":"1990-01-15"}"#;
    let put = |headers: &[(&str, &str)]| server.request("PUT", "/hello/alice", headers, Some(body));
    assert_eq!(
        put(&[]).status,
        204,
        "a missing Content-Type is taken as JSON"
    );
    assert_eq!(
        put(&[("Content-Type", "application/json; charset=utf-8")]).status,
        204
    );
    assert_eq!(put(&[("Content-Type", "APPLICATION/JSON")]).status, 204);
    for refused in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let problem = put(&[("Content-Type", refused)]).assert_problem(415);
        assert!(
            problem["detail"].as_str().unwrap().contains(refused),
            "{problem}"
        );
    }
}

#[test]
fn bodies_over_4_kib_are_413_with_or_without_content_length() {
    let server = TestServer::spawn();
    let padding = " ".repeat(4096);
    let big = format!(r#"{{"dateOfBirth":"1990-01-15"}}{padding}"#);
    server.put_json("/hello/alice", &big).assert_problem(413);

    // Chunked: no Content-Length to check up front, so the limit applies while reading.
    let mut connection = Connection::open(server.addr).unwrap();
    connection
        .send_raw(b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", big.len(), big);
    let _ = connection.send_raw(chunk.as_bytes());
    let _ = connection.send_raw(b"0\r\n\r\n");
    let refused = connection.read_response(false).unwrap();
    refused.assert_problem(413);
    assert_eq!(refused.header("connection"), Some("close"));
    connection.wait_closed(Duration::from_secs(5)).unwrap();

    // Refused from its Content-Length before the body arrives: the rest of it may still come,
    // so the connection is closed rather than left waiting for it.
    let mut connection = Connection::open(server.addr).unwrap();
    connection
        .send_raw(b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
        .unwrap();
    let refused = connection.read_response(false).unwrap();
    refused.assert_problem(413);
    assert_eq!(refused.header("connection"), Some("close"));
    connection.wait_closed(Duration::from_secs(5)).unwrap();

    // Exactly 4096 bytes is fine.
    let exact = format!(r#"{{"dateOfBirth":"1990-01-15"}}{}"#, " ".repeat(4096 - 28));
    assert_eq!(exact.len(), 4096);
    assert_eq!(server.put_json("/hello/alice", &exact).status, 204);
    assert!(server.get("/hello/alice").status == 200);
}

#[test]
fn a_small_chunked_body_is_accepted() {
    let server = TestServer::spawn();
    let mut connection = Connection::open(server.addr).unwrap();
    let body = r#"{"dateOfBirth":"1990-01-15"}"#;
    let request = format!(
        "PUT /hello/alice HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    connection.send_raw(request.as_bytes()).unwrap();
    assert_eq!(connection.read_response(false).unwrap().status, 204);
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = TestServer::spawn();
    for method in ["POST", "DELETE", "PATCH", "OPTIONS"] {
        let response = server.request(method, "/hello/alice", &[], None);
        response.assert_problem(405);
        assert_eq!(response.header("allow"), Some("GET, HEAD, PUT"), "{method}");
    }
    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let response = server.request("POST", path, &[], Some(b"{}"));
        response.assert_problem(405);
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{path}");
    }
}

#[test]
fn unknown_paths_are_404_problems() {
    let server = TestServer::spawn();
    for path in [
        "/",
        "/hello/alice/extra",
        "/hellox/alice",
        "/health/deep",
        "/metrics/x",
        "/users/alice",
    ] {
        server.get(path).assert_problem(404);
        server
            .request("PUT", path, &[], Some(b"{}"))
            .assert_problem(404);
    }
}

#[test]
fn a_held_lock_makes_writes_503_with_retry_after_while_reads_go_on() {
    let server = TestServer::builder()
        .arg("--lock-timeout")
        .arg("300")
        .spawn();
    server.put_date("alice", "1990-01-15");
    // Another process (this test) holds every lock file, as a frozen writer would.
    let held = hold_every_lock(&server.data_dir);

    let started = std::time::Instant::now();
    let response = server.put_date("alice", "2000-02-02");
    let waited = started.elapsed();
    let problem = response.assert_problem(503);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(problem["type"], "tag:hello-birthday,2026:storage-busy");
    assert!(
        waited >= std::time::Duration::from_millis(300),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(3), "{waited:?}");
    // Reads take no lock.
    assert_eq!(server.get("/hello/alice").status, 200);
    assert!(
        server
            .get("/metrics")
            .text()
            .contains("storage_lock_timeouts_total 1")
    );

    drop(held);
    assert_eq!(server.put_date("alice", "2000-02-02").status, 204);
}

#[test]
fn a_file_call_that_blocks_past_the_storage_timeout_is_a_503_and_the_write_never_lands() {
    let server = TestServer::builder()
        .arg("--lock-timeout")
        .arg("200")
        .arg("--storage-timeout")
        .arg("500")
        .spawn();
    server.put_date("alice", "1990-01-15");
    // A FIFO in the record's place: opening it for reading blocks until a writer comes, as a
    // file call blocks on a host cut off from its NFS server.
    let record = crate::helpers::record_files(&server.data_dir).remove(0);
    std::fs::remove_file(&record).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&record)
        .status()
        .unwrap();
    assert!(made.success());

    for response in [
        server.get("/hello/alice"),
        server.put_date("alice", "2000-02-02"),
    ] {
        let problem = response.assert_problem(503);
        assert_eq!(problem["type"], "tag:hello-birthday,2026:storage-timeout");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("nothing was changed"),
            "{problem}"
        );
        assert!(response.header("retry-after").is_some());
    }
    // Unblock the readers (the GET's, and the PUT's look at the record it would replace) by
    // opening the FIFO for writing, without blocking when none is waiting, again on every
    // poll (a GET's retry may open it anew): the write goes on past its deadline, and must
    // stop at its fence, removing its temp file, instead of renaming. The fence is counted
    // when the 503 goes out, before the writer gets there, so the poll waits for both.
    let directory = record.parent().unwrap().to_owned();
    let entries = || -> Vec<_> {
        std::fs::read_dir(&directory)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    server.wait_until(
        "the fenced write is counted and its temp file removed",
        Duration::from_secs(10),
        || {
            use std::os::unix::fs::OpenOptionsExt;
            const O_NONBLOCK: i32 = 0o4000;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(O_NONBLOCK)
                .open(&record);
            entries().len() == 1
                && server
                    .get("/metrics")
                    .text()
                    .contains("storage_writes_fenced_total{reason=\"deadline\"} 1")
        },
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&record)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the fenced write replaced the record after its request was answered: {:?}",
        entries()
    );
}

#[test]
fn head_answers_as_get_does_on_every_route_without_a_body() {
    let server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    for path in [
        "/hello/alice",
        "/hello/nobody",
        "/hello/al1ce",
        "/health/live",
        "/health/ready",
        "/health",
        "/openapi.yaml",
        "/metrics",
    ] {
        let get = server.get(path);
        let head = server.request("HEAD", path, &[], None);
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}: HEAD has a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        // /metrics changes between two scrapes; everything else is the same document.
        if path != "/metrics" {
            assert_eq!(
                head.header("content-length"),
                get.header("content-length"),
                "{path}"
            );
        }
    }
}

#[test]
fn other_members_of_the_body_are_ignored_however_deep_they_nest() {
    let server = TestServer::spawn();
    // 1500 levels fit in the 4096-byte limit; a JSON parser's usual recursion limit is 128.
    let body = format!(
        r#"{{"dateOfBirth":"1990-01-15","extra":{}{}}}"#,
        "[".repeat(1500),
        "]".repeat(1500)
    );
    assert_eq!(server.put_json("/hello/alice", &body).status, 204);
    assert_eq!(server.get("/hello/alice").status, 200);
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_its_answer() {
    let server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    let mut client = Connection::open(server.addr).unwrap();
    client
        .send_raw(b"GET /hello/alice HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Done sending: some clients say so with a half-close, and still wait for the answer.
    client.shutdown_write().unwrap();
    let response = client.read_response(false).unwrap();
    assert_eq!(response.status, 200);
    assert!(response.text().starts_with(r#"{"message":"Hello, alice!"#));
}

#[test]
fn a_broken_data_dir_is_a_503_that_names_no_path() {
    let server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    let users = server.data_dir.join("users");
    std::fs::rename(&users, server.data_dir.join("elsewhere")).unwrap();
    std::fs::write(&users, b"not a directory").unwrap();

    for response in [
        server.put_date("alice", "2000-02-02"),
        server.get("/hello/alice"),
    ] {
        let problem = response.assert_problem(503);
        assert_eq!(
            problem["type"],
            "tag:hello-birthday,2026:storage-unavailable"
        );
        assert!(response.header("retry-after").is_some());
        let text = problem.to_string();
        assert!(
            !text.contains(server.data_dir.to_str().unwrap()) && !text.contains("users"),
            "{text}"
        );
    }
}
