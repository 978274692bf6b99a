//! `/hello/<username>`: store a date of birth (PUT), greet (GET).

use bytes::{Buf, BufMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::IgnoredAny;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::path::Tail;
use warp::reply::{Reply, Response};

use super::{AppState, with_state};
use crate::domain::{
    DateOfBirth, DateOfBirthError, Greeting, Username, UsernameError, days_until_next_birthday,
};
use crate::problem::Problem;
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
        let chunk = chunk.map_err(|_| HelloError::UnreadableBody)?;
        if bytes.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(HelloError::PayloadTooLarge);
        }
        bytes.put(chunk);
    }
    Ok(bytes)
}

/// Decodes `{"dateOfBirth": "YYYY-MM-DD"}`. Goes through [`Body`] rather than a derived struct
/// so that every wrong shape gets its own message, and because serde's derived structs would
/// also accept a JSON array (`["1990-01-01"]`).
fn parse_body(body: &[u8], today: chrono::NaiveDate) -> Result<DateOfBirth, HelloError> {
    const EXPECTED: &str = r#"the body must be a JSON object like {"dateOfBirth": "YYYY-MM-DD"}"#;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HelloError::InvalidBody(format!("{EXPECTED}; it is empty")));
    }
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| HelloError::InvalidBody(format!("{EXPECTED}; it is not valid JSON ({e})")))?;
    match body {
        Body::Object(None) => Err(HelloError::InvalidBody(format!(
            "{EXPECTED}; the dateOfBirth field is missing"
        ))),
        Body::Object(Some(Leaf::String(text))) => {
            DateOfBirth::parse(&text, today).map_err(HelloError::InvalidDateOfBirth)
        }
        Body::Object(Some(Leaf::Other(kind))) => Err(HelloError::InvalidBody(format!(
            "dateOfBirth must be a string of the form YYYY-MM-DD, got {kind}"
        ))),
        Body::Other(leaf) => Err(HelloError::InvalidBody(format!(
            "{EXPECTED}; got {}",
            leaf.kind()
        ))),
    }
}

/// A request body reduced to what the API reads: an object's `dateOfBirth`, or the kind of
/// anything else. Nothing else is built. serde_json skips ignored values with a loop and a
/// stack of its own, not by recursion, so members the API ignores may nest as deep as the
/// body size limit allows (a `Value` would refuse them past 128 levels).
enum Body {
    Object(Option<Leaf>),
    Other(Leaf),
}

/// A JSON value that must be a string: its text, or the kind it is instead.
enum Leaf {
    String(String),
    Other(&'static str),
}

impl Leaf {
    fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Other(kind) => kind,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor { object: true })
    }
}

impl<'de> serde::Deserialize<'de> for Leaf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ValueVisitor { object: false })? {
            Body::Other(leaf) => Ok(leaf),
            Body::Object(_) => Ok(Self::Other("an object")),
        }
    }
}

