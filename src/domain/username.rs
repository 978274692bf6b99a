//! `Username`: the path segment of `/hello/<username>`, percent-decoded, NFC-normalised and
//! checked once, so that code holding one never checks again.

use std::fmt;

use percent_encoding::percent_decode_str;
use unicode_normalization::UnicodeNormalization;

/// A user's name as it appears in `/hello/<username>`: 1 to 64 Unicode letters, NFC-normalised.
///
/// Case-sensitive and case-preserving: `Alice` and `alice` are two users. Normalising to NFC
/// means `José` typed as `e` + combining acute (NFD) and as `é` (NFC) is the same user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a path segment is not a username. The messages are shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    #[error("username must not be empty")]
    Empty,
    #[error("username must be at most {max} characters, got {0}", max = Username::MAX_CHARS)]
    TooLong(usize),
    #[error("username must contain only letters, got {found:?} at position {position}")]
    NotALetter { found: char, position: usize },
}

impl Username {
    /// Longest accepted name, counted in Unicode scalar values after NFC normalisation.
    pub const MAX_CHARS: usize = 64;

    /// Parses a raw (still percent-encoded) path segment, as it arrives in the request line.
    pub fn from_path_segment(segment: &str) -> Result<Self, UsernameError> {
        let decoded = percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| UsernameError::InvalidUtf8)?;
        Self::parse(&decoded)
    }

    /// Parses an already-decoded name.
    pub fn parse(name: &str) -> Result<Self, UsernameError> {
        let normalised: String = name.nfc().collect();
        let mut count = 0;
        for (index, found) in normalised.chars().enumerate() {
            if !found.is_alphabetic() {
                return Err(UsernameError::NotALetter {
                    found,
                    position: index + 1,
                });
            }
            count += 1;
        }
        match count {
            0 => Err(UsernameError::Empty),
            n if n > Self::MAX_CHARS => Err(UsernameError::TooLong(n)),
            _ => Ok(Self(normalised)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_letters_from_any_script() {
        for name in [
            "alice",
            "Alice",
            "Jürgen",
            "José",
            "Zoë",
            "Παύλος",
            "Владимир",
            "名前",
            "a",
        ] {
            let parsed = Username::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.as_str(), name);
        }
    }

    #[test]
    fn rejects_every_non_letter_class() {
        let cases = [
            ("alice1", "digit"),
            ("al_ice", "underscore"),
            ("al-ice", "hyphen"),
            ("a.b", "dot"),
            ("a/b", "slash"),
            ("a\0b", "NUL"),
            ("a b", "space"),
            ("al😀ice", "emoji"),
            ("alice\n", "newline"),
            ("..", "dot-dot"),
        ];
        for (name, why) in cases {
            assert!(
                matches!(Username::parse(name), Err(UsernameError::NotALetter { .. })),
                "{why}: {name:?} was accepted"
            );
        }
    }

    #[test]
    fn reports_the_offending_character_and_position() {
        assert_eq!(
            Username::parse("alice1"),
            Err(UsernameError::NotALetter {
                found: '1',
                position: 6
            })
        );
    }

    #[test]
    fn rejects_empty_and_overlong_names() {
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        let max = "a".repeat(Username::MAX_CHARS);
        assert!(Username::parse(&max).is_ok());
        // Length counts characters, not bytes: 64 two-byte letters are fine.
        assert!(Username::parse(&"ü".repeat(Username::MAX_CHARS)).is_ok());
        assert_eq!(
            Username::parse(&format!("{max}a")),
            Err(UsernameError::TooLong(65))
        );
    }

    #[test]
    fn normalises_to_nfc_so_both_forms_are_one_user() {
        let nfd = "Jos\u{0065}\u{0301}"; // e + combining acute accent
        let nfc = "Jos\u{00e9}";
        let from_nfd = Username::parse(nfd).expect("NFD letters are letters");
        assert_eq!(from_nfd.as_str(), nfc);
        assert_eq!(from_nfd, Username::parse(nfc).unwrap());
    }

    #[test]
    fn is_case_sensitive_and_case_preserving() {
        let upper = Username::parse("Alice").unwrap();
        let lower = Username::parse("alice").unwrap();
        assert_ne!(upper, lower);
        assert_eq!(upper.as_str(), "Alice");
    }

    #[test]
    fn decodes_percent_encoded_path_segments() {
        assert_eq!(
            Username::from_path_segment("J%C3%BCrgen").unwrap().as_str(),
            "Jürgen"
        );
        // NFD bytes on the wire come out NFC.
        assert_eq!(
            Username::from_path_segment("Jose%CC%81").unwrap().as_str(),
            "José"
        );
        for (segment, expected) in [
            (
                "a%2Fb",
                UsernameError::NotALetter {
                    found: '/',
                    position: 2,
                },
            ),
            (
                "a%00b",
                UsernameError::NotALetter {
                    found: '\0',
                    position: 2,
                },
            ),
            (
                "a%20b",
                UsernameError::NotALetter {
                    found: ' ',
                    position: 2,
                },
            ),
            ("%FF", UsernameError::InvalidUtf8),
            ("%C3", UsernameError::InvalidUtf8),
            ("", UsernameError::Empty),
        ] {
            assert_eq!(
                Username::from_path_segment(segment),
                Err(expected),
                "{segment}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_accepted_name_is_nfc_letters_within_bounds(input in "\\PC{0,80}") {
            if let Ok(name) = Username::parse(&input) {
                let chars = name.as_str().chars().count();
                prop_assert!((1..=Username::MAX_CHARS).contains(&chars));
                prop_assert!(name.as_str().chars().all(char::is_alphabetic));
                let renormalised: String = name.as_str().nfc().collect();
                prop_assert_eq!(renormalised.as_str(), name.as_str());
            }
        }

        #[test]
        fn parsing_is_idempotent(input in "[\\p{L}\\p{M}]{1,70}") {
            if let Ok(name) = Username::parse(&input) {
                prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
            }
        }

        #[test]
        fn arbitrary_segments_never_panic(segment in "[%0-9A-Fa-f\\PC]{0,100}") {
            let _ = Username::from_path_segment(&segment);
        }
    }

    // Fuzzing on stable Rust: arbitrary bytes and strings at the parser of the raw path segment.
    // PROPTEST_CASES=100000 cargo test --lib username runs it longer.
    proptest! {
        #[test]
        fn any_bytes_percent_encoded_parse_like_their_decoded_text(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let segment =
                percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let parsed = Username::from_path_segment(&segment);
            match std::str::from_utf8(&bytes) {
                Err(_) => prop_assert_eq!(parsed, Err(UsernameError::InvalidUtf8)),
                Ok(text) => prop_assert_eq!(parsed, Username::parse(text)),
            }
        }

        #[test]
        fn raw_segments_with_stray_percent_signs_never_panic(
            segment in "(%|%[0-9A-Fa-f]|%[0-9A-Fa-f]{2}|\\PC){0,100}"
        ) {
            if let Ok(name) = Username::from_path_segment(&segment) {
                prop_assert!(name.as_str().chars().all(char::is_alphabetic));
                prop_assert!((1..=Username::MAX_CHARS).contains(&name.as_str().chars().count()));
            }
        }

        #[test]
        fn any_text_is_accepted_exactly_when_its_nfc_form_is_1_to_64_letters(
            input in "(\\PC|\\p{M}|[\u{1100}-\u{11FF}]){0,70}"
        ) {
            let nfc: String = input.nfc().collect();
            let letters = nfc.chars().all(char::is_alphabetic);
            let length = nfc.chars().count();
            let accepted = Username::parse(&input).is_ok();
            prop_assert_eq!(accepted, letters && (1..=Username::MAX_CHARS).contains(&length));
        }
    }
}
