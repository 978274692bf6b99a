//! The search for one key: Wing & Gong's backtracking with Lowe's memoisation, as in
//! Porcupine (anishathalye/porcupine, `checker.go`).
//!
//! The calls and returns of the operations are a time-ordered linked list. Walking it from
//! the start, every call met before the first return is an operation that real time allows
//! to go next; the search applies one to the model, lifts it out of the list and starts over.
//! Meeting a return means an operation that had to be placed by then was not: the search
//! undoes the last placement and tries what follows it. A configuration (set of placed
//! operations, state) is explored at most once, which makes this practical on real
//! histories; a deadline bounds the rest.

use std::collections::HashMap;
use std::time::Instant;

use super::{Action, KeyResult, Operation, Outcome, Step};

/// The value of one key, interned: [`ABSENT`] (no such user) or an index into [`Values`].
type State = u32;

const ABSENT: State = 0;

/// How many steps pass between two looks at the clock: often enough to stop well within
/// a millisecond of the deadline, rarely enough to cost nothing.
const STEPS_PER_CLOCK_CHECK: u32 = 1024;

/// Decides whether the operations of one key are linearisable, or gives up at `deadline`.
pub(super) fn linearise(operations: &[Operation], deadline: Option<Instant>) -> KeyResult {
    let mut values = Values::default();
    let transitions: Vec<Transition> = operations
        .iter()
        .map(|op| Transition::of(op, &mut values))
        .collect();
    let search = Search {
        events: Events::new(operations),
        transitions,
        state: ABSENT,
        placed: Bitset::new(operations.len()),
        stack: Vec::new(),
        seen: HashMap::new(),
    };
    match search.run(deadline) {
        End::Linearisable => KeyResult::Ok,
        End::TimedOut => KeyResult::Unknown,
        End::Stuck(furthest) => KeyResult::Illegal {
            longest_prefix: furthest
                .prefix
                .iter()
                .map(|&(op, state)| Step {
                    op,
                    state: values.get(state),
                })
                .collect(),
            stuck: furthest.candidates,
        },
    }
}

/// Interns the values of one key, so that a state is a small copyable number.
#[derive(Default)]
struct Values {
    ids: HashMap<String, State>,
    names: Vec<String>,
}

impl Values {
    fn intern(&mut self, value: Option<&str>) -> State {
        let Some(value) = value else { return ABSENT };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.names.push(value.to_owned());
        let id = State::try_from(self.names.len()).expect("fewer than 2^32 values per key");
        self.ids.insert(value.to_owned(), id);
        id
    }

    fn get(&self, state: State) -> Option<String> {
        state
            .checked_sub(1)
            .map(|index| self.names[index as usize].clone())
    }
}

/// The model's step for one operation: Porcupine's key-value register, plus a write that
/// may not happen.
enum Transition {
    Write(State),
    /// An unconfirmed write: two outcomes, applied or not. Keeping both as outcomes of one
    /// step (rather than a write that may be left out) keeps "placed set + state" a complete
    /// description of a configuration, which the memoisation depends on.
    MaybeWrite(State),
    /// A read, legal in any of these states.
    Read(Vec<State>),
}

impl Transition {
    fn of(operation: &Operation, values: &mut Values) -> Self {
        match (&operation.action, operation.outcome) {
            (Action::Put(value), Outcome::Info) => {
                Transition::MaybeWrite(values.intern(Some(value)))
            }
            (Action::Put(value), _) => Transition::Write(values.intern(Some(value))),
            (Action::Get(outputs), _) => Transition::Read(
                outputs
                    .iter()
                    .map(|o| values.intern(o.as_deref()))
                    .collect(),
            ),
        }
    }

    /// The states this step can lead to from `state`, by outcome number; `None` where an
    /// outcome is illegal or would repeat an earlier one.
    fn outcomes(&self, state: State) -> [Option<State>; 2] {
        match self {
            Transition::Write(value) => [Some(*value), None],
            Transition::MaybeWrite(value) => [Some(*value), (*value != state).then_some(state)],
            Transition::Read(legal) => [legal.contains(&state).then_some(state), None],
        }
    }
}

/// A node of the event list: the two ends, and the call and the return of each operation.
#[derive(Clone, Copy)]
enum Node {
    Head,
    Call(usize),
    Return,
    Tail,
}

/// The events of the operations not yet placed, in time order, as a doubly linked list over
/// indices: lifting an operation out and putting it back are O(1) (Knuth's dancing links),
/// and the search only ever puts back the operation it lifted last.
struct Events {
    nodes: Vec<Node>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The node of each operation's call; its return is `returns[op]`.
    calls: Vec<usize>,
    returns: Vec<usize>,
}

const HEAD: usize = 0;

