//! Removal of temp files orphaned by writers that died between creating and renaming them,
//! and of probe files orphaned by instances that died mid-probe.

use std::fs;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use super::{FileSystem, Inner, Layout, Operation, StdFs, StorageError, Store};

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Orphaned temp files removed.
    pub removed: usize,
    /// Old temp files left alone because a writer of that user holds the lock right now.
    pub in_use: usize,
    /// Entries or directories that could not be listed, checked or removed (each logged).
    pub errors: usize,
}

/// Where a sweep looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepScope {
    /// `tmp/` and the probe files: the writes in flight, however many users there are.
    InFlight,
    /// That, and every fan-out directory of `users/`, for the temp files that versions before
    /// `tmp/` wrote next to the record. Lists every user: once per process, at startup.
    WithLegacy,
}

impl Store<StdFs> {
    /// Removes temp files older than `older_than` whose user's lock is free. A temp file only
    /// lives while its writer holds that lock, so a free lock proves the writer is gone; the
    /// age keeps the sweeper away from files whose writer just created them, on hosts whose
    /// clocks or locks we see late.
    pub async fn sweep_orphans(
        &self,
        older_than: Duration,
        scope: SweepScope,
    ) -> Result<SweepReport, StorageError> {
        let started = Instant::now();
        let result = self
            .on_blocking_pool(move |inner| inner.sweep_blocking(older_than, scope))
            .await;
        self.inner.finish(Operation::Sweep, started, &result);
        result
    }
}

/// How long ago `metadata`'s file was last changed, by its ctime.
///
/// Not by its mtime: a writer killed while its NFSv4 exclusive create is in flight leaves a file
/// whose mtime (and atime) still hold the create verifier, a date such as 2038-01-18, because
/// the SETATTR that sets real times never came. Nothing measured from that mtime is ever old.
/// The ctime is set by the file server itself on every change and no client can set it. A
/// ctime in the future (the server's clock ahead of ours) counts as age 0 until we catch up.
pub(super) fn age(metadata: &fs::Metadata, now: SystemTime) -> Duration {
    use std::os::unix::fs::MetadataExt;
    let changed = Duration::new(
        u64::try_from(metadata.ctime()).unwrap_or(0),
        u32::try_from(metadata.ctime_nsec()).unwrap_or(0),
    );
    now.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(changed)
}

impl Inner<StdFs> {
    fn sweep_blocking(
        &self,
        older_than: Duration,
        scope: SweepScope,
    ) -> Result<SweepReport, StorageError> {
        let mut report = SweepReport::default();
        let now = SystemTime::now();
        let old_enough = |entry: &fs::DirEntry| {
            entry
                .metadata()
                .is_ok_and(|metadata| age(&metadata, now) >= older_than)
        };
        // What cannot be listed, checked or removed is logged, counted and skipped, so one bad
        // entry cannot stop every later sweep at the same place.
        match fs::read_dir(self.layout.temp_dir()) {
            Ok(entries) => self.sweep_temp_files(entries, &old_enough, &mut report),
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: cannot list the temp directory");
                report.errors += 1;
            }
        }
        if scope == SweepScope::WithLegacy {
            self.sweep_legacy_temp_files(&old_enough, &mut report);
        }
        // Probe files of instances that died mid-probe (a probe lasts milliseconds).
        if let Ok(entries) = fs::read_dir(self.layout.root()) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(Layout::is_probe_file)
                    && old_enough(&entry)
                {
                    self.remove_orphan(&entry.path(), &mut report);
                }
            }
        }
        Ok(report)
    }

    /// Temp files beside the records, where versions before `tmp/` wrote them.
    fn sweep_legacy_temp_files(
        &self,
        old_enough: &impl Fn(&fs::DirEntry) -> bool,
        report: &mut SweepReport,
    ) {
        let fan_outs = match fs::read_dir(self.layout.users_dir()) {
            Ok(fan_outs) => fan_outs,
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: cannot list the users directory");
                report.errors += 1;
                return;
            }
        };
        for fan_out in fan_outs {
            let Ok(fan_out) = fan_out else {
                report.errors += 1;
                continue;
            };
            if !fan_out.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match fs::read_dir(fan_out.path()) {
                Ok(entries) => self.sweep_temp_files(entries, old_enough, report),
                Err(error) => {
                    tracing::warn!(%error, "orphan sweep: cannot list a fan-out directory");
                    report.errors += 1;
                }
            }
        }
    }

    /// Removes the orphans among `entries`: our temp files, old enough, whose lock is free.
    fn sweep_temp_files(
        &self,
        entries: fs::ReadDir,
        old_enough: &impl Fn(&fs::DirEntry) -> bool,
        report: &mut SweepReport,
    ) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(Layout::key_of_temp_file) else {
                continue;
            };
            let Some(paths) = self.layout.record_for_key(key.to_owned()) else {
                continue;
            };
            if !old_enough(&entry) {
                continue;
            }
            match self.lock_is_free(paths.stripe) {
                Ok(true) => self.remove_orphan(&entry.path(), report),
                Ok(false) => report.in_use += 1,
                Err(error) => {
                    tracing::warn!(%error, "orphan sweep: cannot check a lock");
                    report.errors += 1;
                }
            }
        }
    }

    /// Whether no writer holds `stripe`'s lock: in this process (the stripe's async mutex is
    /// held for the whole write) or anywhere (its file lock). Takes and drops both at once.
    fn lock_is_free(&self, stripe: usize) -> Result<bool, StorageError> {
        let Ok(_queued) = self.stripes[stripe].try_lock() else {
            return Ok(false);
        };
        self.try_lock(&self.open_stripe_lock(stripe)?)
    }

    fn remove_orphan(&self, path: &std::path::Path, report: &mut SweepReport) {
        match self.fs.remove_file(path) {
            Ok(()) => report.removed += 1,
            // Another host's sweeper got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(%error, "orphan sweep: cannot remove an orphaned file");
                report.errors += 1;
            }
        }
    }
}
