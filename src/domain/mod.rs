//! Domain types. Each is parsed once at the edge (`parse`) and is valid from then on:
//! handlers and storage never re-check a `Username` or a `DateOfBirth`.

mod birthday;
mod clock;
mod date_of_birth;
mod username;

pub use birthday::{Greeting, days_until_next_birthday};
pub use clock::{Clock, FixedClock, SystemClock};
pub use date_of_birth::{DateOfBirth, DateOfBirthError};
pub use username::{Username, UsernameError};
