//! The probes: liveness (the process serves; never touches storage) and readiness (the data
//! directory can be written and read, and shutdown has not begun).

use serde_json::json;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::{AppState, get_or_head, respond, with_state};
use crate::problem::Problem;
use crate::readiness::NotReady;

/// The liveness route (the container health check's).
pub const LIVE_PATH: &str = "/health/live";
/// The readiness routes (the load balancer's health check uses either).
pub const READY_PATHS: [&str; 2] = ["/health/ready", "/health"];

/// GET /health/live: 200 while the process serves. Never touches storage, so a slow EFS does
/// not get healthy tasks killed.
pub fn live() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("health" / "live")
        .and(get_or_head())
        .map(|| respond(warp::reply::json(&json!({ "status": "live" }))))
}

/// GET /health/ready and GET /health: 200 when the data directory can be written and read
/// and the instance is not shutting down; 503 problem details naming the failing check.
pub fn ready(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("health" / "ready")
        .or(warp::path!("health"))
        .unify()
        .and(get_or_head())
        .and(with_state(state))
        .then(|state: AppState| async move {
            match state.readiness.check().await {
                Ok(()) => respond(warp::reply::json(&json!({
                    "status": "ready",
                    "checks": { "dataDir": "ok", "shutdown": "not requested" },
                }))),
                Err(not_ready) => respond(not_ready_problem(&not_ready)),
            }
        })
}

fn not_ready_problem(not_ready: &NotReady) -> Problem {
    let (detail, checks) = match not_ready {
        NotReady::ShuttingDown => (
            "the instance is shutting down".to_owned(),
            json!({ "shutdown": "in progress" }),
        ),
        NotReady::DataDir(reason) => (
            format!("the data directory check failed: {reason}"),
            json!({ "dataDir": format!("failed: {reason}") }),
        ),
    };
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Service not ready",
        detail,
    )
    .with_extension("checks", checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `warp::path!` takes literals only: this ties the filters to the constants that
    /// deployments and metrics are checked against.
    #[tokio::test]
    async fn the_filters_answer_exactly_the_paths_the_constants_name() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::routes::tests::state(dir.path());
        let live = live();
        let ready = ready(state);
        for path in [
            "/health/live",
            "/health/ready",
            "/health",
            "/health/x",
            "/healthz",
        ] {
            let is_live = warp::test::request().path(path).matches(&live).await;
            let is_ready = warp::test::request().path(path).matches(&ready).await;
            assert_eq!(is_live, path == LIVE_PATH, "{path}");
            assert_eq!(is_ready, READY_PATHS.contains(&path), "{path}");
        }
    }
}
