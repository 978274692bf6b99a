//! The scale curve's measuring tool: seeds a data directory with N users in the service's own
//! on-disk layout, and measures at that size what `scripts/scale-curve.sh` puts in a table.
//!
//! - `scale seed`: N records, written with the library's own `Layout` and `Record`, as the
//!   service's first PUT of each user leaves them (version 1), without the fsyncs and renames
//!   that make one write durable (seeding is not what is measured), then one `sync`.
//! - `scale raw`: the substrate's own limit: threads doing open+read+close of random record
//!   files, the same files the service reads for a GET.
//! - `scale load`: GET (known or unknown users) or PUT over keep-alive connections, each
//!   request to a user drawn at random from all N, so the page cache sees the whole set.
//! - `scale sweep`: the library's own orphan sweep, in this process, timed (run it under
//!   strace to count its file-system calls).
//! - `scale startup`: spawn the server on the data directory, time to its first 200 on
//!   `/health/ready`, and the duration of its startup sweep as its `/metrics` report it.
//!
//! Every measuring command prints one line of `key=value` pairs for the script to tabulate.
//! Build: `cargo build --release --example scale`.

#[path = "../tests/api/http.rs"]
mod http;
#[path = "shared/users.rs"]
mod users;

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use users::user_name;

use chrono::{DateTime, Days, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use hello_birthday::domain::Username;
use hello_birthday::storage::{
    Layout, Record, SCHEMA_VERSION, StorageMetrics, Store, StoreConfig, SweepScope,
};
use http::Connection;

#[derive(Parser)]
#[command(about = "Seeds N users and measures the service and its substrate at that size")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Writes records for users 0..N (names as `loadgen` makes them) under DATA_DIR.
    Seed {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        users: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// open+read+close of random users' record files from several threads.
    Raw {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        users: usize,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Drop the page cache first (root only), then read each user once, in random order,
        /// until they run out or the time is up: every read a cache miss.
        #[arg(long)]
        cold: bool,
    },
    /// HTTP load on random users over keep-alive connections, one thread each.
    Load {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        users: usize,
        #[arg(long, value_enum)]
        kind: LoadKind,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// As for `raw`: each user once, after dropping the page cache.
        #[arg(long)]
        cold: bool,
    },
    /// Runs the library's orphan sweep RUNS times on DATA_DIR and reports its duration.
    Sweep {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, value_enum)]
        scope: Scope,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Drop the page cache before each run.
        #[arg(long)]
        cold: bool,
    },
    /// Spawns BINARY ARGS... on DATA_DIR: start to ready, then the startup sweep's duration.
    Startup {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        cold: bool,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoadKind {
    /// GET /hello/<user> of seeded users: 200.
    Known,
    /// GET /hello/<user> of users never written: 404.
    Unknown,
    /// PUT /hello/<user> of seeded users (replacing their record): 204.
    Put,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scope {
    /// What every periodic sweep lists: `tmp/` and the probe files.
    InFlight,
    /// What a process's first sweep lists: also every fan-out directory of `users/`.
    WithLegacy,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Mode::Seed {
            data_dir,
            users,
            threads,
        } => seed(&data_dir, users, threads),
        Mode::Raw {
            data_dir,
            users,
            threads,
            seconds,
            cold,
        } => raw(&data_dir, users, threads, secs(seconds), cold),
        Mode::Load {
            target,
            users,
            kind,
            connections,
            seconds,
            cold,
        } => load(target, users, kind, connections, secs(seconds), cold),
        Mode::Sweep {
            data_dir,
            scope,
            runs,
            cold,
        } => sweep(&data_dir, scope, runs, cold),
        Mode::Startup {
            data_dir,
            runs,
            cold,
            command,
        } => startup(&data_dir, runs, cold, &command),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("scale: {message}");
            ExitCode::FAILURE
        }
    }
}

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

fn username(i: usize) -> Username {
    Username::parse(&user_name(i)).expect("generated names are valid")
}

/// User i's seeded date of birth.
fn seeded_date(i: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Days::new((i % 15_000) as u64)
}

