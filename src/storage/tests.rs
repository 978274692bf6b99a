//! Store tests on a real temp directory, with a file-system wrapper that injects the errors a
//! local disk never produces.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Mutex as StdMutex;

use chrono::NaiveDate;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Read,
    /// Logged when a read returns (every call is also logged when it starts).
    ReadReturned,
    RevalidateDir,
    WriteNewSynced,
    Rename,
    SyncDir,
}

enum Fault {
    /// No fault this time (to fault a later call of the same kind).
    Pass,
    /// Sleep this long first (a slow EFS call), then do the real call.
    Delay(Duration),
    Error(io::ErrorKind),
    /// `read` returns these bytes instead of the file's (a torn or foreign read).
    Bytes(&'static [u8]),
    /// Do this first (another host's doing, in the middle of this call), then the real call.
    Run(Box<dyn FnOnce() + Send>),
}

/// `StdFs` plus a queue of faults per call kind, and a log of the calls made.
#[derive(Default)]
struct FaultyFs {
    faults: StdMutex<HashMap<Call, VecDeque<Fault>>>,
    calls: StdMutex<Vec<Call>>,
    /// The directories passed to `sync_dir`, in order.
    synced_dirs: StdMutex<Vec<PathBuf>>,
}

impl FaultyFs {
    fn inject(&self, call: Call, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .entry(call)
            .or_default()
            .push_back(fault);
    }

    fn next_fault(&self, call: Call) -> Option<Fault> {
        self.calls.lock().unwrap().push(call);
        self.faults.lock().unwrap().get_mut(&call)?.pop_front()
    }

    fn count(&self, call: Call) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == call)
            .count()
    }
}

fn error(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, format!("injected {kind:?}"))
}

impl FileSystem for FaultyFs {
    type LockFile = File;

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let result = match self.next_fault(Call::Read) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            Some(Fault::Bytes(bytes)) => Ok(bytes.to_vec()),
            Some(Fault::Delay(delay)) => {
                std::thread::sleep(delay);
                StdFs.read(path)
            }
            Some(Fault::Run(other_host)) => {
                other_host();
                StdFs.read(path)
            }
            Some(Fault::Pass) | None => StdFs.read(path),
        };
        self.calls.lock().unwrap().push(Call::ReadReturned);
        result
    }
    fn revalidate_dir(&self, dir: &Path) -> io::Result<()> {
        match self.next_fault(Call::RevalidateDir) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.revalidate_dir(dir),
        }
    }
    fn write_new_synced(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        match self.next_fault(Call::WriteNewSynced) {
            Some(Fault::Run(other_host)) => {
                other_host();
                StdFs.write_new_synced(path, contents)
            }
            Some(Fault::Error(kind)) => {
                // Like a full disk: the file exists, half-written, when the error comes.
                StdFs.write_new_synced(path, &contents[..contents.len() / 2])?;
                Err(error(kind))
            }
            _ => StdFs.write_new_synced(path, contents),
        }
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.next_fault(Call::Rename) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            Some(Fault::Delay(delay)) => {
                std::thread::sleep(delay);
                StdFs.rename(from, to)
            }
            _ => StdFs.rename(from, to),
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.synced_dirs.lock().unwrap().push(dir.to_owned());
        match self.next_fault(Call::SyncDir) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.sync_dir(dir),
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        StdFs.open_lock_file(path)
    }
    fn try_lock(&self, file: &File) -> io::Result<bool> {
        StdFs.try_lock(file)
    }
}

fn config() -> StoreConfig {
    StoreConfig {
        lock_timeout: Duration::from_millis(300),
        storage_timeout: Duration::from_secs(5),
        max_concurrent_ops: 8,
    }
}

/// A storage timeout that tests can outlast: a stalled call sleeps [`STALL`].
fn short_deadline() -> StoreConfig {
    StoreConfig {
        storage_timeout: Duration::from_secs(1),
        ..config()
    }
}

const STALL: Duration = Duration::from_millis(2500);

