//! Tests of the linearizability checker itself: histories known to be linearisable or not,
//! the history format, the time bound, the visualisation, and random histories against a
//! brute-force oracle.

mod checker;

use std::time::{Duration, Instant};

use checker::{
    Action, KeyReport, KeyResult, Operation, Outcome, Verdict, check, parse_jsonl, write_html,
    write_jsonl,
};

const A: &str = "1990-01-05";
const B: &str = "1990-01-06";
const C: &str = "1990-01-07";
const BUDGET: Duration = Duration::from_secs(30);

fn operation(
    process: u64,
    action: Action,
    call: u64,
    ret: Option<u64>,
    outcome: Outcome,
) -> Operation {
    Operation {
        process,
        key: "alice".into(),
        action,
        call,
        ret,
        outcome,
        effect_by: None,
        note: None,
    }
}

fn put(process: u64, value: &str, call: u64, ret: u64) -> Operation {
    operation(
        process,
        Action::Put(value.into()),
        call,
        Some(ret),
        Outcome::Ok,
    )
}

fn failed_put(process: u64, value: &str, call: u64, ret: u64) -> Operation {
    operation(
        process,
        Action::Put(value.into()),
        call,
        Some(ret),
        Outcome::Fail,
    )
}

/// An unanswered put that may land until `effect_by`, or at any time if `None`.
fn info_put(process: u64, value: &str, call: u64, effect_by: Option<u64>) -> Operation {
    Operation {
        effect_by,
        ..operation(
            process,
            Action::Put(value.into()),
            call,
            None,
            Outcome::Info,
        )
    }
}

/// A get that may have seen any of `outputs` (`None`: 404).
fn get(process: u64, outputs: &[Option<&str>], call: u64, ret: u64) -> Operation {
    let outputs = outputs
        .iter()
        .map(|output| output.map(str::to_owned))
        .collect();
    operation(process, Action::Get(outputs), call, Some(ret), Outcome::Ok)
}

fn on_key(key: &str, operation: Operation) -> Operation {
    Operation {
        key: key.into(),
        ..operation
    }
}

fn assert_linearisable(history: &[Operation]) {
    let report = check(history, BUDGET);
    let failures: Vec<String> = report.failures().map(ToString::to_string).collect();
    assert_eq!(report.verdict(), Verdict::Ok, "{failures:?}");
}

/// The illegal key's operations: the longest prefix with the value after each, and the
/// operations stuck after it.
fn violation(history: &[Operation]) -> (Vec<(Operation, Option<String>)>, Vec<Operation>) {
    let report = check(history, BUDGET);
    let key = report
        .keys
        .iter()
        .find(|key| key.result.verdict() == Verdict::Illegal);
    let Some(KeyReport {
        operations,
        result: KeyResult::Illegal {
            longest_prefix,
            stuck,
        },
        ..
    }) = key
    else {
        panic!("expected an illegal key: {report}");
    };
    let prefix = longest_prefix
        .iter()
        .map(|step| (operations[step.op].clone(), step.state.clone()))
        .collect();
    (
        prefix,
        stuck.iter().map(|&op| operations[op].clone()).collect(),
    )
}

fn state(value: &str) -> Option<String> {
    Some(value.to_owned())
}

// Linearisable histories.

#[test]
fn sequential_puts_and_gets() {
    assert_linearisable(&[
        put(1, A, 0, 10),
        get(2, &[Some(A)], 20, 30),
        put(1, B, 40, 50),
        get(2, &[Some(B)], 60, 70),
    ]);
}

#[test]
fn reads_after_concurrent_puts_may_see_either() {
    for seen in [A, B] {
        assert_linearisable(&[
            put(1, A, 0, 100),
            put(2, B, 10, 90),
            get(3, &[Some(seen)], 110, 120),
            get(4, &[Some(seen)], 130, 140),
        ]);
    }
}

#[test]
fn a_read_concurrent_with_a_put_may_see_the_old_or_the_new_value() {
    for seen in [A, B] {
        assert_linearisable(&[
            put(1, A, 0, 10),
            put(1, B, 20, 60),
            get(2, &[Some(seen)], 30, 40),
        ]);
    }
}

#[test]
fn a_user_is_not_found_before_the_first_put() {
    assert_linearisable(&[
        get(1, &[None], 0, 10),
        put(2, A, 20, 30),
        get(1, &[Some(A)], 40, 50),
    ]);
}

