//! Deadlines for what a connection waits on its client for: the rest of a request head, or
//! the next request on a kept-alive connection. The time a request itself takes is not
//! watched here (`--storage-timeout` bounds it, and the body has its own timers).
//!
//! hyper's own `header_read_timeout` cannot serve: it also runs while a kept-alive connection
//! waits for its next request, so it would be the keep-alive timeout too, and one must stay
//! short (a slow head is an attack) while the other must outlast the load balancer's.
//!
//! Nothing wakes the watchdog when a request starts or ends or a head begins: that cost two
//! wake-ups of a task and two timer entries per request, on every request. It looks at the
//! state at its deadline, or sooner, at least every `min(head, keep-alive)`; every deadline is
//! at least that long after the moment it starts from, so none is seen late (see `expired`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// What one connection is doing, as its deadlines see it. Shared by the socket (bytes
/// arrive), the service (requests start and end) and the watchdog (which reads it when it
/// wakes).
#[derive(Debug)]
pub(super) struct Activity {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Requests whose head has arrived and whose answer is not yet handed to hyper.
    in_flight: usize,
    phase: Phase,
}

/// Where a connection with no request in flight stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Accepted, nothing received yet; the head timeout runs from the accept, as nginx's does.
    Fresh { since: Instant },
    /// Part of a request head has arrived.
    Head { since: Instant },
    /// An answer was handed over; waiting for the next request's first byte.
    Idle { since: Instant },
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                phase: Phase::Fresh {
                    since: Instant::now(),
                },
            }),
        }
    }

    /// Bytes arrived from the client.
    fn received(&self) {
        let mut state = self.lock();
        if state.in_flight > 0 {
            return; // a body, or a pipelined request: no deadline of ours applies
        }
        match state.phase {
            Phase::Head { .. } => {}
            Phase::Fresh { since } => state.phase = Phase::Head { since },
            Phase::Idle { .. } => {
                state.phase = Phase::Head {
                    since: Instant::now(),
                }
            }
        }
    }

    /// A request head arrived and the request was handed to the service.
    pub(super) fn request_started(&self) {
        self.lock().in_flight += 1;
    }

    /// The service answered a request (or the request was dropped).
    pub(super) fn request_finished(&self) {
        let mut state = self.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.phase = Phase::Idle {
                since: Instant::now(),
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields, consistent after any panic: poisoning means nothing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// No whole request head within the head timeout.
    HeadTimeout,
    /// No new request within the keep-alive timeout.
    IdleTimeout,
    /// Shutdown began while the connection had no request in flight: one that is only part
    /// of a head (or nothing) is not worth waiting for.
    Shutdown { partial: bool },
}

/// Resolves when the connection should be closed: a deadline passed, or shutdown began
/// while no request was in flight and the connection was not idle after an answer (hyper's
/// graceful shutdown closes those itself, after writing any answer still on its way).
pub(super) async fn expired(
    activity: &Activity,
    head_timeout: Duration,
    keep_alive_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Closed {
    // A phase's deadline is at least `look` after the moment it runs from (its start, which
    // is never before the watchdog last looked), and the watchdog looks at least every
    // `look`: a deadline that began since the last look is found before it passes.
    let look = head_timeout.min(keep_alive_timeout);
    let mut stopping = *shutdown.borrow_and_update();
    loop {
        let state = *activity.lock();
        let now = Instant::now();
        let deadline = if state.in_flight > 0 {
            None
        } else {
            match state.phase {
                Phase::Fresh { .. } if stopping => return Closed::Shutdown { partial: false },
                Phase::Head { .. } if stopping => return Closed::Shutdown { partial: true },
                Phase::Fresh { since } | Phase::Head { since } => {
                    Some((since + head_timeout, Closed::HeadTimeout))
                }
                Phase::Idle { since } => Some((since + keep_alive_timeout, Closed::IdleTimeout)),
            }
        };
        if let Some((at, closed)) = deadline
            && at <= now
        {
            return closed;
        }
        let next_look = deadline.map_or(now + look, |(at, _)| at.min(now + look));
        tokio::select! {
            () = tokio::time::sleep_until(next_look) => {}
            _ = shutdown.changed(), if !stopping => stopping = true,
        }
    }
}

/// The client's socket, telling `Activity` when bytes arrive.
pub(super) struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self { stream, activity }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);

    async fn closes_after(
        activity: &Activity,
        shutdown: watch::Receiver<bool>,
    ) -> (Closed, Duration) {
        let started = Instant::now();
        let closed = expired(activity, HEAD, IDLE, shutdown).await;
        (closed, started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_gets_the_head_timeout_from_its_accept_and_then_between_requests_the_keep_alive_timeout()
     {
        let (_stop, shutdown) = watch::channel(false);
        let fresh = Activity::new();
        assert_eq!(
            closes_after(&fresh, shutdown.clone()).await,
            (Closed::HeadTimeout, HEAD)
        );

        let answered = Activity::new();
        answered.received();
        answered.request_started();
        answered.request_finished();
        assert_eq!(
            closes_after(&answered, shutdown.clone()).await,
            (Closed::IdleTimeout, IDLE)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_request_head_gets_the_head_timeout_from_its_first_byte() {
        let (_stop, shutdown) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        activity.request_started();
        activity.request_finished();
        let watching = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { closes_after(&activity, shutdown).await })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        activity.received();
        assert_eq!(
            watching.await.unwrap(),
            (Closed::HeadTimeout, Duration::from_secs(30) + HEAD)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_keep_alive_timeout_shorter_than_the_head_timeout_both_are_kept_exactly() {
        let (head, idle) = (Duration::from_secs(100), Duration::from_secs(5));
        let (_stop, shutdown) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        activity.received();
        activity.request_started();
        let watching = {
            let (activity, shutdown) = (Arc::clone(&activity), shutdown.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                (
                    expired(&activity, head, idle, shutdown).await,
                    started.elapsed(),
                )
            })
        };
        // Answered after 12 s, while the watchdog sleeps: idle from then, closed 5 s later.
        tokio::time::sleep(Duration::from_secs(12)).await;
        activity.request_finished();
        assert_eq!(
            watching.await.unwrap(),
            (Closed::IdleTimeout, Duration::from_secs(17))
        );

        // A head begun 3 s into an idle spell gets the whole head timeout from its first byte.
        let activity = Arc::new(Activity::new());
        activity.request_started();
        activity.request_finished();
        let watching = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                let started = Instant::now();
                (
                    expired(&activity, head, idle, shutdown).await,
                    started.elapsed(),
                )
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        activity.received();
        assert_eq!(
            watching.await.unwrap(),
            (Closed::HeadTimeout, Duration::from_secs(103))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_has_no_deadline_here_and_shutdown_waits_for_it() {
        let (stop, shutdown) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        activity.received();
        activity.request_started();
        let watching = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { closes_after(&activity, shutdown).await })
        };
        stop.send_replace(true);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!watching.is_finished());
        // Answered during shutdown: hyper's graceful shutdown closes it after the answer.
        activity.request_finished();
        tokio::time::sleep(IDLE / 2).await;
        assert!(!watching.is_finished());
        assert_eq!(watching.await.unwrap().0, Closed::IdleTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_a_connection_with_part_of_a_head_at_once() {
        let (stop, shutdown) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        activity.received();
        let watching = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { closes_after(&activity, shutdown).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send_replace(true);
        assert_eq!(
            watching.await.unwrap(),
            (Closed::Shutdown { partial: true }, Duration::from_secs(1))
        );
        let (_stop, stopped) = watch::channel(true);
        assert_eq!(
            closes_after(&Activity::new(), stopped).await,
            (Closed::Shutdown { partial: false }, Duration::ZERO)
        );
    }
}
