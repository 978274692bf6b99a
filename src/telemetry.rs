//! Logging: human-readable text locally, one JSON object per line in production.

mod lines;
mod panics;

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::configuration::{DEFAULT_LOG_FILTER, LOG_FILTER_ENV, LogFormat};

pub use panics::catch;

/// Lines that may wait for the writer thread before new ones are dropped. With each line at
/// most `lines::MAX_LINE_BYTES` (4 KiB), a stalled log pipe holds at most 32 MiB of them (an
/// access-log line is about 300 bytes: some 2.5 MB in practice, seconds of traffic at full
/// speed).
const BUFFERED_LINES: usize = 8 * 1024;

/// Bytes of log lines the writer thread gathers into one `write(2)`.
const WRITE_BUFFER: usize = 64 * 1024;

/// Installs the global subscriber and the panic hook. The level comes from `RUST_LOG`
/// (default `info`). Logs go to stdout, where container runtimes collect them.
///
/// Lines are written by a thread of their own: a request never waits for a `write(2)` to
/// stdout, and a stalled log pipe (a blocked log driver, a reader that stopped) cannot stall
/// the async workers. If the pipe stays stalled until the queue is full, further lines are
/// dropped rather than blocking requests. Keep the returned guard alive until exit: dropping
/// it flushes what is buffered.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        // Batched: the writer thread writes whatever lines have queued up in one write(2) and
        // flushes whenever the queue is empty, so a line still appears at once when idle.
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stdout()));
    // Colour codes only for a person at a terminal, never into a pipe or a file.
    let colours = format == LogFormat::Text && std::io::stdout().is_terminal();
    let writer = lines::SafeLines::new(writer, lines::Style::new(format, colours));
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(move || writer.clone());
    // `try_init`: a second call (from tests) keeps the first subscriber instead of panicking.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    panics::install_hook();
    guard
}

#[cfg(test)]
mod tests {
    use super::*;
    use lines::MAX_LINE_BYTES;

    #[test]
    fn a_stalled_log_pipe_holds_at_most_32_mib_of_lines() {
        // docs/operations.md states this bound.
        assert_eq!(BUFFERED_LINES * MAX_LINE_BYTES, 32 * 1024 * 1024);
    }
}
