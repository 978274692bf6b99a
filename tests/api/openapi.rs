//! openapi.yaml against the running binary: the document is served byte for byte, every
//! status it documents for an operation is produced here by a real request and answered with
//! the documented media type, headers and problem `type`, and no generated request gets a 5xx.
//! (That the document lists exactly the router's routes is a unit test in
//! src/routes/openapi.rs; schemathesis drives the document further in scripts/schemathesis.sh.)

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::{Connection, Response, TestServer, record_files};

const DOCUMENT_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

/// (method, path template, status) of a documented operation response.
type Documented = (String, String, u16);

/// Documented, but no request can produce it: PUT answers 500 only when the storage task
/// panics (`StorageError::Task`). Its mapping is unit-tested in src/routes/hello.rs.
const NOT_PRODUCIBLE: &[(&str, &str, u16)] = &[("put", "/hello/{username}", 500)];

fn document() -> Yaml {
    let text = std::fs::read_to_string(DOCUMENT_FILE).expect("read openapi.yaml");
    YamlLoader::load_from_str(&text)
        .expect("openapi.yaml is YAML")
        .remove(0)
}

/// Follows a local `$ref` (`#/components/...`), if `node` is one.
fn resolve<'a>(doc: &'a Yaml, node: &'a Yaml) -> &'a Yaml {
    match node["$ref"].as_str() {
        Some(pointer) => {
            let pointer = pointer.strip_prefix("#/").expect("a local $ref");
            let target = pointer.split('/').fold(doc, |n, key| &n[key]);
            assert!(!target.is_badvalue(), "unresolved $ref {pointer}");
            resolve(doc, target)
        }
        None => node,
    }
}

fn documented_statuses(doc: &Yaml) -> BTreeSet<Documented> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        for (method, operation) in item.as_hash().expect("path item") {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            for status in operation["responses"].as_hash().expect("responses").keys() {
                let status = status
                    .as_str()
                    .expect("statuses are quoted")
                    .parse()
                    .unwrap();
                out.insert((method.to_owned(), path.as_str().unwrap().to_owned(), status));
            }
        }
    }
    out
}

/// Asserts that `response` is what the documented `spec` (a response object) describes:
/// required headers (and their `enum`), the media type, the JSON members the schema requires
/// or forbids, and the `const`/`enum` values of its members (a problem's `type` and `status`).
#[track_caller]
fn assert_conforms(doc: &Yaml, spec: &Yaml, response: &Response, what: &str) {
    let spec = resolve(doc, spec);
    if let Some(headers) = spec["headers"].as_hash() {
        for (name, header) in headers {
            let name = name.as_str().unwrap();
            let header = resolve(doc, header);
            let value = response.header(name);
            if header["required"].as_bool() == Some(true) {
                assert!(value.is_some(), "{what}: no {name} header");
            }
            if let (Some(value), Some(allowed)) = (value, header["schema"]["enum"].as_vec()) {
                assert!(
                    allowed.iter().any(|a| a.as_str() == Some(value)),
                    "{what}: {name}: {value} not in {allowed:?}"
                );
            }
        }
    }
    let Some(content) = spec["content"].as_hash() else {
        assert!(
            response.body.is_empty(),
            "{what}: a body where none is documented"
        );
        return;
    };
    let (media_type, media) = content.iter().next().expect("one media type");
    let media_type = media_type.as_str().unwrap();
    assert_eq!(response.header("content-type"), Some(media_type), "{what}");
    if media_type.ends_with("json") {
        check_json(doc, &media["schema"], &response.json(), what);
    }
}

/// The subset of JSON Schema this document uses to pin values down: `allOf`, `required`,
/// `properties` with `const`/`enum`, and `additionalProperties: false`.
#[track_caller]
fn check_json(doc: &Yaml, schema: &Yaml, value: &serde_json::Value, what: &str) {
    let schema = resolve(doc, schema);
    for part in schema["allOf"].as_vec().into_iter().flatten() {
        check_json(doc, part, value, what);
    }
    if let Some(constant) = yaml_to_json(&schema["const"]) {
        assert_eq!(value, &constant, "{what}");
    }
    if let Some(allowed) = schema["enum"].as_vec() {
        assert!(
            allowed.iter().filter_map(yaml_to_json).any(|a| &a == value),
            "{what}: {value} not in {allowed:?}"
        );
    }
    let Some(object) = value.as_object() else {
        return;
    };
    for required in schema["required"].as_vec().into_iter().flatten() {
        let name = required.as_str().unwrap();
        assert!(object.contains_key(name), "{what}: no {name} in {value}");
    }
    let properties = schema["properties"].as_hash();
    if schema["additionalProperties"].as_bool() == Some(false) {
        for name in object.keys() {
            let known = properties.is_some_and(|p| p.contains_key(&Yaml::String(name.clone())));
            assert!(known, "{what}: undocumented member {name} in {value}");
        }
    }
    for (name, property) in properties.into_iter().flatten() {
        if let Some(member) = object.get(name.as_str().unwrap()) {
            check_json(doc, property, member, what);
        }
    }
}

