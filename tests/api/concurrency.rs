//! Several real processes sharing one data directory: concurrent writers, reads across
//! instances, SIGKILL in the middle of write storms, SIGTERM under load.

use std::collections::HashSet;
use std::io;
use std::panic::resume_unwind;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use sha2::{Digest, Sha256};

use crate::helpers::{Connection, Response, TestServer, on_a_stable_date, record_files, snapshot};
use crate::history::{Recorder, greeting};

/// How long a load may take to get under way before the test gives up on it. Generous: debug
/// binaries on a loaded 2-core CI machine.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinct dates of birth (1 March + k days of 2000), so each has its own greeting.
fn date(k: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 3, 1).unwrap() + Days::new(k as u64)
}

fn message(response: &Response) -> String {
    response.json()["message"].as_str().unwrap().to_owned()
}

/// Every record file is whole JSON with a string username and a date of birth, and lies where
/// the layout puts that username: `users/<first 2 hex>/<SHA-256 hex of the name>.json` (the
/// tests use ASCII names, which are their own NFC form). Temp files are not looked at here:
/// after a SIGKILL they may rightly be left; tests that expect none check `temp_files`.
fn assert_records_intact(data_dir: &Path) {
    for path in record_files(data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{} is torn ({e}): {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            )
        });
        let (Some(username), Some(born)) =
            (record["username"].as_str(), record["dateOfBirth"].as_str())
        else {
            panic!(
                "{} lacks a username or date of birth: {record}",
                path.display()
            );
        };
        assert!(
            born.parse::<NaiveDate>().is_ok(),
            "{}: bad date of birth in {record}",
            path.display()
        );
        let key: String = Sha256::digest(username.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let expected = data_dir
            .join("users")
            .join(&key[..2])
            .join(format!("{key}.json"));
        assert_eq!(
            path, expected,
            "the record of {username:?} is not in the file its name hashes to"
        );
    }
}

/// Temp files anywhere in the data directory: in `tmp/`, or beside a record where versions
/// before `tmp/` wrote them.
fn temp_files(data_dir: &Path) -> Vec<String> {
    snapshot(data_dir)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .filter(|p| p.contains(".json.tmp-"))
        .collect()
}

/// How a wait for a load to get under way ended.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Reached,
    /// A load thread ended before the goal was reached: it failed (joining it says how).
    ThreadEnded,
    TimedOut,
}

