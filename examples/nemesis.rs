//! Linearizability under disagreeing clocks, pauses and crashes, on one machine.
//!
//! Several instances of the release binary share one data directory, as ECS tasks share EFS.
//! Each runs on its own wall clock (libfaketime, `LD_PRELOAD`: offsets from milliseconds to
//! minutes, ahead and behind, stepped backwards mid-run; the monotonic clock stays real, as a
//! host's does). A seeded schedule pauses instances with SIGSTOP in the middle of their writes
//! for longer than the storage timeout, kills them with SIGKILL and restarts them. Meanwhile
//! clients PUT and GET a handful of users through every instance, and every operation is
//! recorded with its invocation and completion on this process's monotonic clock. At the end
//! the whole history is checked for linearizability per user (`tests/linearizability`), plus
//! what linearizability does not cover: only documented answers, every answer within the
//! deadline (unless its instance was paused), no temp file left once swept.
//!
//! Run: `cargo build --release && cargo run --release --example nemesis -- --seed 42`.
//! The seed is printed; the same seed replays the same schedule of faults and operations
//! (the interleaving with the servers' threads is the machine's).
//! Needs libfaketime (Debian: `faketime`). Writes `history.jsonl`, the instances' logs and, for
//! a user whose history is not linearizable, an HTML timeline under `--out`.

#[path = "../tests/linearizability/checker/mod.rs"]
#[allow(dead_code, unused_imports)]
mod checker;
#[path = "../tests/api/history.rs"]
#[allow(dead_code)]
mod history;
#[path = "../tests/api/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use checker::Outcome;
use chrono::{Days, NaiveDate};
use clap::Parser;
use history::{Recorded, Recorder, problem_type};
use http::{Connection, Response};

#[derive(Parser)]
#[command(about = "Linearizability of hello-birthday under clock skew, pauses and crashes")]
struct Cli {
    /// The server binary; several, comma-separated, to run versions side by side as a rolling
    /// deploy does: instance i runs the (i mod n)-th. Instance 0 does the final sweep, so the
    /// newest version goes first (it sweeps where older versions left temp files too).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "target/release/hello-birthday"
    )]
    binary: Vec<PathBuf>,
    /// Seed of the schedule (faults and operations); random if not given, printed either way.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Concurrent clients, one thread each.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Distinct users: few, so that clients contend for them, and enough that none runs out
    /// of its 365 dates of birth during the run.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// How long the clients run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Faults to inject: any of clock, pause, kill.
    #[arg(long, value_delimiter = ',', default_value = "clock,pause,kill")]
    nemeses: Vec<Nemesis>,
    /// The instances' --storage-timeout, in ms (their --lock-timeout is half of it).
    #[arg(long, default_value_t = 2000)]
    storage_timeout_ms: u64,
    /// Where the history, logs and pages go (a folder per seed is made inside).
    #[arg(long, default_value = "target/nemesis")]
    out: PathBuf,
    /// libfaketime's preload library.
    #[arg(
        long,
        default_value = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
    )]
    faketime: PathBuf,
    /// Longest the checker may search, in seconds, before it answers "unknown".
    #[arg(long, default_value_t = 60)]
    check_budget_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Nemesis {
    Clock,
    Pause,
    Kill,
}

