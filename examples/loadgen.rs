//! Load generator for the rolling-deploy rehearsal and the start-up measurement.
//!
//! `loadgen run`: keep-alive connections send a steady mix of PUTs and GETs over many users
//! until a stop file appears, and check every answer: each user belongs to one connection, so
//! every GET must return the greeting of that user's last acknowledged PUT, whichever
//! instance answers. At the end every user is read back once more. Prints totals and latency
//! percentiles and exits 1 on any failure.
//!
//! `loadgen startup -- BINARY ARGS...`: time from spawning the server to its first 200 on
//! `/health/ready`.
//!
//! Build: `cargo build --release --example loadgen`.

#[path = "../tests/linearizability/checker/mod.rs"]
#[allow(dead_code)]
mod checker;
#[path = "../tests/api/history.rs"]
#[allow(dead_code)]
mod history;
#[path = "../tests/api/http.rs"]
mod http;
#[path = "shared/users.rs"]
mod users;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use users::user_name;

use chrono::{Days, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use hello_birthday::domain::{DateOfBirth, Greeting, Username, days_until_next_birthday};
use http::{Connection, Response};

#[derive(Parser)]
#[command(about = "Load generator and start-up timer for hello-birthday")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Mixed PUT/GET load until --stop-file exists; verifies every answer.
    Run {
        /// Where to send requests (the load balancer).
        #[arg(long)]
        target: SocketAddr,
        /// Keep-alive connections, one thread each.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Distinct users, spread over the connections.
        #[arg(long, default_value_t = 320)]
        users: usize,
        /// Stop once this file exists.
        #[arg(long)]
        stop_file: PathBuf,
        /// Pause between requests of one connection, in microseconds (a steady rate).
        #[arg(long, default_value_t = 2000)]
        pause_us: u64,
        /// Record every request and check the whole history for linearizability; the history
        /// (and a timeline of any failing user) goes into this folder.
        #[arg(long)]
        history: Option<PathBuf>,
    },
    /// Sends exactly --requests requests of one kind over one keep-alive connection, to users
    /// taken in turn; fails on any unexpected status. For counting system calls per request.
    Count {
        #[arg(long)]
        target: SocketAddr,
        /// GET or PUT.
        #[arg(long)]
        method: String,
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Spawns BINARY ARGS... and reports how long until /health/ready answers 200.
    Startup {
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Mode::Run {
            target,
            connections,
            users,
            stop_file,
            pause_us,
            history,
        } => run(
            target,
            connections,
            users,
            &stop_file,
            Duration::from_micros(pause_us),
            history.as_deref(),
        ),
        Mode::Count {
            target,
            method,
            users,
            requests,
        } => count(target, &method, users, requests),
        Mode::Startup { runs, command } => startup(runs, &command),
    }
}

/// The k-th date a user is given: distinct month/day for k < 300, so distinct greetings.
fn date(k: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 3, 1).unwrap() + Days::new((k % 300) as u64)
}

fn expected_message(name: &str, born: NaiveDate) -> String {
    let username = Username::parse(name).expect("generated names are valid");
    let days = days_until_next_birthday(DateOfBirth::from_stored(born), Utc::now().date_naive());
    Greeting {
        username: &username,
        days_until_birthday: days,
    }
    .to_string()
}

#[derive(Default)]
struct Tally {
    requests: u64,
    puts: u64,
    gets: u64,
    /// Failure descriptions by kind, with a count and the first example.
    failures: BTreeMap<String, (u64, String)>,
    latencies_us: Vec<u64>,
    /// Each user's last acknowledged date, for the final check.
    acknowledged: Vec<(String, NaiveDate)>,
    /// Every request, when `--history` is given.
    history: Vec<checker::Operation>,
}

impl Tally {
    fn fail(&mut self, kind: &str, example: String) {
        let entry = self.failures.entry(kind.to_owned()).or_insert((0, example));
        entry.0 += 1;
    }

