//! Histories of black-box requests for the linearizability checker (`tests/linearizability`):
//! every PUT and GET with when it was sent and answered, on this process's monotonic clock,
//! and what its answer says about its effect.
//!
//! Shared by path with `examples/nemesis.rs`, so it names its neighbours `crate::checker` and
//! `crate::http`, which both declare at their roots.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::checker::{self, Action, Operation, Outcome};
use crate::http::{Connection, Response};

/// One recorded operation and the instance it went through.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub op: Operation,
    pub via: SocketAddr,
}

/// Records operations from any number of client threads.
pub struct Recorder {
    epoch: Instant,
    ops: Mutex<Vec<Recorded>>,
    /// Per user, every date of birth sent so far: what a greeting is mapped back to.
    sent: Mutex<HashMap<String, Vec<NaiveDate>>>,
    processes: AtomicU64,
    /// How far the servers' clocks may be from this one: a greeting depends on the server's
    /// date, so near midnight it may fit a date on either side.
    clock_skew: chrono::Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::with_clock_skew(chrono::Duration::zero())
    }
}

impl Recorder {
    pub fn with_clock_skew(clock_skew: chrono::Duration) -> Self {
        Self {
            epoch: Instant::now(),
            ops: Mutex::default(),
            sent: Mutex::default(),
            processes: AtomicU64::new(0),
            clock_skew,
        }
    }

    /// Nanoseconds since the recorder was made: the history's one timeline.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A new process id. A client whose PUT got an unknown outcome must take a new one: that
    /// PUT stays open, so the client's next operation may overlap it (as in Jepsen).
    pub fn process(&self) -> u64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }

    /// PUTs `born` for `user` on a fresh connection to `addr`, and records it.
    pub fn put(
        &self,
        process: u64,
        addr: SocketAddr,
        user: &str,
        born: NaiveDate,
    ) -> io::Result<Response> {
        self.sent
            .lock()
            .unwrap()
            .entry(user.to_owned())
            .or_default()
            .push(born);
        let body = format!(r#"{{"dateOfBirth":"{born}"}}"#);
        let call = self.now();
        let answer = send(addr, "PUT", user, Some(body.as_bytes()));
        let ret = self.now();
        let outcome = outcome_of_put(&answer);
        self.record(Recorded {
            op: Operation {
                process,
                key: user.to_owned(),
                action: Action::Put(born.to_string()),
                call,
                ret: answer.is_ok().then_some(ret),
                outcome,
                effect_by: None,
                note: Some(note(&answer)),
            },
            via: addr,
        });
        answer
    }

    /// GETs `user` on a fresh connection to `addr`, and records what date the answer shows.
    pub fn get(&self, process: u64, addr: SocketAddr, user: &str) -> io::Result<Response> {
        let call = self.now();
        let wall_before = Utc::now();
        let answer = send(addr, "GET", user, None);
        let wall_after = Utc::now();
        let ret = self.now();
        let (outcome, read) = match &answer {
            Ok(r) if r.status == 404 => (Outcome::Ok, vec![None]),
            Ok(r) if r.status == 200 => {
                let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
                let sent = self
                    .sent
                    .lock()
                    .unwrap()
                    .get(user)
                    .cloned()
                    .unwrap_or_default();
                let (first, last) = (wall_before - self.clock_skew, wall_after + self.clock_skew);
                // A greeting of no date ever sent fits nothing, so the checker rejects it.
                let read = dates_greeted(user, &message, &sent, first, last);
                (Outcome::Ok, read.into_iter().map(Some).collect())
            }
            // A read that failed saw nothing.
            _ => (Outcome::Fail, Vec::new()),
        };
        self.record(Recorded {
            op: Operation {
                process,
                key: user.to_owned(),
                action: Action::Get(read.iter().map(|d| d.map(|d| d.to_string())).collect()),
                call,
                ret: Some(ret),
                outcome,
                effect_by: None,
                note: Some(note(&answer)),
            },
            via: addr,
        });
        answer
    }

    fn record(&self, recorded: Recorded) {
        self.ops.lock().unwrap().push(recorded);
    }

    pub fn operations(&self) -> Vec<Recorded> {
        self.ops.lock().unwrap().clone()
    }

    pub fn history(&self) -> Vec<Operation> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.op.clone())
            .collect()
    }

    /// Checks the history; if it is not linearizable, writes it and a timeline per failing
    /// user under `target/tmp/linearizability/<name>/` and panics with the checker's words.
    #[track_caller]
    pub fn assert_linearizable(&self, name: &str) {
        let history = self.history();
        let report = checker::check(&history, Duration::from_secs(60));
        if report.verdict() == checker::Verdict::Ok {
            return;
        }
        // Set for the black-box tests; the examples never call this.
        let dir = PathBuf::from(option_env!("CARGO_TARGET_TMPDIR").unwrap_or("target/tmp"))
            .join("linearizability")
            .join(name);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::File::create(dir.join("history.jsonl")))
            .and_then(|file| checker::write_jsonl(file, &history))
            .and_then(|()| checker::write_html(&dir, &report));
        let failures: Vec<String> = report.failures().map(|f| f.to_string()).collect();
        panic!(
            "{name}: the history is not linearizable: {report}\n{}\nhistory and timelines: {} ({written:?})",
            failures.join("\n"),
            dir.display()
        );
    }
}