/// How long an instance may take from spawn to ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The dates of birth PUT to each user: 1990-01-01 + k days, k < 365 (1990 is not a leap year,
/// so each has its own month and day, and so its own greeting on any given day).
const DATES: usize = 365;
/// Clock offsets the clock nemesis picks from, in seconds (each ahead or behind). Mostly under
/// a second, as drifting hosts are, and where a rule that compares two hosts' stamps is hardest
/// to catch (a stamp far ahead looks wrong; one a little ahead looks like a later write).
const OFFSETS: [f64; 12] = [
    0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 2.0, 30.0, 90.0, 300.0,
];
/// Slack over the storage timeout for an answer to count as "within the deadline": the
/// request's time in the server before and after its storage call, on a loaded 2-core machine.
const ANSWER_SLACK: Duration = Duration::from_millis(1500);
/// What the service logs for a write fenced off because its lock was lost (`StorageError`).
const LOCK_LOST_LOGGED: &str = "the user's lock was lost";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    println!("nemesis: seed {seed} (replay with --seed {seed})");
    if cli.binary.len() > 1 {
        for index in 0..cli.instances {
            let binary = &cli.binary[index % cli.binary.len()];
            println!("  instance {index}: {}", binary.display());
        }
    }
    match run(&cli, seed) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("nemesis: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, seed: u64) -> io::Result<bool> {
    let out = cli.out.join(seed.to_string());
    let _ = fs::remove_dir_all(&out);
    let data = out.join("data");
    fs::create_dir_all(&data)?;
    let lab = Lab::new(cli, &out, &data)?;
    for instance in &lab.instances {
        lab.start(instance)?;
    }

    let clients = Clients::new(cli.users);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut log = Vec::new();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cli.clients)
            .map(|c| {
                let (lab, clients, stop) = (&lab, &clients, &stop);
                let rng = Rng::new(seed ^ ((c as u64 + 1) << 32));
                scope.spawn(move || client(lab, clients, stop, rng))
            })
            .collect();
        log = nemesis(
            &lab,
            cli,
            Rng::new(seed),
            started + Duration::from_secs(cli.seconds),
        );
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("a client thread panicked");
        }
    });
    for line in &log {
        println!("  {line}");
    }

    // Every user read through every instance once the faults are over: the final state.
    lab.heal_all()?;
    let process = lab.recorder.process();
    for instance in &lab.instances {
        for user in 0..cli.users {
            clients.get(&lab, process, instance, user);
        }
    }
    lab.stop_all();
    let leftovers = lab.sweep_and_list_temp_files()?;

    let history = lab.recorder.history();
    checker::write_jsonl(File::create(out.join("history.jsonl"))?, &history)?;
    let report = checker::check(&history, Duration::from_secs(cli.check_budget_secs));
    println!("linearizability: {report}");
    for failure in report.failures() {
        println!("  {failure}");
    }
    for page in checker::write_html(&out.join("linearizability"), &report)? {
        println!("  timeline of a failing user: {}", page.display());
    }

    let late = lab.late_answers();
    let lost = lab.lost_locks()?;
    let mut breaches = lab.breaches.into_inner().unwrap();
    breaches.extend(late);
    breaches.extend(lost);
    if !leftovers.is_empty() {
        breaches.push(format!("temp files left after a sweep: {leftovers:?}"));
    }
    let tally = clients.tally.into_inner().unwrap();
    println!(
        "nemesis: {} operations ({}), {} instance starts, history in {}",
        history.len(),
        tally
            .iter()
            .map(|(answer, n)| format!("{answer} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        lab.starts.load(Ordering::Relaxed),
        out.join("history.jsonl").display()
    );
    for breach in &breaches {
        println!("BREACH: {breach}");
    }
    let ok = report.verdict() == checker::Verdict::Ok && breaches.is_empty();
    println!("nemesis: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

/// The instances and the faults done to them.
struct Lab {
    data: PathBuf,
    faketime: PathBuf,
    storage_timeout: Duration,
    instances: Vec<Instance>,
    /// Every client operation, on the run's one timeline (outages are measured on it too).
    recorder: Recorder,
    starts: AtomicUsize,
    /// Breaches seen by any thread (answers outside the contract).
    breaches: Mutex<Vec<String>>,
}

struct Instance {
    index: usize,
    binary: PathBuf,
    addr: SocketAddr,
    /// libfaketime's offset for this instance, re-read by it every second.
    clock_file: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// Intervals (ns since the epoch) during which it was stopped or dead; an answer that
    /// spans one may be late.
    outages: Mutex<Vec<(u64, u64)>>,
}

/// An instance still running when the lab goes away (a run that ended early with an error, e.g.
/// another instance never became ready) is killed with it: `Child` does not do that on drop,
/// and a leftover server would hold its port and data directory past the run.
impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Lab {
    fn new(cli: &Cli, out: &Path, data: &Path) -> io::Result<Self> {
        if !cli.faketime.exists() {
            return Err(io::Error::other(format!(
                "{} not found (apt-get install faketime)",
                cli.faketime.display()
            )));
        }
        let instances = (0..cli.instances)
            .map(|index| {
                let clock_file = out.join(format!("clock-{index}"));
                fs::write(&clock_file, "+0\n")?;
                Ok(Instance {
                    index,
                    binary: cli.binary[index % cli.binary.len()].clone(),
                    addr: free_port()?,
                    clock_file,
                    log: out.join(format!("instance-{index}.log")),
                    child: Mutex::new(None),
                    outages: Mutex::default(),
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(Self {
            data: data.to_owned(),
            faketime: cli.faketime.clone(),
            storage_timeout: Duration::from_millis(cli.storage_timeout_ms),
            instances,
            // Greetings depend on the server's date; its clock may be this far off.
            recorder: Recorder::with_clock_skew(chrono::Duration::seconds(
                2 * OFFSETS[OFFSETS.len() - 1] as i64 + 2,
            )),
            starts: AtomicUsize::new(0),
            breaches: Mutex::default(),
        })
    }

    fn now(&self) -> u64 {
        self.recorder.now()
    }

    fn breach(&self, what: String) {
        self.breaches.lock().unwrap().push(what);
    }

    fn command(&self, instance: &Instance, orphan_age_secs: u64) -> io::Result<Command> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&instance.log)?;
        let mut command = Command::new(&instance.binary);
        // Only the settings given here: a developer's own environment must not leak in.
        command
            .env_clear()
            .env("LISTEN_ADDR", instance.addr.to_string())
            .env("DATA_DIR", &self.data)
            .env("LOG_FORMAT", "json")
            .env(
                "STORAGE_TIMEOUT_MS",
                self.storage_timeout.as_millis().to_string(),
            )
            .env(
                "LOCK_TIMEOUT_MS",
                (self.storage_timeout / 2).as_millis().to_string(),
            )
            .env("ORPHAN_AGE_SECS", orphan_age_secs.to_string())
            .env("SHUTDOWN_TIMEOUT_SECS", "5")
            .env("LD_PRELOAD", &self.faketime)
            .env("FAKETIME_TIMESTAMP_FILE", &instance.clock_file)
            .env("FAKETIME_CACHE_DURATION", "1")
            // Deadlines, timers and the lock backoff run on the monotonic clock, which a host's
            // wall-clock error does not touch.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(command)
    }

    fn start(&self, instance: &Instance) -> io::Result<()> {
        self.start_with(instance, 300)
    }

    fn start_with(&self, instance: &Instance, orphan_age_secs: u64) -> io::Result<()> {
        let child = self.command(instance, orphan_age_secs)?.spawn()?;
        *instance.child.lock().unwrap() = Some(child);
        self.starts.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = Connection::open(instance.addr)
                .and_then(|mut c| c.send("GET", "/health/ready", &[], None))
                .is_ok_and(|r| r.status == 200);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "instance {} not ready within {READY_TIMEOUT:?}; see {}",
                    instance.index,
                    instance.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, instance: &Instance, signal: &str) {
        if let Some(child) = instance.child.lock().unwrap().as_ref() {
            send_signal(child, signal);
        }
    }

    /// SIGSTOP for `pause`, then SIGCONT: the instance's requests, storage calls included,
    /// stand still wherever they are, and a lock it holds stays held. The stop is sent the
    /// moment the instance is seen holding a user's lock (in the middle of a write), if that
    /// happens within a second. Returns whether it did.
    fn pause(&self, instance: &Instance, pause: Duration) -> bool {
        let pid = instance.child.lock().unwrap().as_ref().map(Child::id);
        let mid_write =
            pid.is_some_and(|pid| wait_until_holding_a_lock(pid, Duration::from_secs(1)));
        let from = self.now();
        self.signal(instance, "STOP");
        std::thread::sleep(pause);
        self.signal(instance, "CONT");
        instance.outages.lock().unwrap().push((from, self.now()));
        mid_write
    }

    fn kill_and_restart(&self, instance: &Instance) -> io::Result<()> {
        let from = self.now();
        if let Some(mut child) = instance.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = self.start(instance);
        instance.outages.lock().unwrap().push((from, self.now()));
        started
    }

    fn set_clock(&self, instance: &Instance, offset: f64) -> io::Result<()> {
        fs::write(&instance.clock_file, format!("{offset:+.3}\n"))
    }

    /// Clocks right and every instance running (a paused one was resumed by its pauser).
    fn heal_all(&self) -> io::Result<()> {
        for instance in &self.instances {
            self.set_clock(instance, 0.0)?;
        }
        // libfaketime re-reads its file at most a second later.
        std::thread::sleep(Duration::from_millis(1100));
        Ok(())
    }

    fn stop_all(&self) {
        for instance in &self.instances {
            if let Some(mut child) = instance.child.lock().unwrap().take() {
                send_signal(&child, "TERM");
                match wait_timeout(&mut child, Duration::from_secs(15)) {
                    Some(status) if status.success() => {}
                    other => {
                        let _ = child.kill();
                        self.breach(format!(
                            "instance {} did not exit 0 on SIGTERM: {other:?}",
                            instance.index
                        ));
                    }
                }
            }
        }
    }

    /// Starts one instance whose startup sweep removes every orphan (age 0: nothing else runs
    /// now), stops it, and lists the temp files still there.
    fn sweep_and_list_temp_files(&self) -> io::Result<Vec<String>> {
        let sweeper = &self.instances[0];
        self.start_with(sweeper, 0)?;
        self.stop_all();
        let mut left = Vec::new();
        // `tmp/`, and beside the records, where versions before `tmp/` wrote temp files.
        let mut dirs = vec![self.data.join("users"), self.data.join("tmp")];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_none_or(|e| e != "json") {
                    left.push(path.display().to_string());
                }
            }
        }
        Ok(left)
    }

    /// Writes whose instance logged that the user's lock had been lost. On one machine's file
    /// system a lock is never lost (a stopped process keeps it, a killed one writes no more),
    /// so each is a lock that did not exclude another writer: of another version, say, whose
    /// lock files are elsewhere. The second fence turns most such races into a 503, so the
    /// history alone would rarely show them.
    fn lost_locks(&self) -> io::Result<Vec<String>> {
        let mut lost = Vec::new();
        for instance in &self.instances {
            let log = fs::read_to_string(&instance.log)?;
            let count = log.matches(LOCK_LOST_LOGGED).count();
            if count > 0 {
                lost.push(format!(
                    "instance {} logged {count} write(s) whose lock was lost ({})",
                    instance.index,
                    instance.log.display()
                ));
            }
        }
        Ok(lost)
    }

    /// Answers that came later than the deadline allows, unless their instance was paused or
    /// down meanwhile (a stopped process answers when it is resumed).
    fn late_answers(&self) -> Vec<String> {
        let limit = (self.storage_timeout + ANSWER_SLACK).as_nanos() as u64;
        self.recorder
            .operations()
            .into_iter()
            .filter_map(|Recorded { op, via }| {
                let ret = op.ret?;
                let instance = self.instances.iter().find(|i| i.addr == via)?;
                let excused = instance
                    .outages
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|&(from, to)| from <= ret && to >= op.call);
                (ret - op.call > limit && !excused).then(|| {
                    format!(
                        "{} through instance {} answered after {} ms",
                        op.describe(),
                        instance.index,
                        (ret - op.call) / 1_000_000
                    )
                })
            })
            .collect()
    }
}

/// Polls `/proc/locks` until process `pid` holds an exclusive `flock` (a writer under a user's
/// lock: the service takes no other), for at most `timeout`. Writers hold it for about a
/// millisecond, so the poll does not sleep.
fn wait_until_holding_a_lock(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let pid = pid.to_string();
    while Instant::now() < deadline {
        // "1: FLOCK  ADVISORY  WRITE 12345 00:2a:1234 0 EOF"
        let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
        let held = locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"FLOCK")
                && fields.get(3) == Some(&"WRITE")
                && fields.get(4) == Some(&pid.as_str())
        });
        if held {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Sends `signal` (a name: STOP, CONT, TERM) to `child` with kill(1): std sends only SIGKILL.
fn send_signal(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
}

fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The fault schedule, until `until`: one fault at a time, so that at most one instance is
/// paused or down and the others keep serving.
fn nemesis(lab: &Lab, cli: &Cli, mut rng: Rng, until: Instant) -> Vec<String> {
    let mut log = Vec::new();
    let mut offsets = vec![0.0_f64; lab.instances.len()];
    while Instant::now() + Duration::from_millis(500) < until {
        std::thread::sleep(Duration::from_millis(200 + rng.below(800) as u64));
        let Some(&nemesis) = rng.pick(&cli.nemeses) else {
            continue;
        };
        let instance = &lab.instances[rng.below(lab.instances.len())];
        let at = lab.now() as f64 / 1e9;
        let what = match nemesis {
            Nemesis::Clock => {
                let i = instance.index;
                // Now and then a step backwards from wherever the clock is; else a new offset.
                offsets[i] = if rng.below(3) == 0 {
                    offsets[i] - rng.pick(&OFFSETS).unwrap()
                } else {
                    rng.pick(&OFFSETS).unwrap() * if rng.below(2) == 0 { 1.0 } else { -1.0 }
                };
                match lab.set_clock(instance, offsets[i]) {
                    Ok(()) => format!("clock {:+.3} s", offsets[i]),
                    Err(e) => format!("clock change failed: {e}"),
                }
            }
            Nemesis::Pause => {
                // Longer than the storage timeout: a write paused past its fence's deadline.
                let pause = lab.storage_timeout + Duration::from_millis(rng.below(1500) as u64);
                let mid_write = lab.pause(instance, pause);
                format!(
                    "paused {} ms{}",
                    pause.as_millis(),
                    if mid_write {
                        " holding a user's lock"
                    } else {
                        ""
                    }
                )
            }
            Nemesis::Kill => match lab.kill_and_restart(instance) {
                Ok(()) => "SIGKILL, restarted".to_owned(),
                Err(e) => {
                    lab.breach(format!("restart failed: {e}"));
                    format!("SIGKILL, restart failed: {e}")
                }
            },
        };
        log.push(format!("{at:7.3} s  instance {}: {what}", instance.index));
    }
    log
}

/// The clients' side: the recorder, and the dates of birth handed out so far.
struct Clients {
    /// Per user: how many dates have been sent (the next k). Unique values make a history
    /// far cheaper to check and a stale read unmistakable.
    sent: Vec<AtomicUsize>,
    /// Answers by kind, for the summary.
    tally: Mutex<BTreeMap<String, u64>>,
}

/// The PUT answers the API documents; anything else is a breach.
const DOCUMENTED_PUT_503: [&str; 4] = [
    "storage-busy",
    "storage-timeout",
    "storage-unavailable",
    "write-unconfirmed",
];
const DOCUMENTED_GET_503: [&str; 3] = ["storage-busy", "storage-timeout", "storage-unavailable"];

impl Clients {
    fn new(users: usize) -> Self {
        Self {
            sent: (0..users).map(|_| AtomicUsize::new(0)).collect(),
            tally: Mutex::default(),
        }
    }

    fn count(&self, method: &str, answer: &io::Result<Response>) {
        // Greetings and error messages vary: tallied by status, or by what kind of error.
        let note = history::note(answer);
        let kind = match answer {
            Ok(r) if r.status >= 400 => note,
            Ok(r) => r.status.to_string(),
            Err(_) => note.split(':').next().unwrap_or_default().to_owned(),
        };
        *self
            .tally
            .lock()
            .unwrap()
            .entry(format!("{method} {kind}"))
            .or_default() += 1;
    }

    /// PUTs the user's next unused date; `None` once all are used.
    fn put(&self, lab: &Lab, process: u64, instance: &Instance, user: usize) -> Option<Outcome> {
        let k = self.sent[user].fetch_add(1, Ordering::SeqCst);
        if k >= DATES {
            return None;
        }
        let name = user_name(user);
        let answer = lab.recorder.put(process, instance.addr, &name, date(k));
        self.count("PUT", &answer);
        if let Ok(r) = &answer {
            let documented = r.status == 204
                || (r.status == 503 && DOCUMENTED_PUT_503.contains(&problem_type(r).as_str()));
            if !documented {
                lab.breach(format!("PUT {name}: {} {}", r.status, r.text()));
            }
        }
        Some(history::outcome_of_put(&answer))
    }

    fn get(&self, lab: &Lab, process: u64, instance: &Instance, user: usize) {
        let name = user_name(user);
        let answer = lab.recorder.get(process, instance.addr, &name);
        self.count("GET", &answer);
        if let Ok(r) = &answer {
            let documented = r.status == 200
                || r.status == 404
                || (r.status == 503 && DOCUMENTED_GET_503.contains(&problem_type(r).as_str()));
            if !documented {
                lab.breach(format!("GET {name}: {} {}", r.status, r.text()));
            }
        }
    }
}

/// The k-th date of birth PUT to a user.
fn date(k: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + Days::new(k as u64)
}

fn user_name(user: usize) -> String {
    let letter = |i: usize| char::from(b'a' + (i % 26) as u8);
    format!("nemesis{}{}", letter(user / 26), letter(user))
}

/// A client: random operations on random users through random instances until `stop`.
fn client(lab: &Lab, clients: &Clients, stop: &AtomicBool, mut rng: Rng) {
    let mut process = lab.recorder.process();
    while !stop.load(Ordering::Relaxed) {
        let instance = &lab.instances[rng.below(lab.instances.len())];
        let user = rng.below(clients.sent.len());
        if rng.below(2) == 0 {
            if clients.put(lab, process, instance, user) == Some(Outcome::Info) {
                // Its operation may still take effect: it stays open, so this client goes on
                // as a new process (as Jepsen does).
                process = lab.recorder.process();
            }
        } else {
            clients.get(lab, process, instance, user);
        }
        // About 40 requests a second per client: each user gets its 365 dates in no less than
        // half a minute with the defaults.
        std::thread::sleep(Duration::from_millis(5 + rng.below(40) as u64));
    }
}

/// xorshift64*: a seeded, dependency-free generator; the schedule only needs to replay.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}
