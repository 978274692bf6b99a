//! Where every request enters, before warp's router: it gets its request id, access-log line
//! and metrics (`observe`), is refused if HTTP's rules or our limits say so (`checks`), and a
//! panic while it is handled becomes its 500 instead of a dead connection with no answer.
//!
//! This is a service around warp's rather than a filter inside it because warp itself
//! panics on some requests (a target with no path: `path::full` and `path::tail` build an
//! empty `PathAndQuery`, which the `http` crate refuses), and a filter cannot catch a panic
//! in the filters it wraps.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use hyper::service::Service;
use warp::http::{Request, StatusCode, header};
use warp::reply::{Reply, Response};

use super::AppState;
use super::checks;
use super::observe::InFlight;
use crate::problem::Problem;
use crate::telemetry;

/// The future of an answer.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// `router`, with what every request gets before and after it.
#[derive(Clone)]
pub struct Entry<R> {
    state: AppState,
    router: R,
}

impl<R> Entry<R> {
    pub(super) fn new(state: AppState, router: R) -> Self {
        Self { state, router }
    }
}

impl<R, B> Service<Request<B>> for Entry<R>
where
    R: Service<Request<B>, Response = Response, Error = Infallible>,
    R::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<B>) -> Answer {
        let in_flight = InFlight::start(self.state.clone(), &request);
        if let Some(problem) = checks::refusal(&request) {
            // A request that breaks the rules may not end where a proxy in front thought it
            // did: nothing more is read from its connection, as nginx does after such a 4xx.
            let problem = problem.with_header(header::CONNECTION, "close");
            let response = in_flight.finish(problem.into_response());
            return Box::pin(std::future::ready(Ok(response)));
        }
        // warp runs some filters as it builds the future, others as it is polled: both caught.
        let routed = match telemetry::catch(|| self.router.call(request)) {
            Ok(routed) => routed,
            Err(panic) => {
                let response = in_flight.finish(internal_error(panic));
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        Box::pin(async move {
            let mut routed = std::pin::pin!(routed);
            let response =
                std::future::poll_fn(|cx| match telemetry::catch(|| routed.as_mut().poll(cx)) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(panic) => Poll::Ready(internal_error(panic)),
                })
                .await;
            Ok(in_flight.finish(response))
        })
    }
}

/// The answer to a request whose handling panicked: a bug of ours. The panic is logged on
/// the request's own line, never sent.
fn internal_error(panic: String) -> Response {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal Server Error",
        "the request could not be handled; the operators have been told",
    )
    .with_internal_cause(panic)
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router with a bug.
    #[derive(Clone, Copy)]
    enum Panicking {
        AsCalled,
        AsPolled,
    }

    impl Service<Request<()>> for Panicking {
        type Response = Response;
        type Error = Infallible;
        type Future = Answer;

        fn call(&self, _: Request<()>) -> Answer {
            match self {
                Self::AsCalled => panic!("secret detail as called"),
                Self::AsPolled => Box::pin(async { panic!("secret detail as polled") }),
            }
        }
    }

    #[tokio::test]
    async fn a_panic_while_routing_or_answering_is_a_500_whose_log_line_names_the_panic() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::routes::tests::state(dir.path());
        for router in [Panicking::AsCalled, Panicking::AsPolled] {
            let entry = Entry::new(state.clone(), router);
            let request = Request::builder()
                .uri("/hello/alice")
                .header("host", "h")
                .body(())
                .unwrap();
            let response = entry.call(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(response.headers().contains_key("x-request-id"));
            let cause = response.extensions().get::<crate::problem::InternalCause>();
            assert!(
                cause.unwrap().0.contains("secret detail"),
                "the log line names the panic"
            );
        }
        let metrics = state.metrics.render();
        assert!(
            metrics.contains(
                r#"http_requests_total{method="GET",route="/hello/{username}",status="500"} 2"#
            ),
            "{metrics}"
        );
    }
}
