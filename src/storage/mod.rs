//! One JSON file per user in a directory that many processes (on many hosts, over NFS/EFS)
//! read and write at once.
//!
//! Guarantees, and how they are kept:
//! - **No torn records.** A write goes to a temp file in the record's directory, is fsynced,
//!   and is renamed over the record; rename is atomic, so readers see the old or the new file.
//! - **No lost updates between processes.** Writers to one user hold an advisory `flock` on
//!   one of [`layout::LOCK_STRIPES`] lock files that are never deleted (the record itself
//!   cannot be locked: rename swaps its inode). The lock is taken with `try_lock` and jittered
//!   backoff under a deadline, because a blocking lock on NFS may sleep 30 s after release.
//! - **No rename starts after its request's deadline, or after a "nothing was changed" answer.**
//!   Every request has a deadline (`storage_timeout`) and is answered by then even if its file
//!   call is still blocked (an NFS partition). A [`fence::Fence`] decides whether a writer still
//!   running at that moment may rename: if it had not reached the rename it never will, and the
//!   answer says nothing was changed; if it had, the answer says the write may have been saved
//!   (a rename already sent can still reach an NFS server late: the one window left). A lock
//!   holder cut off past its NFS lease is caught by the same fence (the deadline is shorter than
//!   the lease). As a second line, a writer reads the record when it takes the lock and again
//!   just before its rename, and does not rename if another writer's rename came between: its
//!   lock was lost. No host's wall clock takes part in any of this; each record carries a
//!   `version` that counts its writes.
//! - **Fair, cheap queueing inside a process.** Writers in this process first queue on an async
//!   mutex for the same stripe, held until their blocking write returns (even past its
//!   request's deadline), so they never poll the file lock against each other.
//! - **The async runtime never blocks on the file system.** The file calls of requests run on
//!   the store's own threads ([`pool`]), at most `max_concurrent_ops` at a time; the readiness
//!   probe and the orphan sweep run in `spawn_blocking` (one of each at most). An EFS stall
//!   fills the slots and further requests get 503 after the lock timeout instead of piling up;
//!   a stalled call never holds up another's, which gets a thread of its own.
//! - **Readers take no lock.** They retry on ESTALE, on a record that does not parse, and once
//!   on "not found" after listing the directory (NFS caches negative lookups).

mod backoff;
mod fence;
mod fs;
mod layout;
mod pool;
mod record;
mod sweep;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Semaphore};

use crate::domain::{DateOfBirth, Username};
use crate::metrics::Metrics;
use backoff::Backoff;
use fence::{Abandoned, Fence};
pub use fs::{FileSystem, StdFs};
pub use layout::{LOCK_STRIPES, Layout};
use pool::Pool;
pub use record::{Record, SCHEMA_VERSION};
pub use sweep::SweepReport;

/// How often a read is tried before its error is reported.
const READ_ATTEMPTS: u32 = 4;

/// Settings for a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Longest a request waits for a storage slot and its user's lock before giving up with
    /// [`StorageError::Busy`].
    pub lock_timeout: Duration,
    /// Longest a request waits for its whole storage operation before it is answered
    /// [`StorageError::TimedOut`] (or [`StorageError::Unconfirmed`] for a write already past
    /// its fence). At least `lock_timeout`; shorter than the NFS lease.
    pub storage_timeout: Duration,
    /// Most storage operations in flight at once in this process.
    pub max_concurrent_ops: usize,
}

/// Why a storage operation failed. `Display` output is for logs: it may name file-system
/// errors, but never paths, so it can also be shown in metrics labels.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Could not get a slot or the user's lock before the deadline. The client should retry.
    #[error("timed out after {0:?} waiting for {1}")]
    Busy(Duration, BusyCause),
    /// The operation did not finish within the storage timeout (a file call is blocked, e.g. by
    /// an NFS partition). A write was stopped before its rename: nothing was changed, ever.
    #[error("no answer from the storage within {0:?}")]
    TimedOut(Duration),
    /// A file-system call failed, before anything was changed.
    #[error("{operation} failed: {source}")]
    Io {
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    /// A write failed at or after the rename that replaces the record: the new record may be
    /// in place (over NFS a rename can succeed and still report an error), and may not be
    /// durable. Repeating the write is safe.
    #[error("{operation} failed; the record may have been replaced: {source}")]
    Unconfirmed {
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    /// Another writer replaced the record while this one held the user's lock: the lock was
    /// lost (an NFS lease that ran out, say). Nothing was changed; repeating the write is safe.
    #[error("the user's lock was lost: another write replaced the record meanwhile")]
    LockLost,
    /// A record exists but cannot be used, even after retries.
    #[error("record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// The blocking task panicked or was cancelled.
    #[error("storage task did not complete: {0}")]
    Task(String),
}

/// What a [`StorageError::Busy`] request was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyCause {
    Slot,
    Lock,
}

