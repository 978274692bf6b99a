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
    RevalidateDir,
    WriteNewSynced,
    Rename,
}

enum Fault {
    Error(io::ErrorKind),
    /// `read` returns these bytes instead of the file's (a torn or foreign read).
    Bytes(&'static [u8]),
}

/// `StdFs` plus a queue of faults per call kind, and a log of the calls made.
#[derive(Default)]
struct FaultyFs {
    faults: StdMutex<HashMap<Call, VecDeque<Fault>>>,
    calls: StdMutex<Vec<Call>>,
    /// Every read first sleeps this long (a slow or stalled EFS).
    read_delay: StdMutex<Duration>,
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
        std::thread::sleep(*self.read_delay.lock().unwrap());
        match self.next_fault(Call::Read) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            Some(Fault::Bytes(bytes)) => Ok(bytes.to_vec()),
            None => StdFs.read(path),
        }
    }
    fn revalidate_dir(&self, dir: &Path) -> io::Result<()> {
        match self.next_fault(Call::RevalidateDir) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.revalidate_dir(dir),
        }
    }
    fn write_new_synced(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        match self.next_fault(Call::WriteNewSynced) {
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
            _ => StdFs.rename(from, to),
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
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
        max_concurrent_ops: 8,
    }
}

struct Fixture<F: FileSystem> {
    _dir: tempfile::TempDir,
    store: Store<F>,
    metrics: Arc<Metrics>,
}

fn fixture_with<F: FileSystem>(fs: F) -> Fixture<F> {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let store = Store::with_fs(fs, dir.path(), config(), Arc::clone(&metrics));
    store.prepare().unwrap();
    Fixture {
        _dir: dir,
        store,
        metrics,
    }
}

fn faulty() -> Fixture<FaultyFs> {
    let fixture = fixture_with(FaultyFs::default());
    // Count only what the test itself causes, not the startup probe.
    fixture.store.inner.fs.calls.lock().unwrap().clear();
    fixture
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
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
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
}

#[tokio::test]
async fn reads_give_up_after_persistent_stale_handles() {
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
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
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
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
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Bytes(br#"{"schema":1,"userna"#));

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
}

#[tokio::test]
async fn a_record_of_another_user_is_reported_corrupt_not_served() {
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    f.store.inner.fs.inject(
        Call::Read,
        Fault::Bytes(br#"{"schema":1,"username":"mallory","dateOfBirth":"1990-01-15","updatedAt":"2026-01-01T00:00:00Z"}"#),
    );
    assert_eq!(f.store.get(&alice).await.unwrap_err().kind(), "corrupt");
}

#[tokio::test]
async fn a_failed_write_leaves_the_old_record_and_no_temp_file() {
    let f = faulty();
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
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
    let writes: Vec<_> = (1..=40)
        .map(|day| {
            let store = f.store.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                store
                    .put(&alice, born(1990, 1, day % 28 + 1), Utc::now())
                    .await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let stored = f.store.get(&alice).await.unwrap().unwrap();
    assert_eq!(stored.date().format("%Y-%m").to_string(), "1990-01");
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
            removed: 1,
            in_use: 1
        }
    );
    assert!(!orphan.exists(), "the orphan was not removed");
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
        max_concurrent_ops: 2,
    };
    let store = Store::with_fs(
        FaultyFs::default(),
        dir.path(),
        config,
        Arc::new(Metrics::new()),
    );
    store.prepare().unwrap();
    *store.inner.fs.read_delay.lock().unwrap() = Duration::from_secs(1);

    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get(&user("alice")).await })
        })
        .collect();
    // Wait (by polling, not guessing) until both slots are taken.
    while store.inner.slots.available_permits() > 0 {
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
}