struct Fixture<F: FileSystem> {
    _dir: tempfile::TempDir,
    store: Store<F>,
    metrics: Arc<Metrics>,
}

fn fixture_with<F: FileSystem>(fs: F) -> Fixture<F> {
    fixture_with_config(fs, config())
}

fn fixture_with_config<F: FileSystem>(fs: F, config: StoreConfig) -> Fixture<F> {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let store = Store::with_fs(fs, dir.path(), config, Arc::clone(&metrics));
    store.prepare().unwrap();
    Fixture {
        _dir: dir,
        store,
        metrics,
    }
}

fn faulty() -> Fixture<FaultyFs> {
    faulty_with_config(config())
}

fn faulty_with_config(config: StoreConfig) -> Fixture<FaultyFs> {
    let fixture = fixture_with_config(FaultyFs::default(), config);
    // Count only what the test itself causes, not the startup probe.
    fixture.store.inner.fs.calls.lock().unwrap().clear();
    fixture.store.inner.fs.synced_dirs.lock().unwrap().clear();
    fixture
}

/// A faulty-fs fixture where alice's date of birth (1990-01-15) is already stored.
async fn faulty_with_alice() -> (Fixture<FaultyFs>, Username) {
    faulty_with_alice_and(config()).await
}

async fn faulty_with_alice_and(config: StoreConfig) -> (Fixture<FaultyFs>, Username) {
    let f = faulty_with_config(config);
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    // Count only what the test itself causes, not this setup's write.
    f.store.inner.fs.calls.lock().unwrap().clear();
    (f, alice)
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn born(y: i32, m: u32, d: u32) -> DateOfBirth {
    DateOfBirth::from_stored(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

/// Every file under the data directory, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn record_files(root: &Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| f.starts_with("users/"))
        .collect()
}

#[tokio::test]
async fn put_then_get_round_trips_and_unknown_users_are_none() {
    let f = fixture_with(StdFs);
    let alice = user("Alice");
    assert_eq!(f.store.get(&alice).await.unwrap(), None);
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    f.store
        .put(&alice, born(1991, 2, 16), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 16)));
    // Case matters: a different user.
    assert_eq!(f.store.get(&user("alice")).await.unwrap(), None);

    let records = record_files(f.store.root());
    assert_eq!(records.len(), 1, "{records:?}");
    let json = std::fs::read(f.store.root().join(&records[0])).unwrap();
    let record: Record = serde_json::from_slice(&json).unwrap();
    assert_eq!(record.username, "Alice");
    assert_eq!(record.schema, SCHEMA_VERSION);
}

#[tokio::test]
async fn reads_retry_through_stale_handles() {
    let (f, alice) = faulty_with_alice().await;
    let fs = &f.store.inner.fs;
    fs.inject(
        Call::Read,
        Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
    );
    fs.inject(
        Call::Read,
        Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
    );

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(fs.count(Call::Read), 3);
    // Each ESTALE refreshed the directory, so that the next open looks the name up afresh.
    assert_eq!(fs.count(Call::RevalidateDir), 2);
}

