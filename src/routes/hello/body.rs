//! The body of `PUT /hello/<username>`: `{"dateOfBirth": "YYYY-MM-DD"}`, decoded without
//! building anything the API does not read.

use serde::de::IgnoredAny;

use super::HelloError;
use crate::domain::DateOfBirth;

/// Decodes `{"dateOfBirth": "YYYY-MM-DD"}`. Goes through [`Body`] rather than a derived struct
/// so that every wrong shape gets its own message, and because serde's derived structs would
/// also accept a JSON array (`["1990-01-01"]`).
pub(super) fn parse_body(body: &[u8], today: chrono::NaiveDate) -> Result<DateOfBirth, HelloError> {
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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::Value;
    use warp::http::StatusCode;

    use super::*;
    use crate::routes::MAX_BODY_BYTES;

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
}
