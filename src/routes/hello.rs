//! `/hello/<username>`: store a date of birth (PUT), greet (GET).

use bytes::{Buf, BufMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::path::Tail;
use warp::reply::{Reply, Response};

mod body;

use body::parse_body;

use super::{AppState, with_state};
use crate::domain::{
    DateOfBirthError, Greeting, Username, UsernameError, days_until_next_birthday,
};
use crate::problem::Problem;
use crate::server::BodyTimedOut;
use crate::storage::{BusyCause, StorageError};

/// Largest accepted request body. A date of birth needs about 30 bytes.
pub const MAX_BODY_BYTES: usize = 4096;

/// PUT /hello/<username> with a JSON body, GET (and HEAD) /hello/<username>; any other method
/// is 405.
///
/// The method is dispatched in the handler rather than with `warp::get()`/`warp::put()`
/// filters so that a wrong method is answered 405 with an `Allow` header, and so that the
/// raw path segment can be percent-decoded and validated by `Username` itself.
pub fn filter(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("hello")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_state(state))
        .then(
            |tail: Tail, method: Method, headers: HeaderMap, body, state: AppState| async move {
                // A tail with a slash is a deeper path, not a username: no such resource.
                // (An encoded slash, %2F, stays inside the segment; `Username` rejects it.)
                let result = match method {
                    _ if tail.as_str().contains('/') => Err(HelloError::NoSuchPath),
                    // HEAD answers as GET does; hyper leaves the body out.
                    Method::GET | Method::HEAD => get(tail.as_str(), &state).await,
                    Method::PUT => put(tail.as_str(), &headers, body, &state).await,
                    _ => Err(HelloError::MethodNotAllowed),
                };
                result.unwrap_or_else(|error| error.into_response())
            },
        )
}

#[derive(Serialize)]
struct Message {
    message: String,
}

/// GET /hello/<username>
async fn get(segment: &str, state: &AppState) -> Result<Response, HelloError> {
    let username = parse_username(segment)?;
    let date_of_birth = state
        .store
        .get(&username)
        .await?
        .ok_or_else(|| HelloError::UserNotFound(username.clone()))?;
    let greeting = Greeting {
        username: &username,
        days_until_birthday: days_until_next_birthday(date_of_birth, state.clock.today()),
    };
    Ok(warp::reply::json(&Message {
        message: greeting.to_string(),
    })
    .into_response())
}

/// PUT /hello/<username> with `{"dateOfBirth": "YYYY-MM-DD"}`
async fn put<S, B>(
    segment: &str,
    headers: &HeaderMap,
    body: S,
    state: &AppState,
) -> Result<Response, HelloError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let username = parse_username(segment)?;
    require_json(headers)?;
    let body = read_body(headers, body).await?;
    let now = state.clock.now();
    let date_of_birth = parse_body(&body, now.date_naive())?;
    state.store.put(&username, date_of_birth, now).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_username(segment: &str) -> Result<Username, HelloError> {
    Username::from_path_segment(segment).map_err(HelloError::InvalidUsername)
}

/// A missing Content-Type is taken as JSON (curl without -H); `application/json` may carry
/// parameters such as `charset=utf-8`; anything else is refused.
fn require_json(headers: &HeaderMap) -> Result<(), HelloError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(HelloError::UnsupportedMediaType(essence.to_owned()))
    }
}

/// Reads at most [`MAX_BODY_BYTES`], whether or not the client sent a Content-Length.
async fn read_body<S, B>(headers: &HeaderMap, body: S) -> Result<Vec<u8>, HelloError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(HelloError::PayloadTooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| match BodyTimedOut::find(&error) {
            Some(timed_out) => HelloError::BodyTimedOut(timed_out),
            None => HelloError::UnreadableBody,
        })?;
        if bytes.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(HelloError::PayloadTooLarge);
        }
        bytes.put(chunk);
    }
    Ok(bytes)
}

