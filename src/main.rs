//! The `hello-birthday` binary: parse settings, then serve or run the health check.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use hello_birthday::configuration::{Cli, Command, Settings};
use hello_birthday::startup::{Application, shutdown_signal};
use hello_birthday::{healthcheck, telemetry};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line that names the bad value, instead of clap's multi-line usage text.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("hello-birthday: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Healthcheck) => match healthcheck::check(cli.settings.listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("hello-birthday healthcheck: {reason}");
                ExitCode::FAILURE
            }
        },
        None => serve(cli.settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hello-birthday: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("hello-birthday: {e}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "shutdown was not clean");
                ExitCode::FAILURE
            }
        }
    })
}