/// Polls `reached` until it holds, one of `threads` has ended, or `timeout` has passed.
/// A bounded readiness poll: it neither spins a core nor hangs when the load threads die.
fn wait_for_load<T>(
    threads: &[ScopedJoinHandle<'_, T>],
    timeout: Duration,
    reached: impl Fn() -> bool,
) -> Progress {
    let deadline = Instant::now() + timeout;
    loop {
        if reached() {
            return Progress::Reached;
        }
        if threads.iter().any(ScopedJoinHandle::is_finished) {
            return Progress::ThreadEnded;
        }
        if Instant::now() >= deadline {
            return Progress::TimedOut;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Joins a scoped thread, re-raising its panic with its own message.
fn join<T>(thread: ScopedJoinHandle<'_, T>) -> T {
    thread.join().unwrap_or_else(|panic| resume_unwind(panic))
}

/// Runs its closure when dropped, also while the thread unwinds from a panic: a scope joins
/// its threads before it passes a panic on, so they must be told to stop first.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

#[test]
fn every_completed_write_is_visible_through_the_other_instance() {
    let a = TestServer::spawn();
    let b = TestServer::builder().data_dir(&a.data_dir).spawn();
    let servers = [&a, &b];
    let history = Recorder::default();
    on_a_stable_date(|today| {
        thread::scope(|scope| {
            let writers: Vec<_> = (0..6)
                .map(|t| {
                    let history = &history;
                    scope.spawn(move || -> Result<(), String> {
                        let name = format!("user{}", ["a", "b", "c", "d", "e", "f"][t]);
                        let process = history.process();
                        for k in 0..30 {
                            let (writer, reader) = (servers[k % 2], servers[(k + 1) % 2]);
                            let born = date(t * 31 + k);
                            let put = history.put(process, writer.addr, &name, born).unwrap();
                            assert_eq!(put.status, 204);
                            let read = history.get(process, reader.addr, &name).unwrap();
                            assert_eq!(
                                read.status, 200,
                                "{name}: the other instance missed a write"
                            );
                            let (seen, wanted) = (message(&read), greeting(&name, born, today));
                            if seen != wanted {
                                return Err(format!(
                                    "{name}: stale read {seen:?}, wanted {wanted:?}"
                                ));
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            writers.into_iter().try_for_each(join)
        })
    });
    history.assert_linearizable("every_completed_write_is_visible_through_the_other_instance");
    assert_records_intact(&a.data_dir);
    assert!(temp_files(&a.data_dir).is_empty());
}

/// Eight threads write 160 different dates of birth for one user through three instances at
/// once. Every write is acknowledged, and afterwards the instances agree on a record that is
/// one of those written: the only record file, whole, and no temp file left behind.
///
/// Atomic renames alone would pass this: it does not show that writers take turns. That a
/// held lock keeps other writers out is tested by
/// `hello::a_held_lock_makes_writes_503_with_retry_after_while_reads_go_on` and by the
/// storage module's own tests.
#[test]
fn concurrent_writes_to_one_user_through_three_instances_leave_one_whole_record_that_was_written() {
    let a = TestServer::builder()
        .arg("--lock-timeout")
        .arg("10000")
        .arg("--storage-timeout")
        .arg("10000")
        .spawn();
    let others: Vec<_> = (0..2)
        .map(|_| {
            TestServer::builder()
                .data_dir(&a.data_dir)
                .arg("--lock-timeout")
                .arg("10000")
                .arg("--storage-timeout")
                .arg("10000")
                .spawn()
        })
        .collect();
    let servers = [&a, &others[0], &others[1]];
    let written: Vec<NaiveDate> = (0..8 * 20).map(date).collect();
    let history = Recorder::default();
    thread::scope(|scope| {
        for t in 0..8 {
            let (written, history) = (&written, &history);
            scope.spawn(move || {
                let process = history.process();
                for k in 0..20 {
                    let server = servers[(t + k) % 3];
                    let response = history
                        .put(process, server.addr, "shared", written[t * 20 + k])
                        .unwrap();
                    assert_eq!(response.status, 204, "{}", response.text());
                }
            });
        }
    });
    on_a_stable_date(|today| {
        let process = history.process();
        let answers: Vec<String> = servers
            .iter()
            .map(|s| message(&history.get(process, s.addr, "shared").unwrap()))
            .collect();
        if answers.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!("instances disagree: {answers:?}"));
        }
        if !written
            .iter()
            .any(|d| greeting("shared", *d, today) == answers[0])
        {
            return Err(format!(
                "the final record is not one that was written: {}",
                answers[0]
            ));
        }
        Ok(())
    });
    history.assert_linearizable(
        "concurrent_writes_to_one_user_through_three_instances_leave_one_whole_record_that_was_written",
    );
    assert_eq!(record_files(&a.data_dir).len(), 1);
    assert_records_intact(&a.data_dir);
    assert!(temp_files(&a.data_dir).is_empty());
}

/// What one writer thread knows at the moment its server died.
#[derive(Debug, Default, Clone)]
struct WriterState {
    acknowledged: Option<NaiveDate>,
    /// Sent, but no answer came: it may or may not have been stored.
    unanswered: Option<NaiveDate>,
}

#[test]
fn sigkill_in_the_middle_of_write_storms_loses_and_tears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let first = TestServer::builder().data_dir(&data_dir).spawn();
    let names: Vec<String> = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut server = Some(first);
    let history = Recorder::default();
    for round in 0..3 {
        let mut victim = server.take().unwrap();
        let addr = victim.addr;
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let states: Vec<WriterState> = thread::scope(|scope| {
            let writers: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(t, name)| {
                    let (acknowledged, history) = (Arc::clone(&acknowledged), &history);
                    scope.spawn(move || {
                        let mut state = WriterState::default();
                        let process = history.process();
                        for k in 0.. {
                            let born = date((t * 50 + k + round * 7) % 300);
                            match history.put(process, addr, name, born) {
                                Ok(response) => {
                                    assert_eq!(response.status, 204, "{}", response.text());
                                    state.acknowledged = Some(born);
                                    acknowledged.fetch_add(1, Ordering::SeqCst);
                                }
                                Err(_) => {
                                    state.unanswered = Some(born);
                                    return state;
                                }
                            }
                        }
                        unreachable!()
                    })
                })
                .collect();
            // Kill once the storm is well under way. The writers only stop when their
            // connections fail, so kill before anything here can panic: the scope waits for
            // them.
            let progress = wait_for_load(&writers, LOAD_TIMEOUT, || {
                acknowledged.load(Ordering::SeqCst) >= 150
            });
            victim.kill();
            let states: Vec<WriterState> = writers.into_iter().map(join).collect();
            assert_eq!(
                progress,
                Progress::Reached,
                "round {round}: the storm never got under way ({} writes acknowledged \
                 within {LOAD_TIMEOUT:?}); the writers saw {states:?}",
                acknowledged.load(Ordering::SeqCst)
            );
            states
        });

        assert_records_intact(&data_dir);
        let restarted = TestServer::builder().data_dir(&data_dir).spawn();
        on_a_stable_date(|today| {
            let process = history.process();
            for (name, state) in names.iter().zip(&states) {
                let response = history.get(process, restarted.addr, name).unwrap();
                let acked = state.acknowledged.expect("every writer got some answers");
                assert_eq!(response.status, 200, "{name}: acknowledged write lost");
                let seen = message(&response);
                let allowed: Vec<String> = [Some(acked), state.unanswered]
                    .into_iter()
                    .flatten()
                    .map(|d| greeting(name, d, today))
                    .collect();
                if !allowed.contains(&seen) {
                    return Err(format!(
                        "{name}: read {seen:?}, expected one of {allowed:?}"
                    ));
                }
            }
            Ok(())
        });
        let process = history.process();
        for name in &names {
            // Not left locked: the next write goes through at once.
            let put = history.put(process, restarted.addr, name, date(300 + round));
            assert_eq!(put.unwrap().status, 204);
        }
        server = Some(restarted);
    }
    history.assert_linearizable("sigkill_in_the_middle_of_write_storms_loses_and_tears_nothing");
}

#[test]
fn orphaned_temp_files_are_swept_at_startup() {
    let mut first = TestServer::spawn();
    first.put_date("alice", "1990-01-15");
    let record = record_files(&first.data_dir).pop().unwrap();
    let key = record.file_stem().unwrap().to_str().unwrap();
    let name = format!(".{key}.json.tmp-0123456789abcdef-7");
    // One in `tmp/`, and one beside the record, where versions before `tmp/` wrote them.
    let orphans = [
        first.data_dir.join("tmp").join(&name),
        record.with_file_name(&name),
    ];
    for orphan in &orphans {
        std::fs::write(orphan, br#"{"schema":1,"user"#).unwrap();
    }
    let unrelated = record.with_file_name("notes.txt");
    std::fs::write(&unrelated, b"keep me").unwrap();
    let data_dir = first.data_dir.clone();
    first.kill();

    let second = TestServer::builder()
        .data_dir(&data_dir)
        .arg("--orphan-age")
        .arg("0")
        .spawn();
    second.wait_until("the orphans are swept", Duration::from_secs(10), || {
        orphans.iter().all(|orphan| !orphan.exists())
    });
    assert!(
        unrelated.exists(),
        "the sweeper removed a file that is not a temp file"
    );
    assert_eq!(second.get("/hello/alice").status, 200);
}

/// What one client of the SIGTERM test saw.
#[derive(Debug, Default)]
struct ClientReport {
    /// Request ids whose connection ended (EOF, reset, broken pipe) before an answer came.
    unanswered: Vec<String>,
    /// Answers that arrived after SIGTERM had been sent, or that say `Connection: close`
    /// (the server built them while shutting down, which the flag may not show yet).
    answered_after_sigterm: usize,
}

#[test]
fn sigterm_under_load_exits_0_and_answers_every_request_it_started() {
    let mut server = TestServer::spawn();
    server.put_date("alice", "1990-01-15");
    let stop = AtomicBool::new(false);
    let sigterm_sent = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let addr = server.addr;
    let reports: Vec<ClientReport> = thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let (stop, sigterm_sent, answered) = (&stop, &sigterm_sent, &answered);
                scope.spawn(move || -> Result<ClientReport, String> {
                    let mut report = ClientReport::default();
                    // Keep-alive connections, like a load balancer's.
                    let mut connection = Connection::open(addr).map_err(|e| e.to_string())?;
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        // Unique, so that the server's access log says whether it handled it.
                        let id = format!("client{t}-request{n}");
                        n += 1;
                        let headers = [("X-Request-Id", id.as_str())];
                        let result = if t % 2 == 0 {
                            connection.send("GET", "/hello/alice", &headers, None)
                        } else {
                            connection.send(
                                "PUT",
                                "/hello/alice",
                                &headers,
                                Some(br#"{"dateOfBirth":"1990-01-15"}"#),
                            )
                        };
                        match result {
                            Ok(response) if response.status < 300 => {
                                answered.fetch_add(1, Ordering::SeqCst);
                                let closing = response.header("connection") == Some("close");
                                if closing || sigterm_sent.load(Ordering::SeqCst) {
                                    report.answered_after_sigterm += 1;
                                }
                                if closing {
                                    return Ok(report);
                                }
                            }
                            Ok(response) => {
                                return Err(format!("{id}: status {}", response.status));
                            }
                            // The connection ended without an answer. Fine only if the server
                            // never started this request (it closed an idle keep-alive
                            // connection): checked against its access log below.
                            Err(e)
                                if e.kind() == io::ErrorKind::UnexpectedEof
                                    || e.kind() == io::ErrorKind::ConnectionReset
                                    || e.kind() == io::ErrorKind::BrokenPipe =>
                            {
                                report.unanswered.push(id);
                                return Ok(report);
                            }
                            Err(e) => return Err(format!("{id} failed mid-way: {e}")),
                        }
                    }
                    Ok(report)
                })
            })
            .collect();
        // If anything below panics, the clients must stop before the scope can join them.
        let _stop_clients = OnDrop(|| stop.store(true, Ordering::SeqCst));
        let progress = wait_for_load(&clients, LOAD_TIMEOUT, || {
            answered.load(Ordering::SeqCst) >= 200
        });
        if progress != Progress::Reached {
            stop.store(true, Ordering::SeqCst);
            let outcomes: Vec<_> = clients.into_iter().map(join).collect();
            panic!(
                "the load never got under way ({progress:?} after {} answers within \
                 {LOAD_TIMEOUT:?}); the clients saw {outcomes:?}",
                answered.load(Ordering::SeqCst)
            );
        }
        server.signal("TERM");
        sigterm_sent.store(true, Ordering::SeqCst);
        let status = server.wait_exit(Duration::from_secs(15));
        stop.store(true, Ordering::SeqCst);
        let reports = clients
            .into_iter()
            .map(|c| join(c).unwrap_or_else(|e| panic!("a client failed: {e}")))
            .collect();
        assert_eq!(status.code(), Some(0));
        reports
    });

    // Exit code 0 means "shutdown complete" was the last line logged; once the test has read
    // it, it has read every access-log line.
    server.wait_until(
        "the server's last log line is read",
        Duration::from_secs(5),
        || {
            server
                .logs()
                .iter()
                .any(|l| l["message"] == "shutdown complete")
        },
    );
    let logged: HashSet<String> = server
        .logs()
        .iter()
        .filter(|l| l["message"] == "request")
        .filter_map(|l| l["request_id"].as_str().map(str::to_owned))
        .collect();
    let answered = answered.load(Ordering::SeqCst);
    // Otherwise the check below would pass for want of ids to find.
    assert!(
        logged.iter().filter(|id| id.starts_with("client")).count() >= answered,
        "fewer access-log lines carry the clients' request ids than were answered ({answered})"
    );
    let dropped: Vec<&String> = reports
        .iter()
        .flat_map(|r| &r.unanswered)
        .filter(|id| logged.contains(*id))
        .collect();
    assert!(
        dropped.is_empty(),
        "the server handled these requests, but their connections ended without an answer: \
         {dropped:?}"
    );
    // The load overlapped the shutdown, or the test would prove nothing.
    assert!(
        reports
            .iter()
            .map(|r| r.answered_after_sigterm)
            .sum::<usize>()
            > 0,
        "no request was answered after SIGTERM was sent: {reports:?}"
    );
}
