//! The HTTP server loop: accepts connections and serves the application on each with hyper.
//!
//! warp's own `serve` is this same loop; ours fixes what matters here:
//! - **Half-closed clients get their answer.** A client may shut down its sending side once its
//!   request is complete (`shutdown(SHUT_WR)`, as some HTTP/1.0-style clients and proxies do);
//!   hyper by default then drops the connection before the answer is written. `half_close`
//!   keeps it open for the answer, as Go's and nginx's servers do.
//! - **A client that hangs up is not an error of ours.** warp logs every connection that ends
//!   abnormally at ERROR with nothing to act on. Here a client that disconnects mid-request is
//!   logged at DEBUG with its address and counted in `http_connections_aborted_total`, and only
//!   what is not the client's doing is logged at WARN.
//! - **Nothing waits on a client for ever** (`watchdog`, `body`): a request head must
//!   arrive within `--head-timeout`, a body within `--body-chunk-timeout` per piece and
//!   `--body-timeout` in all, and a kept-alive connection is closed after
//!   `--keep-alive-timeout` without a request. Shutdown closes a connection that holds only
//!   part of a request head at once: it is no request in flight.
//! - **A request head is at most [`MAX_HEAD_BYTES`]**, so a connection holding a partial head
//!   holds at most that much memory (hyper's default is about 400 KB).

mod body;
mod watchdog;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use body::{BodyTimedOut, TimedBody};

use crate::configuration::ConnectionTimeouts;
use crate::metrics::Metrics;
use watchdog::{Activity, Closed, Watched};

/// The largest request head (request line and headers) hyper reads, as the ALB forwards at
/// most 64 KB. A longer one is answered `431` by hyper itself (no body) and the connection
/// closed. It is also the most a connection's read buffer holds.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `stop` resolves, then stops accepting and waits for the
/// connections in flight to finish their current request (idle keep-alive ones, and those
/// holding only part of a request head, are closed at once).
pub async fn serve<S, B>(
    listener: TcpListener,
    app: S,
    timeouts: ConnectionTimeouts,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request<TimedBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + Unpin + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .half_close(true)
        .max_buf_size(MAX_HEAD_BYTES)
        // The watchdog times heads; hyper's timer would also cut idle keep-alive connections
        // at the head timeout (and it needs a timer it has not got: explicit `None`).
        .header_read_timeout(None);
    builder
        .http2()
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).expect("64 KiB fits"));
    let graceful = GracefulShutdown::new();
    let (stopping, shutdown) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let activity = Arc::new(Activity::new());
        let service = Tracked {
            app: app.clone(),
            activity: Arc::clone(&activity),
            timeouts,
        };
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        let metrics = Arc::clone(&metrics);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let expired =
                watchdog::expired(&activity, timeouts.head, timeouts.keep_alive, shutdown);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        connection_failed(&*error, peer, &metrics);
                    }
                }
                // Dropping the connection closes it, without an answer, as nginx and hyper do.
                closed = expired => connection_closed(closed, peer, &metrics),
            }
        });
    }
    drop(listener);
    stopping.send_replace(true);
    graceful.shutdown().await;
}

/// The application as one connection calls it: each request is known to the connection's
/// watchdog while in flight, and its body gets its deadlines.
#[derive(Clone)]
struct Tracked<S> {
    app: S,
    activity: Arc<Activity>,
    timeouts: ConnectionTimeouts,
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<TimedBody>, Response = Response<B>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = TrackedAnswer<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(Arc::clone(&self.activity));
        let (chunk, whole) = (self.timeouts.body_chunk, self.timeouts.body);
        let answer = self
            .app
            .call(request.map(|body| TimedBody::new(body, chunk, whole)));
        TrackedAnswer { answer, in_flight }
    }
}

/// The application's answer, with its request counted in flight until the answer is ready or
/// dropped. A plain struct rather than an `async` block: that would be a second boxed future
/// on every request (the application's answer is already one, and `Unpin`).
struct TrackedAnswer<F> {
    answer: F,
    in_flight: InFlight,
}

impl<F: Future + Unpin> Future for TrackedAnswer<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let answered = Pin::new(&mut self.answer).poll(cx);
        if answered.is_ready() {
            self.in_flight.finish();
        }
        answered
    }
}

/// A request in flight on its connection, from its head to its answer (or its drop).
struct InFlight {
    activity: Arc<Activity>,
    finished: bool,
}

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.request_started();
        Self {
            activity,
            finished: false,
        }
    }

    /// The answer is ready: from now the connection waits on its client again.
    fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            self.activity.request_finished();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Logs and counts a connection the watchdog closed.
fn connection_closed(closed: Closed, peer: SocketAddr, metrics: &Metrics) {
    let reason = match closed {
        Closed::IdleTimeout | Closed::Shutdown { partial: false } => {
            tracing::debug!(%peer, ?closed, "connection closed");
            return;
        }
        Closed::HeadTimeout => "head_timeout",
        Closed::Shutdown { partial: true } => "shutdown",
    };
    metrics
        .connections_aborted
        .with_label_values(&[reason])
        .inc();
    tracing::debug!(%peer, reason, "connection closed before a whole request head arrived");
}

/// Logs and counts a connection that ended with an error, by whose doing it was.
fn connection_failed(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    peer: SocketAddr,
    metrics: &Metrics,
) {
    let reason = match error.downcast_ref::<hyper::Error>() {
        Some(e) if e.is_incomplete_message() => "incomplete_request",
        // Answered 431 by hyper: the head passed MAX_HEAD_BYTES or had over 100 headers.
        Some(e) if e.is_parse_too_large() => "head_too_large",
        Some(e) if e.is_parse() || e.is_parse_status() => "malformed_request",
        Some(e) if e.is_timeout() => "timeout",
        Some(e) if e.is_canceled() || e.is_closed() => "closed",
        _ if is_disconnect(error) => "disconnected",
        _ => {
            metrics
                .connections_aborted
                .with_label_values(&["other"])
                .inc();
            tracing::warn!(%peer, %error, "connection ended with an error");
            return;
        }
    };
    metrics
        .connections_aborted
        .with_label_values(&[reason])
        .inc();
    tracing::debug!(%peer, %error, reason, "connection ended by the client");
}

/// Whether an I/O error somewhere in `error`'s chain is the peer going away.
fn is_disconnect(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        source = e.source();
    }
    false
}

/// An accept error: a connection that died in the backlog is nothing; anything else (out of
/// file descriptors, most likely) is worth a warning and a pause, so the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "could not accept a connection; pausing accepts for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
