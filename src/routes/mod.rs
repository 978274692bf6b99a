//! HTTP routes. Each filter function's doc comment names its route; handlers live beside
//! their filters, one file per resource. [`service`] assembles them, turns every leftover
//! rejection into a problem response, and puts in front of the lot what every request gets:
//! refusals before routing, a 500 for a panic, request logging and metrics (`entry`).

mod checks;
mod entry;
mod health;
mod hello;
mod metrics;
mod observe;
mod openapi;
mod rejection;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use warp::Filter;
use warp::http::Request;
use warp::reply::{Reply, Response};

use crate::domain::Clock;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::server::TimedBody;
use crate::storage::Store;

pub use entry::Answer;
pub use health::{LIVE_PATH, READY_PATHS};
pub use hello::{HelloError, MAX_BODY_BYTES};

/// What handlers share. Cloned per request; every field is a cheap handle.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

/// Every route of the service, ready to serve: the service hyper calls for each request.
pub fn service(
    state: AppState,
) -> impl Service<Request<TimedBody>, Response = Response, Error = Infallible, Future = Answer>
+ Clone
+ Send
+ Sync
+ 'static {
    let router = TowerToHyperService::new(warp::service(routes(state.clone())));
    entry::Entry::new(state, router)
}

/// The routes, with every rejection left over turned into problem details.
fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    hello::filter(state.clone())
        .or(health::live())
        .unify()
        .or(health::ready(state.clone()))
        .unify()
        .or(metrics::filter(state))
        .unify()
        .or(openapi::filter())
        .unify()
        .recover(rejection::handle)
        .unify()
}

/// GET, and HEAD with it: RFC 9110 §9.1 asks every general-purpose server to answer HEAD
/// wherever it answers GET, with the same status and headers. hyper leaves the body out.
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// Hands a clone of the state to a handler.
fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Boxes any reply into a `Response`, so every branch has one type.
fn respond(reply: impl Reply) -> Response {
    reply.into_response()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::AppState;
    use crate::domain::SystemClock;
    use crate::metrics::Metrics;
    use crate::readiness::Readiness;
    use crate::storage::{Store, StoreConfig};

    /// The application's state over a store in `dir`, with one-second timeouts.
    pub(crate) fn state(dir: &std::path::Path) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let timeout = Duration::from_secs(1);
        let config = StoreConfig {
            lock_timeout: timeout,
            storage_timeout: timeout,
            max_concurrent_ops: 1,
        };
        let store = Store::open(dir, config, metrics.storage.clone()).unwrap();
        AppState {
            readiness: Arc::new(Readiness::new(store.clone(), Arc::clone(&metrics), timeout)),
            store,
            clock: Arc::new(SystemClock),
            metrics,
        }
    }
}