/// Everything that can go wrong on `/hello/<username>`, each mapped to one status code.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("no such path")]
    NoSuchPath,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    InvalidUsername(UsernameError),
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error(transparent)]
    BodyTimedOut(BodyTimedOut),
    #[error("{0}")]
    InvalidBody(String),
    #[error(transparent)]
    InvalidDateOfBirth(DateOfBirthError),
    #[error("no date of birth is stored for {0}")]
    UserNotFound(Username),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl HelloError {
    fn into_problem(self) -> Problem {
        use StatusCode as S;
        let detail = self.to_string();
        match self {
            Self::NoSuchPath => Problem::new(
                S::NOT_FOUND,
                "not-found",
                "Not Found",
                "there is no resource at this path; users live at /hello/<username>",
            ),
            Self::MethodNotAllowed => Problem::new(
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
                "/hello/<username> answers GET, HEAD and PUT",
            )
            .with_header(header::ALLOW, "GET, HEAD, PUT"),
            Self::InvalidUsername(_) => Problem::new(
                S::BAD_REQUEST,
                "invalid-username",
                "Invalid username",
                format!(
                    "{detail}; a username is 1 to {} letters (Unicode alphabetic characters)",
                    Username::MAX_CHARS
                ),
            ),
            Self::UnsupportedMediaType(got) => Problem::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
                format!("the body must be sent as application/json, got {got:?}"),
            ),
            // Refused before the whole body was read (from its Content-Length, or at the
            // chunk that passed the limit): the rest may still be on its way, so the
            // connection cannot carry another request, as nginx does.
            Self::PayloadTooLarge => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload Too Large",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            )
            .with_header(header::CONNECTION, "close"),
            Self::UnreadableBody => Problem::new(
                S::BAD_REQUEST,
                "invalid-body",
                "Invalid request body",
                "the request body could not be read completely",
            ),
            // The rest of the body may still come: the connection cannot be reused.
            Self::BodyTimedOut(_) => Problem::new(
                S::REQUEST_TIMEOUT,
                "request-timeout",
                "Request Timeout",
                format!("{detail}; send the whole body at once"),
            )
            .with_header(header::CONNECTION, "close"),
            Self::InvalidBody(_) => Problem::new(
                S::BAD_REQUEST,
                "invalid-body",
                "Invalid request body",
                detail,
            ),
            Self::InvalidDateOfBirth(_) => Problem::new(
                S::BAD_REQUEST,
                "invalid-date-of-birth",
                "Invalid date of birth",
                detail,
            ),
            Self::UserNotFound(_) => Problem::new(
                S::NOT_FOUND,
                "user-not-found",
                "User not found",
                format!("{detail}; store one with PUT first"),
            ),
            Self::Storage(error) => storage_problem(error),
        }
    }
}

impl Reply for HelloError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}

/// Storage failures are the only 5xx. The client learns whether to retry, never a path.
fn storage_problem(error: StorageError) -> Problem {
    let cause = crate::problem::error_chain(&error);
    let problem = match &error {
        StorageError::Busy(_, BusyCause::Lock) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-busy",
            "Storage busy",
            "another write holds this user's lock; retry after the Retry-After delay",
        )
        .with_header(header::RETRY_AFTER, "1"),
        StorageError::Busy(_, BusyCause::Slot) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-busy",
            "Storage busy",
            "the storage is saturated; retry after the Retry-After delay",
        )
        .with_header(header::RETRY_AFTER, "1"),
        StorageError::LockLost => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-busy",
            "Storage busy",
            "another write to this user was saved while this one was under way; nothing was \
             changed, retry after the Retry-After delay",
        )
        .with_header(header::RETRY_AFTER, "1"),
        StorageError::Io { .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-unavailable",
            "Storage unavailable",
            format!(
                "the storage failed ({}); nothing was changed, retry later",
                error.kind().replace('_', " ")
            ),
        )
        .with_header(header::RETRY_AFTER, "5"),
        StorageError::TimedOut(after) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-timeout",
            "Storage timeout",
            format!(
                "the storage did not answer within {} ms; nothing was changed, and a write \
                 still under way was stopped before it could take effect: retry later",
                after.as_millis()
            ),
        )
        .with_header(header::RETRY_AFTER, "5"),
        StorageError::Unconfirmed { .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "write-unconfirmed",
            "Write unconfirmed",
            format!(
                "the storage failed ({}) while saving; the new date of birth may or may not \
                 have been saved: repeat the PUT, which is safe to retry",
                error.kind().replace('_', " ")
            ),
        )
        .with_header(header::RETRY_AFTER, "5"),
        StorageError::Corrupt { .. } | StorageError::Task(_) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage-error",
            "Storage error",
            "the stored record could not be processed; the operators have been told",
        ),
    };
    problem.with_internal_cause(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            require_json(&headers)
        };
        assert!(require_json(&HeaderMap::new()).is_ok());
        assert!(with("application/json").is_ok());
        assert!(with("Application/JSON; charset=utf-8").is_ok());
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonp",
            "",
        ] {
            assert!(
                matches!(with(refused), Err(HelloError::UnsupportedMediaType(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn only_storage_failures_are_5xx() {
        let username = Username::parse("alice").unwrap();
        let client_errors = [
            HelloError::NoSuchPath,
            HelloError::MethodNotAllowed,
            HelloError::InvalidUsername(UsernameError::Empty),
            HelloError::UnsupportedMediaType("text/plain".into()),
            HelloError::PayloadTooLarge,
            HelloError::UnreadableBody,
            HelloError::BodyTimedOut(BodyTimedOut::Whole(std::time::Duration::from_secs(1))),
            HelloError::InvalidBody("x".into()),
            HelloError::InvalidDateOfBirth(DateOfBirthError::Format("x".into())),
            HelloError::UserNotFound(username),
        ];
        for error in client_errors {
            let status = error.into_problem().status();
            assert!(status.is_client_error(), "{status}");
        }
        // A panicking storage task is the only way PUT answers 500 (openapi.yaml lists it;
        // no request can cause it, so tests/api/openapi.rs cannot produce it).
        let problem = HelloError::Storage(StorageError::Task("panicked".into())).into_problem();
        assert_eq!(problem.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.kind, "tag:hello-birthday,2026:storage-error");
    }
}
