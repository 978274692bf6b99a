//! Panics as log lines. Rust's default hook prints a panic to stderr over several lines,
//! outside the log format and with nothing that ties it to a request. Here a panic while a
//! request is handled ([`catch`]) becomes that request's 500 and its one access-log line names
//! the panic; any other panic is one ERROR line of its own.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};

thread_local! {
    /// Whether this thread is running code under [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The hook's description of the panic being caught, for [`catch`] to return.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default panic hook (for the whole process: call it once, from the binary).
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let description = describe(info);
        if CATCHING.try_with(Cell::get).unwrap_or(false) {
            let _ = CAUGHT.try_with(|caught| caught.replace(Some(description)));
            return;
        }
        let thread = std::thread::current();
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(thread = thread.name(), panic = %description, %backtrace, "panic");
        } else {
            tracing::error!(thread = thread.name(), panic = %description, "panic");
        }
    }));
}

/// Runs `f`; a panic in it comes back as `Err` with where it happened and its message,
/// instead of unwinding further.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let outer = CATCHING.replace(true);
    CAUGHT.set(None);
    // Whatever `f` touched is dropped or answered 500 by the caller; nothing is reused half
    // updated.
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(outer);
    result.map_err(|payload| {
        CAUGHT.take().unwrap_or_else(|| {
            // No hook of ours (unit tests): the message alone.
            format!("panicked: {}", message(payload.as_ref()))
        })
    })
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let message = message(info.payload());
    match info.location() {
        Some(at) => format!(
            "panicked at {}:{}:{}: {message}",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("panicked: {message}"),
    }
}

/// A panic's message: `panic!` makes it a `&str` or a `String`.
fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic with a non-text payload)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_an_error_with_its_message_and_catching_ends_with_it() {
        assert_eq!(catch(|| 7), Ok(7));
        let caught = catch(|| -> u8 { panic!("boom {}", 42) }).unwrap_err();
        assert!(caught.contains("boom 42"), "{caught}");
        assert!(!CATCHING.get());
        // Nested: the inner catch returns its own panic; the outer one goes on.
        let outer = catch(|| catch(|| panic!("inner")).unwrap_err());
        assert!(outer.unwrap().contains("inner"));
    }
}
