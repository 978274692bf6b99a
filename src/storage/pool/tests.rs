//! The pool's own tests: stalled calls never hold up others, threads grow with slow calls and stay bounded, deadlines, panics, and a dropped pool's threads exit.

use super::*;
use std::sync::mpsc;

const FAR: Duration = Duration::from_secs(30);

fn settings(max_threads: usize) -> Settings {
    Settings {
        keep_alive: Duration::from_millis(50),
        ..Settings::new(max_threads)
    }
}

/// Runs enough quick calls that the pool counts calls as fast.
async fn warm_up(pool: &Pool) {
    for _ in 0..64 {
        pool.run(Instant::now() + FAR, || ()).await.unwrap();
    }
    assert!(pool.shared.lock().slow_share < SHARE_ONE / 2);
}

/// Polls `done` until it holds, failing the test after 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts a call that blocks until the returned sender sends (or is dropped), and waits
/// until it is running.
async fn stall(pool: &Arc<Pool>) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (started, running) = oneshot::channel();
    let call = {
        let pool = Arc::clone(pool);
        tokio::spawn(async move {
            pool.run(Instant::now() + FAR, move || {
                let _ = started.send(());
                let _ = released.recv();
            })
            .await
            .unwrap();
        })
    };
    running.await.unwrap();
    (release, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_call_does_not_hold_up_calls_queued_behind_it() {
    // The stalled thread counts as on its way to the queue for a long while, so the calls
    // below do queue behind it, and only the nudge can get them a thread.
    let pool = Arc::new(Pool::new(Settings {
        stalled_after: Duration::from_millis(300),
        backlog_after: Duration::from_secs(3600),
        keep_alive: FAR,
        ..settings(8)
    }));
    warm_up(&pool).await;
    let (release, stalled) = stall(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(deadline, move || i * 2).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i * 2);
    }
    assert!(!stalled.is_finished(), "the stalled call was not stalled");
    release.send(()).unwrap();
    stalled.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_behind_calls_that_stall_one_after_another_still_runs() {
    let pool = Arc::new(Pool::new(Settings {
        stalled_after: Duration::from_millis(300),
        backlog_after: Duration::from_secs(3600),
        keep_alive: FAR,
        ..settings(8)
    }));
    warm_up(&pool).await;
    // Two calls that block; their callers give up before they would nudge anyone, so that
    // only the last caller's nudges can send threads.
    let short = || Instant::now() + Duration::from_millis(50);
    let blocking = |released: mpsc::Receiver<()>, started: Option<oneshot::Sender<()>>| {
        let pool = Arc::clone(&pool);
        let deadline = short();
        tokio::spawn(async move {
            pool.run(deadline, move || {
                if let Some(started) = started {
                    started.send(()).unwrap();
                }
                released.recv().unwrap();
            })
            .await
        })
    };
    let (release_first, released) = mpsc::channel();
    let (started, running) = oneshot::channel();
    let first = blocking(released, Some(started));
    running.await.unwrap();
    let (release_second, released) = mpsc::channel();
    let second = blocking(released, None);
    eventually("the second call is queued", || {
        pool.shared.lock().queue.len() == 1
    })
    .await;
    // Queued behind both: its first nudge sends a thread, which takes the second call and
    // stalls with it; only a later nudge can send one for this call.
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(pool.run(deadline, || 3).await.unwrap(), 3);
    for (release, call) in [(release_first, first), (release_second, second)] {
        assert!(matches!(call.await.unwrap(), Err(Failed::Deadline)));
        release.send(()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_stalls_later_does_not_hold_up_the_next_one() {
    // Production settings: a thread 2 ms into its call no longer counts.
    let pool = Arc::new(Pool::new(Settings {
        keep_alive: FAR,
        ..settings(4)
    }));
    warm_up(&pool).await;
    let (release, stalled) = stall(&pool).await;
    for i in 0..50 {
        assert_eq!(pool.run(Instant::now() + FAR, move || i).await.unwrap(), i);
    }
    release.send(()).unwrap();
    stalled.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_the_running_thread_does_not_keep_up_with_gets_another() {
    // The busy thread never counts as stalled, nor is anything nudged: only the age of the
    // oldest queued call can bring in another thread.
    let pool = Arc::new(Pool::new(Settings {
        stalled_after: Duration::from_secs(3600),
        backlog_after: Duration::from_millis(5),
        keep_alive: FAR,
        ..settings(4)
    }));
    warm_up(&pool).await;
    let (release, busy) = stall(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move { pool.run(deadline, || 1).await })
    };
    eventually("the first call is queued", || {
        pool.shared.lock().queue.len() == 1
    })
    .await;
    // The property is an age: this wait is the point, not a guess at a duration.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(pool.run(deadline, || 2).await.unwrap(), 2);
    assert_eq!(first.await.unwrap().unwrap(), 1);
    release.send(()).unwrap();
    busy.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_each_get_a_thread() {
    // Four calls that can only finish together: one thread each, without waiting for a
    // nudge (which would come only after the stall window, an hour here).
    let pool = Arc::new(Pool::new(Settings {
        stalled_after: Duration::from_secs(3600),
        ..settings(4)
    }));
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (pool, barrier) = (Arc::clone(&pool), Arc::clone(&barrier));
            tokio::spawn(async move {
                pool.run(Instant::now() + Duration::from_secs(10), move || {
                    barrier.wait();
                })
                .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_bounded_and_a_queued_call_runs_when_one_returns() {
    let pool = Arc::new(Pool::new(settings(3)));
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stall(&pool).await);
    }
    assert_eq!(pool.live_threads(), 3);
    // A fourth call: no thread for it, however long it waits (nudged included) ...
    let (ran, mut has_run) = oneshot::channel();
    let fourth = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            pool.run(Instant::now() + FAR, move || ran.send(()).unwrap())
                .await
        })
    };
    let nudged = Instant::now() + Duration::from_millis(20);
    while Instant::now() < nudged {
        assert!(has_run.try_recv().is_err(), "ran without a thread");
        assert_eq!(pool.live_threads(), 3);
        tokio::task::yield_now().await;
    }
    // ... until one returns.
    let (release, call) = stalled.pop().unwrap();
    release.send(()).unwrap();
    call.await.unwrap();
    fourth.await.unwrap().unwrap();
    assert_eq!(pool.live_threads(), 3);
    for (release, call) in stalled {
        release.send(()).unwrap();
        call.await.unwrap();
    }
    eventually("idle threads exit after the keep-alive", || {
        pool.live_threads() == 0
    })
    .await;
}

#[tokio::test]
async fn a_call_past_its_deadline_is_answered_and_still_runs_to_its_end() {
    let pool = Pool::new(settings(2));
    let (release, released) = mpsc::channel::<()>();
    let (finished, has_finished) = oneshot::channel();
    let answer = pool
        .run(Instant::now() + Duration::from_millis(50), move || {
            released.recv().unwrap();
            finished.send(()).unwrap();
        })
        .await;
    assert!(matches!(answer, Err(Failed::Deadline)), "{answer:?}");
    release.send(()).unwrap();
    has_finished.await.unwrap();
}

#[tokio::test]
async fn a_panicking_call_is_an_error_and_its_thread_carries_on() {
    let pool = Pool::new(settings(1));
    let answer = pool
        .run(Instant::now() + FAR, || -> u32 { panic!("boom") })
        .await;
    match answer {
        Err(Failed::Task(message)) => assert_eq!(message, "panicked: boom"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.run(Instant::now() + FAR, || 7).await.unwrap(), 7);
    assert_eq!(pool.live_threads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_from_many_tasks_at_once_all_run() {
    let pool = Arc::new(Pool::new(settings(4)));
    let calls: Vec<_> = (0..500u64)
        .map(|i| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(Instant::now() + FAR, move || i * i).await })
        })
        .collect();
    for (i, call) in (0u64..).zip(calls) {
        assert_eq!(call.await.unwrap().unwrap(), i * i);
    }
    assert!(pool.live_threads() <= 4);
}

#[tokio::test]
async fn a_dropped_pool_lets_its_threads_exit() {
    let pool = Pool::new(Settings {
        keep_alive: FAR,
        ..settings(2)
    });
    pool.run(Instant::now() + FAR, || ()).await.unwrap();
    let shared = Arc::clone(&pool.shared);
    assert_eq!(shared.lock().live, 1);
    drop(pool);
    eventually("the parked thread exits", || shared.lock().live == 0).await;
}
