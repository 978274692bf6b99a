//! The file-system calls the store makes, behind a trait so that unit tests can inject the
//! errors a local disk never produces (ESTALE, a stale negative lookup, a torn read).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Every call here is one or a few system calls, and on EFS each is a network round trip.
pub trait FileSystem: Send + Sync + 'static {
    /// An open lock file; dropping it releases any lock taken on it.
    type LockFile: Send;

    /// Reads a whole small file: open, read, close. A file that has been replaced since this
    /// client looked its name up is reported as ESTALE (`StaleNetworkFileHandle`).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// A record file that a writer keeps open, from its read of the record under the lock to
    /// its fence.
    type OpenRecord: Send;

    /// `read`, keeping the file open.
    fn read_and_keep(&self, path: &Path) -> io::Result<(Self::OpenRecord, Vec<u8>)>;

    /// Whether `file` still has a name, as the file server says now: a forced GETATTR (one
    /// round trip on NFS), never this client's attribute cache, which may be seconds old. A
    /// file another writer has since renamed a new record over has no links left (the server
    /// keeps it while it is open), or is gone from the server (ESTALE).
    fn still_linked(&self, file: &Self::OpenRecord) -> io::Result<bool>;

    /// Asks the file server for the directory's attributes (a forced GETATTR on NFS, never
    /// the attribute cache). If the directory has changed since the client cached a name in it,
    /// found or missing, the new change attribute makes the client look that name up again on
    /// its next use: a cached "no such file" for a record another host has since created, or a
    /// cached binding to a file another host has since renamed a new record over, is dropped.
    fn revalidate_dir(&self, dir: &Path) -> io::Result<()>;

    /// Creates `path`, writes `contents` and fsyncs it. The name must be this writer's alone
    /// (see `write_new_synced` of `StdFs`): the file is not created exclusively.
    fn write_new_synced(&self, path: &Path, contents: &[u8]) -> io::Result<()>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes a rename in `dir` durable on a local disk (a no-op on NFS, where directory
    /// operations are synchronous, but cheap and needed for local runs).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Whether the file system holding `dir` makes directory changes durable before they
    /// return, so that fsyncing a directory adds nothing: NFS, whose server commits a CREATE or
    /// RENAME to stable storage before it replies. Asked once, at startup.
    fn dir_changes_are_durable(&self, dir: &Path) -> io::Result<bool>;

    /// Opens the lock file at `path`, creating it if missing. Lock files are never deleted:
    /// deleting one would let two writers lock two different inodes under one name.
    fn open_lock_file(&self, path: &Path) -> io::Result<Self::LockFile>;

    /// Tries once to take an exclusive lock. `Ok(false)` means someone else holds it.
    fn try_lock(&self, file: &Self::LockFile) -> io::Result<bool>;

    /// Releases the lock taken on `file`, which stays open.
    fn unlock(&self, file: &Self::LockFile) -> io::Result<()>;
}

/// The real file system through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

/// Records are well under this size; one `read` call of this many bytes gets a whole record.
const READ_BUFFER: usize = 4096;

thread_local! {
    static SCRATCH: std::cell::RefCell<[u8; READ_BUFFER]> =
        const { std::cell::RefCell::new([0; READ_BUFFER]) };
}