#[test]
fn an_unconfirmed_put_may_never_take_effect() {
    assert_linearisable(&[
        put(1, A, 0, 10),
        info_put(2, B, 20, Some(25)),
        get(3, &[Some(A)], 30, 40),
        get(3, &[Some(A)], 1000, 1010),
    ]);
}

#[test]
fn an_unconfirmed_put_may_take_effect_long_after_its_call() {
    assert_linearisable(&[
        put(1, A, 0, 10),
        info_put(2, B, 20, None),
        get(3, &[Some(A)], 500, 510),
        get(3, &[Some(B)], 1000, 1010),
    ]);
}

#[test]
fn an_unconfirmed_put_may_take_effect_before_its_deadline() {
    assert_linearisable(&[
        put(1, A, 0, 10),
        info_put(2, B, 20, Some(100)),
        get(3, &[Some(A)], 30, 40),
        get(3, &[Some(B)], 50, 60),
    ]);
}

#[test]
fn a_get_may_accept_several_values() {
    assert_linearisable(&[put(1, A, 0, 10), get(2, &[Some(B), Some(A)], 20, 30)]);
    let (_, stuck) = violation(&[put(1, A, 0, 10), get(2, &[Some(B), Some(C)], 20, 30)]);
    assert_eq!(stuck, [get(2, &[Some(B), Some(C)], 20, 30)]);
}

#[test]
fn touching_intervals_are_concurrent() {
    assert_linearisable(&[get(1, &[Some(A)], 0, 10), put(2, A, 10, 20)]);
    violation(&[get(1, &[Some(A)], 0, 9), put(2, A, 10, 20)]);
}

#[test]
fn many_keys_are_checked_independently() {
    let history: Vec<Operation> = (0..100u64)
        .flat_map(|user| {
            let key = format!("user{user}");
            let t = user * 7;
            [
                put(user, A, t, t + 100),
                get(user, &[Some(A)], t + 101, t + 102),
                put(user, B, t + 103, t + 104),
            ]
            .map(|operation| on_key(&key, operation))
        })
        .collect();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict(), Verdict::Ok);
    assert_eq!(
        (
            report.keys.len(),
            report.operations_read,
            report.operations_checked()
        ),
        (100, 300, 300)
    );
}

// Histories that are not linearisable: the verdict and where it shows.

#[test]
fn a_stale_read_is_illegal() {
    let stale = get(3, &[Some(A)], 60, 70);
    let (prefix, stuck) = violation(&[
        put(1, A, 0, 10),
        get(2, &[Some(A)], 20, 30),
        put(1, B, 40, 50),
        stale.clone(),
    ]);
    let states: Vec<Option<String>> = prefix.into_iter().map(|(_, state)| state).collect();
    assert_eq!(states, [state(A), state(A), state(B)]);
    assert_eq!(stuck, [stale]);
}

#[test]
fn a_lost_acknowledged_write_is_illegal() {
    let (prefix, stuck) = violation(&[
        put(1, A, 0, 10),
        put(2, B, 20, 30),
        get(3, &[Some(A)], 40, 50),
    ]);
    assert_eq!(
        prefix,
        [(put(1, A, 0, 10), state(A)), (put(2, B, 20, 30), state(B))]
    );
    assert_eq!(stuck, [get(3, &[Some(A)], 40, 50)]);
}

#[test]
fn a_write_seen_before_it_was_sent_is_illegal() {
    let (prefix, stuck) = violation(&[get(1, &[Some(A)], 0, 10), put(2, A, 20, 30)]);
    assert!(prefix.is_empty());
    assert_eq!(stuck, [get(1, &[Some(A)], 0, 10)]);
}

#[test]
fn an_unconfirmed_write_seen_after_its_deadline_is_illegal() {
    let late = get(3, &[Some(A)], 40, 50);
    let (prefix, stuck) =
        violation(&[info_put(1, A, 0, Some(10)), put(2, B, 20, 30), late.clone()]);
    assert_eq!(prefix.last(), Some(&(put(2, B, 20, 30), state(B))));
    assert_eq!(stuck, [late]);
}

#[test]
fn a_failed_put_that_is_read_is_illegal() {
    let history = [
        put(1, A, 0, 10),
        failed_put(2, B, 20, 30),
        get(3, &[Some(B)], 40, 50),
    ];
    let (prefix, stuck) = violation(&history);
    assert_eq!(prefix, [(put(1, A, 0, 10), state(A))]);
    assert_eq!(stuck, [get(3, &[Some(B)], 40, 50)]);
    assert_eq!(check(&history, BUDGET).dropped, 1);
}

