//! The orphan sweep, the readiness probe and the storage slots under a stalled file system.

use super::*;

#[tokio::test]
async fn the_sweeper_removes_only_old_orphans_whose_lock_is_free() {
    let f = fixture_with(StdFs);
    let layout = &f.store.inner.layout;
    let orphan_of = |name: &str| {
        let paths = layout.record(&user(name));
        let temp = layout.temp_file(&paths, "deadbeef", 1);
        std::fs::write(&temp, b"{\"schema\":1,").unwrap();
        (temp, paths.stripe)
    };
    let (orphan, _) = orphan_of("alice");
    let (in_use, busy_stripe) = orphan_of("bob");
    let held = StdFs
        .open_lock_file(&layout.lock_file(busy_stripe))
        .unwrap();
    held.lock().unwrap();
    // And the probe file of an instance that died mid-probe.
    let dead_probe = layout.probe_file("deadbeef");
    std::fs::write(&dead_probe, b"readiness probe\n").unwrap();

    // Too young: nothing is touched.
    let report = f
        .store
        .sweep_orphans(Duration::from_secs(300), SweepScope::InFlight)
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    assert!(orphan.exists() && in_use.exists());

    let report = f
        .store
        .sweep_orphans(Duration::ZERO, SweepScope::InFlight)
        .await
        .unwrap();
    assert_eq!(
        report,
        SweepReport {
            removed: 2,
            in_use: 1,
            errors: 0,
        }
    );
    assert!(!orphan.exists(), "the orphan was not removed");
    assert!(
        !dead_probe.exists(),
        "the dead instance's probe file was not removed"
    );
    assert!(in_use.exists(), "a temp file under a held lock was removed");
}

/// Versions before `tmp/` left their orphans next to the record: only the sweep at startup
/// lists every fan-out directory for them; the periodic one lists `tmp/` alone.
#[tokio::test]
async fn orphans_of_versions_before_the_temp_directory_are_swept_at_startup_only() {
    let f = fixture_with(StdFs);
    let layout = &f.store.inner.layout;
    let paths = layout.record(&user("carol"));
    std::fs::create_dir_all(&paths.dir).unwrap();
    let name = layout
        .temp_file(&paths, "0123456789abcdef", 7)
        .file_name()
        .unwrap()
        .to_owned();
    let legacy = paths.dir.join(name);
    std::fs::write(&legacy, b"{\"schema\":1,").unwrap();

    let report = f
        .store
        .sweep_orphans(Duration::ZERO, SweepScope::InFlight)
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    assert!(legacy.exists());

    let report = f
        .store
        .sweep_orphans(Duration::ZERO, SweepScope::WithLegacy)
        .await
        .unwrap();
    assert_eq!(report.removed, 1);
    assert!(!legacy.exists(), "the legacy orphan was not removed");
}

#[tokio::test]
async fn the_probe_fails_when_the_directory_cannot_be_written_and_leaves_nothing() {
    let f = faulty();
    f.store.probe().await.unwrap();
    f.store.inner.fs.inject(
        Call::WriteNewSynced,
        Fault::Error(io::ErrorKind::StorageFull),
    );
    assert_eq!(f.store.probe().await.unwrap_err().kind(), "storage_full");
    assert!(
        files_under(f.store.root())
            .iter()
            .all(|f| !f.starts_with(".probe")),
        "probe file left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_file_system_fills_the_slots_and_later_requests_get_busy() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        lock_timeout: Duration::from_millis(200),
        storage_timeout: Duration::from_secs(5),
        max_concurrent_ops: 2,
    };
    let store = Store::with_fs(
        FaultyFs::default(),
        dir.path(),
        config,
        StorageMetrics::default(),
    );
    store.prepare().unwrap();
    for _ in 0..2 {
        store
            .inner
            .fs
            .inject(Call::Read, Fault::Delay(Duration::from_secs(1)));
    }

    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get(&user("alice")).await })
        })
        .collect();
    // Wait (by polling, not guessing) until both slots are taken and both calls are running:
    // the gauge counts from the blocking thread, which starts a moment after the slot is taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.inner.slots.available_permits() > 0
        || store.inner.metrics.storage_in_flight.get() < 2
    {
        assert!(Instant::now() < deadline, "the stalled reads never started");
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let err = store.get(&user("bob")).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Busy(_, BusyCause::Slot)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "waited for the stall"
    );
    for get in stalled {
        assert_eq!(get.await.unwrap().unwrap(), None);
    }
    assert_eq!(store.inner.metrics.storage_in_flight.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_takes_no_slot_so_a_saturated_instance_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        lock_timeout: Duration::from_millis(200),
        storage_timeout: Duration::from_secs(5),
        max_concurrent_ops: 1,
    };
    let store = Store::with_fs(StdFs, dir.path(), config, StorageMetrics::default());
    store.prepare().unwrap();
    // Another process holds every lock, so a write holds the only slot while it waits.
    let held: Vec<File> = (0..LOCK_STRIPES)
        .map(|stripe| {
            let file = StdFs
                .open_lock_file(&store.inner.layout.lock_file(stripe))
                .unwrap();
            file.lock().unwrap();
            file
        })
        .collect();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put(&user("alice"), born(1990, 1, 15), Utc::now())
                .await
        })
    };
    while store.inner.slots.available_permits() > 0 {
        tokio::task::yield_now().await;
    }
    store.probe().await.unwrap();
    assert!(matches!(
        writer.await.unwrap().unwrap_err(),
        StorageError::Busy(_, BusyCause::Lock)
    ));
    drop(held);
}

#[test]
fn orphans_are_aged_by_ctime_not_by_an_mtime_a_client_set() {
    let dir = tempfile::tempdir().unwrap();
    let aged = |mtime: std::time::SystemTime, later: Duration| {
        let path = dir.path().join(format!("{mtime:?}"));
        let file = File::create(&path).unwrap();
        file.set_modified(mtime).unwrap();
        sweep::age(
            &file.metadata().unwrap(),
            std::time::SystemTime::now() + later,
        )
    };
    // What a writer killed during its NFSv4 exclusive create leaves: the create verifier as
    // its mtime, here 2038-01-18. Measured by its ctime it is a minute old a minute from now.
    let verifier = std::time::UNIX_EPOCH + Duration::from_secs(2_147_400_000);
    let age = aged(verifier, Duration::from_secs(60));
    assert!(age >= Duration::from_secs(59), "{age:?}");
    // And a file made just now is young, whatever its mtime claims.
    let age = aged(std::time::UNIX_EPOCH, Duration::ZERO);
    assert!(age < Duration::from_secs(10), "{age:?}");
}
