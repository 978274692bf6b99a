//! What a request must be before it is routed: the rules of HTTP that real proxies enforce,
//! and limits close to what the ALB forwards. hyper itself refuses a head over
//! `server::MAX_HEAD_BYTES` or with over 100 headers (431, with no body); what it lets
//! through is refused here, as problem details, logged and counted like any answer.

use warp::http::{Method, Request, StatusCode, Version, header, uri::Authority};

use crate::problem::Problem;

/// The longest request target (path and query) served, in bytes: far above any real one (the
/// longest username, percent-encoded, is under 800), as nginx's 8 KiB line buffer.
const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The longest header line (name and value) accepted, in bytes: the ALB's own limit.
const MAX_HEADER_LINE_BYTES: usize = 16 * 1024;

/// The reason to refuse `request` before routing it, if there is one.
pub(super) fn refusal<B>(request: &Request<B>) -> Option<Problem> {
    // CONNECT asks for a tunnel: a proxy's business, for no resource of this service.
    if request.method() == Method::CONNECT {
        return Some(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "not-implemented",
            "Not Implemented",
            "CONNECT is not supported: this service is not a proxy",
        ));
    }
    let uri = request.uri();
    // Only a path can name a resource here (the authority form, `host:port`, has none, and
    // warp cannot route it).
    let Some(target) = uri.path_and_query().filter(|t| t.path().starts_with('/')) else {
        return Some(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request-target",
            "Invalid request target",
            "the request target must be a path, such as /hello/alice",
        ));
    };
    let target_bytes = target.as_str().len() + uri.authority().map_or(0, |a| a.as_str().len());
    if target_bytes > MAX_TARGET_BYTES {
        return Some(Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI Too Long",
            format!(
                "the request target is {target_bytes} bytes; at most {MAX_TARGET_BYTES} are served"
            ),
        ));
    }
    if let Some((name, bytes)) = request
        .headers()
        .iter()
        .map(|(name, value)| (name, name.as_str().len() + value.len()))
        .find(|&(_, bytes)| bytes > MAX_HEADER_LINE_BYTES)
    {
        return Some(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header-too-large",
            "Request Header Fields Too Large",
            format!(
                "the {name} header is {bytes} bytes; a header may be at most \
                 {MAX_HEADER_LINE_BYTES}, and all of them together at most {}",
                crate::server::MAX_HEAD_BYTES
            ),
        ));
    }
    host_refusal(request)
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host header, or any request with more than
/// one or with an invalid one, must be answered 400. (HTTP/1.0 has no Host requirement, and
/// HTTP/2 carries the authority in a pseudo-header instead.)
fn host_refusal<B>(request: &Request<B>) -> Option<Problem> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let detail = match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            "an HTTP/1.1 request must have a Host header"
        }
        (None, _) => return None,
        (Some(_), Some(_)) => "a request must have exactly one Host header",
        (Some(host), None) if is_valid_host(host.as_bytes()) => return None,
        (Some(_), None) => "the Host header must be a host name or address, with an optional port",
    };
    Some(Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-host",
        "Invalid Host header",
        detail,
    ))
}

/// `uri-host [ ":" port ]`, or empty (RFC 9110 §7.2 allows an empty Host). The `http` crate
/// checks the characters of an authority but not that its port is a number.
fn is_valid_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    // No user information: an authority may have it, a Host may not.
    let Some(authority) = Some(value)
        .filter(|v| !v.contains(&b'@'))
        .and_then(|v| Authority::try_from(v).ok())
    else {
        return false;
    };
    let host = authority.host();
    // What follows the host: nothing, or ':' and digits.
    let port = &authority.as_str()[host.len()..];
    !host.is_empty() && (port.is_empty() || port[1..].bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[track_caller]
    fn refused(request: &Request<()>) -> (u16, String) {
        let problem = refusal(request).expect("refused");
        (
            problem.status,
            problem.kind.rsplit(':').next().unwrap().to_owned(),
        )
    }

    #[test]
    fn an_ordinary_request_passes() {
        let host = [("Host", "example.com:8080")];
        assert!(refusal(&request("GET", "/hello/alice", &host)).is_none());
        assert!(refusal(&request("PUT", "http://example.com/hello/a?x=1", &host)).is_none());
        assert!(refusal(&request("GET", "/", &[("Host", "")])).is_none());
        assert!(refusal(&request("GET", "/", &[("Host", "[::1]:80")])).is_none());
    }

    #[test]
    fn connect_and_targets_that_are_not_paths_are_refused() {
        let host = [("Host", "h")];
        assert_eq!(
            refused(&request("CONNECT", "example.com:443", &host)),
            (501, "not-implemented".into())
        );
        assert_eq!(
            refused(&request("CONNECT", "/hello/alice", &host)),
            (501, "not-implemented".into())
        );
        assert_eq!(
            refused(&request("GET", "example.com:443", &host)),
            (400, "invalid-request-target".into())
        );
        assert_eq!(
            refused(&request("OPTIONS", "*", &host)),
            (400, "invalid-request-target".into())
        );
    }

    #[test]
    fn long_targets_and_long_headers_are_refused_at_their_limits() {
        let host = [("Host", "h")];
        let path = |bytes: usize| format!("/{}", "a".repeat(bytes - 1));
        assert!(refusal(&request("GET", &path(MAX_TARGET_BYTES), &host)).is_none());
        assert_eq!(
            refused(&request("GET", &path(MAX_TARGET_BYTES + 1), &host)),
            (414, "uri-too-long".into())
        );
        let value = |bytes: usize| "v".repeat(bytes - "x-big".len());
        let fits = value(MAX_HEADER_LINE_BYTES);
        assert!(refusal(&request("GET", "/", &[("Host", "h"), ("X-Big", &fits)])).is_none());
        let over = value(MAX_HEADER_LINE_BYTES + 1);
        assert_eq!(
            refused(&request("GET", "/", &[("Host", "h"), ("X-Big", &over)])),
            (431, "header-too-large".into())
        );
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host() {
        let invalid = (400, "invalid-host".to_owned());
        assert_eq!(refused(&request("GET", "/", &[])), invalid);
        assert_eq!(
            refused(&request("GET", "/", &[("Host", "a"), ("Host", "b")])),
            invalid
        );
        assert_eq!(
            refused(&request("GET", "/", &[("Host", "a"), ("Host", "a")])),
            invalid
        );
        for bad in [
            "user@example.com",
            "a b",
            "example.com:port",
            "/path",
            ":80",
            "a:1:2",
        ] {
            assert_eq!(
                refused(&request("GET", "/", &[("Host", bad)])),
                invalid,
                "{bad}"
            );
        }
        let mut old = request("GET", "/", &[]);
        *old.version_mut() = Version::HTTP_10;
        assert!(refusal(&old).is_none(), "HTTP/1.0 needs no Host");
        let mut two = request("GET", "/", &[("Host", "a"), ("Host", "b")]);
        *two.version_mut() = Version::HTTP_10;
        assert_eq!(refused(&two), invalid);
    }
}
