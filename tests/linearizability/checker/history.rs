//! Operations as a client records them, and their JSON Lines form.
//!
//! One line per operation:
//! `{"process": 7, "key": "alice", "op": "put", "value": "1990-01-05", "call": 1200000,
//! "return": 3400000, "outcome": "ok"}`. Times are nanoseconds on one monotonic clock on the
//! client side: the only timeline a black-box client can trust, since the instances' clocks
//! are not its own.

use std::fmt;
use std::io::{self, Write};

use serde::{Deserialize, Deserializer, Serialize};

/// One request a client made, with when it was sent and when (if ever) it was answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client that issued it. Only for display: a client that gave up on a request may
    /// send the next one while the first can still take effect, so a process is not
    /// sequential.
    pub process: u64,
    /// The username. Users are independent registers, so each key is checked on its own.
    pub key: String,
    /// What was asked and what was seen.
    #[serde(flatten)]
    pub action: Action,
    /// When the request was sent, in nanoseconds.
    pub call: u64,
    /// When the answer arrived, in nanoseconds; `None` if it never did.
    #[serde(rename = "return", default)]
    pub ret: Option<u64>,
    /// What the answer says about the effect.
    pub outcome: Outcome,
    /// For an `info` put: the latest time the write may still land. The service documents
    /// that an unconfirmed write lands by its deadline or never; without this bound the
    /// write may land at any later time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_by: Option<u64>,
    /// Free text for whoever reads the visualisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The request and, for a read, what it saw. On the wire: `"op"` and `"value"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "lowercase")]
pub enum Action {
    /// Stores this date of birth.
    Put(String),
    /// Reads the date of birth. Every listed output explains the answer (`None`: 404): a
    /// greeting says "in N days", and around midnight two dates can fit it.
    Get(#[serde(deserialize_with = "one_or_many")] Vec<Option<String>>),
}

/// What the answer (or its absence) says about the operation's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered: the write took effect, or the read's output is what it saw.
    Ok,
    /// Answered "nothing was changed": certainly no effect.
    Fail,
    /// Unknown (timeout, broken connection, "write-unconfirmed"): a write may take effect
    /// at any point after its call, or never.
    Info,
}

/// A line of a history file that is not an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based, as editors count.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        })
    }
}

impl Operation {
    /// Short text for displays: `put 1990-01-05`, `get 404`, `get 1990-01-05|1990-01-06`.
    pub fn label(&self) -> String {
        match &self.action {
            Action::Put(value) => format!("put {value}"),
            // A read whose answer fits no value ever written (the client found none).
            Action::Get(outputs) if outputs.is_empty() => "get (no value written)".to_owned(),
            Action::Get(outputs) => {
                let outputs: Vec<&str> = outputs
                    .iter()
                    .map(|o| o.as_deref().unwrap_or("404"))
                    .collect();
                format!("get {}", outputs.join("|"))
            }
        }
    }

    /// The label with who and when, to find the operation in a history file.
    pub fn describe(&self) -> String {
        let answered = self.ret.map_or_else(|| "never".to_owned(), millis);
        let (label, process, outcome, called) =
            (self.label(), self.process, self.outcome, millis(self.call));
        format!("{label} (process {process}, {outcome}, called {called}, answered {answered})")
    }

    /// The latest time the operation can take effect; `None` if there is no bound: an
    /// unconfirmed write without `effect_by` may land at any later time.
    pub fn effect_deadline(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Info => self.effect_by,
            Outcome::Ok | Outcome::Fail => self.ret,
        }
    }

    /// Rejects what no client can have observed, so that the search never has to guess.
    pub fn validate(&self) -> Result<(), String> {
        // A fail may lack a return: clients also file unanswered reads as fail (no effect).
        match (self.ret, self.effect_by) {
            (None, _) if self.outcome == Outcome::Ok => {
                Err("an ok operation needs a return time".into())
            }
            (Some(ret), _) if ret < self.call => {
                Err(format!("return {ret} is before call {}", self.call))
            }
            (_, Some(_))
                if !(self.outcome == Outcome::Info && matches!(self.action, Action::Put(_))) =>
            {
                Err("effect_by only applies to an info put".into())
            }
            (_, Some(by)) if by < self.call => {
                Err(format!("effect_by {by} is before call {}", self.call))
            }
            _ => Ok(()),
        }
    }
}

/// Nanoseconds as milliseconds with microsecond precision, as the displays show times.
pub fn millis(nanos: u64) -> String {
    format!("{}.{:03} ms", nanos / 1_000_000, nanos / 1_000 % 1_000)
}

/// Reads a history: one operation per line, blank lines skipped, unknown fields ignored.
pub fn parse_jsonl(text: &str) -> Result<Vec<Operation>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|message| ParseError {
                line: index + 1,
                message,
            })
        })
        .collect()
}

/// Writes a history in the form [`parse_jsonl`] reads.
pub fn write_jsonl(mut out: impl Write, history: &[Operation]) -> io::Result<()> {
    for operation in history {
        serde_json::to_writer(&mut out, operation)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<Operation, String> {
    let operation: Operation = serde_json::from_str(line).map_err(|error| {
        // serde_json counts lines within this one line; keep only the column.
        let text = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = text.strip_suffix(&position).unwrap_or(&text);
        format!("{message} (column {})", error.column())
    })?;
    operation.validate()?;
    Ok(operation)
}

/// A get's outputs: a list, or a bare output as shorthand for a list of one.
fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Option<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a get's value must be a string, null, or a list of them"
    )]
    enum OneOrMany {
        Many(Vec<Option<String>>),
        One(Option<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(outputs) => outputs,
        OneOrMany::One(output) => vec![output],
    })
}