/// What a PUT's answer says about its effect: 204 took effect; a 503 that says nothing was
/// changed, or a connection that was never made, had none; anything else may have.
pub fn outcome_of_put(answer: &io::Result<Response>) -> Outcome {
    match answer {
        Ok(r) if r.status == 204 => Outcome::Ok,
        Ok(r) if r.status == 503 => match problem_type(r).as_str() {
            "storage-busy" | "storage-timeout" | "storage-unavailable" => Outcome::Fail,
            _ => Outcome::Info,
        },
        Ok(r) if (400..500).contains(&r.status) => Outcome::Fail,
        Ok(_) => Outcome::Info,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Fail,
        Err(_) => Outcome::Info,
    }
}

/// The last segment of a problem's `type` (`storage-busy`), or "" if there is none.
/// A body that is not JSON (a load balancer's own HTML error page) has none either: its
/// request may never have reached an instance, which says nothing about its effect.
pub fn problem_type(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let kind = body["type"].as_str().unwrap_or_default();
    kind.rsplit(':').next().unwrap_or(kind).to_owned()
}

/// A short description of an answer, for the timeline's tooltips and for tallies.
pub fn note(answer: &io::Result<Response>) -> String {
    match answer {
        Ok(r) if r.status == 200 => format!("200 {}", r.json()["message"].as_str().unwrap_or("")),
        Ok(r) if r.status >= 400 => format!("{} {}", r.status, problem_type(r)),
        Ok(r) => r.status.to_string(),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => "connection refused".into(),
        Err(e) => format!("no answer: {e}"),
    }
}

/// One request on a connection of its own, so that a refused connection means it was never
/// sent. The connection waits 30 s for an answer.
fn send(addr: SocketAddr, method: &str, user: &str, body: Option<&[u8]>) -> io::Result<Response> {
    let mut connection = Connection::open(addr)?;
    let headers: &[(&str, &str)] = if body.is_some() {
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ]
    } else {
        &[("Connection", "close")]
    };
    connection.send(method, &format!("/hello/{user}"), headers, body)
}

/// The dates among `sent` whose greeting is `message` on some UTC date from `first` to `last`.
pub fn dates_greeted(
    name: &str,
    message: &str,
    sent: &[NaiveDate],
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Vec<NaiveDate> {
    let (first, last) = (first.date_naive(), last.date_naive());
    let mut dates: Vec<NaiveDate> = sent
        .iter()
        .copied()
        .filter(|&born| {
            first
                .iter_days()
                .take_while(|today| *today <= last)
                .any(|today| greeting(name, born, today) == message)
        })
        .collect();
    dates.sort();
    dates.dedup();
    dates
}

/// An independent oracle for the greeting of `born` on `today` (not the service's code).
pub fn greeting(name: &str, born: NaiveDate, today: NaiveDate) -> String {
    let on = |year| {
        NaiveDate::from_ymd_opt(year, born.month(), born.day())
            // 29 February outside a leap year is celebrated on the 28th.
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, 2, 28).unwrap())
    };
    let next = if on(today.year()) >= today {
        on(today.year())
    } else {
        on(today.year() + 1)
    };
    match (next - today).num_days() {
        0 => format!("Hello, {name}! Happy birthday!"),
        n => format!("Hello, {name}! Your birthday is in {n} day(s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> io::Result<Response> {
        Ok(Response {
            status,
            headers: HashMap::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn a_load_balancers_html_error_page_is_an_unknown_outcome() {
        let page = answer(
            503,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        );
        assert_eq!(outcome_of_put(&page), Outcome::Info);
        assert_eq!(note(&page), "503 ");
        let busy = answer(503, r#"{"type":"tag:hello-birthday,2026:storage-busy"}"#);
        assert_eq!(outcome_of_put(&busy), Outcome::Fail);
        assert_eq!(note(&busy), "503 storage-busy");
    }
}
