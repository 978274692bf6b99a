//! Writes: failures that leave the old record, locks held elsewhere, queueing in one
//! process, new directories made durable, unconfirmed renames, lock files kept or closed
//! by file system. The fence has its own file, fence.rs.

use super::*;

#[tokio::test]
async fn a_failed_write_leaves_the_old_record_and_no_temp_file() {
    let (f, alice) = faulty_with_alice().await;
    let before = files_under(f.store.root());

    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Error(io::ErrorKind::StorageFull),
    );
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "storage_full");

    f.store
        .inner
        .fs
        .inject(Call::Rename, Fault::Error(io::ErrorKind::Other));
    assert!(
        f.store
            .put(&alice, born(2000, 5, 5), Utc::now())
            .await
            .is_err()
    );

    assert_eq!(files_under(f.store.root()), before);
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
}

#[tokio::test]
async fn a_lock_held_elsewhere_times_out_as_busy_and_other_users_proceed() {
    let f = fixture_with(StdFs);
    let alice = user("alice");
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();

    // Another process holds alice's stripe lock (a separate open file description conflicts
    // with ours exactly as another process's would).
    let stripe = f.store.inner.layout.record(&alice).stripe;
    let held = StdFs
        .open_lock_file(&f.store.inner.layout.lock_file(stripe))
        .unwrap();
    held.lock().unwrap();

    let started = Instant::now();
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, StorageError::Busy(_, BusyCause::Lock)),
        "{err:?}"
    );
    assert!(waited >= config().lock_timeout, "gave up early: {waited:?}");
    assert!(
        waited < config().lock_timeout * 3,
        "overran the deadline: {waited:?}"
    );
    assert_eq!(f.metrics.lock_timeouts.get(), 1);

    // A user on another stripe is not affected.
    let bob = (1..)
        .map(|n| user(&"b".repeat(n)))
        .find(|u| f.store.inner.layout.record(u).stripe != stripe)
        .unwrap();
    f.store
        .put(&bob, born(1980, 3, 3), Utc::now())
        .await
        .unwrap();

    drop(held);
    f.store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(2000, 5, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_one_process_queue_instead_of_timing_out() {
    let f = fixture_with(StdFs);
    let alice = user("alice");
    // Forty distinct dates, none of which the store could come up with by itself.
    let dates: Vec<DateOfBirth> = (1..=40)
        .map(|k| {
            DateOfBirth::from_stored(
                NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Days::new(k * 3),
            )
        })
        .collect();
    let writes: Vec<_> = dates
        .iter()
        .map(|&date| {
            let store = f.store.clone();
            let alice = alice.clone();
            tokio::spawn(async move { store.put(&alice, date, Utc::now()).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let stored = f.store.get(&alice).await.unwrap().unwrap();
    assert!(dates.contains(&stored), "{stored:?} was never written");
    assert_eq!(f.metrics.lock_timeouts.get(), 0);
    assert_eq!(record_files(f.store.root()).len(), 1);
}

#[tokio::test]
async fn the_first_write_into_a_new_fan_out_directory_makes_the_directory_durable() {
    let f = faulty();
    let alice = user("alice");
    let paths = f.store.inner.layout.record(&alice);
    f.store
        .put(&alice, born(1990, 1, 15), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        *f.store.inner.fs.synced_dirs.lock().unwrap(),
        [
            f.store.inner.layout.users_dir().to_owned(),
            paths.dir.clone()
        ],
        "the new directory's entry in users/ and then the rename"
    );
    f.store.inner.fs.synced_dirs.lock().unwrap().clear();
    f.store
        .put(&alice, born(1990, 1, 16), Utc::now())
        .await
        .unwrap();
    assert_eq!(*f.store.inner.fs.synced_dirs.lock().unwrap(), [paths.dir]);
}

#[tokio::test]
async fn a_failure_after_the_rename_is_reported_as_unconfirmed_not_as_nothing_changed() {
    let (f, alice) = faulty_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::SyncDir, Fault::Error(io::ErrorKind::Other));
    let err = f
        .store
        .put(&alice, born(2000, 5, 5), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unconfirmed { .. }), "{err:?}");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 1);
    // The record was in fact replaced: "nothing was changed" would have been false.
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(2000, 5, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_past_its_deadline_is_answered_in_time_and_never_renames() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    // The read just before the rename blocks for longer than the storage timeout, as a file
    // call does on a host cut off from its NFS server.
    f.store.inner.fs.inject(Call::Read, Fault::Delay(STALL));

    let started = Instant::now();
    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::TimedOut(_)), "{err:?}");
    assert!(
        started.elapsed() < STALL,
        "answered after {:?}, not at the deadline",
        started.elapsed()
    );
    // The blocked call keeps its slot until it returns; then the writer meets the fence.
    assert_eq!(f.metrics.storage_in_flight.get(), 1);
    eventually("the blocked write finishes", || {
        f.metrics.storage_in_flight.get() == 0
    })
    .await;

    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1990, 1, 15)));
    assert_eq!(f.store.inner.fs.count(Call::Rename), 0);
    assert_fenced_once(&f, "deadline");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_fires_during_the_rename_says_the_write_may_have_been_saved() {
    let (f, alice) = faulty_with_alice_and(short_deadline()).await;
    f.store.inner.fs.inject(Call::Rename, Fault::Delay(STALL));

    let err = f
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unconfirmed { .. }), "{err:?}");
    assert_eq!(err.kind(), "timeout");
    assert_eq!(f.metrics.writes_unconfirmed.get(), 1);
    // And it was: the rename had been let through the fence before the deadline.
    eventually("the blocked rename finishes", || {
        f.metrics.storage_in_flight.get() == 0
    })
    .await;
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 2)));
}

