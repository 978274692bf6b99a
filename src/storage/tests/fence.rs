//! The write fence: a writer that lost its lock some way the deadline does not catch
//! renames nothing. It asks the server whether the record it found under the lock still
//! has its name, and it trusts no cached "no such file" for the record or the fence.

use super::*;

#[tokio::test]
async fn a_writer_whose_record_changed_under_its_lock_does_not_rename_over_it() {
    let (f, alice) = faulty_with_alice().await;
    let record = f.store.inner.layout.record(&alice).record;
    // Another host whose lock on alice had not really ended (a lease that ran out under this
    // writer, say) renames its record in while this writer writes its temp file.
    let theirs = br#"{"schema":1,"username":"alice","dateOfBirth":"1992-03-03","updatedAt":"2026-01-01T00:00:00Z","version":2}
"#;
    let other = record.with_extension("other");
    std::fs::write(&other, theirs).unwrap();
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Run(Box::new(move || {
            std::fs::rename(&other, &record).unwrap();
        })),
    );

    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();

    assert!(matches!(err, StorageError::LockLost), "{err:?}");
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1992, 3, 3)));
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_fenced_once(&f, "lock_lost");
}

#[tokio::test]
async fn the_fence_asks_the_server_whether_the_record_found_still_has_its_name() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    // One read under the lock, kept open; no second read before the rename.
    assert_eq!(f.store.inner.fs.count(Call::Read), 1);
    assert_eq!(f.store.inner.fs.count(Call::StillLinked), 1);
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 2)));
}

#[tokio::test]
async fn a_record_gone_from_the_server_by_the_fence_means_the_lock_was_lost() {
    let (f, alice) = faulty_with_alice().await;
    // Replaced by another host's rename and closed everywhere: its handle is stale.
    f.store.inner.fs.inject(
        Call::StillLinked,
        Fault::Error(io::ErrorKind::StaleNetworkFileHandle),
    );
    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LockLost), "{err:?}");
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_fenced_once(&f, "lock_lost");
}

#[tokio::test]
async fn a_fence_that_cannot_ask_the_server_does_not_rename() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::StillLinked, Fault::Error(io::ErrorKind::Other));
    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(record_files(f.store.root()).len(), 1);
}

#[tokio::test]
async fn a_new_users_record_made_by_another_writer_meanwhile_means_the_lock_was_lost() {
    let f = faulty();
    let bob = user("bob");
    let record = f.store.inner.layout.record(&bob).record;
    let theirs = br#"{"schema":1,"username":"bob","dateOfBirth":"1992-03-03","updatedAt":"2026-01-01T00:00:00Z","version":1}
"#;
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Run(Box::new(move || {
            std::fs::create_dir_all(record.parent().unwrap()).unwrap();
            std::fs::write(&record, theirs).unwrap();
        })),
    );
    let err = f
        .store
        .put(&bob, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::LockLost), "{err:?}");
    assert_eq!(f.store.get(&bob).await.unwrap(), Some(born(1992, 3, 3)));
    assert_fenced_once(&f, "lock_lost");
}

#[tokio::test]
async fn a_writer_does_not_trust_a_cached_miss_of_the_record_it_replaces() {
    let (f, alice) = faulty_with_alice().await;
    // alice's record (version 1) was written by another host; our NFS client still remembers
    // "no such file" from before, and says so to the first look under the lock.
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Error(io::ErrorKind::NotFound));

    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();

    let record: Record = serde_json::from_slice(
        &std::fs::read(&f.store.inner.layout.record(&alice).record).unwrap(),
    )
    .unwrap();
    assert_eq!(record.version, 2, "the write started the record over");
    assert_eq!(f.store.inner.fs.count(Call::RevalidateDir), 1);
}

#[tokio::test]
async fn the_fence_does_not_trust_a_cached_miss_either() {
    let f = faulty();
    let bob = user("bob");
    let record = f.store.inner.layout.record(&bob).record;
    // bob has no record when this writer takes the lock. While it writes its temp file, another
    // host whose lock had not really ended renames one in; our client still answers the fence's
    // look with the miss it cached a moment ago.
    let theirs = br#"{"schema":1,"username":"bob","dateOfBirth":"1992-03-03","updatedAt":"2026-01-01T00:00:00Z","version":1}
"#;
    let dir = record.parent().unwrap().to_owned();
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Run(Box::new(move || {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("other"), theirs).unwrap();
            std::fs::rename(dir.join("other"), &record).unwrap();
        })),
    );
    f.store.inner.fs.inject(Call::Read, Fault::Pass);
    f.store
        .inner
        .fs
        .inject(Call::Read, Fault::Error(io::ErrorKind::NotFound));

    let err = f
        .store
        .put(&bob, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();

    assert!(matches!(err, StorageError::LockLost), "{err:?}");
    assert_eq!(f.store.get(&bob).await.unwrap(), Some(born(1992, 3, 3)));
    assert_fenced_once(&f, "lock_lost");
}