#[tokio::test]
async fn reads_give_up_after_persistent_stale_handles() {
    let (f, alice) = faulty_with_alice().await;
    for _ in 0..READ_ATTEMPTS {
        f.store.inner.fs.inject(
            Call::Read,
            Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
        );
    }
    let err = f.store.get(&alice).await.unwrap_err();
    assert_eq!(err.kind(), "stale_handle");
    assert_eq!(
        f.metrics
            .storage_errors
            .with_label_values(&["get", "stale_handle"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_cached_negative_lookup_is_retried_after_listing_the_directory() {
    let (f, alice) = faulty_with_alice().await;
    // Another host created the record, but our NFS client still remembers "no such file".
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Error(io::ErrorKind::NotFound));

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(f.store.inner.fs.count(Call::RevalidateDir), 1);
}

#[tokio::test]
async fn a_torn_read_is_retried() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Bytes(br#"{"schema":1,"userna"#));

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
}

#[tokio::test]
async fn a_record_of_another_user_is_reported_corrupt_not_served() {
    let (f, alice) = faulty_with_alice().await;
    f.store.inner.fs.inject(
        Call::Read,
        Fault::Bytes(br#"{"schema":1,"username":"mallory","dateOfBirth":"1990-01-15","updatedAt":"2026-01-01T00:00:00Z"}"#),
    );
    assert_eq!(f.store.get(&alice).await.unwrap_err().kind(), "corrupt");
}

#[tokio::test]
async fn a_failed_write_leaves_the_old_record_and_no_temp_file() {
    let (f, alice) = faulty_with_alice().await;
    let before = files_under(f.store.root());

    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Error(io::ErrorKind::StorageFull),
    );
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "storage_full");

    f.store
        .inner
        .fs
        .inject(Call::Rename, Fault::Error(io::ErrorKind::Other));
    assert!(
        f.store
            .put(&alice, born(2000, 5, 5), Utc::now())
            .await
            .is_err()
    );

    assert_eq!(files_under(f.store.root()), before);
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
}

#[tokio::test]
async fn a_lock_held_elsewhere_times_out_as_busy_and_other_users_proceed() {
    let f = fixture_with(StdFs);
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();

    // Another process holds alice's stripe lock (a separate open file description conflicts
    // with ours exactly as another process's would).
    let stripe = f.store.inner.layout.record(&alice).stripe;
    let held = StdFs
        .open_lock_file(&f.store.inner.layout.lock_file(stripe))
        .unwrap();
    held.lock().unwrap();

    let started = Instant::now();
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, StorageError::Busy(_, BusyCause::Lock)),
        "{err:?}"
    );
    assert!(waited >= config().lock_timeout, "gave up early: {waited:?}");
    assert!(
        waited < config().lock_timeout * 3,
        "overran the deadline: {waited:?}"
    );
    assert_eq!(f.metrics.lock_timeouts.get(), 1);

    // A user on another stripe is not affected.
    let bob = (1..)
        .map(|n| user(&"b".repeat(n)))
        .find(|u| f.store.inner.layout.record(u).stripe != stripe)
        .unwrap();
    f.store
        .put(&bob, born(1980, 3, 3), Utc::now())
        .await
        .unwrap();

    drop(held);
    f.store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(2000, 5, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_one_process_queue_instead_of_timing_out() {
    let f = fixture_with(StdFs);
    let alice = user("alice");
    // Forty distinct dates, none of which the store could come up with by itself.
    let dates: Vec<DateOfBirth> = (1..=40)
        .map(|k| {
            DateOfBirth::from_stored(
                NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Days::new(k * 3),
            )
        })
        .collect();
    let writes: Vec<_> = dates
        .iter()
        .map(|&date| {
            let store = f.store.clone();
            let alice = alice.clone();
            tokio::spawn(async move { store.put(&alice, date, Utc::now()).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let stored = f.store.get(&alice).await.unwrap().unwrap();
    assert!(dates.contains(&stored), "{stored:?} was never written");
    assert_eq!(f.metrics.lock_timeouts.get(), 0);
    assert_eq!(record_files(f.store.root()).len(), 1);
}

#[tokio::test]
async fn the_sweeper_removes_only_old_orphans_whose_lock_is_free() {
    let f = fixture_with(StdFs);
    let layout = &f.store.inner.layout;
    let orphan_of = |name: &str| {
        let paths = layout.record(&user(name));
        std::fs::create_dir_all(&paths.dir).unwrap();
        let temp = layout.temp_file(&paths, "deadbeef", 1);
        std::fs::write(&temp, b"{\"schema\":1,").unwrap();
        (temp, paths.stripe)
    };
    let (orphan, _) = orphan_of("alice");
    let (in_use, busy_stripe) = orphan_of("bob");
    let held = StdFs
        .open_lock_file(&layout.lock_file(busy_stripe))
        .unwrap();
    held.lock().unwrap();
    // And the probe file of an instance that died mid-probe.
    let dead_probe = layout.probe_file("deadbeef");
    std::fs::write(&dead_probe, b"readiness probe\n").unwrap();

    // Too young: nothing is touched.
    let report = f
        .store
        .sweep_orphans(Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    assert!(orphan.exists() && in_use.exists());

    let report = f.store.sweep_orphans(Duration::ZERO).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            removed: 2,
            in_use: 1,
            errors: 0,
        }
    );
    assert!(!orphan.exists(), "the orphan was not removed");
    assert!(
        !dead_probe.exists(),
        "the dead instance's probe file was not removed"
    );
    assert!(in_use.exists(), "a temp file under a held lock was removed");
}

#[tokio::test]
async fn the_probe_fails_when_the_directory_cannot_be_written_and_leaves_nothing() {
    let f = faulty();
    f.store.probe().await.unwrap();
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Error(io::ErrorKind::StorageFull),
    );
    assert_eq!(f.store.probe().await.unwrap_err().kind(), "storage_full");
    assert!(
        files_under(f.store.root())
            .iter()
            .all(|f| !f.starts_with(".probe")),
        "probe file left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_file_system_fills_the_slots_and_later_requests_get_busy() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        lock_timeout: Duration::from_millis(200),
        storage_timeout: Duration::from_secs(5),
        max_concurrent_ops: 2,
    };
    let store = Store::with_fs(
        FaultyFs::default(),
        dir.path(),
        config,
        Arc::new(Metrics::new()),
    );
    store.prepare().unwrap();
    for _ in 0..2 {
        store
            .inner
            .fs
            .inject(Call::Read, Fault::Delay(Duration::from_secs(1)));
    }

    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get(&user("alice")).await })
        })
        .collect();
    // Wait (by polling, not guessing) until both slots are taken and both calls are running:
    // the gauge counts from the blocking thread, which starts a moment after the slot is taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.inner.slots.available_permits() > 0
        || store.inner.metrics.storage_in_flight.get() < 2
    {
        assert!(Instant::now() < deadline, "the stalled reads never started");
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let err = store.get(&user("bob")).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Busy(_, BusyCause::Slot)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "waited for the stall"
    );
    for get in stalled {
        assert_eq!(get.await.unwrap().unwrap(), None);
    }
    assert_eq!(store.inner.metrics.storage_in_flight.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_takes_no_slot_so_a_saturated_instance_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        lock_timeout: Duration::from_millis(200),
        storage_timeout: Duration::from_secs(5),
        max_concurrent_ops: 1,
    };
    let store = Store::with_fs(StdFs, dir.path(), config, Arc::new(Metrics::new()));
    store.prepare().unwrap();
    // Another process holds every lock, so a write holds the only slot while it waits.
    let held: Vec<File> = (0..LOCK_STRIPES)
        .map(|stripe| {
            let file = StdFs
                .open_lock_file(&store.inner.layout.lock_file(stripe))
                .unwrap();
            file.lock().unwrap();
            file
        })
        .collect();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&user("alice"), born(1990, 1, 15), Utc::now())
                .await
        })
    };
    while store.inner.slots.available_permits() > 0 {
        tokio::task::yield_now().await;
    }
    store.probe().await.unwrap();
    assert!(matches!(
        writer.await.unwrap().unwrap_err(),
        StorageError::Busy(_, BusyCause::Lock)
    ));
    drop(held);
}