/// When every seeded record says it was written (fixed, so two seeds are byte-identical).
fn seeded_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .into()
}

/// The record the service's first PUT of user i leaves, at `seeded_at`.
fn seeded_record(username: &Username, i: usize) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        username: username.as_str().to_owned(),
        date_of_birth: seeded_date(i),
        updated_at: seeded_at(),
        // A first write stores the version it found (none: 0) plus one.
        version: 1,
    }
}

fn store_config() -> StoreConfig {
    StoreConfig {
        lock_timeout: Duration::from_secs(5),
        storage_timeout: Duration::from_secs(10),
        max_concurrent_ops: 4,
    }
}

/// Opens the store as the service does: creates `users/`, `locks/` and `tmp/`, probes.
fn open_store(data_dir: &Path) -> Result<Store, String> {
    Store::open(
        data_dir,
        store_config(),
        StorageMetrics::new(&[0.001, 0.01, 0.1, 1.0]),
    )
    .map_err(|e| format!("opening the store: {e}"))
}

fn seed(data_dir: &Path, users: usize, threads: usize) -> Result<String, String> {
    let started = Instant::now();
    drop(open_store(data_dir)?);
    let layout = Layout::new(data_dir);
    // Every fan-out directory up front, so the writers need no create_dir per file (the
    // service makes each on its first write into it; past a few thousand users all exist).
    for byte in 0..=255u8 {
        fs::create_dir_all(layout.users_dir().join(format!("{byte:02x}")))
            .map_err(|e| format!("creating a fan-out directory: {e}"))?;
    }
    let threads = threads.max(1);
    let failed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let layout = &layout;
                scope.spawn(move || -> Result<(), String> {
                    for i in (t..users).step_by(threads) {
                        let username = username(i);
                        let paths = layout.record(&username);
                        fs::write(&paths.record, seeded_record(&username, i).to_json())
                            .map_err(|e| format!("{}: {e}", paths.record.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().expect("seeder panicked").err())
            .next()
    });
    if let Some(error) = failed {
        return Err(error);
    }
    // Write it all out now: gigabytes of dirty pages flushed during the measurements that
    // follow would slow their fsyncs (PUT) and reads, and that is seeding's cost, not theirs.
    let synced = Command::new("sync")
        .status()
        .map_err(|e| format!("sync: {e}"))?;
    if !synced.success() {
        return Err(format!("sync: {synced}"));
    }
    Ok(format!(
        "users={users} seed_s={:.1}",
        started.elapsed().as_secs_f64()
    ))
}

/// SplitMix64: enough randomness to pick users, no dependency.
struct Rng(u64);

impl Rng {
    fn new(stream: usize) -> Self {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(
            0x9e37_79b9_7f4a_7c15 ^ ((stream as u64) << 32) ^ clock ^ u64::from(std::process::id()),
        )
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Which users a run's requests go to.
enum Draw {
    /// Any of users 0..N, at random, repeats and all: a steady state.
    Random(usize),
    /// Each of users 0..N once, in random order, shared by all threads, until they run out:
    /// after the page cache is dropped, every read is a miss, at any N (with repeats, a
    /// thousand users would all be cached again within milliseconds).
    Once(Vec<u32>, AtomicUsize),
}

impl Draw {
    fn new(users: usize, once: bool) -> Self {
        if !once {
            return Self::Random(users);
        }
        let mut order: Vec<u32> = (0..users as u32).collect();
        let mut rng = Rng::new(usize::MAX);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        Self::Once(order, AtomicUsize::new(0))
    }

    fn next(&self, rng: &mut Rng) -> Option<usize> {
        match self {
            Self::Random(users) => Some(rng.below(*users)),
            Self::Once(order, taken) => order
                .get(taken.fetch_add(1, Ordering::Relaxed))
                .map(|&i| i as usize),
        }
    }
}

/// Empties the page cache (dentries, inodes and pages): every record is read from the disk
/// again, as on a host that has not read it yet.
fn drop_caches() -> Result<(), String> {
    Command::new("sync")
        .status()
        .map_err(|e| format!("sync: {e}"))?;
    fs::write("/proc/sys/vm/drop_caches", "3\n")
        .map_err(|e| format!("dropping the page cache (needs root): {e}"))
}

/// Latencies in nanoseconds, merged from every thread.
struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        match self.0.len() {
            0 => 0.0,
            n => self.0[((n - 1) as f64 * p).round() as usize] as f64,
        }
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / self.0.len().max(1) as f64
    }
}

/// Runs `threads` copies of `op` until `duration` has passed or every copy has run out of
/// work; each call of `op` is one timed operation returning whether it succeeded, or `None`
/// if there was nothing left to do. Returns the latencies, the failures and the wall time.
fn hammer<S>(
    threads: usize,
    duration: Duration,
    setup: impl Fn(usize) -> Result<S, String> + Sync,
    op: impl Fn(&mut S, &mut Rng) -> Option<bool> + Sync,
) -> Result<(Latencies, u64, Duration), String> {
    let stop = AtomicBool::new(false);
    let failures = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, failures, finished) = (&stop, &failures, &finished);
                let (setup, op) = (&setup, &op);
                scope.spawn(move || -> Result<Vec<u64>, String> {
                    // Counted as finished however it ends, so the clock below never waits
                    // for a thread that is gone.
                    struct Finished<'a>(&'a AtomicUsize);
                    impl Drop for Finished<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _finished = Finished(finished);
                    let mut state = setup(t)?;
                    let mut rng = Rng::new(t);
                    let mut latencies = Vec::with_capacity(1 << 16);
                    while !stop.load(Ordering::Relaxed) {
                        let began = Instant::now();
                        let Some(ok) = op(&mut state, &mut rng) else {
                            break;
                        };
                        latencies.push(began.elapsed().as_nanos() as u64);
                        if !ok {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        while started.elapsed() < duration && finished.load(Ordering::Relaxed) < threads {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let elapsed = started.elapsed();
    let latencies = Latencies(per_thread.into_iter().flatten().collect());
    Ok((latencies, failures.into_inner(), elapsed))
}

fn summary(kind: &str, mut latencies: Latencies, failures: u64, elapsed: Duration) -> String {
    let n = latencies.0.len();
    let mean = latencies.mean();
    format!(
        "kind={kind} ops={n} ops_per_s={:.0} mean_us={:.1} p50_us={:.1} p99_us={:.1} failures={failures}",
        n as f64 / elapsed.as_secs_f64(),
        mean / 1000.0,
        latencies.percentile(0.50) / 1000.0,
        latencies.percentile(0.99) / 1000.0,
    )
}

fn raw(
    data_dir: &Path,
    users: usize,
    threads: usize,
    duration: Duration,
    cold: bool,
) -> Result<String, String> {
    if cold {
        drop_caches()?;
    }
    let layout = Layout::new(data_dir);
    let draw = Draw::new(users, cold);
    let (latencies, failures, elapsed) = hammer(
        threads,
        duration,
        |_| Ok(Vec::with_capacity(512)),
        |buffer: &mut Vec<u8>, rng| {
            let path = layout.record(&username(draw.next(rng)?)).record;
            buffer.clear();
            // The time includes hashing the name into its path, as a GET's does: about a
            // microsecond, next to the file calls.
            Some(
                fs::File::open(&path)
                    .and_then(|mut file| file.read_to_end(buffer))
                    .is_ok_and(|n| n > 0),
            )
        },
    )?;
    let line = summary("raw", latencies, failures, elapsed);
    if failures > 0 {
        return Err(format!("{failures} record files could not be read: {line}"));
    }
    Ok(line)
}

fn load(
    target: SocketAddr,
    users: usize,
    kind: LoadKind,
    connections: usize,
    duration: Duration,
    cold: bool,
) -> Result<String, String> {
    if cold {
        drop_caches()?;
    }
    let (method, expected) = match kind {
        LoadKind::Known => ("GET", 200),
        LoadKind::Unknown => ("GET", 404),
        LoadKind::Put => ("PUT", 204),
    };
    let draw = Draw::new(users, cold);
    let (latencies, failures, elapsed) = hammer(
        connections,
        duration,
        |_| Connection::open(target).map_err(|e| format!("connecting to {target}: {e}")),
        |connection, rng| {
            let i = draw.next(rng)?;
            // Users N..2N are never seeded: a miss costs a lookup in a full fan-out directory.
            let i = if kind == LoadKind::Unknown {
                users + i
            } else {
                i
            };
            let path = format!("/hello/{}", user_name(i));
            let body = format!(r#"{{"dateOfBirth":"{}"}}"#, seeded_date(i + 1));
            let (headers, body) = match kind {
                LoadKind::Put => (
                    &[("Content-Type", "application/json")][..],
                    Some(body.as_bytes()),
                ),
                _ => (&[][..], None),
            };
            Some(match connection.send(method, &path, headers, body) {
                Ok(response) => response.status == expected,
                Err(_) => {
                    // Reconnect so one broken connection cannot stall its thread.
                    if let Ok(fresh) = Connection::open(target) {
                        *connection = fresh;
                    }
                    false
                }
            })
        },
    )?;
    let name = match kind {
        LoadKind::Known => "get_known",
        LoadKind::Unknown => "get_unknown",
        LoadKind::Put => "put",
    };
    let line = summary(name, latencies, failures, elapsed);
    if failures > 0 {
        return Err(format!("{failures} requests failed: {line}"));
    }
    Ok(line)
}

fn sweep(data_dir: &Path, scope: Scope, runs: usize, cold: bool) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store = open_store(data_dir)?;
    let scope = match scope {
        Scope::InFlight => SweepScope::InFlight,
        Scope::WithLegacy => SweepScope::WithLegacy,
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        if cold {
            drop_caches()?;
        }
        let started = Instant::now();
        let report = runtime
            .block_on(store.sweep_orphans(Duration::from_secs(3600), scope))
            .map_err(|e| format!("sweep: {e}"))?;
        times.push(started.elapsed().as_nanos() as u64);
        if report.errors > 0 {
            return Err(format!("the sweep met {} errors", report.errors));
        }
    }
    let mut times = Latencies(times);
    Ok(format!(
        "kind=sweep runs={runs} median_ms={:.3} max_ms={:.3}",
        times.percentile(0.5) / 1e6,
        times.percentile(1.0) / 1e6
    ))
}

fn startup(data_dir: &Path, runs: usize, cold: bool, command: &[String]) -> Result<String, String> {
    let mut ready_times = Vec::new();
    let mut sweep_times = Vec::new();
    for _ in 0..runs.max(1) {
        if cold {
            drop_caches()?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .args(["--listen", &addr.to_string(), "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning the server: {e}"))?;
        let result = (|| {
            let ready = poll(started, Duration::from_secs(60), || {
                get(addr, "/health/ready").is_some_and(|(status, _)| status == 200)
            })
            .ok_or("the server was not ready within 60 s")?;
            // The first sweep starts as the server starts serving and runs beside it; its
            // duration is what the server itself reports.
            let mut swept = None;
            poll(started, Duration::from_secs(600), || {
                swept = get(addr, "/metrics").and_then(|(_, body)| startup_sweep_seconds(&body));
                swept.is_some()
            })
            .ok_or("the startup sweep did not finish within 600 s")?;
            Ok::<_, String>((ready, swept.expect("polled until some")))
        })();
        let _ = child.kill();
        let _ = child.wait();
        let (ready, swept) = result?;
        ready_times.push(ready.as_nanos() as u64);
        sweep_times.push((swept * 1e9) as u64);
    }
    let (mut ready, mut swept) = (Latencies(ready_times), Latencies(sweep_times));
    Ok(format!(
        "kind=startup runs={runs} ready_median_ms={:.1} ready_max_ms={:.1} startup_sweep_median_ms={:.1} startup_sweep_max_ms={:.1}",
        ready.percentile(0.5) / 1e6,
        ready.percentile(1.0) / 1e6,
        swept.percentile(0.5) / 1e6,
        swept.percentile(1.0) / 1e6,
    ))
}

/// Calls `check` until it is true (then the time since `started`) or `within` has passed.
fn poll(started: Instant, within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    loop {
        if check() {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = Connection::open(addr)
        .and_then(|mut c| c.send("GET", path, &[], None))
        .ok()?;
    Some((response.status, response.text()))
}

/// The sweep's total seconds from a `/metrics` page, once one sweep has finished.
fn startup_sweep_seconds(metrics: &str) -> Option<f64> {
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    let label = r#"{operation="sweep"}"#;
    let count = value(&format!("storage_operation_duration_seconds_count{label}"))?;
    (count >= 1.0).then(|| value(&format!("storage_operation_duration_seconds_sum{label}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use hello_birthday::domain::DateOfBirth;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn seeded_records_are_byte_for_byte_what_the_services_first_put_writes() {
        let (seeded, written) = (tempdir(), tempdir());
        seed(seeded.path(), 40, 3).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = open_store(written.path()).unwrap();
        for i in [0, 7, 39] {
            let name = username(i);
            runtime
                .block_on(store.put(&name, DateOfBirth::from_stored(seeded_date(i)), seeded_at()))
                .unwrap();
            let read = |root: &Path| fs::read_to_string(Layout::new(root).record(&name).record);
            assert_eq!(
                read(seeded.path()).unwrap(),
                read(written.path()).unwrap(),
                "user {i}"
            );
        }
    }

    #[test]
    fn the_store_reads_every_seeded_user_and_no_other() {
        let dir = tempdir();
        seed(dir.path(), 100, 2).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = open_store(dir.path()).unwrap();
        for i in 0..100 {
            let found = runtime.block_on(store.get(&username(i))).unwrap();
            assert_eq!(
                found.map(DateOfBirth::date),
                Some(seeded_date(i)),
                "user {i}"
            );
        }
        assert_eq!(runtime.block_on(store.get(&username(100))).unwrap(), None);
        let files: usize = fs::read_dir(dir.path().join("users"))
            .unwrap()
            .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(files, 100);
    }

    #[test]
    fn user_names_are_distinct_so_unknown_users_are_never_seeded() {
        let names: std::collections::HashSet<_> = (0..20_000).map(user_name).collect();
        assert_eq!(names.len(), 20_000);
        assert_eq!(user_name(0), "loada");
        assert_eq!(user_name(26), "loadab");
    }

    #[test]
    fn a_cold_draw_takes_every_user_exactly_once_then_runs_out() {
        let draw = Draw::new(1000, true);
        let mut rng = Rng::new(0);
        let mut seen: Vec<usize> = std::iter::from_fn(|| draw.next(&mut rng)).collect();
        assert_ne!(seen, (0..1000).collect::<Vec<_>>(), "in random order");
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        // A warm draw never runs out, and stays below N.
        let draw = Draw::new(3, false);
        assert!((0..1000).all(|_| draw.next(&mut rng).is_some_and(|i| i < 3)));
    }

    #[test]
    fn raw_reads_every_file_it_draws_and_fails_on_a_missing_one() {
        let dir = tempdir();
        seed(dir.path(), 50, 1).unwrap();
        let line = raw(dir.path(), 50, 2, Duration::from_millis(50), false).unwrap();
        assert!(line.contains("failures=0"), "{line}");
        // Users past the seeded ones have no file: every read fails, and the run says so.
        fs::remove_file(Layout::new(dir.path()).record(&username(3)).record).unwrap();
        assert!(raw(dir.path(), 50, 2, Duration::from_millis(200), false).is_err());
    }

    #[test]
    fn the_startup_sweep_is_read_from_metrics_only_once_it_has_run() {
        let before = "storage_operation_duration_seconds_count{operation=\"sweep\"} 0\n\
                      storage_operation_duration_seconds_sum{operation=\"sweep\"} 0\n";
        let after = "storage_operation_duration_seconds_count{operation=\"sweep\"} 1\n\
                     storage_operation_duration_seconds_sum{operation=\"sweep\"} 0.25\n";
        assert_eq!(startup_sweep_seconds(before), None);
        assert_eq!(startup_sweep_seconds(after), Some(0.25));
    }
}