impl std::fmt::Display for BusyCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Slot => "a storage slot",
            Self::Lock => "the user's lock",
        })
    }
}

impl StorageError {
    fn io(operation: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { operation, source }
    }

    fn unconfirmed(operation: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Unconfirmed { operation, source }
    }

    /// A short label for metrics: bounded, no free text.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Busy(_, BusyCause::Lock) => "lock_timeout",
            Self::Busy(_, BusyCause::Slot) => "no_slot",
            Self::TimedOut(_) => "timeout",
            Self::Io { source, .. } | Self::Unconfirmed { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => "not_found",
                io::ErrorKind::PermissionDenied => "permission_denied",
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "storage_full",
                io::ErrorKind::ReadOnlyFilesystem => "read_only",
                io::ErrorKind::StaleNetworkFileHandle => "stale_handle",
                io::ErrorKind::TimedOut => "timeout",
                _ => "io",
            },
            Self::LockLost => "lock_lost",
            Self::Corrupt { .. } => "corrupt",
            Self::Task(_) => "task",
        }
    }
}

/// The user store. Cloning is cheap and every clone shares the same slots and queues.
pub struct Store<F: FileSystem = StdFs> {
    inner: Arc<Inner<F>>,
}

impl<F: FileSystem> Clone for Store<F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<F> {
    fs: F,
    layout: Layout,
    config: StoreConfig,
    /// Caps blocking file-system calls in flight (an EFS stall must not exhaust the pool).
    slots: Arc<Semaphore>,
    /// The threads that make requests' file calls: one per slot at most, plus one for the
    /// moment between a call releasing its slot and its thread returning to the queue.
    pool: Pool,
    /// One async mutex per lock file: writers in this process queue here, in order. The guard
    /// moves into the blocking write, so a write stuck past its deadline still holds it.
    stripes: Vec<Arc<Mutex<()>>>,
    /// Per lock stripe: readers in this process hold it shared while a record is open, a writer
    /// holds it exclusively for its rename. An NFS client that renames over a file it has open
    /// itself first "silly-renames" that file away (to `.nfsXXXX`), so for a round trip the
    /// record would be missing on the server, for every host. Not with this.
    open_records: Vec<std::sync::RwLock<()>>,
    /// Distinguishes this process's temp and probe files from other hosts' (Fargate tasks all
    /// run as PID 1, so the process id would collide).
    instance: String,
    /// Makes each temp file name of this process unique.
    sequence: AtomicU64,
    metrics: Arc<Metrics>,
    /// `storage_duration` by operation, looked up once rather than by label per request.
    durations: [prometheus::Histogram; Operation::ALL.len()],
}

/// A kind of storage operation, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Get,
    Put,
    Probe,
    Sweep,
}

impl Operation {
    const ALL: [Self; 4] = [Self::Get, Self::Put, Self::Probe, Self::Sweep];

    fn label(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
            Self::Probe => "probe",
            Self::Sweep => "sweep",
        }
    }
}