fn yaml_to_json(value: &Yaml) -> Option<serde_json::Value> {
    match value {
        Yaml::String(s) => Some(s.clone().into()),
        Yaml::Integer(i) => Some((*i).into()),
        Yaml::Boolean(b) => Some((*b).into()),
        _ => None,
    }
}

/// Records a response to an operation after checking it against the document.
struct Observed<'d> {
    doc: &'d Yaml,
    seen: BTreeSet<Documented>,
}

impl Observed<'_> {
    #[track_caller]
    fn record(&mut self, method: &str, template: &str, response: Response) {
        let what = format!("{method} {template} {}", response.status);
        let operation = &self.doc["paths"][template][method.to_ascii_lowercase().as_str()];
        assert!(!operation.is_badvalue(), "{what}: no such operation");
        let spec = &operation["responses"][response.status.to_string().as_str()];
        assert!(!spec.is_badvalue(), "{what}: status not documented");
        assert_conforms(self.doc, spec, &response, &what);
        self.seen.insert((
            method.to_ascii_lowercase(),
            template.to_owned(),
            response.status,
        ));
    }
}

#[test]
fn the_document_is_served_byte_for_byte_as_yaml() {
    let server = TestServer::spawn();
    let response = server.get("/openapi.yaml");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/yaml"));
    assert!(response.header("x-request-id").is_some());
    assert_eq!(response.body, std::fs::read(DOCUMENT_FILE).unwrap());

    let refused = server.request("POST", "/openapi.yaml", &[], Some(b"x"));
    refused.assert_problem(405);
    assert_eq!(refused.header("allow"), Some("GET, HEAD"));
}

