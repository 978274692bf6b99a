//! Store tests on a real temp directory, with a file-system wrapper that injects the errors a
//! local disk never produces.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Mutex as StdMutex;

use chrono::{NaiveDate, Utc};

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::domain::{DateOfBirth, Username};
use crate::storage::read::READ_ATTEMPTS;

mod fence;
mod read;
mod upkeep;
mod write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Read,
    /// Logged when a read returns (every call is also logged when it starts).
    ReadReturned,
    RevalidateDir,
    WriteNewSynced,
    Rename,
    SyncDir,
    StillLinked,
    /// A record a writer kept open is closed.
    RecordClosed,
    OpenLockFile,
    TryLock,
    Unlock,
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
    calls: Arc<StdMutex<Vec<Call>>>,
    /// The directories passed to `sync_dir`, in order.
    synced_dirs: StdMutex<Vec<PathBuf>>,
    /// Says the directory is on a file system like NFS, where directory changes are durable.
    durable_dirs: std::sync::atomic::AtomicBool,
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

/// A record a writer keeps open: logs its close, so that tests see when it happens.
struct KeptRecord {
    file: File,
    calls: Arc<StdMutex<Vec<Call>>>,
}

impl Drop for KeptRecord {
    fn drop(&mut self) {
        self.calls.lock().unwrap().push(Call::RecordClosed);
    }
}

fn error(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, format!("injected {kind:?}"))
}

impl FileSystem for FaultyFs {
    type LockFile = File;
    type OpenRecord = KeptRecord;

    fn read_and_keep(&self, path: &Path) -> io::Result<(KeptRecord, Vec<u8>)> {
        let result = match self.next_fault(Call::Read) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            Some(Fault::Bytes(bytes)) => StdFs
                .read_and_keep(path)
                .map(|(file, _)| (file, bytes.to_vec())),
            Some(Fault::Delay(delay)) => {
                std::thread::sleep(delay);
                StdFs.read_and_keep(path)
            }
            Some(Fault::Run(other_host)) => {
                other_host();
                StdFs.read_and_keep(path)
            }
            Some(Fault::Pass) | None => StdFs.read_and_keep(path),
        };
        self.calls.lock().unwrap().push(Call::ReadReturned);
        result.map(|(file, bytes)| {
            let calls = Arc::clone(&self.calls);
            (KeptRecord { file, calls }, bytes)
        })
    }
    fn still_linked(&self, kept: &KeptRecord) -> io::Result<bool> {
        match self.next_fault(Call::StillLinked) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.still_linked(&kept.file),
        }
    }

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
    fn dir_changes_are_durable(&self, dir: &Path) -> io::Result<bool> {
        Ok(self.durable_dirs.load(std::sync::atomic::Ordering::Relaxed)
            || StdFs.dir_changes_are_durable(dir)?)
    }
    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        self.next_fault(Call::OpenLockFile);
        StdFs.open_lock_file(path)
    }
    fn try_lock(&self, file: &File) -> io::Result<bool> {
        match self.next_fault(Call::TryLock) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.try_lock(file),
        }
    }
    fn unlock(&self, file: &File) -> io::Result<()> {
        match self.next_fault(Call::Unlock) {
            Some(Fault::Error(kind)) => Err(error(kind)),
            _ => StdFs.unlock(file),
        }
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
    metrics: StorageMetrics,
}

fn fixture_with<F: FileSystem>(fs: F) -> Fixture<F> {
    fixture_with_config(fs, config())
}

fn fixture_with_config<F: FileSystem>(fs: F, config: StoreConfig) -> Fixture<F> {
    let dir = tempfile::tempdir().unwrap();
    let metrics = StorageMetrics::default();
    let store = Store::with_fs(fs, dir.path(), config, metrics.clone());
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

/// As `faulty_with_alice`, on a file system that says it is NFS.
async fn faulty_nfs_with_alice() -> (Fixture<FaultyFs>, Username) {
    let fs = FaultyFs::default();
    fs.durable_dirs
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let f = fixture_with(fs);
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
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
