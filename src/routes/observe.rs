//! Request ids, access logs and HTTP metrics, applied once around every route after
//! rejections have been recovered, so they see the status actually sent.

use std::convert::Infallible;
use std::time::Instant;

use warp::Filter;
use warp::http::{HeaderValue, Method, header};
use warp::path::FullPath;
use warp::reply::Response;

use super::AppState;
use crate::problem::InternalCause;

const REQUEST_ID: &str = "x-request-id";

pub fn observed<F>(
    routes: F,
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let started = state.clone();
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(client_request_id())
        .map(
            move |started_at: Instant,
                  method: Method,
                  path: FullPath,
                  client_id: Option<HeaderValue>| {
                InFlight::new(started.clone(), started_at, method, path, client_id)
            },
        )
        .and(routes)
        .map(|in_flight: InFlight, response| in_flight.finish(response))
}

/// The client's `X-Request-Id`, if it sent one: just that header, not a clone of all of them.
fn client_request_id() -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Copy {
    warp::header::value(REQUEST_ID)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// A request between its first filter and its answer. Dropped unanswered, it logs and counts
/// the request as cancelled: the client hung up (or the shutdown timeout cut it off) before
/// the answer, and those are often the slow requests an operator is looking for.
struct InFlight {
    state: AppState,
    started: Instant,
    method: Method,
    path: FullPath,
    request_id: HeaderValue,
    answered: bool,
}

impl InFlight {
    fn new(
        state: AppState,
        started: Instant,
        method: Method,
        path: FullPath,
        client_id: Option<HeaderValue>,
    ) -> Self {
        let request_id = client_id
            .filter(is_acceptable_request_id)
            .unwrap_or_else(|| {
                HeaderValue::from_str(&crate::random::random_hex(2)).expect("hex is a valid header")
            });
        Self {
            state,
            started,
            method,
            path,
            request_id,
            answered: false,
        }
    }

    fn finish(mut self, mut response: Response) -> Response {
        self.answered = true;
        let elapsed = self.started.elapsed();
        let route = route_template(self.path.as_str());
        let method_label = method_label(&self.method);
        let status = response.status().as_u16();
        let metrics = &self.state.metrics;
        metrics
            .http_requests
            .with_label_values(&[method_label, route, &status.to_string()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method_label, route])
            .observe(elapsed.as_secs_f64());

        let cause = response
            .extensions()
            .get::<InternalCause>()
            .map(|c| c.0.as_str());
        let (method, path) = (&self.method, self.path.as_str());
        let request_id = self.request_id.to_str().unwrap_or_default();
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::warn!(
                %method, route, path, status, duration_ms, request_id, error = cause, "request"
            );
        } else {
            tracing::info!(%method, route, path, status, duration_ms, request_id, "request");
        }

        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, self.request_id.clone());
        if self.state.readiness.is_shutting_down() {
            // Tell keep-alive clients (and load balancers) to reconnect elsewhere.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let elapsed = self.started.elapsed();
        let route = route_template(self.path.as_str());
        self.state
            .metrics
            .http_cancelled
            .with_label_values(&[method_label(&self.method), route])
            .inc();
        tracing::info!(
            method = %self.method,
            route,
            path = self.path.as_str(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = self.request_id.to_str().unwrap_or_default(),
            "request cancelled before its answer"
        );
    }
}

/// A client-supplied id is echoed only if it is short and plain, so that it cannot forge log
/// lines or bloat them.
fn is_acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Every route, as its template: the metric label of its requests and its key in openapi.yaml
/// (a test in `routes::openapi` checks that the document lists exactly these).
pub const ROUTES: [&str; 6] = [
    "/hello/{username}",
    "/health",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.yaml",
];

/// The route a path belongs to, as a template: metric labels must not grow with usernames.
pub fn route_template(path: &str) -> &'static str {
    if path == "/hello" || path.starts_with("/hello/") {
        return "/hello/{username}";
    }
    ROUTES
        .into_iter()
        .find(|route| *route == path)
        .unwrap_or("unmatched")
}

/// Methods as metric labels, with unknown ones folded into one value.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templated_and_unknown_paths_share_one_label() {
        assert_eq!(route_template("/hello/alice"), "/hello/{username}");
        assert_eq!(route_template("/hello/J%C3%BCrgen"), "/hello/{username}");
        assert_eq!(route_template("/health/ready"), "/health/ready");
        assert_eq!(route_template("/openapi.yaml"), "/openapi.yaml");
        assert_eq!(route_template("/hello-world"), "unmatched");
        assert_eq!(route_template("/wp-admin/x"), "unmatched");
    }

    #[test]
    fn only_plain_request_ids_are_echoed() {
        let ok = |s: &str| is_acceptable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("3f2a-11ee.be:56_x"));
        assert!(!ok(""));
        assert!(!ok("a b"));
        assert!(!ok("id\"}{"));
        assert!(!ok(&"a".repeat(129)));
    }
}
