//! HTTP routes. Each filter function's doc comment names its route; handlers live beside
//! their filters, one file per resource. [`routes`] assembles them, turns every leftover
//! rejection into a problem response, and wraps the lot in request logging and metrics.

mod health;
mod hello;
mod metrics;
mod observe;
mod openapi;
mod rejection;

use std::convert::Infallible;
use std::sync::Arc;

use warp::Filter;
use warp::reply::{Reply, Response};

use crate::domain::Clock;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::storage::Store;

pub use hello::{HelloError, MAX_BODY_BYTES};

/// What handlers share. Cloned per request; every field is a cheap handle.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

/// Every route of the service, ready to serve.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let api = hello::filter(state.clone())
        .or(health::live())
        .unify()
        .or(health::ready(state.clone()))
        .unify()
        .or(metrics::filter(state.clone()))
        .unify()
        .or(openapi::filter())
        .unify()
        .recover(rejection::handle)
        .unify();
    observe::observed(api, state)
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