impl Store<StdFs> {
    /// Opens (and creates) the store under `root`, and checks that it can be written.
    pub fn open(
        root: impl Into<PathBuf>,
        config: StoreConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StorageError> {
        let store = Self::with_fs(StdFs, root, config, metrics);
        store.prepare()?;
        Ok(store)
    }
}

impl<F: FileSystem> Store<F> {
    /// A store on any [`FileSystem`]; tests pass one that injects faults.
    pub fn with_fs(
        fs: F,
        root: impl Into<PathBuf>,
        config: StoreConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slot_count = config.max_concurrent_ops.max(1);
        Self {
            inner: Arc::new(Inner {
                fs,
                layout: Layout::new(root),
                config,
                slots: Arc::new(Semaphore::new(slot_count)),
                pool: Pool::new(pool::Settings::new(slot_count + 1)),
                stripes: (0..LOCK_STRIPES).map(|_| Arc::default()).collect(),
                open_records: (0..LOCK_STRIPES).map(|_| Default::default()).collect(),
                instance: crate::random::random_hex(1),
                sequence: AtomicU64::new(0),
                durations: Operation::ALL.map(|operation| {
                    metrics
                        .storage_duration
                        .with_label_values(&[operation.label()])
                }),
                metrics,
            }),
        }
    }

    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Creates the directory structure and proves it writable. Runs once, at startup,
    /// before the server listens, so it may block.
    fn prepare(&self) -> Result<(), StorageError> {
        let inner = &self.inner;
        inner
            .fs
            .create_dir_all(inner.layout.users_dir())
            .map_err(StorageError::io("creating the data directory"))?;
        inner
            .fs
            .create_dir_all(inner.layout.locks_dir())
            .map_err(StorageError::io("creating the lock directory"))?;
        inner
            .fs
            .sync_dir(inner.layout.root())
            .map_err(StorageError::io("syncing the data directory"))?;
        inner.probe_blocking()
    }

    /// The stored date of birth of `username`, or `None` if there is none.
    pub async fn get(&self, username: &Username) -> Result<Option<DateOfBirth>, StorageError> {
        let started = Instant::now();
        let username = username.clone();
        let result = self
            .run_blocking(started, move |inner| {
                // Only the date comes back: the record's strings are freed where they were
                // allocated (a free into another thread's malloc arena contends for its lock).
                let record = inner.get_blocking(&username)?;
                Ok(record.map(|r| DateOfBirth::from_stored(r.date_of_birth)))
            })
            .await;
        self.inner.finish(Operation::Get, started, &result);
        result
    }

    /// Saves (or replaces) the date of birth of `username`.
    pub async fn put(
        &self,
        username: &Username,
        date_of_birth: DateOfBirth,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let paths = self.inner.layout.record(username);
        let record = Record {
            schema: SCHEMA_VERSION,
            username: username.as_str().to_owned(),
            date_of_birth: date_of_birth.date(),
            updated_at: now,
            // Set under the lock, from the record found there.
            version: 0,
        };

        let fence = Arc::new(Fence::new(started + self.inner.config.storage_timeout));
        let result = async {
            // Queue behind this process's other writers of the same stripe first, so that the
            // file lock is only ever contended by other processes. The guard goes with the
            // write: if that is stuck on the file system past its deadline, the next writer
            // waits here (and answers 503 at its lock timeout) instead of taking a slot to poll
            // a lock its own process holds.
            let lock_deadline = started + self.inner.config.lock_timeout;
            let queued = tokio::time::timeout_at(
                lock_deadline.into(),
                Arc::clone(&self.inner.stripes[paths.stripe]).lock_owned(),
            )
            .await
            .map_err(|_| self.inner.lock_timed_out())?;
            let writer_fence = Arc::clone(&fence);
            self.run_blocking(started, move |inner| {
                let _queued = queued;
                inner.put_blocking(&paths, record, started, &writer_fence)
            })
            .await
        }
        .await
        .map_err(|error| match error {
            // The deadline fired with the writer still running: the fence says what it did.
            StorageError::TimedOut(after) => match fence.abandon() {
                Abandoned::NothingChanged => {
                    self.inner
                        .metrics
                        .writes_fenced
                        .with_label_values(&["deadline"])
                        .inc();
                    StorageError::TimedOut(after)
                }
                Abandoned::MayHaveCommitted => StorageError::Unconfirmed {
                    operation: "replacing a record",
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the storage within {after:?}"),
                    ),
                },
            },
            other => other,
        });
        self.inner.finish(Operation::Put, started, &result);
        result
    }

