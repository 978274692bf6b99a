//! The threads that make the store's blocking file calls for requests.
//!
//! Tokio's blocking pool (`spawn_blocking`) wakes a parked thread for every call, and that
//! thread parks again after its one call: a futex wake and a park per request, which on a
//! page-cached record cost more than the read itself. This pool instead leaves a call in the
//! queue for a thread that is running already and will look at the queue when its call
//! returns, and still never lets a stalled call hold up the others:
//! - **Fast calls share running threads.** While most recent calls took less than
//!   `fast_below` (a local disk, the page cache), a new call wakes no thread if one is on its
//!   way to the queue: woken and not yet there, or running a call it started less than
//!   `stalled_after` ago, unless the oldest queued call has waited `backlog_after` already
//!   (the running threads do not keep up). A thread that has been inside one call for longer
//!   counts as stalled, not as on its way.
//! - **Slow calls get a thread each**, as on Tokio's pool: on EFS every call is a network round
//!   trip that must overlap with the others, and a wake costs nothing next to it.
//! - **A call left queued behind a runner that then stalls is started anyway.** Its caller
//!   waits with one timer, as it would for its deadline alone, but set to go off every
//!   `stalled_after` before the deadline: each time, it nudges the pool ([`Shared::nudge`]:
//!   if calls are queued and no thread is on its way, one is sent, whatever the running ones
//!   are doing).
//! - **Bounded.** At most `max_threads` threads (the store: its slots, plus one); parked
//!   threads exit after `keep_alive`, and the most recently parked is woken first, so spare
//!   ones do.
//! - **Panics are reported**, not propagated: a call that panics is an error for its caller,
//!   and its thread carries on.
//! - **Nothing waits for these threads.** Not the runtime's shutdown, not the process's exit:
//!   a call still blocked then is abandoned, and a dropped pool only tells its parked threads
//!   to exit.

use std::any::Any;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The share of recent calls that were slow, in 1/[`SHARE_ONE`], is moved this fraction of
/// the way towards each new call's (1 or 0).
const SHARE_ONE: u32 = 1 << 16;
const SHARE_SHIFT: u32 = 4;

/// How the pool behaves; [`Settings::new`] has the production values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Most threads at once.
    pub max_threads: usize,
    /// A parked thread exits after this long without work.
    pub keep_alive: Duration,
    /// A thread inside one call for this long is taken for stalled: no new call waits for it.
    pub stalled_after: Duration,
    /// Calls shorter than this are fast: while most are, running threads take the new ones.
    pub fast_below: Duration,
    /// In the fast mode, another thread is woken for a new call once the oldest queued call
    /// has waited this long: the threads on their way to the queue do not keep up.
    pub backlog_after: Duration,
}

impl Settings {
    pub fn new(max_threads: usize) -> Self {
        Self {
            max_threads: max_threads.max(1),
            keep_alive: Duration::from_secs(10),
            stalled_after: Duration::from_millis(2),
            fast_below: Duration::from_micros(200),
            backlog_after: Duration::from_micros(500),
        }
    }
}

/// Why a call gave no result.
#[derive(Debug)]
pub(super) enum Failed {
    /// The deadline passed first. The call still runs (or waits to), and returns when it can.
    Deadline,
    /// The call panicked (the message), or was lost with its pool.
    Task(String),
}

/// The handle the store keeps. Dropping it lets the threads exit; it never waits for them.
pub(super) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    state: Mutex<State>,
}

struct State {
    /// Calls not started yet, with when each was queued.
    queue: VecDeque<(Instant, Job)>,
    /// Every live thread, by index; `None` marks a free index.
    threads: Vec<Option<Worker>>,
    live: usize,
    /// Indices of parked threads, the most recently parked last.
    parked: Vec<usize>,
    /// Threads woken or started that have not looked at the queue yet.
    coming: usize,
    /// Share of recent calls that took `fast_below` or longer, in 1/`SHARE_ONE`. Starts at
    /// "all slow": a thread per call until calls are seen to be fast.
    slow_share: u32,
    closed: bool,
}

struct Worker {
    /// Set by the thread itself once it runs; parked threads always have it.
    handle: Option<Thread>,
    /// When the call it is making began, if it is making one.
    running_since: Option<Instant>,
    /// Taken off `parked` by a waker: it is expected at the queue.
    woken: bool,
}

