//! `DateOfBirth`: a `YYYY-MM-DD` string parsed exactly, a real date, before today (UTC).

use chrono::NaiveDate;

/// A date of birth: a real calendar date strictly before "today" (UTC) at the time it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(NaiveDate);

/// Why a `dateOfBirth` string was refused. The messages are shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateOfBirthError {
    #[error("dateOfBirth must have the form YYYY-MM-DD, got {0:?}")]
    Format(String),
    #[error("dateOfBirth must be a real calendar date, got {0}")]
    NotACalendarDate(String),
    #[error("dateOfBirth must be a date before today (UTC), got {got}")]
    NotInThePast { got: NaiveDate },
}

impl DateOfBirth {
    /// Parses `YYYY-MM-DD` exactly: four-digit year, zero-padded month and day, nothing around.
    ///
    /// chrono's own `%Y-%m-%d` parser is lenient (it takes `1990-5-1`, signed and
    /// longer years), so the shape is checked byte by byte first.
    pub fn parse(input: &str, today: NaiveDate) -> Result<Self, DateOfBirthError> {
        let bytes = input.as_bytes();
        let well_formed = bytes.len() == 10
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !well_formed {
            return Err(DateOfBirthError::Format(input.to_owned()));
        }
        // Slicing is safe: the ten bytes were just checked to be ASCII.
        let number = |range: std::ops::Range<usize>| -> u32 {
            input[range].parse().expect("ASCII digits parse as u32")
        };
        let year = i32::try_from(number(0..4)).expect("four digits fit in i32");
        let date = NaiveDate::from_ymd_opt(year, number(5..7), number(8..10))
            .ok_or_else(|| DateOfBirthError::NotACalendarDate(input.to_owned()))?;
        if date >= today {
            return Err(DateOfBirthError::NotInThePast { got: date });
        }
        Ok(Self(date))
    }

    /// Wraps a date that was validated when it was stored. Stored dates are not re-checked
    /// against today: a record written yesterday stays readable tomorrow.
    pub fn from_stored(date: NaiveDate) -> Self {
        Self(date)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn accepts_past_calendar_dates() {
        for (input, expected) in [
            ("1990-01-15", (1990, 1, 15)),
            ("2000-02-29", (2000, 2, 29)),
            ("0001-01-01", (1, 1, 1)),
            ("2026-11-21", (2026, 11, 21)),
        ] {
            let parsed =
                DateOfBirth::parse(input, today()).unwrap_or_else(|e| panic!("{input}: {e}"));
            let (y, m, d) = expected;
            assert_eq!(parsed.date(), NaiveDate::from_ymd_opt(y, m, d).unwrap());
        }
    }

    #[test]
    fn rejects_malformed_strings() {
        for (input, why) in [
            ("1990-5-1", "unpadded month and day"),
            ("15-01-1990", "day first"),
            ("1990/01/15", "slashes"),
            ("19900115", "no separators"),
            ("1990-01-15T00:00:00Z", "timestamp"),
            (" 1990-01-15", "leading space"),
            ("1990-01-15 ", "trailing space"),
            ("+1990-01-15", "signed year"),
            ("01990-01-15", "five-digit year"),
            ("1990-01-1５", "full-width digit"),
            ("", "empty"),
            ("yesterday", "words"),
        ] {
            assert_eq!(
                DateOfBirth::parse(input, today()),
                Err(DateOfBirthError::Format(input.to_owned())),
                "{why}"
            );
        }
    }

    #[test]
    fn rejects_dates_not_on_the_calendar() {
        for input in [
            "1990-02-30",
            "1999-02-29",
            "1900-02-29",
            "1990-13-01",
            "1990-00-10",
            "1990-04-31",
            "1990-01-00",
        ] {
            assert_eq!(
                DateOfBirth::parse(input, today()),
                Err(DateOfBirthError::NotACalendarDate(input.to_owned())),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_today_and_the_future() {
        for input in ["2026-11-22", "2026-11-23", "2030-01-01", "9999-12-31"] {
            let got = NaiveDate::parse_from_str(input, "%Y-%m-%d").unwrap();
            assert_eq!(
                DateOfBirth::parse(input, today()),
                Err(DateOfBirthError::NotInThePast { got }),
                "{input}"
            );
        }
    }

    #[test]
    fn the_message_names_the_rule_and_the_value() {
        let err = DateOfBirth::parse("2030-01-01", today()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dateOfBirth must be a date before today (UTC), got 2030-01-01"
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trips_every_past_date(days in 0i64..800_000) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Days::new(days as u64);
            let text = date.format("%Y-%m-%d").to_string();
            let parsed = DateOfBirth::parse(&text, today());
            if date < today() {
                proptest::prop_assert_eq!(parsed.map(DateOfBirth::date), Ok(date));
            } else {
                proptest::prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(input in "\\PC{0,20}") {
            let _ = DateOfBirth::parse(&input, today());
        }
    }

    // Fuzzing on stable Rust: arbitrary bytes and date-shaped strings at the date parser.
    // PROPTEST_CASES=100000 cargo test --lib date_of_birth runs it longer.
    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic_and_whatever_is_accepted_round_trips(
            bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..40)
        ) {
            let input = String::from_utf8_lossy(&bytes);
            if let Ok(date) = DateOfBirth::parse(&input, today()) {
                proptest::prop_assert_eq!(date.date().format("%Y-%m-%d").to_string(), input);
                proptest::prop_assert!(date.date() < today());
            }
        }

        #[test]
        fn date_shaped_strings_are_accepted_exactly_when_chrono_has_that_past_date(
            year in 0u32..10_000, month in 0u32..100, day in 0u32..100
        ) {
            let input = format!("{year:04}-{month:02}-{day:02}");
            let expected = NaiveDate::from_ymd_opt(year as i32, month, day);
            match (DateOfBirth::parse(&input, today()), expected) {
                (Ok(parsed), Some(date)) => {
                    proptest::prop_assert_eq!(parsed.date(), date);
                    proptest::prop_assert!(date < today());
                }
                (Err(DateOfBirthError::NotInThePast { got }), Some(date)) => {
                    proptest::prop_assert_eq!(got, date);
                    proptest::prop_assert!(date >= today());
                }
                (Err(DateOfBirthError::NotACalendarDate(got)), None) => {
                    proptest::prop_assert_eq!(got, input);
                }
                (result, expected) => {
                    proptest::prop_assert!(false, "{input}: {result:?}, chrono says {expected:?}");
                }
            }
        }
    }
}
