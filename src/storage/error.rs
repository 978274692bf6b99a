//! What a storage operation can fail with, and the bounded label each failure is counted by.

use std::io;
use std::time::Duration;

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
    pub(super) fn io(operation: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { operation, source }
    }

    pub(super) fn unconfirmed(operation: &'static str) -> impl FnOnce(io::Error) -> Self {
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
