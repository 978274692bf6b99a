//! The write path: the user's lock (this process's queue, then the stripe's file lock), the
//! record read under it, a synced temp file, both fences, the rename and the directory fsync.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::backoff::Backoff;
use super::fence::{Abandoned, Fence};
use super::read::READ_ATTEMPTS;
use super::{FileSystem, Inner, Operation, Record, SCHEMA_VERSION, StorageError, Store, layout};
use crate::domain::{DateOfBirth, Username};

impl<F: FileSystem> Store<F> {
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
impl<F: FileSystem> Inner<F> {
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

        // The record as this writer's lock finds it, kept open until the fence. Nobody else
        // may rename over it while the lock is held, so if it has lost its name by then, the
        // lock was lost.
        let found = self.read_in_place(paths)?;
        let record = Record {
            version: version_of(found.as_ref().map(|(_, bytes)| bytes.as_slice())) + 1,
            ..record
        };
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let temp = self.layout.temp_file(paths, &self.instance, sequence);
        let json = record.to_json();
        let written = match self.fs.write_new_synced(&temp, &json) {
            // `tmp/` is made at startup, but an operator may have removed it since.
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .fs
                .create_dir_all(self.layout.temp_dir())
                .and_then(|()| self.fs.write_new_synced(&temp, &json)),
            other => other,
        };
        let published = written
            .map_err(StorageError::io("writing a record"))
            .and_then(|()| self.publish(&temp, paths, found, fence));
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
        if self.on_nfs.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.fs
            .sync_dir(&paths.dir)
            .map_err(StorageError::unconfirmed("syncing a record directory"))
        // `_lock` is released here, after the rename is durable; its file stays open.
    }

    /// Renames the written `temp` over the record, unless a fence says no.
    ///
    /// Two fences, and neither reads a clock of another host:
    /// - the record must still be the file this writer found when it took the lock (`found`,
    ///   still open): another writer's rename since then means this one's lock was lost (an
    ///   NFS lease that ran out, a server restart whose grace period this client missed), and
    ///   renaming now would put this write over one that may already be acknowledged;
    /// - the request must not have given up, and its deadline must not have passed by this
    ///   host's monotonic clock ([`Fence`]).
    fn publish(
        &self,
        temp: &Path,
        paths: &layout::RecordPaths,
        found: Option<Found<F>>,
        fence: &Fence,
    ) -> Result<(), StorageError> {
        let replaced = match found {
            // Writers only ever replace a record by renaming over it, which leaves the file
            // found here without a name. Asked of the server, not of the attribute cache.
            Some((file, _)) => {
                let linked = self.fs.still_linked(&file);
                // Closed before the rename: an NFS client renaming over a file it has open
                // would first rename that file away (see `open_records`).
                drop(file);
                match linked {
                    Ok(linked) => !linked,
                    // Gone from the server: replaced, and the server did not keep it for this
                    // writer's open (whose state an expired lease also takes with it).
                    Err(e) if e.kind() == io::ErrorKind::StaleNetworkFileHandle => true,
                    Err(e) => return Err(StorageError::io("checking the record to replace")(e)),
                }
            }
            // No record when the lock was taken: one now is another writer's.
            None => self.read_in_place(paths)?.is_some(),
        };
        if replaced {
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
        match self.fs.rename(temp, &paths.record) {
            // The first record of its fan-out directory: the directory is made on first use,
            // so a PUT pays no round trip for it otherwise. Its entry in `users/` is made
            // durable too: on a local disk a crash could lose the directory, and with it a
            // record already acknowledged. The rename did not happen, so a failure here, or a
            // deadline that passed meanwhile, changed nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.fs
                    .create_dir_all(&paths.dir)
                    .and_then(|()| {
                        if !self.on_nfs.load(Ordering::Relaxed) {
                            self.fs.sync_dir(self.layout.users_dir())
                        } else {
                            Ok(())
                        }
                    })
                    .map_err(StorageError::io("creating a record directory"))?;
                if fence.expired() {
                    return Err(StorageError::TimedOut(self.config.storage_timeout));
                }
                self.fs.rename(temp, &paths.record)
            }
            other => other,
        }
        .map_err(StorageError::unconfirmed("replacing a record"))
    }
    /// The record in place, still open, and its bytes, for a writer holding the user's lock:
    /// `None` if there is none. A failed read fails the write.
    fn read_in_place(&self, paths: &layout::RecordPaths) -> Result<Option<Found<F>>, StorageError> {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(20));
        let mut attempts = 1;
        let mut revalidated = false;
        loop {
            // Not `read_record`: only this writer renames in its stripe in this process (the
            // stripe's queue), and it closes the file it keeps before its rename.
            match self.fs.read_and_keep(&paths.record) {
                Ok(found) => return Ok(Some(found)),
                // The lock keeps other writers from renaming now, but not this host's NFS client
                // from remembering "no such file" from before another host's rename. Trusted,
                // that miss would start the record over at version 1 on top of an acknowledged
                // one, and the fence's look would not see a rename made after a lost lock. (Temp
                // files in the record's own directory used to hide this: the create refreshed
                // the client's view of the directory.) Refreshing the directory drops the miss.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if revalidated || !self.revalidate(&paths.dir)? {
                        return Ok(None);
                    }
                    revalidated = true;
                }
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