#[test]
fn not_found_after_an_acknowledged_put_is_illegal() {
    let (prefix, stuck) = violation(&[put(1, A, 0, 10), get(2, &[None], 20, 30)]);
    assert_eq!(prefix, [(put(1, A, 0, 10), state(A))]);
    assert_eq!(stuck, [get(2, &[None], 20, 30)]);
}

#[test]
fn memoisation_keeps_concurrent_writes_from_costing_a_factorial() {
    // Without it, proving this illegal tries all 12! orders of the puts.
    let mut history: Vec<Operation> = (0..12u64)
        .map(|i| put(i, &format!("2000-01-{i:02}"), 0, 100))
        .collect();
    history.push(get(99, &[Some("1970-01-01")], 200, 210));
    let (prefix, stuck) = violation(&history);
    assert_eq!(
        (prefix.len(), stuck),
        (12, vec![get(99, &[Some("1970-01-01")], 200, 210)])
    );
}

// The history format.

#[test]
fn parses_each_kind_of_line() {
    let text = r#"{"process": 7, "key": "alice", "op": "put", "value": "1990-01-05", "call": 1200000, "return": 3400000, "outcome": "ok"}
{"process": 8, "key": "alice", "op": "get", "value": ["1990-01-05", null], "call": 3500000, "return": 3600000, "outcome": "ok", "extra": 1}

{"process": 8, "key": "alice", "op": "get", "value": null, "call": 100, "return": 900, "outcome": "ok"}
{"process": 8, "key": "bob", "op": "get", "value": "1990-01-06", "call": 100, "return": null, "outcome": "info"}
{"process": 9, "key": "alice", "op": "put", "value": "1990-01-06", "call": 4000000, "return": null, "outcome": "info", "effect_by": 9000000, "note": "timeout"}
"#;
    let history = parse_jsonl(text).expect("valid history");
    let expected = [
        put(7, A, 1_200_000, 3_400_000),
        get(8, &[Some(A), None], 3_500_000, 3_600_000),
        get(8, &[None], 100, 900),
        Operation {
            outcome: Outcome::Info,
            ret: None,
            ..on_key("bob", get(8, &[Some(B)], 100, 0))
        },
        Operation {
            note: Some("timeout".into()),
            ..info_put(9, B, 4_000_000, Some(9_000_000))
        },
    ];
    assert_eq!(history, expected);
}

#[test]
fn a_written_history_reads_back_the_same() {
    let history = [
        put(1, A, 0, 10),
        info_put(2, B, 5, Some(50)),
        get(3, &[Some(A), None], 20, 30),
    ];
    let mut text = Vec::new();
    write_jsonl(&mut text, &history).expect("writing to memory");
    assert_eq!(
        parse_jsonl(&String::from_utf8(text).expect("UTF-8")).expect("valid"),
        history
    );
}

#[test]
fn malformed_lines_are_reported_with_their_line_number() {
    let good = r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 1, "return": 2, "outcome": "ok"}"#;
    // What the message must say, and the line.
    let cases = [
        ("EOF while parsing", "{"),
        (
            "missing field `key`",
            r#"{"process": 1, "op": "put", "value": "x", "call": 1, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "unknown variant `delete`",
            r#"{"process": 1, "key": "a", "op": "delete", "value": "x", "call": 1, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "unknown variant `maybe`",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 1, "return": 2, "outcome": "maybe"}"#,
        ),
        (
            "expected a string",
            r#"{"process": 1, "key": "a", "op": "put", "value": ["x"], "call": 1, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "a string, null, or a list",
            r#"{"process": 1, "key": "a", "op": "get", "value": 5, "call": 1, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "expected u64",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": -1, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "return 2 is before call 3",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 3, "return": 2, "outcome": "ok"}"#,
        ),
        (
            "an ok operation needs a return time",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 1, "return": null, "outcome": "ok"}"#,
        ),
        (
            "only applies to an info put",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 1, "return": 2, "outcome": "ok", "effect_by": 5}"#,
        ),
        (
            "effect_by 5 is before call 9",
            r#"{"process": 1, "key": "a", "op": "put", "value": "x", "call": 9, "return": null, "outcome": "info", "effect_by": 5}"#,
        ),
    ];
    for (expected, line) in cases {
        let error = parse_jsonl(&format!("{good}\n\n{line}\n{good}\n")).expect_err(expected);
        assert_eq!(error.line, 3, "{error}");
        assert!(
            error.to_string().starts_with("line 3: ") && error.message.contains(expected),
            "{expected:?}: {error}"
        );
    }
}

// The bound on the search.

