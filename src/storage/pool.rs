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
//!
//! Measured against the same code with each call in `spawn_blocking` (same slots, same
//! deadlines), alternating binaries. Local disk (`BENCH_SECONDS=3 BENCH_BINARY=…
//! scripts/bench.sh --curve=none`, 3 runs each, load 5–12): this pool 0.81 / 0.60 / 0.66 GET
//! per GET of the `live` probe, 25.0 / 24.0 / 16.4 µs of server CPU per GET, 0.27–0.59 context
//! switches per GET; `spawn_blocking` 0.45 / 0.54, 32.1 / 46.1 / 31.4 µs, 2.7–3.6. NFSv4.1
//! (the NFS rehearsal's scenario m, 100,000 users, 16 connections, 4 runs each, under software
//! emulation): GET within a few per cent either way (throughput, p99, 2.0–2.5 ms CPU per GET);
//! `spawn_blocking` 4–7 % less CPU per 404 and 7–22 % less per PUT in every pair of runs, its
//! throughput the same within the runs' spread. Kept: the local disk's gain is large, NFS's
//! difference small (docs/storage.md, "Blocking I/O").

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
mod tests;
