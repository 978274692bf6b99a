//! The read path: a record read without a lock, retried on ESTALE, on a record that does not
//! parse, and once on "not found" after refreshing the directory (NFS caches negative lookups).

use std::io;
use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::{FileSystem, Inner, Operation, Record, StorageError, Store, layout};
use crate::domain::{DateOfBirth, Username};

/// How often a read is tried before its error is reported.
pub(super) const READ_ATTEMPTS: u32 = 4;

impl<F: FileSystem> Store<F> {
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
}

impl<F: FileSystem> Inner<F> {
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

    /// Refreshes the client's view of `dir` from the server (`revalidate_dir`). `Ok(false)` if it does not exist
    /// (after refreshing its parent too): then the record cannot exist either.
    pub(super) fn revalidate(&self, dir: &Path) -> Result<bool, StorageError> {
        match self.fs.revalidate_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.fs.revalidate_dir(self.layout.users_dir()) {
                    Ok(()) => match self.fs.revalidate_dir(dir) {
                        Ok(()) => Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                        // EIO and the like are failures, not "no such user".
                        Err(e) => Err(StorageError::io("refreshing a record directory")(e)),
                    },
                    Err(e) => Err(StorageError::io("refreshing the data directory")(e)),
                }
            }
            Err(e) => Err(StorageError::io("refreshing a record directory")(e)),
        }
    }
    /// Reads a record while no writer of this process renames over it (see `open_records`).
    fn read_record(&self, paths: &layout::RecordPaths) -> io::Result<Vec<u8>> {
        let _reading = self.open_records[paths.stripe]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.fs.read(&paths.record)
    }

    /// After ESTALE: refreshes the record's directory, so that the NFS client drops a cached
    /// name-to-file binding that another host's rename has made stale, and the next open looks
    /// the name up on the server. A refresh that fails shows again in the next read.
    pub(super) fn refresh_binding(&self, paths: &layout::RecordPaths) {
        let _ = self.fs.revalidate_dir(&paths.dir);
    }
}