/// Forty unconfirmed puts and reads all at once, then a read of a value never written:
/// illegal, but proving it means trying every subset of the puts.
fn pathological(key: &str) -> Vec<Operation> {
    let mut history: Vec<Operation> = (0..20u64)
        .flat_map(|i| {
            let value = format!("2000-01-{i:02}");
            [
                info_put(i, &value, 0, None),
                get(100 + i, &[Some(&value)], 0, 1000),
            ]
        })
        .collect();
    history.push(get(200, &[Some("1970-01-01")], 2000, 2010));
    history
        .into_iter()
        .map(|operation| on_key(key, operation))
        .collect()
}

#[test]
fn a_search_that_cannot_finish_in_time_is_unknown() {
    let started = Instant::now();
    let report = check(&pathological("alice"), Duration::from_millis(50));
    let elapsed = started.elapsed();
    eprintln!("bounded search returned after {elapsed:?}");
    assert_eq!(report.verdict(), Verdict::Unknown);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn a_slow_key_does_not_hide_an_illegal_one() {
    let mut history = pathological("slow");
    history.extend(
        [put(1, A, 0, 10), get(2, &[None], 20, 30)].map(|operation| on_key("fast", operation)),
    );
    let report = check(&history, Duration::from_millis(50));
    assert_eq!(report.verdict(), Verdict::Illegal);
    let verdicts: Vec<(&str, Verdict)> = report
        .keys
        .iter()
        .map(|key| (key.key.as_str(), key.result.verdict()))
        .collect();
    assert_eq!(
        verdicts,
        [("fast", Verdict::Illegal), ("slow", Verdict::Unknown)]
    );
}

// The visualisation.

#[test]
fn an_illegal_key_gets_an_escaped_page() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let key = "<script>alert(1)</script>";
    let history = [
        put(1, A, 0, 10),
        put(2, B, 20, 30),
        get(3, &[Some(A)], 40, 50),
    ]
    .map(|operation| on_key(key, operation));
    let paths = write_html(dir.path(), &check(&history, BUDGET)).expect("pages written");
    assert_eq!(
        paths,
        [dir.path()
            .join("%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html")]
    );
    let page = std::fs::read_to_string(&paths[0]).expect("page");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("class=\"get stuck\""));
    assert!(page.contains(&format!(">get {A}</text>")));
    assert!(page.contains("none of these could be placed next: get 1990-01-05 (process 3"));
}

#[test]
fn a_long_key_gets_a_short_distinct_file_name() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let history: Vec<Operation> = ["é".repeat(200), "é".repeat(201)]
        .iter()
        .flat_map(|key| {
            [put(1, A, 0, 10), get(2, &[None], 20, 30)].map(|operation| on_key(key, operation))
        })
        .collect();
    let paths = write_html(dir.path(), &check(&history, BUDGET)).expect("pages written");
    assert_eq!(paths.len(), 2);
    assert_ne!(paths[0], paths[1]);
    for path in paths {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("ASCII name");
        assert!(name.len() <= 105, "{name}");
    }
}

// Random histories.

/// xorshift64*: deterministic and dependency-free; quality is ample for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, values: &[&'a str]) -> &'a str {
        values[self.below(values.len() as u64) as usize]
    }
}

/// Few values, so that a corrupted read is often still explainable and the oracle matters.
const VALUES: [&str; 3] = [A, B, C];

/// A linearisable history of one key: a register simulated in order of made-up
/// linearisation points, each operation given a random interval around its point.
fn random_history(rng: &mut Rng, len: usize) -> Vec<Operation> {
    let mut register: Option<&str> = None;
    let mut history = Vec::new();
    for i in 0..len as u64 {
        let point = i * 20 + rng.below(20);
        let (call, ret) = (point.saturating_sub(rng.below(50)), point + rng.below(50));
        let process = rng.below(4);
        let operation = if rng.chance(45) {
            let value = rng.pick(&VALUES);
            match rng.below(10) {
                0 => failed_put(process, value, call, ret),
                1 | 2 => {
                    let lands = rng.chance(50);
                    if lands {
                        register = Some(value);
                    }
                    let effect_by = rng
                        .chance(50)
                        .then(|| if lands { ret } else { call + rng.below(100) });
                    info_put(process, value, call, effect_by)
                }
                _ => {
                    register = Some(value);
                    put(process, value, call, ret)
                }
            }
        } else if rng.chance(10) {
            // An unanswered read: whatever it claims must be ignored.
            Operation {
                outcome: Outcome::Info,
                ..get(process, &[Some(rng.pick(&VALUES))], call, ret)
            }
        } else if rng.chance(20) {
            get(process, &[Some(rng.pick(&VALUES)), register], call, ret)
        } else {
            get(process, &[register], call, ret)
        };
        history.push(operation);
    }
    history
}

