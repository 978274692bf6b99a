//! Request bodies with deadlines: the next piece must come within `--body-chunk-timeout`,
//! and the whole body within `--body-timeout` of the end of the head. A client that trickles
//! a body, or stops sending it, otherwise holds its connection (and a storage-free request)
//! for as long as it likes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a [`TimedBody`] ends with when its client was too slow. Routes find it in the
/// error chain of a body read (`source()`) and answer 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimedOut {
    #[error("no part of the request body arrived for {} ms", .0.as_millis())]
    Chunk(Duration),
    #[error("the request body did not arrive in full within {} ms", .0.as_millis())]
    Whole(Duration),
}

impl BodyTimedOut {
    /// Whether `error`, or anything in its chain, is a body timeout.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(timed_out) = e.downcast_ref::<Self>() {
                return Some(*timed_out);
            }
            next = e.source();
        }
        None
    }
}

/// A request body under the two deadlines. The timer starts when the request is handed to
/// the service, and is armed only once the body is read: a route that never reads it pays
/// nothing.
pub struct TimedBody {
    inner: Incoming,
    chunk_timeout: Duration,
    whole_timeout: Duration,
    /// When the whole body must have arrived.
    whole_deadline: Instant,
    /// The earlier of the two deadlines, once the body is being read.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    pub(super) fn new(inner: Incoming, chunk_timeout: Duration, whole_timeout: Duration) -> Self {
        Self {
            inner,
            chunk_timeout,
            whole_timeout,
            whole_deadline: Instant::now() + whole_timeout,
            timer: None,
        }
    }

    /// Re-arms the timer for the next piece, measured from now.
    fn rearm(&mut self) {
        let at = (Instant::now() + self.chunk_timeout).min(self.whole_deadline);
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.timer.is_none() {
            this.rearm();
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if matches!(frame, Some(Ok(_))) {
                this.rearm();
            }
            return Poll::Ready(frame.map(|result| result.map_err(BoxError::from)));
        }
        let timer = this.timer.as_mut().expect("armed above");
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let timed_out = if Instant::now() >= this.whole_deadline {
            BodyTimedOut::Whole(this.whole_timeout)
        } else {
            BodyTimedOut::Chunk(this.chunk_timeout)
        };
        Poll::Ready(Some(Err(Box::new(timed_out))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_found_anywhere_in_an_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapper(#[source] BoxError);

        let timed_out = BodyTimedOut::Chunk(Duration::from_secs(1));
        let wrapped = Wrapper(Box::new(Wrapper(Box::new(timed_out))));
        assert_eq!(BodyTimedOut::find(&wrapped), Some(timed_out));
        let other = Wrapper(Box::new(std::io::Error::other("reset")));
        assert_eq!(BodyTimedOut::find(&other), None);
    }
}