/// One `read` call, repeated only if a signal interrupted it.
fn read_some(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

impl FileSystem for StdFs {
    type LockFile = File;
    type OpenRecord = File;

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_and_keep(path).map(|(_, bytes)| bytes)
    }

    fn read_and_keep(&self, path: &Path) -> io::Result<(File, Vec<u8>)> {
        // Not `fs::read`: it stats the file for a size hint and then reads until a zero-length
        // read, two extra round trips on NFS. A short read of a regular file means end of file;
        // if a read was ever short for another reason, the JSON would not parse and the caller
        // retries.
        let mut file = File::open(path)?;
        // An NFS client that still has the old name-to-file binding cached (another host has
        // since renamed a new record over it) opens the old file by its handle, and the server
        // serves it for as long as anyone holds it open. The OPEN reply refreshed the file's
        // attributes, so this costs no round trip: a file with no links left is not the record.
        // ESTALE makes the caller refresh the directory and open again.
        if file.metadata()?.nlink() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StaleNetworkFileHandle,
                "opened a file that another writer has replaced",
            ));
        }
        // One read into this thread's scratch buffer, and a copy of what it got: no 4 KiB
        // zeroed allocation per record. A file that fills it goes on in a growing buffer.
        let (mut buffer, full) = SCRATCH.with_borrow_mut(|scratch| {
            read_some(&mut file, scratch).map(|n| (scratch[..n].to_vec(), n == scratch.len()))
        })?;
        if full {
            let mut filled = buffer.len();
            loop {
                buffer.resize(filled * 2, 0);
                let n = read_some(&mut file, &mut buffer[filled..])?;
                filled += n;
                if n == 0 || filled < buffer.len() {
                    break;
                }
            }
            buffer.truncate(filled);
        }
        Ok((file, buffer))
    }

    fn still_linked(&self, file: &File) -> io::Result<bool> {
        Ok(links_on_server(file)? > 0)
    }

    fn revalidate_dir(&self, dir: &Path) -> io::Result<()> {
        // A listing would do the same (its open forces the GETATTR) and then cost a READDIR
        // too, and the second look at the name is needed either way. Like a listing, it fails
        // on what is not a directory (the readiness probe relies on that).
        if attributes_from_server(dir)? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ))
        }
    }

    fn write_new_synced(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        // Not `O_EXCL`: an NFSv4.1 client makes an exclusive create an OPEN that stores a
        // verifier in the new file's times, then a SETATTR to put real times back, one more
        // round trip. The callers' names are unique without it (a random 64-bit id per process
        // start, and a counter), so no other writer can have made or be writing this file;
        // `O_TRUNC` all the same, so that even then it would hold only these bytes.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all(contents)?;
        file.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn dir_changes_are_durable(&self, dir: &Path) -> io::Result<bool> {
        on_nfs(dir)
    }

    fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        // Read+write: on NFS, Linux emulates flock with a whole-file POSIX write lock,
        // which needs a descriptor open for writing.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    fn try_lock(&self, file: &File) -> io::Result<bool> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn unlock(&self, file: &File) -> io::Result<()> {
        file.unlock()
    }
}

/// The link count of `file` from the file server itself. `AT_STATX_FORCE_SYNC` makes an NFS
/// client send a GETATTR instead of answering from its attribute cache; on a local disk it is
/// a plain `fstat`.
#[cfg(target_os = "linux")]
fn links_on_server(file: &File) -> io::Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let stat = statx(
        file,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_FORCE_SYNC,
        StatxFlags::NLINK,
    )?;
    Ok(u64::from(stat.stx_nlink))
}

/// Fetches `path`'s attributes from the file server (`AT_STATX_FORCE_SYNC`): one GETATTR on
/// NFS, a plain `stat` on a local disk. Whether it is a directory.
#[cfg(target_os = "linux")]
fn attributes_from_server(path: &Path) -> io::Result<bool> {
    use rustix::fs::{AtFlags, CWD, FileType, StatxFlags, statx};
    let stat = statx(
        CWD,
        path,
        AtFlags::STATX_FORCE_SYNC,
        StatxFlags::TYPE | StatxFlags::NLINK,
    )?;
    Ok(FileType::from_raw_mode(stat.stx_mode.into()) == FileType::Directory)
}

#[cfg(not(target_os = "linux"))]
fn attributes_from_server(path: &Path) -> io::Result<bool> {
    Ok(fs::metadata(path)?.is_dir())
}

#[cfg(target_os = "linux")]
fn on_nfs(path: &Path) -> io::Result<bool> {
    use rustix::fs::{NFS_SUPER_MAGIC, statfs};
    Ok(statfs(path)?.f_type == NFS_SUPER_MAGIC)
}

#[cfg(not(target_os = "linux"))]
fn on_nfs(_: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Elsewhere (development machines only: production and the NFS rehearsal are Linux) from
/// the attribute cache.
#[cfg(not(target_os = "linux"))]
fn links_on_server(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.nlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_holds_only_what_was_written_even_over_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("temp");
        StdFs
            .write_new_synced(&path, b"a longer first write")
            .unwrap();
        StdFs.write_new_synced(&path, b"short").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"short");
    }

    #[test]
    fn revalidating_a_directory_says_whether_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        StdFs.revalidate_dir(dir.path()).unwrap();
        let missing = StdFs
            .revalidate_dir(&dir.path().join("missing"))
            .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let file = dir.path().join("file");
        fs::write(&file, b"not a directory").unwrap();
        let file = StdFs.revalidate_dir(&file).unwrap_err();
        assert_eq!(file.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn reads_files_of_any_size_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            100,
            READ_BUFFER - 1,
            READ_BUFFER,
            READ_BUFFER + 1,
            2 * READ_BUFFER,
            3 * READ_BUFFER + 7,
        ];
        for size in sizes {
            let path = dir.path().join(format!("file-{size}"));
            let contents: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            fs::write(&path, &contents).unwrap();
            assert_eq!(
                StdFs.read(&path).unwrap(),
                contents,
                "a file of {size} bytes"
            );
        }
    }
}