/// Replaces what one answered read saw with a random single output; `false` if there is none.
fn corrupt_a_read(rng: &mut Rng, history: &mut [Operation]) -> bool {
    let reads: Vec<usize> = (0..history.len())
        .filter(|&i| {
            matches!(history[i].action, Action::Get(_)) && history[i].outcome == Outcome::Ok
        })
        .collect();
    if reads.is_empty() {
        return false;
    }
    let read = reads[rng.below(reads.len() as u64) as usize];
    let output = rng.chance(75).then(|| rng.pick(&VALUES).to_owned());
    history[read].action = Action::Get(vec![output]);
    true
}

/// The textbook definition, by brute force: some subset of the unconfirmed puts and some
/// order of it and the answered operations respects real time and replays on a register.
fn brute_force_linearisable(history: &[Operation]) -> bool {
    let required: Vec<&Operation> = history
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .collect();
    let optional: Vec<&Operation> = history
        .iter()
        .filter(|op| op.outcome == Outcome::Info && matches!(op.action, Action::Put(_)))
        .collect();
    (0..1u32 << optional.len()).any(|subset| {
        let chosen = optional
            .iter()
            .enumerate()
            .filter(|(i, _)| subset & (1 << i) != 0)
            .map(|(_, op)| *op);
        let mut ops: Vec<&Operation> = required.iter().copied().chain(chosen).collect();
        any_permutation(&mut ops, 0)
    })
}

fn any_permutation(ops: &mut [&Operation], fixed: usize) -> bool {
    if fixed == ops.len() {
        return respects_real_time(ops) && replays(ops);
    }
    (fixed..ops.len()).any(|i| {
        ops.swap(fixed, i);
        let found = any_permutation(ops, fixed + 1);
        ops.swap(fixed, i);
        found
    })
}

fn respects_real_time(order: &[&Operation]) -> bool {
    let end = |op: &Operation| {
        if op.outcome == Outcome::Info {
            op.effect_by.unwrap_or(u64::MAX)
        } else {
            op.ret.unwrap_or(u64::MAX)
        }
    };
    (0..order.len()).all(|later| (0..later).all(|earlier| end(order[later]) >= order[earlier].call))
}

fn replays(order: &[&Operation]) -> bool {
    let mut register: Option<&str> = None;
    order.iter().all(|op| match &op.action {
        Action::Put(value) => {
            register = Some(value);
            true
        }
        Action::Get(outputs) => outputs.iter().any(|output| output.as_deref() == register),
    })
}

#[test]
fn random_linearisable_histories_are_ok() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..20 {
        let history: Vec<Operation> = (0..5)
            .flat_map(|key| {
                random_history(&mut rng, 60)
                    .into_iter()
                    .map(move |operation| on_key(&format!("user{key}"), operation))
            })
            .collect();
        assert_linearisable(&history);
    }
}

#[test]
fn a_read_of_a_value_never_written_makes_a_random_history_illegal() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    for _ in 0..20 {
        let mut history = random_history(&mut rng, 200);
        if let Some(read) = history
            .iter_mut()
            .find(|op| matches!(op.action, Action::Get(_)) && op.outcome == Outcome::Ok)
        {
            read.action = Action::Get(vec![Some("1970-01-01".into())]);
        }
        violation(&history);
    }
}

#[test]
fn agrees_with_brute_force_on_small_random_histories() {
    let mut rng = Rng(0x5eed_1234_abcd_0003);
    let (mut legal, mut illegal) = (0, 0);
    for _ in 0..600 {
        let mut history = random_history(&mut rng, 7);
        let corrupted = rng.chance(60) && corrupt_a_read(&mut rng, &mut history);
        let expected = if brute_force_linearisable(&history) {
            Verdict::Ok
        } else {
            Verdict::Illegal
        };
        assert!(
            corrupted || expected == Verdict::Ok,
            "the generator made an illegal history: {history:#?}"
        );
        assert_eq!(check(&history, BUDGET).verdict(), expected, "{history:#?}");
        if expected == Verdict::Ok {
            legal += 1
        } else {
            illegal += 1
        }
    }
    assert!(
        legal > 100 && illegal > 100,
        "{legal} legal, {illegal} illegal: too few of one kind to trust"
    );
}
