//! Reads: round trips, stale handles, cached misses, torn and foreign records, deadlines,
//! and a rename that waits for this process's open reads.

use super::*;

#[tokio::test]
async fn put_then_get_round_trips_and_unknown_users_are_none() {
    let f = fixture_with(StdFs);
    let alice = user("Alice");
    assert_eq!(f.store.get(&alice).await.unwrap(), None);
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    f.store
        .put(&alice, born(1991, 2, 16), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 16)));
    // Case matters: a different user.
    assert_eq!(f.store.get(&user("alice")).await.unwrap(), None);

    let records = record_files(f.store.root());
    assert_eq!(records.len(), 1, "{records:?}");
    let json = std::fs::read(f.store.root().join(&records[0])).unwrap();
    let record: Record = serde_json::from_slice(&json).unwrap();
    assert_eq!(record.username, "Alice");
    assert_eq!(record.schema, SCHEMA_VERSION);
}

#[tokio::test]
async fn reads_retry_through_stale_handles() {
    let (f, alice) = faulty_with_alice().await;
    let fs = &f.store.inner.fs;
    fs.inject(
        Call::Read,
        Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
    );
    fs.inject(
        Call::Read,
        Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
    );

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(fs.count(Call::Read), 3);
    // Each ESTALE refreshed the directory, so that the next open looks the name up afresh.
    assert_eq!(fs.count(Call::RevalidateDir), 2);
}

#[tokio::test]
async fn reads_give_up_after_persistent_stale_handles() {
    let (f, alice) = faulty_with_alice().await;
    for _ in 0..READ_ATTEMPTS {
        f.store.inner.fs.inject(
            Call::Read,
            Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
        );
    }
    let err = f.store.get(&alice).await.unwrap_err();
    assert_eq!(err.kind(), "stale_handle");
    assert_eq!(
        f.metrics
            .storage_errors
            .with_label_values(&["get", "stale_handle"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_cached_negative_lookup_is_retried_after_listing_the_directory() {
    let (f, alice) = faulty_with_alice().await;
    // Another host created the record, but our NFS client still remembers "no such file".
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Error(io::ErrorKind::NotFound));

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(f.store.inner.fs.count(Call::RevalidateDir), 1);
}

#[tokio::test]
async fn a_torn_read_is_retried() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Bytes(br#"{"schema":1,"userna"#));

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
}

#[tokio::test]
async fn a_record_of_another_user_is_reported_corrupt_not_served() {
    let (f, alice) = faulty_with_alice().await;
    f.store.inner.fs.inject(
        Call::Read,
        Fault::Bytes(br#"{"schema":1,"username":"mallory","dateOfBirth":"1990-01-15","updatedAt":"2026-01-01T00:00:00Z"}"#),
    );
    assert_eq!(f.store.get(&alice).await.unwrap_err().kind(), "corrupt");
}

#[tokio::test]
async fn an_io_error_while_revalidating_is_an_error_not_an_unknown_user() {
    let f = faulty();
    // alice's fan-out directory does not exist yet: the read misses, the directory and then
    // users/ are listed, and the second listing of the directory fails with EIO.
    let fs = &f.store.inner.fs;
    fs.inject(Call::RevalidateDir, Fault::Error(io::ErrorKind::NotFound));
    fs.inject(Call::RevalidateDir, Fault::Pass);
    fs.inject(Call::RevalidateDir, Fault::Error(io::ErrorKind::Other));
    let err = f.store.get(&user("alice")).await.unwrap_err();
    assert_eq!(err.kind(), "io", "{err:?}");
}

#[tokio::test]
async fn a_read_blocked_past_the_deadline_is_answered_503_in_time() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    f.store.inner.fs.inject(Call::Read, Fault::Delay(STALL));
    let started = Instant::now();
    let err = f.store.get(&alice).await.unwrap_err();
    assert!(matches!(err, StorageError::TimedOut(_)), "{err:?}");
    assert!(started.elapsed() < STALL);
}

#[test]
fn reading_a_file_that_has_been_replaced_since_it_was_looked_up_is_estale() {
    // What an NFS client with a stale name-to-file binding opens: the old file, unlinked on
    // the server but still served. /proc/self/fd reaches an unlinked file here the same way.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.json");
    std::fs::write(&path, b"{}").unwrap();
    let open = File::open(&path).unwrap();
    assert_eq!(StdFs.read(&path).unwrap(), b"{}");
    std::fs::remove_file(&path).unwrap();

    use std::os::fd::AsRawFd;
    let replaced = PathBuf::from(format!("/proc/self/fd/{}", open.as_raw_fd()));
    let err = StdFs.read(&replaced).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StaleNetworkFileHandle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_waits_until_no_read_of_this_process_has_the_record_open() {
    let (f, alice) = faulty_with_alice().await;
    let fs = &f.store.inner.fs;
    // The GET's read is slow; the PUT's own look at the record is not.
    fs.inject(Call::Read, Fault::Delay(Duration::from_secs(1)));
    let reader = {
        let store = f.store.clone();
        let alice = alice.clone();
        tokio::spawn(async move { store.get(&alice).await })
    };
    eventually("the read has started", || fs.count(Call::Read) == 1).await;

    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), Some(born(1990, 1, 15)));

    // On NFS a rename over a file this client has open would first move that file away.
    // Every read (the slow GET's and the PUT's own) must have returned before the rename, and
    // the record the PUT kept open for its fence must have been closed.
    let calls = fs.calls.lock().unwrap().clone();
    let rename = calls.iter().position(|c| *c == Call::Rename).unwrap();
    let before = |call: Call| calls[..rename].iter().filter(|c| **c == call).count();
    assert_eq!(
        (before(Call::ReadReturned), before(Call::RecordClosed)),
        (2, 1),
        "renamed while the record was open: {calls:?}"
    );
}
