//! Jittered exponential backoff for the waits that poll: a lock held by another host (a
//! blocking lock on NFS may sleep long after its release), a stale handle, a torn read.

use std::time::Duration;

use crate::random::random_u64;

/// Exponential backoff with "equal jitter": each delay is uniformly random in the upper half
/// of the current step, so competing waiters spread out instead of retrying in lockstep.
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { step: first, max }
    }

    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_nanos(random_u64() % nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(16));
        let steps = [2, 4, 8, 16, 16, 16];
        let mut delays = Vec::new();
        for step in steps {
            let delay = backoff.next_delay();
            let step = Duration::from_millis(step);
            assert!(
                delay >= step / 2 && delay < step,
                "{delay:?} not in [{:?}, {step:?})",
                step / 2
            );
            delays.push(delay);
        }
        // Jitter: not every delay at a given step is the same.
        assert!(delays[3..].windows(2).any(|w| w[0] != w[1]));
    }
}
