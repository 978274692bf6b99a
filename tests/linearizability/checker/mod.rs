//! A linearizability checker for histories of the hello-birthday API.
//!
//! Black-box clients record every request with the times it was sent and answered. The
//! service is correct if some order of those operations, one that keeps every operation
//! that finished before another started ahead of it, explains every answer as if each user
//! were a single register served one request at a time (Herlihy & Wing). Linearizability is
//! compositional, so each user is checked on its own, which keeps every search small.
//!
//! This module is shared by path between the checker's own tests, the black-box tests and
//! the `check_history` example, so it uses only std, serde and serde_json, and names its
//! parts relative to itself.

mod history;
mod html;
mod search;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

// Each target that includes this module uses a different part of it.
#[allow(unused_imports)]
pub use self::{
    history::{Action, Operation, Outcome, ParseError, parse_jsonl, write_jsonl},
    html::write_html,
};

/// The verdict on a history or on one key, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// The search ran out of time: no violation found, none ruled out.
    Unknown,
    Illegal,
}

/// What the search found for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    Ok,
    /// No order explains the answers. Indices are into [`KeyReport::operations`].
    Illegal {
        /// The longest prefix of a linearisation the search found, in order.
        longest_prefix: Vec<Step>,
        /// The operations real time allowed next after that prefix; none of them fitted.
        stuck: Vec<usize>,
    },
    Unknown,
}

/// One operation of a linearisation, and the key's value after it (`None`: no such user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into [`KeyReport::operations`].
    pub op: usize,
    pub state: Option<String>,
}

/// The check of one key.
#[derive(Clone, Debug)]
pub struct KeyReport {
    pub key: String,
    /// The operations that were checked, in history order.
    pub operations: Vec<Operation>,
    pub result: KeyResult,
    pub elapsed: Duration,
}

/// The check of a whole history.
#[derive(Clone, Debug)]
pub struct Report {
    /// In key order.
    pub keys: Vec<KeyReport>,
    pub operations_read: usize,
    /// Operations with no possible effect, left out: failed puts, unanswered or failed gets.
    pub dropped: usize,
}

/// Checks a history, giving up on the keys still unfinished once `budget` has passed.
///
/// Small keys are checked first, so that one pathological key leaves the others a verdict.
pub fn check(history: &[Operation], budget: Duration) -> Report {
    let deadline = Instant::now().checked_add(budget);
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for operation in history.iter().filter(|operation| is_checked(operation)) {
        by_key
            .entry(&operation.key)
            .or_default()
            .push(operation.clone());
    }
    let mut groups: Vec<(&str, Vec<Operation>)> = by_key.into_iter().collect();
    groups.sort_by_key(|(_, operations)| operations.len());
    let mut keys: Vec<KeyReport> = groups
        .into_iter()
        .map(|(key, operations)| check_key(key, operations, deadline))
        .collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    let checked: usize = keys.iter().map(|key| key.operations.len()).sum();
    Report {
        keys,
        operations_read: history.len(),
        dropped: history.len() - checked,
    }
}

/// Whether the operation says anything about the state: a failed put changed nothing, and a
/// read without an answer saw nothing.
fn is_checked(operation: &Operation) -> bool {
    matches!(
        (&operation.action, operation.outcome),
        (Action::Put(_), Outcome::Ok | Outcome::Info) | (Action::Get(_), Outcome::Ok)
    )
}

fn check_key(key: &str, operations: Vec<Operation>, deadline: Option<Instant>) -> KeyReport {
    let started = Instant::now();
    let result = search::linearise(&operations, deadline);
    KeyReport {
        key: key.to_owned(),
        operations,
        result,
        elapsed: started.elapsed(),
    }
}

impl KeyResult {
    pub fn verdict(&self) -> Verdict {
        match self {
            KeyResult::Ok => Verdict::Ok,
            KeyResult::Illegal { .. } => Verdict::Illegal,
            KeyResult::Unknown => Verdict::Unknown,
        }
    }
}

impl KeyReport {
    /// One sentence on the result, for a summary line and the top of the visualisation.
    pub fn explanation(&self) -> String {
        let total = self.operations.len();
        match &self.result {
            KeyResult::Ok => format!("all {total} operations are linearisable"),
            KeyResult::Unknown => {
                format!("the search of {total} operations did not finish within the time budget")
            }
            KeyResult::Illegal {
                longest_prefix,
                stuck,
            } => {
                let stuck: Vec<String> = stuck
                    .iter()
                    .map(|&op| self.operations[op].describe())
                    .collect();
                format!(
                    "the longest linearisable prefix has {} of {total} operations; none of these could be placed next: {}",
                    longest_prefix.len(),
                    stuck.join("; ")
                )
            }
        }
    }
}

impl fmt::Display for KeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key {:?}: {}",
            self.result.verdict(),
            self.key,
            self.explanation()
        )
    }
}

impl Report {
    /// The worst verdict of any key.
    pub fn verdict(&self) -> Verdict {
        self.keys
            .iter()
            .map(|key| key.result.verdict())
            .max()
            .unwrap_or(Verdict::Ok)
    }

    pub fn operations_checked(&self) -> usize {
        self.operations_read - self.dropped
    }

    /// The keys that are not [`Verdict::Ok`], to report.
    pub fn failures(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|key| key.result != KeyResult::Ok)
    }

    /// The key that took longest, to see how close a history came to the budget.
    pub fn slowest(&self) -> Option<&KeyReport> {
        self.keys.iter().max_by_key(|key| key.elapsed)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Unknown => "UNKNOWN",
            Verdict::Illegal => "ILLEGAL",
        })
    }
}

/// `OK: 1234 operations (56 dropped) over 78 keys, longest key 0.412 ms (key "alice", 40 ops)`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read = count(self.operations_read, "operation");
        let keys = count(self.keys.len(), "key");
        write!(
            f,
            "{}: {read} ({} dropped) over {keys}",
            self.verdict(),
            self.dropped
        )?;
        if let Some(slowest) = self.slowest() {
            // Most keys take microseconds: milliseconds with three decimals show them.
            let millis = slowest.elapsed.as_secs_f64() * 1e3;
            let ops = count(slowest.operations.len(), "op");
            write!(
                f,
                ", longest key {millis:.3} ms (key {:?}, {ops})",
                slowest.key
            )?;
        }
        Ok(())
    }
}

/// `1 key`, `2 keys`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