/// What to do, once the state's lock is released, to get another thread to the queue.
enum Looker {
    Unpark(Thread),
    Spawn(usize),
}

impl Pool {
    pub fn new(settings: Settings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: Vec::new(),
                    live: 0,
                    parked: Vec::new(),
                    coming: 0,
                    slow_share: SHARE_ONE,
                    closed: false,
                }),
            }),
        }
    }

    /// Runs `call` on a pool thread. Fails with [`Failed::Deadline`] if it has not returned by
    /// `deadline`: it is not stopped, it runs to its end (and keeps what it holds until then).
    pub async fn run<T, C>(&self, deadline: Instant, call: C) -> Result<T, Failed>
    where
        T: Send + 'static,
        C: FnOnce() -> T + Send + 'static,
    {
        let submitted = Instant::now();
        let mut result = self.submit(submitted, call);
        let every = self.shared.settings.stalled_after;
        let mut wake_at = (submitted + every).min(deadline);
        let mut timer = pin!(tokio::time::sleep_until(wake_at.into()));
        poll_fn(|cx| {
            if let Poll::Ready(result) = Pin::new(&mut result).poll(cx) {
                return Poll::Ready(match result {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(panic)) => Err(Failed::Task(panic_message(panic.as_ref()))),
                    Err(_) => Err(Failed::Task(
                        "the storage thread pool dropped the call".into(),
                    )),
                });
            }
            while timer.as_mut().poll(cx).is_ready() {
                if wake_at >= deadline {
                    return Poll::Ready(Err(Failed::Deadline));
                }
                // Not done after `stalled_after` (again): it may be queued behind calls that
                // have stalled since. The same timer, until the deadline.
                self.shared.nudge();
                wake_at = (Instant::now() + every).min(deadline);
                timer.as_mut().reset(wake_at.into());
            }
            Poll::Pending
        })
        .await
    }

    fn submit<T, C>(&self, now: Instant, call: C) -> oneshot::Receiver<thread::Result<T>>
    where
        T: Send + 'static,
        C: FnOnce() -> T + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The call's captures are dropped inside, so a panic still releases them.
            let _ = sender.send(panic::catch_unwind(AssertUnwindSafe(call)));
        });
        let looker = {
            let mut state = self.shared.lock();
            state.queue.push_back((now, job));
            if self.shared.wants_looker(&state, now) {
                self.shared.add_looker(&mut state)
            } else {
                None
            }
        };
        if let Some(looker) = looker {
            self.shared.dispatch(looker);
        }
        receiver
    }

    #[cfg(test)]
    fn live_threads(&self) -> usize {
        self.shared.lock().live
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let parked: Vec<Thread> = {
            let mut state = self.shared.lock();
            state.closed = true;
            state
                .parked
                .iter()
                .filter_map(|&index| state.threads[index].as_ref()?.handle.clone())
                .collect()
        };
        for thread in parked {
            thread.unpark();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock and catch their panics; nothing can poison it mid-change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the queue, just grown by one call, needs another thread on its way to it.
    fn wants_looker(&self, state: &State, now: Instant) -> bool {
        let queued = state.queue.len();
        if state.slow_share >= SHARE_ONE / 2 {
            // Slow calls: one thread each.
            return state.coming < queued;
        }
        if state.coming > 0 {
            return false;
        }
        let behind = state
            .queue
            .front()
            .is_some_and(|&(queued_at, _)| now >= queued_at + self.settings.backlog_after);
        behind
            || !state.threads.iter().flatten().any(|worker| {
                worker
                    .running_since
                    .is_some_and(|since| now < since + self.settings.stalled_after)
            })
    }

    /// A call has waited `stalled_after` (once more): if calls are queued and no thread is on
    /// its way to them, send one, whatever the running ones are doing. Repeated every
    /// `stalled_after` for as long as a call waits, so that each queued call gets a thread
    /// within a few of those even if every thread sent for it stalls in turn; one at a time, so
    /// that a queue that is merely slow to drain (its runner waiting for a CPU) brings in one
    /// thread, not one per call.
    fn nudge(self: &Arc<Self>) {
        let looker = {
            let mut state = self.lock();
            if state.queue.is_empty() || state.coming > 0 {
                return;
            }
            self.add_looker(&mut state)
        };
        if let Some(looker) = looker {
            self.dispatch(looker);
        }
    }

    /// Wakes the most recently parked thread, or reserves a new one if the limit allows.
    fn add_looker(&self, state: &mut State) -> Option<Looker> {
        if let Some(index) = state.parked.pop() {
            let worker = state.threads[index]
                .as_mut()
                .expect("parked threads are live");
            worker.woken = true;
            state.coming += 1;
            return Some(Looker::Unpark(
                worker.handle.clone().expect("parked threads have a handle"),
            ));
        }
        if state.live >= self.settings.max_threads {
            // Every thread is making a call; the first to return takes the next one.
            return None;
        }
        let worker = Worker {
            handle: None,
            running_since: None,
            woken: false,
        };
        let index = match state.threads.iter().position(Option::is_none) {
            Some(free) => {
                state.threads[free] = Some(worker);
                free
            }
            None => {
                state.threads.push(Some(worker));
                state.threads.len() - 1
            }
        };
        state.live += 1;
        state.coming += 1;
        Some(Looker::Spawn(index))
    }

    fn dispatch(self: &Arc<Self>, looker: Looker) {
        match looker {
            Looker::Unpark(thread) => thread.unpark(),
            Looker::Spawn(index) => {
                let shared = Arc::clone(self);
                let spawned = thread::Builder::new()
                    .name("storage-io".into())
                    .spawn(move || shared.work(index));
                if let Err(error) = spawned {
                    // The call stays queued: a thread that returns takes it, and so does the
                    // next submit or nudge that can start a thread.
                    tracing::warn!(%error, "cannot start a storage thread");
                    let mut state = self.lock();
                    state.threads[index] = None;
                    state.live -= 1;
                    state.coming -= 1;
                }
            }
        }
    }

    /// A pool thread: runs queued calls until none is left, parks, and exits after
    /// `keep_alive` parked (or once the pool is dropped).
    fn work(&self, index: usize) {
        let mut state = self.lock();
        state.threads[index]
            .as_mut()
            .expect("a started thread has its slot")
            .handle = Some(thread::current());
        state.coming -= 1;
        loop {
            if let Some((_, job)) = state.queue.pop_front() {
                let started = Instant::now();
                self.worker(&mut state, index).running_since = Some(started);
                drop(state);
                job();
                let took = started.elapsed();
                state = self.lock();
                self.worker(&mut state, index).running_since = None;
                let slow = if took >= self.settings.fast_below {
                    SHARE_ONE
                } else {
                    0
                };
                state.slow_share =
                    state.slow_share - (state.slow_share >> SHARE_SHIFT) + (slow >> SHARE_SHIFT);
                continue;
            }
            if state.closed {
                break;
            }
            state = match self.park(state, index) {
                Some(state) => state,
                None => return,
            };
        }
        self.retire(&mut state, index);
    }

    /// Parks until woken, or until there is work or the pool is closed anyway; `None` once
    /// the thread has retired after `keep_alive` without work.
    fn park<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        index: usize,
    ) -> Option<MutexGuard<'a, State>> {
        state.parked.push(index);
        self.worker(&mut state, index).woken = false;
        let parked_at = Instant::now();
        loop {
            drop(state);
            let waited = parked_at.elapsed();
            if waited < self.settings.keep_alive {
                thread::park_timeout(self.settings.keep_alive - waited);
            }
            state = self.lock();
            if self.worker(&mut state, index).woken {
                // The waker took it off `parked` and counted it as coming.
                state.coming -= 1;
                return Some(state);
            }
            let expired = parked_at.elapsed() >= self.settings.keep_alive;
            if !state.queue.is_empty() || state.closed || expired {
                let position = state.parked.iter().rposition(|&i| i == index);
                state
                    .parked
                    .remove(position.expect("a thread not woken is still parked"));
                if state.queue.is_empty() && !state.closed {
                    self.retire(&mut state, index);
                    return None;
                }
                return Some(state);
            }
        }
    }

    fn retire(&self, state: &mut State, index: usize) {
        state.threads[index] = None;
        state.live -= 1;
    }

    fn worker<'s>(&self, state: &'s mut State, index: usize) -> &'s mut Worker {
        state.threads[index]
            .as_mut()
            .expect("a live thread has its slot")
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    match message {
        Some(message) => format!("panicked: {message}"),
        None => "panicked".to_owned(),
    }
}

#[cfg(test)]
mod tests {
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
}
