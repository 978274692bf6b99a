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
//!   on "not found" after refreshing the directory (NFS caches negative lookups).

mod backoff;
mod error;
mod fence;
mod fs;
mod layout;
mod metrics;
mod pool;
mod read;
mod record;
mod sweep;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

pub use error::{BusyCause, StorageError};
pub use fs::{FileSystem, StdFs};
pub use layout::{LOCK_STRIPES, Layout};
pub use metrics::StorageMetrics;
use pool::Pool;
pub use record::{Record, SCHEMA_VERSION};
pub use sweep::{SweepReport, SweepScope};

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

struct Inner<F: FileSystem> {
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
    /// Per lock stripe: its lock file, kept open and unlocked between writes on NFS (opening
    /// and closing it for each would cost every PUT two round trips, OPEN and CLOSE). Only the
    /// writer at the head of the stripe's queue (`stripes`) takes it out, and puts it back.
    lock_files: Vec<std::sync::Mutex<Option<F::LockFile>>>,
    /// Whether the data directory is on NFS, asked once at startup. There a write fsyncs no
    /// directory (the server made the rename durable before it replied, and opening the
    /// directory to fsync it costs a GETATTR round trip for nothing), and each stripe's lock
    /// file stays open between writes (`lock_files`). On a local disk a rename is not durable
    /// without the directory fsync, and a process holding files open for writing would keep
    /// the file system from being remounted read-only.
    on_nfs: std::sync::atomic::AtomicBool,
    /// Distinguishes this process's temp and probe files from other hosts' (Fargate tasks all
    /// run as PID 1, so the process id would collide).
    instance: String,
    /// Makes each temp file name of this process unique.
    sequence: AtomicU64,
    metrics: StorageMetrics,
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
        metrics: StorageMetrics,
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
        metrics: StorageMetrics,
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
                lock_files: (0..LOCK_STRIPES).map(|_| Default::default()).collect(),
                on_nfs: std::sync::atomic::AtomicBool::new(false),
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
            .create_dir_all(inner.layout.temp_dir())
            .map_err(StorageError::io("creating the temp directory"))?;
        // Asked once the directory exists.
        let durable = inner
            .fs
            .dir_changes_are_durable(inner.layout.root())
            .map_err(StorageError::io(
                "checking the data directory's file system",
            ))?;
        inner
            .on_nfs
            .store(durable, std::sync::atomic::Ordering::Relaxed);
        if durable {
            tracing::info!(
                "the data directory is on NFS: writes fsync no directory and keep lock files open"
            );
        }
        inner
            .fs
            .sync_dir(inner.layout.root())
            .map_err(StorageError::io("syncing the data directory"))?;
        inner.probe_blocking()
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
            .map_err(StorageError::io("refreshing the data directory"))
    }
}

#[cfg(test)]
mod tests;
