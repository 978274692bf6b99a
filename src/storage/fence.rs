//! Keeps a write from taking effect after its request was answered, or after its deadline.
//!
//! On NFS (EFS) a writer can be cut off from the server while it holds its user's lock. Its file
//! calls then block (`hard` mount); when its lease runs out the server gives the lock to another
//! host, which writes; when the link comes back the blocked calls complete and, without a fence,
//! the stale writer's rename would put an older record back over newer ones. The request, in the
//! meantime, must be answered within its deadline, and that answer must be true.
//!
//! The fence is the one point both sides pass: the writer asks for it just before its rename,
//! the request asks for it when its deadline fires. Whoever comes first decides:
//! - writer first: the rename goes ahead; a request that times out afterwards can only say the
//!   write *may* have been saved ([`Abandoned::MayHaveCommitted`]);
//! - deadline first: the writer will not rename, so the request can say nothing was changed.
//!
//! The writer also refuses once the deadline has passed by its own clock, so a write that was
//! blocked past it never renames even if the timer has not fired yet. Because the deadline is
//! counted from the request's arrival, before the lock was asked for, a writer that passes the
//! fence has held its lock for less than the deadline: as long as the deadline is shorter than
//! the NFS lease, the server cannot yet have given that lock to anyone else.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

#[derive(Debug)]
pub struct Fence {
    state: AtomicU8,
    deadline: Instant,
}

/// What a request that gave up waiting may tell its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The writer had not reached its rename, and now never will.
    NothingChanged,
    /// The writer had passed the fence: its rename may have happened, or may still happen.
    MayHaveCommitted,
}

impl Fence {
    pub fn new(deadline: Instant) -> Self {
        Self {
            state: AtomicU8::new(OPEN),
            deadline,
        }
    }

    /// The writer, right before its rename: `true` to go ahead, `false` if the request has
    /// given up (or its deadline has passed), in which case the write must not take effect.
    pub fn pass(&self) -> bool {
        let to = if self.expired() {
            ABANDONED
        } else {
            COMMITTING
        };
        self.state
            .compare_exchange(OPEN, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && to == COMMITTING
    }

    /// Whether the deadline has passed (by this clock; the request may not have noticed yet).
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The request, when its deadline fires: closes the fence if the writer has not passed it.
    pub fn abandon(&self) -> Abandoned {
        match self
            .state
            .compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(ABANDONED) => Abandoned::NothingChanged,
            Err(_) => Abandoned::MayHaveCommitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_writer_that_passes_first_makes_a_late_answer_say_maybe() {
        let fence = Fence::new(later());
        assert!(fence.pass());
        assert_eq!(fence.abandon(), Abandoned::MayHaveCommitted);
    }

    #[test]
    fn an_abandoned_request_keeps_its_writer_from_renaming() {
        let fence = Fence::new(later());
        assert_eq!(fence.abandon(), Abandoned::NothingChanged);
        assert!(!fence.pass());
        // And asking again does not change the answer.
        assert_eq!(fence.abandon(), Abandoned::NothingChanged);
    }

    #[test]
    fn a_writer_past_its_deadline_does_not_rename_even_before_the_timer_fires() {
        let fence = Fence::new(Instant::now());
        assert!(!fence.pass());
        assert_eq!(fence.abandon(), Abandoned::NothingChanged);
    }
}