    /// Checks that the data directory can be written and read: the readiness probe.
    ///
    /// It takes no storage slot: a saturated instance is busy, not broken, and must not leave
    /// the load balancer because its probe queued behind requests (under a shared load spike,
    /// every instance would leave at once). Callers run one probe at a time
    /// ([`crate::readiness::Readiness`]), so this adds at most one blocking call.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.on_blocking_pool(|inner| inner.probe_blocking()).await;
        self.inner.finish(Operation::Probe, started, &result);
        result
    }

    /// Runs `work` on the store's threads once a slot is free, or fails with `Busy` when none
    /// is free within the lock timeout, or with `TimedOut` when `work` has not finished within
    /// the storage timeout (both counted from `started`). `work` keeps running after a timeout,
    /// and keeps its slot until it returns: a blocked file call is still a call in flight.
    async fn run_blocking<T, W>(&self, started: Instant, work: W) -> Result<T, StorageError>
    where
        T: Send + 'static,
        W: FnOnce(&Inner<F>) -> Result<T, StorageError> + Send + 'static,
    {
        let config = &self.inner.config;
        let slots = &self.inner.slots;
        // A free slot is taken at once, without arming a timer for the wait.
        let permit = match Arc::clone(slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(
                (started + config.lock_timeout).into(),
                Arc::clone(slots).acquire_owned(),
            )
            .await
            .map_err(|_| StorageError::Busy(config.lock_timeout, BusyCause::Slot))?
            .expect("the semaphore is never closed"),
        };
        let inner = Arc::clone(&self.inner);
        let call = move || {
            // Counted from the storage thread, so that a request that gives up waiting does
            // not hide a call that is still running (a stuck EFS call keeps its slot).
            let _in_flight = InFlight::start(&inner.metrics.storage_in_flight);
            let _permit = permit;
            work(&inner)
        };
        self.inner
            .pool
            .run(started + config.storage_timeout, call)
            .await
            .map_err(|failed| match failed {
                pool::Failed::Deadline => StorageError::TimedOut(config.storage_timeout),
                pool::Failed::Task(message) => StorageError::Task(message),
            })?
    }

    /// Runs `work` on Tokio's blocking pool, with no slot and no deadline: for the readiness
    /// probe and the orphan sweep (requests go through [`Store::run_blocking`]).
    async fn on_blocking_pool<T, W>(&self, work: W) -> Result<T, StorageError>
    where
        T: Send + 'static,
        W: FnOnce(&Inner<F>) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

/// The version of the record whose bytes are `found`: 0 for none, or for one that does not
/// parse (written before versions existed, or damaged: a write repairs it).
fn version_of(found: Option<&[u8]>) -> u64 {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(default)]
        version: u64,
    }
    found
        .and_then(|bytes| serde_json::from_slice::<Versioned>(bytes).ok())
        .map_or(0, |record| record.version)
}