    fn failure_count(&self) -> u64 {
        self.failures.values().map(|(n, _)| n).sum()
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.puts += other.puts;
        self.gets += other.gets;
        for (kind, (count, example)) in other.failures {
            let entry = self.failures.entry(kind).or_insert((0, example));
            entry.0 += count;
        }
        self.latencies_us.extend(other.latencies_us);
        self.acknowledged.extend(other.acknowledged);
        self.history.extend(other.history);
    }
}

fn run(
    target: SocketAddr,
    connections: usize,
    users: usize,
    stop_file: &Path,
    pause: Duration,
    history_dir: Option<&Path>,
) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let recording = history_dir.map(|_| Recording::new(started));
    let total = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<_> = (0..connections)
        .map(|t| {
            let (stop, total) = (Arc::clone(&stop), Arc::clone(&total));
            let mine: Vec<String> = (t..users).step_by(connections).map(user_name).collect();
            let recording = recording.map(|r| r.for_connection(t));
            std::thread::spawn(move || {
                let tally = worker(target, &mine, &stop, pause, recording);
                total.lock().unwrap().merge(tally);
            })
        })
        .collect();
    while !stop_file.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let elapsed = started.elapsed();
    let mut tally = std::mem::take(&mut *total.lock().unwrap());

    // Every acknowledged write must be readable afterwards, with its value.
    let verified = tally.acknowledged.len();
    let acknowledged = std::mem::take(&mut tally.acknowledged);
    let final_reads = recording.map(|r| r.for_connection(connections));
    let mut sent: HashMap<String, Vec<NaiveDate>> = HashMap::new();
    for operation in &tally.history {
        if let checker::Action::Put(date) = &operation.action {
            let dates = sent.entry(operation.key.clone()).or_default();
            dates.extend(
                date.parse::<NaiveDate>()
                    .ok()
                    .filter(|d| !dates.contains(d)),
            );
        }
    }
    for (name, born) in acknowledged {
        let call = final_reads.as_ref().map(Recording::now);
        let result = Connection::open(target)
            .and_then(|mut c| c.send("GET", &format!("/hello/{name}"), &[], None));
        if let (Some(recording), Some(call)) = (final_reads.as_ref(), call) {
            let dates = sent.get(&name).map_or(&[][..], Vec::as_slice);
            tally
                .history
                .push(recording.get(&name, call, &result, dates));
        }
        check_greeting(&mut tally, &name, born, result, "final read");
    }
    let linearizable = history_dir.is_none_or(|dir| check_history(dir, &tally.history));

    tally.latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let v = &tally.latencies_us;
        if v.is_empty() {
            return 0.0;
        }
        v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    let failures = tally.failure_count();
    println!(
        "loadgen: {} requests ({} PUT, {} GET) in {:.1}s over {connections} keep-alive connections, {users} users",
        tally.requests,
        tally.puts,
        tally.gets,
        elapsed.as_secs_f64()
    );
    println!(
        "loadgen: latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(0.50),
        percentile(0.99),
        percentile(1.0)
    );
    println!("loadgen: {verified} users' last acknowledged writes read back");
    println!("loadgen: {failures} failed");
    for (kind, (count, example)) in &tally.failures {
        println!("loadgen:   {count} x {kind}, e.g. {example}");
    }
    if failures == 0 && tally.requests > 0 && linearizable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn worker(
    target: SocketAddr,
    users: &[String],
    stop: &AtomicBool,
    pause: Duration,
    mut recording: Option<Recording>,
) -> Tally {
    let mut tally = Tally::default();
    let mut last: Vec<Option<NaiveDate>> = vec![None; users.len()];
    // Every date sent to each user: what a greeting is mapped back to.
    let mut sent: Vec<Vec<NaiveDate>> = vec![Vec::new(); users.len()];
    let mut connection: Option<Connection> = None;
    let mut k = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let u = k % users.len();
        let name = &users[u];
        // Even rounds write, odd rounds read: half PUT, half GET, each user in turn.
        let write = (k / users.len()).is_multiple_of(2) || last[u].is_none();
        k += 1;
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match Connection::open(target) {
                Ok(conn) => connection.insert(conn),
                Err(e) => {
                    tally.fail("connect", e.to_string());
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let started = Instant::now();
        let call = recording.as_ref().map(Recording::now);
        tally.requests += 1;
        let path = format!("/hello/{name}");
        let failures_before = tally.failure_count();
        let result = if write {
            tally.puts += 1;
            let born = date(k);
            let body = format!(r#"{{"dateOfBirth":"{born}"}}"#);
            let result = conn.send(
                "PUT",
                &path,
                &[("Content-Type", "application/json")],
                Some(body.as_bytes()),
            );
            tally
                .latencies_us
                .push(started.elapsed().as_micros() as u64);
            if !sent[u].contains(&born) {
                sent[u].push(born);
            }
            if let (Some(recording), Some(call)) = (recording.as_mut(), call) {
                tally.history.push(recording.put(name, call, born, &result));
            }
            match &result {
                Ok(response) if response.status == 204 => last[u] = Some(born),
                Ok(response) => {
                    tally.fail(&format!("PUT {}", response.status), response_text(response))
                }
                Err(e) => tally.fail("PUT transport", e.to_string()),
            }
            result.ok()
        } else {
            tally.gets += 1;
            let result = conn.send("GET", &path, &[], None);
            tally
                .latencies_us
                .push(started.elapsed().as_micros() as u64);
            if let (Some(recording), Some(call)) = (recording.as_mut(), call) {
                tally
                    .history
                    .push(recording.get(name, call, &result, &sent[u]));
            }
            let born = last[u].expect("only users with a write are read");
            let response = result.as_ref().ok().cloned();
            check_greeting(&mut tally, name, born, result, "GET");
            response
        };
        // After a failure the connection's state is unknown; after `Connection: close` the
        // peer will close it. Either way, the next request opens a new one.
        let closing = result.is_some_and(|r| r.header("connection") == Some("close"));
        if closing || tally.failure_count() > failures_before {
            connection = None;
        }
        std::thread::sleep(pause);
    }
    tally.acknowledged = users
        .iter()
        .zip(last)
        .filter_map(|(name, born)| Some((name.clone(), born?)))
        .collect();
    tally
}

/// Records one connection's requests on the run's one timeline.
#[derive(Clone, Copy)]
struct Recording {
    epoch: Instant,
    /// This connection's process id; a new one after a PUT with an unknown outcome, which
    /// stays open (its answer never came), so the next request may overlap it.
    process: u64,
}

impl Recording {
    fn new(epoch: Instant) -> Self {
        Self { epoch, process: 0 }
    }

    /// Connection `t`'s recording: process ids `t * 2^32 + n` never collide.
    fn for_connection(self, t: usize) -> Self {
        Self {
            process: (t as u64) << 32,
            ..self
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn put(
        &mut self,
        name: &str,
        call: u64,
        born: NaiveDate,
        result: &std::io::Result<Response>,
    ) -> checker::Operation {
        let outcome = history::outcome_of_put(result);
        let operation = checker::Operation {
            process: self.process,
            key: name.to_owned(),
            action: checker::Action::Put(born.to_string()),
            call,
            ret: result.is_ok().then(|| self.now()),
            outcome,
            effect_by: None,
            note: Some(history::note(result)),
        };
        if outcome == checker::Outcome::Info {
            self.process += 1;
        }
        operation
    }

    /// A GET and the dates among `sent` its greeting fits (on this machine's date: the
    /// instances run here).
    fn get(
        &self,
        name: &str,
        call: u64,
        result: &std::io::Result<Response>,
        sent: &[NaiveDate],
    ) -> checker::Operation {
        let now = Utc::now();
        let read = match result {
            Ok(r) if r.status == 404 => Some(vec![None]),
            Ok(r) if r.status == 200 => {
                let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
                let dates = history::dates_greeted(name, &message, sent, now, now);
                Some(dates.iter().map(|d| Some(d.to_string())).collect())
            }
            _ => None,
        };
        checker::Operation {
            process: self.process,
            key: name.to_owned(),
            outcome: if read.is_some() {
                checker::Outcome::Ok
            } else {
                checker::Outcome::Fail
            },
            action: checker::Action::Get(read.unwrap_or_default()),
            call,
            ret: Some(self.now()),
            effect_by: None,
            note: Some(history::note(result)),
        }
    }
}

/// Writes the history into `dir`, checks it, and writes a timeline of any failing user.
fn check_history(dir: &Path, history: &[checker::Operation]) -> bool {
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::File::create(dir.join("history.jsonl")))
        .and_then(|file| checker::write_jsonl(std::io::BufWriter::new(file), history));
    if let Err(e) = written {
        println!(
            "loadgen: could not write the history into {}: {e}",
            dir.display()
        );
        return false;
    }
    let report = checker::check(history, Duration::from_secs(120));
    println!("loadgen: linearizability: {report}");
    for failure in report.failures() {
        println!("loadgen:   {failure}");
    }
    match checker::write_html(&dir.join("linearizability"), &report) {
        Ok(pages) => pages
            .iter()
            .for_each(|page| println!("loadgen:   timeline: {}", page.display())),
        Err(e) => println!("loadgen: could not write the timelines: {e}"),
    }
    report.verdict() == checker::Verdict::Ok
}

fn check_greeting(
    tally: &mut Tally,
    name: &str,
    born: NaiveDate,
    result: std::io::Result<Response>,
    what: &str,
) {
    match result {
        Ok(response) if response.status == 200 => {
            let got = response.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let wanted = expected_message(name, born);
            if got != wanted {
                tally.fail(
                    &format!("{what} stale"),
                    format!("{name}: {got:?}, wanted {wanted:?}"),
                );
            }
        }
        Ok(response) => tally.fail(
            &format!("{what} {}", response.status),
            response_text(&response),
        ),
        Err(e) => tally.fail(&format!("{what} transport"), e.to_string()),
    }
}

fn response_text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body)
        .chars()
        .take(200)
        .collect()
}

fn count(target: SocketAddr, method: &str, users: usize, requests: usize) -> ExitCode {
    let (expected, body) = match method {
        "GET" => (200, None),
        "PUT" => (204, Some(br#"{"dateOfBirth":"1990-01-15"}"#.as_slice())),
        other => {
            eprintln!("loadgen: --method must be GET or PUT, got {other}");
            return ExitCode::FAILURE;
        }
    };
    let mut connection = match Connection::open(target) {
        Ok(connection) => connection,
        Err(e) => {
            eprintln!("loadgen: cannot connect to {target}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for i in 0..requests {
        let path = format!("/hello/{}", user_name(i % users));
        match connection.send(method, &path, &[], body) {
            Ok(response) if response.status == expected => {}
            Ok(response) => {
                eprintln!(
                    "loadgen: {method} {path}: {} {}",
                    response.status,
                    response_text(&response)
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("loadgen: {method} {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("loadgen: {requests} x {method} answered {expected}");
    ExitCode::SUCCESS
}

fn startup(runs: usize, command: &[String]) -> ExitCode {
    let mut times = Vec::new();
    for _ in 0..runs {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let data = tempdir();
        let started = Instant::now();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .args(["--listen", &addr.to_string(), "--data-dir"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the server");
        let ready = loop {
            let ok = TcpStream::connect(addr).is_ok()
                && Connection::open(addr)
                    .and_then(|mut c| c.send("GET", "/health/ready", &[], None))
                    .is_ok_and(|r| r.status == 200);
            if ok {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("loadgen: the server was not ready within 10 s");
                return ExitCode::FAILURE;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&data);
        times.push(ready);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "loadgen: start to ready: median {:.1} ms over {runs} runs (min {:.1}, max {:.1})",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
    ExitCode::SUCCESS
}

fn tempdir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "loadgen-startup-{}-{}",
        std::process::id(),
        hello_birthday::random::random_hex(1)
    ))
}
