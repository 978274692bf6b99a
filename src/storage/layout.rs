//! Where things live under the data directory. This is an on-disk format shared by every
//! running copy of the service, old and new versions alike during a rolling deploy: changing
//! the hash, the fan-out or the number of lock files breaks mutual exclusion between versions.
//!
//! ```text
//! DATA_DIR/
//!   users/<2 hex>/<64 hex>.json          one record per user
//!   tmp/.<64 hex>.json.tmp-<id>-<n>      a write in progress (or orphaned by a crash)
//!   locks/<00..63>.lock                  advisory lock files, created once, never deleted
//!   .probe-<id>                          readiness probe scratch file
//! ```
//!
//! Temp files have a directory of their own so that the orphan sweep lists only the writes in
//! flight, not every user; `tmp/` and `users/` are on one file system, so the rename that
//! publishes a record is still atomic. Versions before `tmp/` wrote their temp files next to
//! the record (`users/<2 hex>/.<64 hex>.json.tmp-<id>-<n>`, the same name): while both kinds
//! of version share a directory, this one sweeps those once at startup
//! ([`super::SweepScope::WithLegacy`]), and the old ones never see `tmp/`. Mutual exclusion
//! does not depend on where temp files are: both take the same lock files.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::domain::Username;

/// Number of lock files. Writers to users that hash to the same stripe serialise, which is
/// harmless at this size; the number stays well under EFS's limit of 256 distinct
/// file–process lock pairs per mount.
pub const LOCK_STRIPES: usize = 64;

const USERS_DIR: &str = "users";
const LOCKS_DIR: &str = "locks";
const TEMP_DIR: &str = "tmp";
const TEMP_MARKER: &str = ".json.tmp-";
const PROBE_PREFIX: &str = ".probe-";

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    users: PathBuf,
    locks: PathBuf,
    temp: PathBuf,
}

/// Everything the store needs to know about one user's record.
#[derive(Debug, Clone)]
pub struct RecordPaths {
    /// Lowercase hex SHA-256 of the NFC name: the same on every file system, including
    /// case-insensitive ones, and never containing a path separator.
    pub key: String,
    /// The fan-out directory holding the record.
    pub dir: PathBuf,
    pub record: PathBuf,
    pub stripe: usize,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            users: root.join(USERS_DIR),
            locks: root.join(LOCKS_DIR),
            temp: root.join(TEMP_DIR),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn users_dir(&self) -> &Path {
        &self.users
    }

    pub fn locks_dir(&self) -> &Path {
        &self.locks
    }

    pub fn temp_dir(&self) -> &Path {
        &self.temp
    }

    pub fn record(&self, username: &Username) -> RecordPaths {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(username.as_str().as_bytes());
        // Per GET: one allocation, not one `format!` per byte.
        let mut key = String::with_capacity(2 * digest.len());
        for byte in digest {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        self.record_for_key(key)
            .expect("a SHA-256 hex digest is a valid key")
    }

    /// The paths for a record key, or `None` if `key` is not 64 lowercase hex digits.
    pub fn record_for_key(&self, key: String) -> Option<RecordPaths> {
        let valid = key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return None;
        }
        // `users/<2 hex>` and `users/<2 hex>/<key>.json`, each allocated once at its size.
        let mut dir = PathBuf::with_capacity(self.users.as_os_str().len() + 3);
        dir.push(&self.users);
        dir.push(&key[..2]);
        let mut record = PathBuf::with_capacity(dir.as_os_str().len() + key.len() + 6);
        record.push(&dir);
        record.push(&key);
        record.set_extension("json");
        // Use different bits of the hash than the directory prefix does.
        let stripe = usize::from_str_radix(&key[62..], 16).expect("hex") % LOCK_STRIPES;
        Some(RecordPaths {
            key,
            dir,
            record,
            stripe,
        })
    }

    pub fn lock_file(&self, stripe: usize) -> PathBuf {
        self.locks.join(format!("{stripe:02}.lock"))
    }

    /// A temp file in `tmp/`, unique per process (`instance`) and write (`sequence`).
    /// Fargate tasks all run as PID 1, so the process id would not be unique.
    pub fn temp_file(&self, paths: &RecordPaths, instance: &str, sequence: u64) -> PathBuf {
        self.temp
            .join(format!(".{}{TEMP_MARKER}{instance}-{sequence}", paths.key))
    }

    /// The record key a temp file belongs to, if `file_name` is one of ours.
    pub fn key_of_temp_file(file_name: &str) -> Option<&str> {
        let rest = file_name.strip_prefix('.')?;
        let (key, _) = rest.split_once(TEMP_MARKER)?;
        Some(key)
    }

    pub fn probe_file(&self, instance: &str) -> PathBuf {
        self.root.join(format!("{PROBE_PREFIX}{instance}"))
    }

    /// Whether `file_name` (in the data directory) is a probe file of some instance.
    pub fn is_probe_file(file_name: &str) -> bool {
        file_name.starts_with(PROBE_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("/data")
    }

    #[test]
    fn names_that_differ_only_by_case_get_different_lowercase_files() {
        let upper = layout().record(&Username::parse("Alice").unwrap());
        let lower = layout().record(&Username::parse("alice").unwrap());
        assert_ne!(
            upper.record.to_string_lossy().to_lowercase(),
            lower.record.to_string_lossy().to_lowercase()
        );
    }

    #[test]
    fn nfc_and_nfd_spellings_share_one_file() {
        let nfc = layout().record(&Username::parse("Jos\u{e9}").unwrap());
        let nfd = layout().record(&Username::parse("Jose\u{301}").unwrap());
        assert_eq!(nfc.record, nfd.record);
    }

    #[test]
    fn records_stay_inside_the_fan_out_directory() {
        let paths = layout().record(&Username::parse("alice").unwrap());
        // Known SHA-256 of "alice": pins the on-disk format so a refactor cannot change it.
        assert_eq!(
            paths.key,
            "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        );
        assert_eq!(paths.dir, Path::new("/data/users/2b"));
        assert_eq!(
            paths.record,
            Path::new("/data/users/2b").join(format!("{}.json", paths.key))
        );
        assert_eq!(paths.stripe, 0x90 % LOCK_STRIPES);
    }

    #[test]
    fn temp_files_are_recognised_and_mapped_back_to_their_record() {
        let layout = layout();
        let paths = layout.record(&Username::parse("alice").unwrap());
        let temp = layout.temp_file(&paths, "abc123", 7);
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp.parent(), Some(Path::new("/data/tmp")));
        // The name a version before `tmp/` gave it, which the legacy sweep looks for.
        assert_eq!(name, format!(".{}.json.tmp-abc123-7", paths.key));
        assert_eq!(Layout::key_of_temp_file(name), Some(paths.key.as_str()));
        assert_eq!(
            Layout::key_of_temp_file(&format!("{}.json", paths.key)),
            None
        );
        assert!(layout.record_for_key("../etc".to_owned()).is_none());
    }
}