#[test]
fn every_documented_status_is_produced_and_answered_as_documented() {
    let doc = document();
    let mut observed = Observed {
        doc: &doc,
        seen: BTreeSet::new(),
    };
    let hello = "/hello/{username}";
    let server = TestServer::spawn();

    observed.record("PUT", hello, server.put_date("alice", "1990-01-15"));
    observed.record("GET", hello, server.get("/hello/alice"));
    observed.record(
        "HEAD",
        hello,
        server.request("HEAD", "/hello/alice", &[], None),
    );
    observed.record("PUT", hello, server.put_date("alice1", "1990-01-15"));
    observed.record(
        "PUT",
        hello,
        server.put_json("/hello/alice", r#"{"dateOfBirth":"2999-01-01"}"#),
    );
    observed.record("PUT", hello, server.put_json("/hello/alice", "[]"));
    observed.record("GET", hello, server.get("/hello/alice1"));
    observed.record(
        "HEAD",
        hello,
        server.request("HEAD", "/hello/alice1", &[], None),
    );
    observed.record("GET", hello, server.get("/hello/nobody"));
    observed.record(
        "HEAD",
        hello,
        server.request("HEAD", "/hello/nobody", &[], None),
    );
    let big = format!(
        r#"{{"dateOfBirth":"1990-01-15","x":"{}"}}"#,
        "a".repeat(4096)
    );
    observed.record("PUT", hello, server.put_json("/hello/alice", &big));
    let text = server.request(
        "PUT",
        "/hello/alice",
        &[("Content-Type", "text/plain")],
        Some(br#"{"dateOfBirth":"1990-01-15"}"#),
    );
    observed.record("PUT", hello, text);
    for route in [
        "/health/live",
        "/health/ready",
        "/health",
        "/metrics",
        "/openapi.yaml",
    ] {
        observed.record("GET", route, server.get(route));
        observed.record("HEAD", route, server.request("HEAD", route, &[], None));
    }

    // 500: a stored record that does not parse, even after the read retries.
    assert_eq!(server.put_date("mallory", "1990-01-15").status, 204);
    let records = record_files(&server.data_dir);
    let mallory = records
        .iter()
        .find(|path| std::fs::read_to_string(path).unwrap().contains("mallory"))
        .expect("mallory's record");
    std::fs::write(mallory, b"{\"schema\":").unwrap();
    observed.record("GET", hello, server.get("/hello/mallory"));
    observed.record(
        "HEAD",
        hello,
        server.request("HEAD", "/hello/mallory", &[], None),
    );

    // 408: a body that stops coming (the chunk timeout shortened to keep the test quick).
    let slow = TestServer::builder()
        .arg("--body-chunk-timeout")
        .arg("200")
        .spawn();
    let mut stalled = Connection::open(slow.addr).unwrap();
    stalled
        .send_raw(b"PUT /hello/alice HTTP/1.1\r\nHost: t\r\nContent-Length: 28\r\n\r\n{")
        .unwrap();
    observed.record("PUT", hello, stalled.read_response(false).unwrap());

    // Responses that belong to no operation: unknown paths and other methods.
    let responses = &doc["components"]["responses"];
    for path in ["/", "/hello/a/b", "/users/alice"] {
        let response = server.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert_conforms(&doc, &responses["NotFound"], &response, path);
    }
    for (method, path, allow) in [
        ("DELETE", "/hello/alice", "GET, HEAD, PUT"),
        ("POST", "/hello/alice", "GET, HEAD, PUT"),
        ("PATCH", "/health", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.yaml", "GET, HEAD"),
    ] {
        let response = server.request(method, path, &[], None);
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
        assert_conforms(&doc, &responses["MethodNotAllowed"], &response, path);
    }

    // Every request above that matched no route was a 404: a route missing from the metric
    // label templates (and so, by the unit test, from openapi.yaml) would show up here.
    let metrics = server.get("/metrics").text();
    for line in metrics.lines() {
        if line.starts_with("http_requests_total{") && line.contains(r#"route="unmatched""#) {
            assert!(line.contains(r#"status="404""#), "{line}");
        }
    }

    // 503: the data directory is broken (storage) and so readiness fails.
    let broken = TestServer::spawn();
    let users = broken.data_dir.join("users");
    std::fs::rename(&users, broken.data_dir.join("elsewhere")).unwrap();
    std::fs::write(&users, b"not a directory").unwrap();
    observed.record("PUT", hello, broken.put_date("alice", "1990-01-15"));
    observed.record("GET", hello, broken.get("/hello/alice"));
    observed.record(
        "HEAD",
        hello,
        broken.request("HEAD", "/hello/alice", &[], None),
    );
    broken.wait_until("readiness turns 503", Duration::from_secs(10), || {
        broken.get("/health/ready").status == 503
    });
    observed.record("GET", "/health/ready", broken.get("/health/ready"));
    observed.record(
        "HEAD",
        "/health/ready",
        broken.request("HEAD", "/health/ready", &[], None),
    );
    observed.record("GET", "/health", broken.get("/health"));
    observed.record(
        "HEAD",
        "/health",
        broken.request("HEAD", "/health", &[], None),
    );

    let mut expected = documented_statuses(&doc);
    for (method, path, status) in NOT_PRODUCIBLE {
        assert!(
            expected.remove(&(method.to_string(), path.to_string(), *status)),
            "{method} {path} {status} is no longer documented"
        );
    }
    let missing: Vec<_> = expected.difference(&observed.seen).collect();
    assert!(
        missing.is_empty(),
        "documented but not produced: {missing:?}"
    );
}

/// A path segment from arbitrary bytes: percent-encoded, or sent raw where the bytes are
/// printable ASCII that a request line can carry.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(|bytes| {
            percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
        }),
        "[!-~]{0,40}".prop_map(|s| s.replace(['?', '#'], "")),
        "\\PC{0,70}".prop_map(|s| {
            percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        "\\PC{0,30}".prop_map(|s| format!(r#"{{"dateOfBirth":"{s}"}}"#).into_bytes()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}"
            .prop_map(|s| format!(r#"{{"dateOfBirth":"{s}"}}"#).into_bytes()),
        "\\PC{0,200}".prop_map(String::into_bytes),
    ]
}

/// Fuzzing on stable Rust, against the real binary: arbitrary methods, path segments,
/// content types and bodies never get a 5xx (only a failing storage may answer one) and never
/// kill the server. PROPTEST_CASES scales it (default 256 requests).
#[test]
fn no_generated_request_gets_a_5xx() {
    let server = TestServer::spawn();
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ];
    let method = prop_oneof![
        4 => Just("PUT"),
        4 => Just("GET"),
        1 => Just("POST"),
        1 => Just("DELETE"),
    ];
    let prefix = prop_oneof![Just("/hello/"), Just("/hello"), Just("/health/"), Just("/")];
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(method, prefix, segment(), content_type, body()),
            |(method, prefix, segment, content_type, body)| {
                let path = format!("{prefix}{segment}");
                let headers: Vec<(&str, &str)> = content_type
                    .as_deref()
                    .map(|value| vec![("Content-Type", value)])
                    .unwrap_or_default();
                let response = server.request(method, &path, &headers, Some(&body));
                prop_assert!(
                    response.status < 500,
                    "{method} {path}: {} {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(server.get("/health/live").status, 200);
}
