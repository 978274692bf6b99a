//! Removal of temp files orphaned by writers that died between creating and renaming them.

use std::fs;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use super::{FileSystem, Inner, Layout, StdFs, StorageError, Store};

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Orphaned temp files removed.
    pub removed: usize,
    /// Old temp files left alone because a writer of that user holds the lock right now.
    pub in_use: usize,
}

impl Store<StdFs> {
    /// Removes temp files older than `older_than` whose user's lock is free. A temp file only
    /// lives while its writer holds that lock, so a free lock proves the writer is gone; the
    /// age keeps the sweeper away from files whose writer just created them, on hosts whose
    /// clocks or locks we see late.
    ///
    /// Lists every fan-out directory, so it runs at startup and periodically, never per request.
    pub async fn sweep_orphans(&self, older_than: Duration) -> Result<SweepReport, StorageError> {
        let started = Instant::now();
        let inner = std::sync::Arc::clone(&self.inner);
        let result = tokio::task::spawn_blocking(move || inner.sweep_blocking(older_than))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))
            .and_then(|r| r);
        self.inner.finish("sweep", started, &result);
        result
    }
}

impl Inner<StdFs> {
    fn sweep_blocking(&self, older_than: Duration) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        let now = SystemTime::now();
        let list = |dir: &std::path::Path| {
            fs::read_dir(dir).map_err(StorageError::io("listing for the orphan sweep"))
        };
        for fan_out in list(self.layout.users_dir())? {
            let fan_out = fan_out.map_err(StorageError::io("listing for the orphan sweep"))?;
            if !fan_out.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for entry in list(&fan_out.path())? {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                let Some(key) = name.to_str().and_then(Layout::key_of_temp_file) else {
                    continue;
                };
                let Some(paths) = self.layout.record_for_key(key.to_owned()) else {
                    continue;
                };
                let old_enough =
                    entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|modified| {
                            now.duration_since(modified).unwrap_or_default() >= older_than
                        });
                if !old_enough {
                    continue;
                }
                // A writer in this process holds the stripe's async mutex for the whole write...
                let Ok(_queued) = self.stripes[paths.stripe].try_lock() else {
                    report.in_use += 1;
                    continue;
                };
                // ...and a writer anywhere holds the stripe's file lock.
                let lock_file = self
                    .fs
                    .open_lock_file(&self.layout.lock_file(paths.stripe))
                    .map_err(StorageError::io("opening a lock file"))?;
                if !self
                    .fs
                    .try_lock(&lock_file)
                    .map_err(StorageError::io("taking a record lock"))?
                {
                    report.in_use += 1;
                    continue;
                }
                match self.fs.remove_file(&entry.path()) {
                    Ok(()) => report.removed += 1,
                    // Another host's sweeper got there first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io("removing an orphaned temp file")(e)),
                }
            }
        }
        Ok(report)
    }
}