#[tokio::test]
async fn the_first_write_into_a_new_fan_out_directory_makes_the_directory_durable() {
    let f = faulty();
    let alice = user("alice");
    let paths = f.store.inner.layout.record(&alice);
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        *f.store.inner.fs.synced_dirs.lock().unwrap(),
        [
            f.store.inner.layout.users_dir().to_owned(),
            paths.dir.clone()
        ],
        "the new directory's entry in users/ and then the rename"
    );
    f.store.inner.fs.synced_dirs.lock().unwrap().clear();
    f.store
        .put(&alice, born(1990, 1, 16), Utc::now())
        .await
        .unwrap();
    assert_eq!(*f.store.inner.fs.synced_dirs.lock().unwrap(), [paths.dir]);
}

#[tokio::test]
async fn a_failure_after_the_rename_is_reported_as_unconfirmed_not_as_nothing_changed() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::SyncDir, Fault::Error(io::ErrorKind::Other));
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unconfirmed { .. }), "{err:?}");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 1);
    // The record was in fact replaced: "nothing was changed" would have been false.
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(2000, 5, 5)));
}

#[tokio::test]
async fn an_io_error_while_revalidating_is_an_error_not_an_unknown_user() {
    let f = faulty();
    // alice's fan-out directory does not exist yet: the read misses, the directory and then
    // users/ are listed, and the second listing of the directory fails with EIO.
    let fs = &f.store.inner.fs;
    fs.inject(Call::RevalidateDir, Fault::Error(io::ErrorKind::NotFound));
    fs.inject(Call::RevalidateDir, Fault::Pass);
    fs.inject(Call::RevalidateDir, Fault::Error(io::ErrorKind::Other));
    let err = f.store.get(&user("alice")).await.unwrap_err();
    assert_eq!(err.kind(), "io", "{err:?}");
}

