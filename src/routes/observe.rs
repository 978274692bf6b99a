//! Request ids, access logs and HTTP metrics, applied once to every request where it enters
//! (`entry`), around the refusals made before routing and the router's own answers, so they
//! see the status actually sent.

use std::borrow::Cow;
use std::time::Instant;

use warp::http::{HeaderValue, Method, Request, Uri, header};
use warp::reply::Response;

use super::AppState;
use super::health::{LIVE_PATH, READY_PATHS};
use crate::problem::InternalCause;

const REQUEST_ID: &str = "x-request-id";

/// The most of a request's method logged, in bytes; longer ones are cut and end in `…`.
/// Real methods are under 10 bytes; a client may send kilobytes.
const MAX_LOGGED_METHOD_BYTES: usize = 32;
/// The most of a request's path logged, in bytes. The longest username, percent-encoded,
/// takes under 800.
const MAX_LOGGED_PATH_BYTES: usize = 1024;
/// The most of a `User-Agent` logged, in bytes.
const MAX_LOGGED_USER_AGENT_BYTES: usize = 256;

/// A request between its arrival and its answer. Dropped unanswered, it logs and counts the
/// request as cancelled: the client hung up (or the shutdown timeout cut it off) before the
/// answer, and those are often the slow requests an operator is looking for.
pub(super) struct InFlight {
    state: AppState,
    started: Instant,
    method: Method,
    /// The client-controlled fields, kept as sent (clones of the request's shared buffers, not
    /// copies) and cut to their limits only when the line is written.
    uri: Uri,
    user_agent: Option<HeaderValue>,
    request_id: HeaderValue,
    answered: bool,
}

/// What is logged of the client-controlled fields: each cut to its limit.
struct Logged<'a> {
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    user_agent: Option<Cow<'a, str>>,
}

impl InFlight {
    pub(super) fn start<B>(state: AppState, request: &Request<B>) -> Self {
        let headers = request.headers();
        let request_id = headers
            .get(REQUEST_ID)
            .filter(|id| is_acceptable_request_id(id))
            .cloned()
            .unwrap_or_else(|| {
                HeaderValue::from_str(&crate::random::random_hex(2)).expect("hex is a valid header")
            });
        Self {
            state,
            started: Instant::now(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            request_id,
            answered: false,
        }
    }

    fn logged(&self) -> Logged<'_> {
        // A target with no path (CONNECT's `host:port`) is logged as sent.
        let path = match self.uri.path_and_query() {
            Some(_) => clip(self.uri.path(), MAX_LOGGED_PATH_BYTES),
            None => Cow::Owned(clip(&self.uri.to_string(), MAX_LOGGED_PATH_BYTES).into_owned()),
        };
        let user_agent =
            self.user_agent
                .as_ref()
                .map(|value| match String::from_utf8_lossy(value.as_bytes()) {
                    Cow::Borrowed(text) => clip(text, MAX_LOGGED_USER_AGENT_BYTES),
                    Cow::Owned(text) => {
                        Cow::Owned(clip(&text, MAX_LOGGED_USER_AGENT_BYTES).into_owned())
                    }
                });
        Logged {
            method: clip(self.method.as_str(), MAX_LOGGED_METHOD_BYTES),
            path,
            user_agent,
        }
    }

    pub(super) fn finish(mut self, mut response: Response) -> Response {
        self.answered = true;
        let elapsed = self.started.elapsed();
        let route = route_template(self.uri.path());
        let method_label = method_label(&self.method);
        let status = response.status();
        let metrics = &self.state.metrics;
        metrics
            .http_requests
            .with_label_values(&[method_label, route, status.as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[method_label, route])
            .observe(elapsed.as_secs_f64());

        let cause = response
            .extensions()
            .get::<InternalCause>()
            .map(|c| c.0.as_str());
        let logged = self.logged();
        let (method, path) = (logged.method.as_ref(), logged.path.as_ref());
        let user_agent = logged.user_agent.as_deref();
        let request_id = self.request_id.to_str().unwrap_or_default();
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let status = status.as_u16();
        if status >= 500 {
            tracing::warn!(
                method,
                route,
                path,
                status,
                duration_ms,
                request_id,
                user_agent,
                error = cause,
                "request"
            );
        } else {
            tracing::info!(
                method,
                route,
                path,
                status,
                duration_ms,
                request_id,
                user_agent,
                "request"
            );
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
        let route = route_template(self.uri.path());
        self.state
            .metrics
            .http_cancelled
            .with_label_values(&[method_label(&self.method), route])
            .inc();
        let logged = self.logged();
        tracing::info!(
            method = logged.method.as_ref(),
            route,
            path = logged.path.as_ref(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = self.request_id.to_str().unwrap_or_default(),
            user_agent = logged.user_agent.as_deref(),
            "request cancelled before its answer"
        );
    }
}

/// `text`, cut to at most `max` bytes (at a character boundary) and then marked with `…`.
fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
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
    READY_PATHS[1],
    LIVE_PATH,
    READY_PATHS[0],
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
    fn logged_fields_are_cut_at_a_character_boundary_and_marked() {
        assert_eq!(clip("/hello/alice", 1024), "/hello/alice");
        assert_eq!(clip(&"a".repeat(40), 32), format!("{}…", "a".repeat(32)));
        // 'é' is two bytes: the cut falls before it rather than through it.
        assert_eq!(clip("aé", 2), "a…");
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
