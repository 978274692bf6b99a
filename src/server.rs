//! The HTTP server loop: accepts connections and serves the warp filter on each with hyper.
//!
//! warp's own `serve` is this same loop with two things fixed that matter here:
//! - **Half-closed clients get their answer.** A client may shut down its sending side once its
//!   request is complete (`shutdown(SHUT_WR)`, as some HTTP/1.0-style clients and proxies do);
//!   hyper by default then drops the connection before the answer is written. `half_close`
//!   keeps it open for the answer, as Go's and nginx's servers do.
//! - **A client that hangs up is not an error of ours.** warp logs every connection that ends
//!   abnormally at ERROR with nothing to act on. Here a client that disconnects mid-request is
//!   logged at DEBUG with its address and counted in `http_connections_aborted_total`, and only
//!   what is not the client's doing is logged at WARN.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::Filter;
use warp::reply::Reply;

use crate::metrics::Metrics;

/// Serves `filter` on `listener` until `stop` resolves, then stops accepting and waits for the
/// connections in flight to finish their current request (idle keep-alive ones are closed).
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let graceful = GracefulShutdown::new();
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
        let service = TowerToHyperService::new(warp::service(filter.clone()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().half_close(true);
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                connection_failed(&*error, peer, &metrics);
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Logs and counts a connection that ended with an error, by whose doing it was.
fn connection_failed(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    peer: SocketAddr,
    metrics: &Metrics,
) {
    let reason = match error.downcast_ref::<hyper::Error>() {
        Some(e) if e.is_incomplete_message() => "incomplete_request",
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