/// Asserts that one write was fenced off for `reason` and left no temp file beside the record.
#[track_caller]
fn assert_fenced_once<F: FileSystem>(f: &Fixture<F>, reason: &str) {
    assert_eq!(
        f.metrics.writes_fenced.with_label_values(&[reason]).get(),
        1
    );
    let records = record_files(f.store.root());
    assert_eq!(records.len(), 1, "a temp file was left: {records:?}");
}

/// Polls `done` until it holds, failing the test after 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_past_its_deadline_is_answered_in_time_and_never_renames() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    // The read just before the rename blocks for longer than the storage timeout, as a file
    // call does on a host cut off from its NFS server.
    f.store.inner.fs.inject(Call::Read, Fault::Delay(STALL));

    let started = Instant::now();
    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TimedOut(_)), "{err:?}");
    assert!(
        started.elapsed() < STALL,
        "answered after {:?}, not at the deadline",
        started.elapsed()
    );
    // The blocked call keeps its slot until it returns; then the writer meets the fence.
    assert_eq!(f.metrics.storage_in_flight.get(), 1);
    eventually("the blocked write finishes", || {
        f.metrics.storage_in_flight.get() == 0
    })
    .await;

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_fenced_once(&f, "deadline");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_fires_during_the_rename_says_the_write_may_have_been_saved() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    f.store.inner.fs.inject(Call::Rename, Fault::Delay(STALL));

    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unconfirmed { .. }), "{err:?}");
    assert_eq!(err.kind(), "timeout");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 1);
    // And it was: the rename had been let through the fence before the deadline.
    eventually("the blocked rename finishes", || {
        f.metrics.storage_in_flight.get() == 0
    })
    .await;
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 2)));
}

#[tokio::test]
async fn a_read_blocked_past_the_deadline_is_answered_503_in_time() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    f.store.inner.fs.inject(Call::Read, Fault::Delay(STALL));
    let started = Instant::now();
    let err = f.store.get(&alice).await.unwrap_err();
    assert!(matches!(err, StorageError::TimedOut(_)), "{err:?}");
    assert!(started.elapsed() < STALL);
}

#[tokio::test]
async fn the_later_write_wins_whatever_the_writers_clocks_say() {
    let (f, alice) = faulty_with_alice().await;
    // Each write's arrival as its host's clock saw it: half a second ahead, a minute behind,
    // an hour ahead, right. Writes one after another must land in that order all the same.
    let now = Utc::now();
    for (date, clock) in [
        (born(1992, 3, 3), now + chrono::Duration::milliseconds(500)),
        (born(1991, 2, 2), now - chrono::Duration::minutes(1)),
        (born(1994, 5, 5), now + chrono::Duration::hours(1)),
        (born(1993, 4, 4), now),
    ] {
        f.store.put(&alice, date, clock).await.unwrap();
        assert_eq!(f.store.get(&alice).await.unwrap(), Some(date));
    }
    let record: Record = serde_json::from_slice(
        &std::fs::read(&f.store.inner.layout.record(&alice).record).unwrap(),
    )
    .unwrap();
    // alice's setup write was version 1.
    assert_eq!(record.version, 5);
    assert_eq!(
        f.metrics
            .writes_fenced
            .with_label_values(&["lock_lost"])
            .get(),
        0
    );
}