impl Events {
    fn new(operations: &[Operation]) -> Self {
        // Calls sort before returns at the same time: intervals are closed, so operations
        // that only touch are concurrent.
        let mut events: Vec<(u64, bool, usize)> = (0..operations.len())
            .flat_map(|op| {
                let (start, end) = window(&operations[op]);
                [(start, false, op), (end, true, op)]
            })
            .collect();
        events.sort_unstable();
        let mut nodes = vec![Node::Head];
        let (mut calls, mut returns) = (vec![0; operations.len()], vec![0; operations.len()]);
        for (_, is_return, op) in events {
            if is_return {
                returns[op] = nodes.len();
                nodes.push(Node::Return);
            } else {
                calls[op] = nodes.len();
                nodes.push(Node::Call(op));
            }
        }
        nodes.push(Node::Tail);
        // The ends' outer links are never followed: the walk stops at a return or the tail.
        let len = nodes.len();
        Events {
            nodes,
            next: (1..=len).collect(),
            prev: (0..len).map(|i| i.wrapping_sub(1)).collect(),
            calls,
            returns,
        }
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn is_empty(&self) -> bool {
        matches!(self.nodes[self.first()], Node::Tail)
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.calls[op]);
        self.unlink(self.returns[op]);
    }

    /// Undoes the last [`Events::lift`], which must have been of `op`.
    fn unlift(&mut self, op: usize) {
        self.relink(self.returns[op]);
        self.relink(self.calls[op]);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Relinking works because an unlinked node keeps its own links.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    /// The operations real time allows to go next: the calls before the first return.
    fn candidates(&self) -> Vec<usize> {
        let mut node = self.first();
        let mut candidates = Vec::new();
        while let Node::Call(op) = self.nodes[node] {
            candidates.push(op);
            node = self.next[node];
        }
        candidates
    }
}

/// When the operation may take effect. An unconfirmed write with no bound may take effect
/// at any later time, which is the same as at the very end.
fn window(operation: &Operation) -> (u64, u64) {
    let end = operation.effect_deadline().unwrap_or(u64::MAX);
    // Hand-built histories may skip `validate`: never let an operation end before it starts.
    (operation.call, end.max(operation.call))
}

/// A set of operations, as the memoisation's key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)].into())
    }

    fn flip(&mut self, index: usize) {
        self.0[index / 64] ^= 1 << (index % 64);
    }
}

/// One placed operation: which outcome of its step, and the state before, to undo it.
struct Frame {
    op: usize,
    outcome: usize,
    before: State,
    after: State,
}

/// The deepest point the search reached: where a violation shows.
struct Furthest {
    /// Placed operations and the state after each.
    prefix: Vec<(usize, State)>,
    /// The operations real time allowed next there; none fitted.
    candidates: Vec<usize>,
}

enum End {
    Linearisable,
    Stuck(Furthest),
    TimedOut,
}

struct Search {
    events: Events,
    transitions: Vec<Transition>,
    state: State,
    placed: Bitset,
    stack: Vec<Frame>,
    /// Configurations already explored: placed set, and the states seen with it.
    seen: HashMap<Bitset, Vec<State>>,
}

impl Search {
    fn run(mut self, deadline: Option<Instant>) -> End {
        let mut furthest = Furthest {
            prefix: Vec::new(),
            candidates: self.events.candidates(),
        };
        let mut node = self.events.first();
        let mut steps = 0u32;
        while !self.events.is_empty() {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(STEPS_PER_CLOCK_CHECK)
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                return End::TimedOut;
            }
            // Undoing a placement brings the walk back to that operation's call, to try its
            // next outcome or else the operations after it.
            let (op, first_outcome) = match self.events.nodes[node] {
                Node::Call(op) => (op, 0),
                Node::Return => {
                    let Some(frame) = self.undo() else {
                        return End::Stuck(furthest);
                    };
                    node = self.events.calls[frame.op];
                    (frame.op, frame.outcome + 1)
                }
                Node::Head | Node::Tail => unreachable!("the walk meets a return before the end"),
            };
            if self.place(op, first_outcome) {
                if self.stack.len() > furthest.prefix.len() {
                    furthest = self.furthest();
                }
                node = self.events.first();
            } else {
                node = self.events.next[node];
            }
        }
        End::Linearisable
    }

    /// Places `op` with its first legal outcome from `first_outcome` on that leads to an
    /// unexplored configuration.
    fn place(&mut self, op: usize, first_outcome: usize) -> bool {
        let before = self.state;
        self.placed.flip(op);
        let outcomes = self.transitions[op].outcomes(before);
        for (outcome, after) in outcomes.into_iter().enumerate().skip(first_outcome) {
            let Some(after) = after else { continue };
            if self.explore(after) {
                self.stack.push(Frame {
                    op,
                    outcome,
                    before,
                    after,
                });
                self.state = after;
                self.events.lift(op);
                return true;
            }
        }
        self.placed.flip(op);
        false
    }

    /// Records the configuration (current placed set, `state`); false if it was seen before.
    fn explore(&mut self, state: State) -> bool {
        match self.seen.get_mut(&self.placed) {
            Some(states) if states.contains(&state) => false,
            Some(states) => {
                states.push(state);
                true
            }
            None => {
                self.seen.insert(self.placed.clone(), vec![state]);
                true
            }
        }
    }

    /// Takes back the last placement; `None` when there is none: nothing fits.
    fn undo(&mut self) -> Option<Frame> {
        let frame = self.stack.pop()?;
        self.events.unlift(frame.op);
        self.placed.flip(frame.op);
        self.state = frame.before;
        Some(frame)
    }

    fn furthest(&self) -> Furthest {
        Furthest {
            prefix: self
                .stack
                .iter()
                .map(|frame| (frame.op, frame.after))
                .collect(),
            candidates: self.events.candidates(),
        }
    }
}
