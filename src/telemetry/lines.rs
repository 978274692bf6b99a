//! The last step before a log line is queued: characters that could disguise it are escaped,
//! and it is cut to [`MAX_LINE_BYTES`], so that the queue of lines waiting for a stalled log
//! pipe is bounded in bytes, not only in lines.
//!
//! tracing-subscriber escapes some of this itself (JSON strings; ESC and C1 controls in the
//! text format), but not a line break inside a text-format message, nor Unicode line and
//! paragraph separators or bidirectional controls, which a viewer shows as a new line or as
//! text running the other way: a client could write a convincing fake line into its path.

use std::io::Write;

use crate::configuration::LogFormat;

/// The longest line queued, newline included. A request's line fits with room to spare: its
/// client-controlled fields are cut before they are logged (`routes::observe`).
pub(super) const MAX_LINE_BYTES: usize = 4 * 1024;

/// How much of a cut line is kept, before escaping.
const KEPT_OF_A_CUT_LINE: usize = 1024;

/// How lines are escaped: each format in its own syntax, so the line stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `\u{2028}`, as Rust's `Debug` writes it; `keep_esc` when colour codes are wanted.
    Text { keep_esc: bool },
    /// `\u2028`: JSON's own escape, which a JSON reader decodes back to the character.
    Json,
}

impl Style {
    pub(super) fn new(format: LogFormat, colours: bool) -> Self {
        match format {
            LogFormat::Text => Self::Text { keep_esc: colours },
            LogFormat::Json => Self::Json,
        }
    }
}

/// Writes each line it is given (tracing-subscriber's fmt layer writes one event per call)
/// to `inner`, escaped and capped.
#[derive(Clone)]
pub(super) struct SafeLines<W> {
    inner: W,
    style: Style,
}

impl<W> SafeLines<W> {
    pub(super) fn new(inner: W, style: Style) -> Self {
        Self { inner, style }
    }
}

impl<W: Write> Write for SafeLines<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if is_plain(line) {
            // Almost every line: nothing to escape, short enough, written as it is (`render`
            // decodes and pushes character by character, ~40 instructions a byte).
            self.inner.write_all(line)?;
        } else {
            self.inner.write_all(&render(line, self.style))?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `render` would give `line` back unchanged: it ends in its newline, is not over the
/// cap, and has nothing but printable ASCII and tabs before it.
fn is_plain(line: &[u8]) -> bool {
    line.len() <= MAX_LINE_BYTES
        && line.split_last().is_some_and(|(last, body)| {
            *last == b'\n'
                && body
                    .iter()
                    .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        })
}

/// One line, escaped and capped, ending in a newline.
fn render(line: &[u8], style: Style) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match (c, style) {
            ('\n', _) => out.push_str("\\n"),
            ('\r', _) => out.push_str("\\r"),
            ('\x1b', Style::Text { keep_esc: true }) => out.push(c),
            (c, Style::Text { .. }) if disguises(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            (c, Style::Json) if disguises(c) => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            (c, _) => out.push(c),
        }
    }
    if out.len() >= MAX_LINE_BYTES {
        out = cut(&out, style);
    }
    out.push('\n');
    out.into_bytes()
}

/// Whether `c` can make a line look like something else: a control character other than
/// tab, a line or paragraph separator, or a bidirectional mark, embedding, override or isolate.
fn disguises(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{061c}'
        )
}

/// A line too long to queue, replaced by its beginning and its length. A JSON line stays one
/// valid JSON object.
fn cut(line: &str, style: Style) -> String {
    let mut end = KEPT_OF_A_CUT_LINE.min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let kept = &line[..end];
    match style {
        Style::Text { .. } => format!("{kept} … [log line cut: {} bytes]", line.len()),
        Style::Json => serde_json::json!({
            "level": "WARN",
            "message": "log line cut",
            "bytes": line.len(),
            "line": kept,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: Style = Style::Text { keep_esc: false };

    fn text(line: &str, style: Style) -> String {
        String::from_utf8(render(line.as_bytes(), style)).unwrap()
    }

    #[test]
    fn characters_that_disguise_a_line_are_escaped_in_both_formats() {
        let forged =
            "GET /a\u{2028}INFO fake\u{2029}\u{202e}gnp.exe\u{2066}x\u{2069}\u{7f}\u{85}\r\n";
        let line = text(forged, TEXT);
        assert_eq!(
            line,
            "GET /a\\u{2028}INFO fake\\u{2029}\\u{202e}gnp.exe\\u{2066}x\\u{2069}\\u{7f}\\u{85}\\r\n"
        );
        let json = serde_json::json!({ "path": forged.trim_end() }).to_string() + "\n";
        let line = text(&json, Style::Json);
        assert!(!line.trim_end().contains(|c: char| disguises(c)), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
        // Still JSON, and a reader gets the characters back.
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["path"], forged.trim_end());
    }

    #[test]
    fn a_plain_line_is_one_render_gives_back_unchanged_and_nothing_else_is() {
        let longest = format!("{}\n", "x".repeat(MAX_LINE_BYTES - 1));
        for line in [
            "INFO\trequest GET /hello/alice 200\n",
            "{\"a\":\"~ \"}\n",
            &longest,
        ] {
            assert!(is_plain(line.as_bytes()), "{line:?}");
            assert_eq!(text(line, TEXT), line);
            assert_eq!(text(line, Style::Json), line);
        }
        let too_long = format!("{}\n", "x".repeat(MAX_LINE_BYTES));
        for line in [
            "no newline",
            "INFO a\nERROR b\n",
            "a\rb\n",
            "\x1b[32mINFO\n",
            "\x7f\n",
            "Jürgen\n",
            "a\u{2028}b\n",
            &too_long,
        ] {
            assert!(!is_plain(line.as_bytes()), "{line:?}");
        }
        // The one that is not plain for its length alone is cut by `render`.
        assert_ne!(text(&too_long, TEXT), too_long);
    }

    #[test]
    fn a_line_break_inside_a_text_line_cannot_start_a_new_line() {
        let line = text("INFO request\nERROR forged\n", TEXT);
        assert_eq!(line, "INFO request\\nERROR forged\n");
    }

    #[test]
    fn tabs_and_ordinary_text_pass_and_colour_codes_pass_only_when_kept() {
        let plain = "INFO\tJürgen 名前 ok\n";
        assert_eq!(text(plain, TEXT), plain);
        let coloured = "\x1b[32m INFO\x1b[0m x\n";
        assert_eq!(text(coloured, Style::Text { keep_esc: true }), coloured);
        assert_eq!(text(coloured, TEXT), "\\u{1b}[32m INFO\\u{1b}[0m x\n");
    }

    #[test]
    fn a_line_over_the_cap_is_cut_and_a_json_line_stays_json() {
        let long = format!("INFO {}\n", "é".repeat(MAX_LINE_BYTES));
        let line = text(&long, TEXT);
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        assert!(line.ends_with(&format!("[log line cut: {} bytes]\n", long.len() - 1)));

        let json =
            serde_json::json!({ "level": "INFO", "path": "\"".repeat(MAX_LINE_BYTES) }).to_string();
        let line = text(&json, Style::Json);
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["message"], "log line cut");
        assert_eq!(parsed["bytes"], json.len());
        assert!(
            parsed["line"]
                .as_str()
                .unwrap()
                .starts_with(r#"{"level":"INFO""#)
        );
    }
}
