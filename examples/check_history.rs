//! Checks recorded histories of the hello-birthday API for linearizability.
//!
//! `cargo run --release --example check_history -- [--timeout-secs 60]
//! [--html-dir target/linearizability] FILE.jsonl...`
//!
//! All files are one history: keys are global, so pass the files of one run together. Prints
//! a line per key that is not linearisable (or could not be decided in time), writes a page
//! per illegal key, and a summary. Exit status: 0 linearisable, 1 illegal, 2 unknown,
//! 3 malformed input or usage.

// The checker is shared with the tests; this program uses only part of it.
#[allow(dead_code)]
#[path = "../tests/linearizability/checker/mod.rs"]
mod checker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use checker::{Operation, Verdict};

const USAGE_OR_INPUT_ERROR: u8 = 3;

#[derive(Parser)]
#[command(about = "Checks recorded hello-birthday histories for linearizability")]
struct Cli {
    /// Time budget for the whole check; keys still unfinished then are reported unknown.
    #[arg(long, default_value_t = 60.0)]
    timeout_secs: f64,
    /// Where to write a page per illegal key.
    #[arg(long, default_value = "target/linearizability")]
    html_dir: PathBuf,
    /// History files in JSON Lines, one operation per line.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are not errors; clap's own exit status for usage errors
            // (2) would read as "unknown" here.
            return if error.use_stderr() {
                ExitCode::from(USAGE_OR_INPUT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let Ok(budget) = Duration::try_from_secs_f64(cli.timeout_secs) else {
        eprintln!("--timeout-secs must be a non-negative number of seconds");
        return ExitCode::from(USAGE_OR_INPUT_ERROR);
    };
    let history = match read_history(&cli.files) {
        Ok(history) => history,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(USAGE_OR_INPUT_ERROR);
        }
    };
    let report = checker::check(&history, budget);
    for failure in report.failures() {
        println!("{failure}");
    }
    match checker::write_html(&cli.html_dir, &report) {
        Ok(pages) => pages
            .iter()
            .for_each(|page| println!("wrote {}", page.display())),
        Err(error) => eprintln!(
            "could not write the pages to {}: {error}",
            cli.html_dir.display()
        ),
    }
    let files = if cli.files.len() == 1 {
        "1 file".to_owned()
    } else {
        format!("{} files", cli.files.len())
    };
    println!("linearizability ({files}): {report}");
    ExitCode::from(match report.verdict() {
        Verdict::Ok => 0,
        Verdict::Illegal => 1,
        Verdict::Unknown => 2,
    })
}

/// All operations of all files, or why not, naming the file and line.
fn read_history(files: &[PathBuf]) -> Result<Vec<Operation>, String> {
    let mut history = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("{}: {error}", file.display()))?;
        history.extend(
            checker::parse_jsonl(&text).map_err(|error| format!("{}: {error}", file.display()))?,
        );
    }
    Ok(history)
}
