//! A page per illegal key that shows why, after Porcupine's visualisation: one row per
//! client, a bar per operation from call to return, the longest linearisable prefix
//! numbered in order with the value after each step, and the operations that could not go
//! next outlined in red.
//!
//! The page is self-contained (inline SVG and CSS, no script) so that it can be kept as a
//! CI artefact and opened anywhere. (Writing to a `String` cannot fail: hence `let _ = write!`.)

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{fs, io};

use super::history::millis;
use super::{Action, KeyReport, KeyResult, Operation, Outcome, Report, Step};

/// Horizontal distance between two consecutive event times. The axis is ordinal, as in
/// Porcupine: what matters is which events come before which, and real spacing would
/// squeeze a fast request next to a slow one into an invisible sliver.
const SLOT: usize = 56;
const LEFT: usize = 110;
const TOP: usize = 40;
/// A lane, top to bottom: the label, the bar, the place in the linearisation.
const LANE: usize = 56;
const LABEL_Y: usize = 12;
const BAR_Y: usize = 16;
const BAR: usize = 18;
const NOTE_Y: usize = BAR_Y + BAR + 13;
const ROW_GAP: usize = 6;
/// So that an operation whose call and return coincide still shows.
const MIN_BAR: usize = 6;
/// Longest file name stem; longer keys are cut and given a hash to stay distinct.
const MAX_STEM: usize = 100;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}\
svg text{font-size:11px}\
.put{fill:#4e79a7}.get{fill:#59a14f}.info{fill:#f28e2b;stroke:#b35c00;stroke-dasharray:4 3}\
.open{fill:url(#fade);stroke:#b35c00;stroke-dasharray:4 3}\
.stuck{stroke:#d62728;stroke-width:3;stroke-dasharray:none}\
.label{fill:#222}.order{font-weight:bold}.order.stuck-text{fill:#d62728}\
.grid{stroke:#ddd}.axis{fill:#555}\
.swatch{display:inline-block;width:2em;height:1em;vertical-align:middle;margin:0 .3em 0 1em}";

/// Writes `<dir>/<key>.html` for each illegal key and returns the paths written.
pub fn write_html(dir: &Path, report: &Report) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let illegal = report
        .keys
        .iter()
        .filter(|key| matches!(key.result, KeyResult::Illegal { .. }));
    illegal
        .map(|key| {
            let path = dir.join(format!("{}.html", file_stem(&key.key)));
            fs::write(&path, page(key))?;
            Ok(path)
        })
        .collect()
}

/// The key as a file name: it is user input, so anything but `[A-Za-z0-9_-]` is
/// percent-encoded, and a long key is cut and made unique again with a hash.
fn file_stem(key: &str) -> String {
    if key.is_empty() {
        // Encoding never yields a bare "%", so this cannot collide with another key.
        return "%".to_owned();
    }
    let mut stem = String::new();
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            stem.push(char::from(byte));
        } else {
            let _ = write!(stem, "%{byte:02X}");
        }
    }
    if stem.len() > MAX_STEM {
        stem.truncate(MAX_STEM - 17);
        let _ = write!(stem, "-{:016x}", fnv1a(key.as_bytes()));
    }
    stem
}

/// FNV-1a: a hash that stays the same across Rust versions, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn page(key: &KeyReport) -> String {
    let KeyResult::Illegal {
        longest_prefix,
        stuck,
    } = &key.result
    else {
        unreachable!("only illegal keys get a page")
    };
    let title = escape(&format!("{} key {:?}", key.result.verdict(), key.key));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(
        html,
        "<h1>{title}</h1>\n<p>{}</p>",
        escape(&key.explanation())
    );
    html.push_str(&legend());
    html.push_str(&Timeline::new(&key.operations).svg(longest_prefix, stuck));
    html.push_str(&prefix_list(&key.operations, longest_prefix));
    html.push_str("</body></html>\n");
    html
}

fn legend() -> String {
    let swatch = |class: &str, text: &str| {
        format!(
            "<svg class=\"swatch\" viewBox=\"0 0 30 14\"><rect class=\"{class}\" x=\"1\" y=\"1\" width=\"28\" height=\"12\"/></svg>{text}"
        )
    };
    format!(
        "<p>{}{}{}{}{}<br>Bars run from call to return; the horizontal axis orders events but is not to scale \
         (exact times, in ms on the client's clock, are in each bar's tooltip). <b>#n → v</b>: n-th in the \
         longest linearisable prefix, leaving the value v.</p>\n",
        swatch("put", "put"),
        swatch("get", "get"),
        swatch("info", "unconfirmed put, until its deadline"),
        swatch("open", "unconfirmed put without deadline"),
        swatch("get stuck", "could not be placed next"),
    )
}

/// The linearisation in words, for readers without the picture.
fn prefix_list(operations: &[Operation], prefix: &[Step]) -> String {
    let mut html = String::from("<h2>Longest linearisable prefix</h2>\n<ol>\n");
    for step in prefix {
        let state = step.state.as_deref().unwrap_or("no user");
        let _ = writeln!(
            html,
            "<li>{} → {}</li>",
            escape(&operations[step.op].describe()),
            escape(state)
        );
    }
    html.push_str("</ol>\n");
    html
}

/// Where each operation goes: its lane among its process's, and its ends on the axis.
struct Timeline<'a> {
    operations: &'a [Operation],
    /// Every distinct event time, ascending: a time's index is its slot on the axis.
    times: Vec<u64>,
    /// Per process, in id order: how many lanes its overlapping operations need.
    lanes: BTreeMap<u64, usize>,
    /// Per operation: its lane within its process.
    lane: Vec<usize>,
}

impl<'a> Timeline<'a> {
    fn new(operations: &'a [Operation]) -> Self {
        let mut times: Vec<u64> = operations
            .iter()
            .flat_map(|op| [Some(op.call), op.ret, op.effect_by])
            .flatten()
            .collect();
        times.sort_unstable();
        times.dedup();
        let mut timeline = Timeline {
            operations,
            times,
            lanes: BTreeMap::new(),
            lane: vec![0; operations.len()],
        };
        timeline.assign_lanes();
        timeline
    }

    /// Gives each operation the first lane of its process free at its start: a process
    /// can have several operations open at once (an abandoned request goes on).
    fn assign_lanes(&mut self) {
        let mut order: Vec<usize> = (0..self.operations.len()).collect();
        order.sort_by_key(|&op| self.operations[op].call);
        let mut lane_ends: HashMap<u64, Vec<usize>> = HashMap::new();
        for op in order {
            let (start, end) = self.span(op);
            let ends = lane_ends.entry(self.operations[op].process).or_default();
            let lane = ends
                .iter()
                .position(|&lane_end| lane_end < start)
                .unwrap_or(ends.len());
            if lane == ends.len() {
                ends.push(end);
            } else {
                ends[lane] = end;
            }
            self.lane[op] = lane;
        }
        self.lanes = lane_ends
            .into_iter()
            .map(|(process, ends)| (process, ends.len()))
            .collect();
    }

    fn x(&self, time: u64) -> usize {
        LEFT + SLOT / 2 + self.times.partition_point(|&t| t < time) * SLOT
    }

    fn right_edge(&self) -> usize {
        LEFT + (self.times.len() + 1) * SLOT
    }

    /// A bar's left and right x: from call to the end of the time it may take effect, to
    /// the edge if that has no end.
    fn span(&self, op: usize) -> (usize, usize) {
        let operation = &self.operations[op];
        let start = self.x(operation.call);
        let end = operation
            .effect_deadline()
            .map_or(self.right_edge(), |end| self.x(end));
        (start, end.max(start + MIN_BAR))
    }

    /// The y of the top of each process's first lane, in process order.
    fn row_tops(&self) -> BTreeMap<u64, usize> {
        let mut top = TOP;
        self.lanes
            .iter()
            .map(|(&process, &lanes)| {
                let row = (process, top);
                top += lanes * LANE + ROW_GAP;
                row
            })
            .collect()
    }

    fn svg(&self, prefix: &[Step], stuck: &[usize]) -> String {
        let rows = self.row_tops();
        let height = TOP
            + self
                .lanes
                .values()
                .map(|lanes| lanes * LANE + ROW_GAP)
                .sum::<usize>()
            + 10;
        let width = self.right_edge() + 20;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\
             <defs><linearGradient id=\"fade\"><stop offset=\"0.5\" stop-color=\"#f28e2b\"/>\
             <stop offset=\"1\" stop-color=\"#f28e2b\" stop-opacity=\"0\"/></linearGradient></defs>\n"
        );
        self.draw_axis(&mut svg, height);
        for (&process, &top) in &rows {
            let _ = writeln!(
                svg,
                "<text x=\"8\" y=\"{}\">process {process}</text>",
                top + BAR_Y + 13
            );
        }
        let positions: HashMap<usize, (usize, &Step)> = prefix
            .iter()
            .enumerate()
            .map(|(i, step)| (step.op, (i + 1, step)))
            .collect();
        for op in 0..self.operations.len() {
            let top = rows[&self.operations[op].process] + self.lane[op] * LANE;
            self.draw_operation(
                &mut svg,
                op,
                top,
                positions.get(&op).copied(),
                stuck.contains(&op),
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// A thin line per event time, labelled every other one relative to the first.
    fn draw_axis(&self, svg: &mut String, height: usize) {
        let Some(&first) = self.times.first() else {
            return;
        };
        for (slot, &time) in self.times.iter().enumerate() {
            let x = self.x(time);
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{height}\"/>",
                TOP - 8
            );
            if slot % 2 == 0 {
                let _ = write!(
                    svg,
                    "<text class=\"axis\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">+{}</text>",
                    TOP - 14,
                    millis(time - first)
                );
            }
        }
        svg.push('\n');
    }

    fn draw_operation(
        &self,
        svg: &mut String,
        op: usize,
        top: usize,
        position: Option<(usize, &Step)>,
        stuck: bool,
    ) {
        let operation = &self.operations[op];
        let (x1, x2) = self.span(op);
        let mut class = match (&operation.action, operation.outcome) {
            (Action::Put(_), Outcome::Info) if operation.effect_by.is_none() => "open",
            (Action::Put(_), Outcome::Info) => "info",
            (Action::Put(_), _) => "put",
            (Action::Get(_), _) => "get",
        }
        .to_owned();
        if stuck {
            class.push_str(" stuck");
        }
        let _ = write!(
            svg,
            "<g><title>{}</title><text class=\"label\" x=\"{x1}\" y=\"{}\">{}</text>\
             <rect class=\"{class}\" x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"{BAR}\" rx=\"3\"/>",
            escape(&tooltip(operation)),
            top + LABEL_Y,
            escape(&operation.label()),
            top + BAR_Y,
            x2 - x1,
        );
        let annotation = match position {
            Some((n, step)) => Some((
                "order",
                format!("#{n} → {}", step.state.as_deref().unwrap_or("no user")),
            )),
            None if stuck => Some(("order stuck-text", "stuck: cannot go next".to_owned())),
            None => None,
        };
        if let Some((class, text)) = annotation {
            let _ = write!(
                svg,
                "<text class=\"{class}\" x=\"{x1}\" y=\"{}\">{}</text>",
                top + NOTE_Y,
                escape(&text)
            );
        }
        svg.push_str("</g>\n");
    }
}

fn tooltip(operation: &Operation) -> String {
    let mut text = operation.describe();
    if let Some(by) = operation.effect_by {
        let _ = write!(text, ", takes effect by {}", millis(by));
    }
    if let Some(note) = &operation.note {
        let _ = write!(text, "\n{note}");
    }
    text
}