#[tokio::test]
async fn a_writer_whose_record_changed_under_its_lock_does_not_rename_over_it() {
    let (f, alice) = faulty_with_alice().await;
    let record = f.store.inner.layout.record(&alice).record;
    // Another host whose lock on alice had not really ended (a lease that ran out under this
    // writer, say) renames its record in while this writer writes its temp file.
    let theirs = br#"{"schema":1,"username":"alice","dateOfBirth":"1992-03-03","updatedAt":"2026-01-01T00:00:00Z","version":2}
"#;
    let other = record.with_extension("other");
    std::fs::write(&other, theirs).unwrap();
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Run(Box::new(move || {
            std::fs::rename(&other, &record).unwrap();
        })),
    );

    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();

    assert!(matches!(err, StorageError::LockLost), "{err:?}");
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1992, 3, 3)));
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_fenced_once(&f, "lock_lost");
}

#[test]
fn orphans_are_aged_by_ctime_not_by_an_mtime_a_client_set() {
    let dir = tempfile::tempdir().unwrap();
    let aged = |mtime: std::time::SystemTime, later: Duration| {
        let path = dir.path().join(format!("{mtime:?}"));
        let file = File::create(&path).unwrap();
        file.set_modified(mtime).unwrap();
        sweep::age(
            &file.metadata().unwrap(),
            std::time::SystemTime::now() + later,
        )
    };
    // What a writer killed during its NFSv4 exclusive create leaves: the create verifier as
    // its mtime, here 2038-01-18. Measured by its ctime it is a minute old a minute from now.
    let verifier = std::time::UNIX_EPOCH + Duration::from_secs(2_147_400_000);
    let age = aged(verifier, Duration::from_secs(60));
    assert!(age >= Duration::from_secs(59), "{age:?}");
    // And a file made just now is young, whatever its mtime claims.
    let age = aged(std::time::UNIX_EPOCH, Duration::ZERO);
    assert!(age < Duration::from_secs(10), "{age:?}");
}

#[test]
fn reading_a_file_that_has_been_replaced_since_it_was_looked_up_is_estale() {
    // What an NFS client with a stale name-to-file binding opens: the old file, unlinked on
    // the server but still served. /proc/self/fd reaches an unlinked file here the same way.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.json");
    std::fs::write(&path, b"{}").unwrap();
    let open = File::open(&path).unwrap();
    assert_eq!(StdFs.read(&path).unwrap(), b"{}");
    std::fs::remove_file(&path).unwrap();

    use std::os::fd::AsRawFd;
    let replaced = PathBuf::from(format!("/proc/self/fd/{}", open.as_raw_fd()));
    let err = StdFs.read(&replaced).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StaleNetworkFileHandle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_waits_until_no_read_of_this_process_has_the_record_open() {
    let (f, alice) = faulty_with_alice().await;
    let fs = &f.store.inner.fs;
    // The GET's read is slow; the PUT's own look at the record is not.
    fs.inject(Call::Read, Fault::Delay(Duration::from_secs(1)));
    let reader = {
        let store = f.store.clone();
        let alice = alice.clone();
        tokio::spawn(async move { store.get(&alice).await })
    };
    eventually("the read has started", || fs.count(Call::Read) == 1).await;

    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), Some(born(1990, 1, 15)));

    // On NFS a rename over a file this client has open would first move that file away.
    // Every read (the slow GET's and the PUT's own two) must have returned before the rename.
    let calls = fs.calls.lock().unwrap().clone();
    let rename = calls.iter().position(|c| *c == Call::Rename).unwrap();
    let returned = calls[..rename]
        .iter()
        .filter(|c| **c == Call::ReadReturned)
        .count();
    assert_eq!(returned, 3, "renamed while the record was open: {calls:?}");
}
