//! `GET /metrics`: the Prometheus registry in the text exposition format.

use warp::Filter;
use warp::http::header::CONTENT_TYPE;
use warp::reply::Response;

use super::{AppState, get_or_head, respond, with_state};

/// GET /metrics: Prometheus text exposition format.
pub fn filter(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(get_or_head())
        .and(with_state(state))
        .map(|state: AppState| {
            respond(warp::reply::with_header(
                state.metrics.render(),
                CONTENT_TYPE,
                prometheus::TEXT_FORMAT,
            ))
        })
}