/// Visits one JSON value; `object` says whether an object's members are looked into (the
/// body) or skipped (anything inside it).
struct ValueVisitor {
    object: bool,
}

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::Other(Leaf::Other("null")))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::Other(Leaf::Other("a boolean")))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::Other(Leaf::Other("a number")))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::Other(Leaf::Other("a number")))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
        Ok(Body::Other(Leaf::Other("a number")))
    }
    fn visit_str<E>(self, text: &str) -> Result<Body, E> {
        Ok(Body::Other(Leaf::String(text.to_owned())))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::Other(Leaf::Other("an array")))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut date_of_birth = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.object && key == "dateOfBirth" {
                // The last one wins, as with any JSON object decoder that keeps one.
                date_of_birth = Some(map.next_value::<Leaf>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Body::Object(date_of_birth))
    }
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
            Self::PayloadTooLarge => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload Too Large",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            ),
            Self::UnreadableBody => Problem::new(
                S::BAD_REQUEST,
                "invalid-body",
                "Invalid request body",
                "the request body could not be read completely",
            ),
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
    let cause = error.to_string();
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
    use chrono::NaiveDate;
    use serde_json::Value;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn decodes_the_documented_body_and_ignores_unknown_fields() {
        let parsed = parse_body(br#"{"dateOfBirth":"1990-01-15","nickname":"al"}"#, today());
        assert_eq!(
            parsed.unwrap().date(),
            NaiveDate::from_ymd_opt(1990, 1, 15).unwrap()
        );
    }

    #[test]
    fn every_wrong_body_is_a_client_error_with_its_own_message() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "it is empty"),
            (b"  \n", "it is empty"),
            (b"{", "not valid JSON"),
            (b"\"1990-01-15\"", "got a string"),
            (br#"["1990-01-15"]"#, "got an array"),
            (b"null", "got null"),
            (b"{}", "dateOfBirth field is missing"),
            (
                br#"{"dateofbirth":"1990-01-15"}"#,
                "dateOfBirth field is missing",
            ),
            (br#"{"dateOfBirth":null}"#, "got null"),
            (br#"{"dateOfBirth":19900115}"#, "got a number"),
            (br#"{"dateOfBirth":"1990-5-1"}"#, "form YYYY-MM-DD"),
            (
                br#"{"dateOfBirth":"2030-01-01"}"#,
                "before today (UTC), got 2030-01-01",
            ),
            (b"\xff\xfe", "not valid JSON"),
        ];
        for (body, expected) in cases {
            let message = parse_body(body, today()).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{:?}: {message:?} lacks {expected:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn ignored_members_may_nest_deeper_than_a_json_value_could() {
        // 1000 levels: serde_json's Value stops at 128 ("recursion limit exceeded").
        let deep = |open: &str, close: &str| format!("{}{}", open.repeat(1000), close.repeat(1000));
        for ignored in [
            deep("[", "]"),
            deep(r#"{"a":"#, "}").replace(r#""a":}"#, r#""a":1}"#),
        ] {
            let body = format!(r#"{{"x":{ignored},"dateOfBirth":"1990-01-15","y":{ignored}}}"#);
            assert!(
                serde_json::from_str::<Value>(&body).is_err(),
                "not deep enough"
            );
            let parsed = parse_body(body.as_bytes(), today()).unwrap();
            assert_eq!(parsed.date(), NaiveDate::from_ymd_opt(1990, 1, 15).unwrap());
        }
        // And a dateOfBirth nested that deep is what it is: not a string.
        let body = format!(r#"{{"dateOfBirth":{}}}"#, deep("[", "]"));
        let message = parse_body(body.as_bytes(), today())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("must be a string of the form YYYY-MM-DD, got an array"),
            "{message}"
        );
    }

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

    /// Any JSON value, nested a few levels, with `dateOfBirth` keys and date-like strings
    /// common enough to reach every branch of the decoder.
    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| {
                serde_json::Number::from_f64(f).map(Value::Number)
            }),
            "\\PC{0,12}".prop_map(Value::String),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("dateOfBirth|\\PC{0,8}", inner, 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    #[track_caller]
    fn assert_client_error(error: HelloError) {
        let status = error.into_problem().status();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    // Fuzzing on stable Rust: arbitrary bytes and JSON at the body decoder. Every refusal must
    // be a 400 problem; none may panic. PROPTEST_CASES=100000 cargo test --lib hello runs it
    // longer.
    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_are_a_400(
            body in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..MAX_BODY_BYTES)
        ) {
            if let Err(error) = parse_body(&body, today()) {
                assert_client_error(error);
            }
        }

        #[test]
        fn any_json_decodes_exactly_when_it_holds_a_valid_date_of_birth(
            value in arbitrary_json()
        ) {
            let body = serde_json::to_vec(&value).unwrap();
            let expected = match &value {
                Value::Object(members) => match members.get("dateOfBirth") {
                    Some(Value::String(text)) => DateOfBirth::parse(text, today()).ok(),
                    _ => None,
                },
                _ => None,
            };
            match parse_body(&body, today()) {
                Ok(date) => proptest::prop_assert_eq!(Some(date), expected),
                Err(error) => {
                    proptest::prop_assert_eq!(expected, None);
                    assert_client_error(error);
                }
            }
        }

        #[test]
        fn any_date_of_birth_value_decodes_or_is_a_400(
            date in arbitrary_json(), padding in "[ \t\r\n]{0,3}"
        ) {
            let body = format!(r#"{padding}{{"dateOfBirth":{date}}}{padding}"#);
            if let Err(error) = parse_body(body.as_bytes(), today()) {
                assert_client_error(error);
            }
        }
    }

    #[test]
    fn deeply_nested_json_is_a_400_not_a_stack_overflow() {
        for body in [
            "[".repeat(MAX_BODY_BYTES),
            "{\"a\":".repeat(MAX_BODY_BYTES / 5),
        ] {
            assert_client_error(parse_body(body.as_bytes(), today()).unwrap_err());
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