/// Holds the in-flight gauge up for as long as it lives, panics included.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<F: FileSystem> Inner<F> {
    fn finish<T>(&self, operation: Operation, started: Instant, result: &Result<T, StorageError>) {
        self.durations[operation as usize].observe(started.elapsed().as_secs_f64());
        if let Err(error) = result {
            self.metrics.storage_error(operation.label(), error.kind());
            // The one failure that may still have changed the record: counted on its own, as
            // the answer (503 write-unconfirmed) is the one a client cannot take at its word.
            if matches!(error, StorageError::Unconfirmed { .. }) {
                self.metrics.writes_unconfirmed.inc();
            }
        }
    }

    fn lock_timed_out(&self) -> StorageError {
        self.metrics.lock_timeouts.inc();
        StorageError::Busy(self.config.lock_timeout, BusyCause::Lock)
    }

    fn get_blocking(&self, username: &Username) -> Result<Option<Record>, StorageError> {
        let paths = self.layout.record(username);
        let mut revalidated = false;
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
        let mut last_error = None;
        for _ in 0..READ_ATTEMPTS {
            match self.read_record(&paths) {
                Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                    Ok(record) if record.username == username.as_str() => return Ok(Some(record)),
                    Ok(record) => {
                        // Only a SHA-256 collision or a hand-edited file can get here.
                        return Err(StorageError::Corrupt {
                            key: paths.key,
                            reason: format!("it holds user {:?}", record.username),
                        });
                    }
                    Err(e) => {
                        last_error = Some(StorageError::Corrupt {
                            key: paths.key.clone(),
                            reason: e.to_string(),
                        });
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if revalidated {
                        return Ok(None);
                    }
                    // Maybe another host just created it and our client cached the miss.
                    revalidated = true;
                    if !self.revalidate(&paths.dir)? {
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::StaleNetworkFileHandle => {
                    last_error = Some(StorageError::io("reading a record")(e));
                    self.refresh_binding(&paths);
                }
                Err(e) => return Err(StorageError::io("reading a record")(e)),
            }
            std::thread::sleep(backoff.next_delay());
        }
        Err(last_error.expect("the loop only ends after an error"))
    }

    /// Lists `dir` to refresh the client's view of it. `Ok(false)` if it does not exist
    /// (after refreshing its parent too): then the record cannot exist either.
    fn revalidate(&self, dir: &Path) -> Result<bool, StorageError> {
        match self.fs.revalidate_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.fs.revalidate_dir(self.layout.users_dir()) {
                    Ok(()) => match self.fs.revalidate_dir(dir) {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                        // EIO and the like are failures, not "no such user".
                        Err(e) => Err(StorageError::io("listing a record directory")(e)),
                    },
                    Err(e) => Err(StorageError::io("listing the data directory")(e)),
                }
            }
            Err(e) => Err(StorageError::io("listing a record directory")(e)),
        }
    }

    /// The write under the user's lock: read what the lock protects, temp file, fence checks,
    /// rename, directory fsync.
    fn put_blocking(
        &self,
        paths: &layout::RecordPaths,
        record: Record,
        started: Instant,
        fence: &Fence,
    ) -> Result<(), StorageError> {
        let _lock = self.lock_stripe(paths.stripe, started + self.config.lock_timeout)?;
        self.metrics
            .lock_wait
            .observe(started.elapsed().as_secs_f64());
        if fence.expired() {
            // Started or got the lock too late to finish in time: no use writing at all.
            return Err(StorageError::TimedOut(self.config.storage_timeout));
        }

        // The record as this writer's lock finds it. Nobody else may rename while the lock is
        // held, so if it reads differently just before the rename, the lock was lost.
        let found = self.read_in_place(paths)?;
        let record = Record {
            version: version_of(found.as_deref()) + 1,
            ..record
        };
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let temp = self.layout.temp_file(paths, &self.instance, sequence);
        let json = record.to_json();
        let written = match self.fs.write_new_synced(&temp, &json) {
            // The fan-out directory is created on first use, and its entry in `users/` made
            // durable (on a local disk a crash could otherwise lose the directory, and with it
            // a record already acknowledged).
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .fs
                .create_dir_all(&paths.dir)
                .and_then(|()| self.fs.sync_dir(self.layout.users_dir()))
                .and_then(|()| self.fs.write_new_synced(&temp, &json)),
            other => other,
        };
        let published = written
            .map_err(StorageError::io("writing a record"))
            .and_then(|()| self.publish(&temp, paths, found.as_deref(), fence));
        if let Err(error) = published {
            // Leave nothing half-written behind. (After a rename error on NFS the rename may
            // still have happened; then the temp name is gone and this is a no-op.)
            if let Err(e) = self.fs.remove_file(&temp)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "could not remove a temp file; the sweeper will");
            }
            return Err(error);
        }
        self.fs
            .sync_dir(&paths.dir)
            .map_err(StorageError::unconfirmed("syncing a record directory"))
        // `_lock` is released here, after the rename is durable.
    }

    /// Renames the written `temp` over the record, unless a fence says no.
    ///
    /// Two fences, and neither reads a clock of another host:
    /// - the record must still be what this writer found when it took the lock (`found`):
    ///   another writer's rename since then means this one's lock was lost (an NFS lease that
    ///   ran out, a server restart whose grace period this client missed), and renaming now
    ///   would put this write over one that may already be acknowledged;
    /// - the request must not have given up, and its deadline must not have passed by this
    ///   host's monotonic clock ([`Fence`]).
    fn publish(
        &self,
        temp: &Path,
        paths: &layout::RecordPaths,
        found: Option<&[u8]>,
        fence: &Fence,
    ) -> Result<(), StorageError> {
        if self.read_in_place(paths)?.as_deref() != found {
            self.metrics
                .writes_fenced
                .with_label_values(&["lock_lost"])
                .inc();
            return Err(StorageError::LockLost);
        }
        let _no_reader = self.open_records[paths.stripe]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // The last moment before the write becomes visible: the request may have given up, or
        // this writer may have been blocked past its deadline (cut off from NFS, and its lock
        // lost with its lease). Either way it must not rename.
        if !fence.pass() {
            return Err(StorageError::TimedOut(self.config.storage_timeout));
        }
        self.fs
            .rename(temp, &paths.record)
            .map_err(StorageError::unconfirmed("replacing a record"))
    }

    /// Reads a record while no writer of this process renames over it (see `open_records`).
    fn read_record(&self, paths: &layout::RecordPaths) -> io::Result<Vec<u8>> {
        let _reading = self.open_records[paths.stripe]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.fs.read(&paths.record)
    }

    /// After ESTALE: lists the record's directory, so that the NFS client drops a cached
    /// name-to-file binding that another host's rename has made stale, and the next open looks
    /// the name up on the server. A listing that fails shows again in the next read.
    fn refresh_binding(&self, paths: &layout::RecordPaths) {
        let _ = self.fs.revalidate_dir(&paths.dir);
    }

    /// The bytes of the record in place, for a writer holding the user's lock: `None` if there
    /// is none. A failed read fails the write.
    fn read_in_place(&self, paths: &layout::RecordPaths) -> Result<Option<Vec<u8>>, StorageError> {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
        let mut attempts = 1;
        loop {
            // Not `read_record`: only this writer renames in its stripe in this process (the
            // stripe's queue), and it renames after this read has closed the file.
            match self.fs.read(&paths.record) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                // Replaced under the read by another host: read the new one.
                Err(e)
                    if e.kind() == io::ErrorKind::StaleNetworkFileHandle
                        && attempts < READ_ATTEMPTS =>
                {
                    attempts += 1;
                    self.refresh_binding(paths);
                    std::thread::sleep(backoff.next_delay());
                }
                Err(e) => return Err(StorageError::io("reading the record to replace")(e)),
            }
        }
    }

    /// Takes the file lock of `stripe`, retrying with jittered backoff until `deadline`.
    fn lock_stripe(&self, stripe: usize, deadline: Instant) -> Result<F::LockFile, StorageError> {
        let file = self.open_stripe_lock(stripe)?;
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(50));
        loop {
            if self.try_lock(&file)? {
                return Ok(file);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.lock_timed_out());
            }
            std::thread::sleep(backoff.next_delay().min(deadline - now));
        }
    }

    fn open_stripe_lock(&self, stripe: usize) -> Result<F::LockFile, StorageError> {
        self.fs
            .open_lock_file(&self.layout.lock_file(stripe))
            .map_err(StorageError::io("opening a lock file"))
    }

    /// Tries once to lock `file`; `Ok(false)` if another process holds it.
    fn try_lock(&self, file: &F::LockFile) -> Result<bool, StorageError> {
        self.fs
            .try_lock(file)
            .map_err(StorageError::io("taking a record lock"))
    }

    fn probe_blocking(&self) -> Result<(), StorageError> {
        const CONTENT: &[u8] = b"readiness probe\n";
        let path = self.layout.probe_file(&self.instance);
        // A probe file left by a crash of this same process cannot exist (the id is new per
        // start), but one left by an earlier probe that failed between create and remove can.
        // (Files of crashed processes are removed by the orphan sweep.)
        let _ = self.fs.remove_file(&path);
        if let Err(e) = self.fs.write_new_synced(&path, CONTENT) {
            // A full disk can leave the file created but empty.
            let _ = self.fs.remove_file(&path);
            return Err(StorageError::io("writing the probe file")(e));
        }
        let read = self.fs.read(&path);
        let removed = self.fs.remove_file(&path);
        let read = read.map_err(StorageError::io("reading the probe file"))?;
        removed.map_err(StorageError::io("removing the probe file"))?;
        if read != CONTENT {
            return Err(StorageError::Corrupt {
                key: "probe".into(),
                reason: "read back different bytes than were written".into(),
            });
        }
        self.fs
            .revalidate_dir(self.layout.users_dir())
            .map_err(StorageError::io("listing the data directory"))
    }
}

#[cfg(test)]
mod tests;