#[tokio::test]
async fn the_later_write_wins_whatever_the_writers_clocks_say() {
    let (f, alice) = faulty_with_alice().await;
    // Each write's arrival as its host's clock saw it: half a second ahead, a minute behind,
    // an hour ahead, right. Writes one after another must land in that order all the same.
    let now = Utc::now();
    for (date, clock) in [
        (born(1992, 3, 3), now + chrono::Duration::milliseconds(500)),
        (born(1991, 2, 2), now - chrono::Duration::minutes(1)),
        (born(1994, 5, 5), now + chrono::Duration::hours(1)),
        (born(1993, 4, 4), now),
    ] {
        f.store.put(&alice, date, clock).await.unwrap();
        assert_eq!(f.store.get(&alice).await.unwrap(), Some(date));
    }
    let record: Record = serde_json::from_slice(
        &std::fs::read(&f.store.inner.layout.record(&alice).record).unwrap(),
    )
    .unwrap();
    // alice's setup write was version 1.
    assert_eq!(record.version, 5);
    assert_eq!(
        f.metrics
            .writes_fenced
            .with_label_values(&["lock_lost"])
            .get(),
        0
    );
}

#[tokio::test]
async fn on_nfs_a_stripes_lock_file_stays_open_between_writes_and_unlocked_after_each() {
    let (f, alice) = faulty_nfs_with_alice().await;
    let lock_file = f
        .store
        .inner
        .layout
        .lock_file(f.store.inner.layout.record(&alice).stripe);
    for date in [born(1991, 2, 2), born(1992, 3, 3)] {
        f.store.put(&alice, date, Utc::now()).await.unwrap();
        // Free for anyone else (another descriptor conflicts with a held flock, as another
        // host's lock does): the kept file is unlocked.
        let other = StdFs.open_lock_file(&lock_file).unwrap();
        assert!(StdFs.try_lock(&other).unwrap(), "the lock is still held");
    }
    // alice's setup write opened it; the two writes since used it as it was.
    assert_eq!(f.store.inner.fs.count(Call::OpenLockFile), 0);
    assert_eq!(f.store.inner.fs.count(Call::Unlock), 2);
}

#[tokio::test]
async fn a_kept_lock_file_that_cannot_be_locked_is_opened_again_once() {
    let (f, alice) = faulty_nfs_with_alice().await;
    // As when this host's lease expired and the client lost the file's state on the server.
    f.store
        .inner
        .fs
        .inject(Call::TryLock, Fault::Error(io::ErrorKind::Other));
    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.inner.fs.count(Call::OpenLockFile), 1);

    // Twice in a row: the freshly opened file's error is the write's.
    for _ in 0..2 {
        f.store
            .inner
            .fs
            .inject(Call::TryLock, Fault::Error(io::ErrorKind::Other));
    }
    let err = f
        .store
        .put(&alice, born(1992, 3, 3), Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1991, 2, 2)));
}

#[tokio::test]
async fn a_lock_file_that_cannot_be_unlocked_is_closed_and_the_next_write_opens_it() {
    let (f, alice) = faulty_nfs_with_alice().await;
    f.store
        .inner
        .fs
        .inject(Call::Unlock, Fault::Error(io::ErrorKind::Other));
    // The write itself is done and durable by then.
    f.store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    let lock_file = f
        .store
        .inner
        .layout
        .lock_file(f.store.inner.layout.record(&alice).stripe);
    let other = StdFs.open_lock_file(&lock_file).unwrap();
    assert!(
        StdFs.try_lock(&other).unwrap(),
        "closing did not release the lock"
    );
    drop(other);
    f.store
        .put(&alice, born(1992, 3, 3), Utc::now())
        .await
        .unwrap();
    assert_eq!(f.store.inner.fs.count(Call::OpenLockFile), 1);
    assert_eq!(f.store.get(&alice).await.unwrap(), Some(born(1992, 3, 3)));
}

#[tokio::test]
async fn on_nfs_a_write_fsyncs_no_directory_and_on_a_local_disk_it_does() {
    let (local, alice) = faulty_with_alice().await;
    local
        .store
        .put(&alice, born(1991, 2, 2), Utc::now())
        .await
        .unwrap();
    assert_eq!(local.store.inner.fs.count(Call::SyncDir), 1);

    let fs = FaultyFs::default();
    fs.durable_dirs
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let nfs = fixture_with(fs);
    nfs.store.inner.fs.calls.lock().unwrap().clear();
    let bob = user("bob");
    for date in [born(1991, 2, 2), born(1992, 3, 3)] {
        nfs.store.put(&bob, date, Utc::now()).await.unwrap();
    }
    assert_eq!(nfs.store.get(&bob).await.unwrap(), Some(born(1992, 3, 3)));
    assert_eq!(nfs.store.inner.fs.count(Call::SyncDir), 0);
}

#[tokio::test]
async fn on_a_local_disk_a_stripes_lock_file_is_closed_after_each_write() {
    let (f, alice) = faulty_with_alice().await;
    for date in [born(1991, 2, 2), born(1992, 3, 3)] {
        f.store.put(&alice, date, Utc::now()).await.unwrap();
    }
    // Held open, it would keep the file system from being remounted read-only.
    assert_eq!(f.store.inner.fs.count(Call::OpenLockFile), 2);
}
