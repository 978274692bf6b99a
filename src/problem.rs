//! RFC 9457 problem details: the body of every error response.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error response. Build one with [`Problem::new`]; `detail` says what to fix.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A stable identifier of the kind of problem (a `tag:` URI: an identifier, not a link).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Extension members, e.g. the failing checks of the readiness probe.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// What went wrong inside, for the access log only.
    #[serde(skip)]
    internal: Option<String>,
}

/// The internal cause of a 5xx, attached to the response so that the access log line can
/// report it next to the request id, without it ever reaching the client.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl Problem {
    /// `slug` names the kind of problem, e.g. `invalid-username`.
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("tag:hello-birthday,2026:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
            internal: None,
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_owned(), value);
        self
    }

    pub fn with_internal_cause(mut self, cause: impl Into<String>) -> Self {
        self.internal = Some(cause.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).expect("built from a StatusCode")
    }
}

impl Reply for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("a problem serialises");
        let mut response = Response::new(body.into());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        if let Some(cause) = self.internal {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

/// `error` and every error under it (`source()`), joined by ": ", for a log line: the top
/// message alone often hides what actually failed. A source whose text the line already holds
/// (a `Display` that names its source, as `thiserror`'s `{source}` does) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let text = source.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = source.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer failed: {source}")]
        struct Outer {
            source: Middle,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("middle failed")]
        struct Middle {
            #[source]
            source: std::io::Error,
        }
        let error = Outer {
            source: Middle {
                source: std::io::Error::other("disk on fire"),
            },
        };
        assert_eq!(
            error_chain(&error),
            "outer failed: middle failed: disk on fire"
        );
    }
}