    /// Takes the file lock of `stripe`, retrying with jittered backoff until `deadline`, on the
    /// stripe's lock file kept open since its last write (or opened now). The caller holds the
    /// stripe's queue.
    fn lock_stripe(
        &self,
        stripe: usize,
        deadline: Instant,
    ) -> Result<StripeLock<'_, F>, StorageError> {
        let kept = self.lock_files[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut reopened = kept.is_none();
        let mut file = match kept {
            Some(file) => file,
            None => self.open_stripe_lock(stripe)?,
        };
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(50));
        loop {
            match self.fs.try_lock(&file) {
                Ok(true) => {
                    return Ok(StripeLock {
                        inner: self,
                        stripe,
                        file: Some(file),
                    });
                }
                Ok(false) => {}
                // A file kept open since an earlier write may have lost its state on the file
                // server (its lease expired while this host was cut off): open it afresh, once.
                Err(error) if !reopened => {
                    tracing::warn!(%error, "could not lock a kept lock file; opening it again");
                    file = self.open_stripe_lock(stripe)?;
                    reopened = true;
                    continue;
                }
                Err(error) => return Err(StorageError::io("taking a record lock")(error)),
            }
            let now = Instant::now();
            if now >= deadline {
                self.keep_lock_file(stripe, file);
                return Err(self.lock_timed_out());
            }
            std::thread::sleep(backoff.next_delay().min(deadline - now));
        }
    }

    /// Keeps `stripe`'s lock file, unlocked, for its next writer.
    fn keep_lock_file(&self, stripe: usize, file: F::LockFile) {
        *self.lock_files[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(file);
    }

    pub(super) fn open_stripe_lock(&self, stripe: usize) -> Result<F::LockFile, StorageError> {
        self.fs
            .open_lock_file(&self.layout.lock_file(stripe))
            .map_err(StorageError::io("opening a lock file"))
    }

    /// Tries once to lock `file`; `Ok(false)` if another process holds it.
    pub(super) fn try_lock(&self, file: &F::LockFile) -> Result<bool, StorageError> {
        self.fs
            .try_lock(file)
            .map_err(StorageError::io("taking a record lock"))
    }
}

/// The record a writer found under its lock: the file, kept open until the fence, and its bytes.
type Found<F> = (<F as FileSystem>::OpenRecord, Vec<u8>);

/// A stripe's file lock, held. Dropping it unlocks the file and, on NFS, keeps it open for the
/// stripe's next writer. A file that cannot be unlocked is closed instead, which releases what
/// the client still holds on it; the next writer opens the lock file again.
struct StripeLock<'a, F: FileSystem> {
    inner: &'a Inner<F>,
    stripe: usize,
    file: Option<F::LockFile>,
}

impl<F: FileSystem> Drop for StripeLock<'_, F> {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else {
            return;
        };
        match self.inner.fs.unlock(&file) {
            Ok(()) if self.inner.on_nfs.load(Ordering::Relaxed) => {
                self.inner.keep_lock_file(self.stripe, file);
            }
            // On a local disk an open costs no round trip: closed, as it always was.
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "could not unlock a lock file; closing it"),
        }
    }
}
