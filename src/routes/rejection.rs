//! What warp leaves unmatched (no route, or a route without that method) as problem details.

use std::convert::Infallible;

use warp::http::{StatusCode, header};
use warp::reject::{MethodNotAllowed, Rejection};
use warp::reply::{Reply, Response};

use crate::problem::Problem;

/// Turns the rejections left after every route tried the request into problem details.
/// Only two can reach here: no route matched the path, or it matched but not the method
/// (`/hello/...` handles its own methods, so this is only the GET-and-HEAD routes).
pub async fn handle(rejection: Rejection) -> Result<Response, Infallible> {
    let problem = if rejection.is_not_found() {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            "there is no resource at this path; see the API documentation for the routes",
        )
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            "this resource only answers GET and HEAD",
        )
        .with_header(header::ALLOW, "GET, HEAD")
    } else {
        // Not reachable with the current routes; still a client-facing 400, never a 5xx.
        tracing::warn!(?rejection, "unexpected rejection");
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            "the request could not be understood",
        )
    };
    Ok(problem.into_response())
}
