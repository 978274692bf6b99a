//! The JSON document stored per user.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One user's record. Readers ignore fields they do not know, so a newer version of the
/// service can add fields while an older one still reads its records during a rolling deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub schema: u32,
    /// The NFC name, stored so that a record can be checked against the file it was found in.
    pub username: String,
    pub date_of_birth: NaiveDate,
    /// The writing host's clock when the write arrived: information for people, never used to
    /// order writes (hosts' clocks disagree).
    pub updated_at: DateTime<Utc>,
    /// How many writes this record has had: each write stores the version it found under the
    /// user's lock plus one. It orders a user's writes without any clock. Records written
    /// before it existed read as 0.
    #[serde(default)]
    pub version: u64,
}

impl Record {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these plain fields cannot fail.
        let mut json = serde_json::to_vec(self).expect("a record serialises");
        json.push(b'\n');
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_documented_shape() {
        let record = Record {
            schema: SCHEMA_VERSION,
            username: "Jürgen".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 1, 15).unwrap(),
            updated_at: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .into(),
            version: 7,
        };
        assert_eq!(
            String::from_utf8(record.to_json()).unwrap(),
            "{\"schema\":1,\"username\":\"Jürgen\",\"dateOfBirth\":\"1990-01-15\",\"updatedAt\":\"2026-11-22T10:00:00Z\",\"version\":7}\n"
        );
    }

    #[test]
    fn reads_records_from_a_newer_version_with_extra_fields() {
        let json = r#"{"schema":2,"username":"alice","dateOfBirth":"1990-01-15",
                       "updatedAt":"2026-11-22T10:00:00.123Z","timezone":"Europe/Berlin"}"#;
        let record: Record = serde_json::from_str(json).unwrap();
        assert_eq!(record.username, "alice");
        assert_eq!(
            record.date_of_birth,
            NaiveDate::from_ymd_opt(1990, 1, 15).unwrap()
        );
    }

    #[test]
    fn a_record_written_before_versions_reads_as_version_0() {
        let json = br#"{"schema":1,"username":"alice","dateOfBirth":"1990-01-15","updatedAt":"2026-11-22T10:00:00Z"}"#;
        assert_eq!(serde_json::from_slice::<Record>(json).unwrap().version, 0);
    }

    #[test]
    fn a_truncated_record_does_not_parse() {
        let json = br#"{"schema":1,"username":"alice","dateOfB"#;
        assert!(serde_json::from_slice::<Record>(json).is_err());
    }
}
