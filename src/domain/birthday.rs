//! The arithmetic of the answer: days to the next birthday (29 February on 28 February in
//! common years) and the greeting built from it.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::{DateOfBirth, Username};

/// Days from `today` to the next occurrence of the birthday (0 when it is today).
///
/// A 29 February birthday is celebrated on 28 February in common years. Computed from
/// calendar dates, never by adding 365 days.
pub fn days_until_next_birthday(date_of_birth: DateOfBirth, today: NaiveDate) -> u32 {
    let born = date_of_birth.date();
    let this_year = birthday_in(born, today.year());
    let next = if this_year >= today {
        this_year
    } else {
        birthday_in(born, today.year() + 1)
    };
    let days = (next - today).num_days();
    u32::try_from(days).expect("the next birthday is between 0 and 366 days away")
}

/// The date the birthday falls on in `year`.
fn birthday_in(born: NaiveDate, year: i32) -> NaiveDate {
    born.with_year(year)
        // Only 29 February has no twin in some years; it moves to the 28th.
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .expect("28 February exists in every year")
}

/// The message `GET /hello/<username>` answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting<'a> {
    pub username: &'a Username,
    pub days_until_birthday: u32,
}

impl fmt::Display for Greeting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.days_until_birthday {
            0 => write!(f, "Hello, {}! Happy birthday!", self.username),
            // The contract is the literal "day(s)", also for 1.
            n => write!(
                f,
                "Hello, {}! Your birthday is in {n} day(s)",
                self.username
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn days(born: NaiveDate, today: NaiveDate) -> u32 {
        days_until_next_birthday(DateOfBirth::from_stored(born), today)
    }

    #[test]
    fn table_of_known_answers() {
        let cases = [
            // (born, today, expected, why)
            (date(1990, 6, 15), date(2026, 6, 15), 0, "birthday today"),
            (date(1990, 6, 15), date(2026, 6, 14), 1, "tomorrow"),
            (
                date(1990, 6, 15),
                date(2026, 6, 16),
                364,
                "yesterday, next year is common",
            ),
            (
                date(1990, 6, 15),
                date(2027, 6, 16),
                365,
                "yesterday, next year is leap (2028)",
            ),
            (date(1990, 1, 1), date(2026, 12, 31), 1, "31 Dec to 1 Jan"),
            (date(1990, 12, 31), date(2027, 1, 1), 364, "1 Jan to 31 Dec"),
            (
                date(1990, 3, 1),
                date(2028, 2, 28),
                2,
                "28 Feb to 1 Mar in a leap year",
            ),
            (
                date(1990, 3, 1),
                date(2027, 2, 28),
                1,
                "28 Feb to 1 Mar in a common year",
            ),
            (
                date(1990, 2, 28),
                date(2028, 2, 29),
                365,
                "the day after 28 Feb in a leap year",
            ),
            (
                date(2000, 2, 29),
                date(2028, 2, 29),
                0,
                "29 Feb birthday in a leap year",
            ),
            (
                date(2000, 2, 29),
                date(2027, 2, 28),
                0,
                "29 Feb birthday on 28 Feb of a common year",
            ),
            (
                date(2000, 2, 29),
                date(2028, 2, 28),
                1,
                "29 Feb birthday the day before, leap year",
            ),
            (
                date(2000, 2, 29),
                date(2027, 3, 1),
                365,
                "29 Feb birthday just passed, next is 29 Feb 2028",
            ),
            (
                date(2000, 2, 29),
                date(2026, 3, 1),
                364,
                "29 Feb birthday just passed, next is 28 Feb 2027",
            ),
            (
                date(2000, 2, 29),
                date(2027, 1, 1),
                58,
                "1 Jan to 28 Feb 2027",
            ),
            (
                date(2000, 2, 29),
                date(2028, 1, 1),
                59,
                "1 Jan to 29 Feb 2028",
            ),
        ];
        for (born, today, expected, why) in cases {
            assert_eq!(
                days(born, today),
                expected,
                "{why}: born {born}, today {today}"
            );
        }
    }

    #[test]
    fn every_day_of_a_leap_and_a_common_year() {
        // Walking day by day, the count drops by one each day and wraps to a full year
        // (365 or 364/365 around 29 Feb) only on the birthday.
        let born = date(1985, 7, 4);
        let mut today = date(2027, 1, 1);
        let mut previous = days(born, today);
        while today < date(2029, 1, 1) {
            today = today + Days::new(1);
            let now = days(born, today);
            if now + 1 != previous {
                assert_eq!(
                    previous, 0,
                    "count only resets after the birthday ({today})"
                );
                assert!(now == 364 || now == 365, "{today}: {now}");
            }
            previous = now;
        }
    }

    #[test]
    fn greeting_text_is_exact() {
        let alice = Username::parse("Alice").unwrap();
        let say = |days_until_birthday| {
            Greeting {
                username: &alice,
                days_until_birthday,
            }
            .to_string()
        };
        assert_eq!(say(0), "Hello, Alice! Happy birthday!");
        assert_eq!(say(1), "Hello, Alice! Your birthday is in 1 day(s)");
        assert_eq!(say(365), "Hello, Alice! Your birthday is in 365 day(s)");
    }

    proptest! {
        #[test]
        fn next_birthday_is_within_a_year_and_on_the_right_day(
            born_offset in 0u64..40_000,
            today_offset in 0u64..40_000,
        ) {
            let born = date(1900, 1, 1) + Days::new(born_offset);
            let today = born + Days::new(today_offset);
            let n = days(born, today);
            prop_assert!(n <= 365);
            let next = today + Days::new(u64::from(n));
            if (born.month(), born.day()) == (2, 29) && next.month() == 2 && next.day() == 28 {
                prop_assert!(!next.leap_year(), "28 Feb stands in for 29 Feb only in common years");
            } else {
                prop_assert_eq!((next.month(), next.day()), (born.month(), born.day()));
            }
            // No earlier day in between is the birthday.
            if n > 0 {
                prop_assert!(days(born, today + Days::new(u64::from(n) - 1)) == 1);
            }
        }
    }
}
