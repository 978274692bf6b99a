//! The `hello-birthday` binary: parse settings, then serve or run the health check.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use hello_birthday::configuration::{Cli, Command, Settings};
use hello_birthday::startup::{ABANDON_BLOCKING_AFTER, Application, ShutdownSignal};
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
    let _log_writer = telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hello-birthday: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        // Before anything slow (opening the data dir on EFS): a SIGTERM from then on is a
        // graceful shutdown, not the default action (death with status 143).
        let shutdown = match ShutdownSignal::install() {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("hello-birthday: cannot install the signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("hello-birthday: {e}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped(shutdown.received()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "shutdown was not clean");
                ExitCode::FAILURE
            }
        }
    });
    // Dropping the runtime would wait for every blocking file call still running: one stuck on
    // a hung EFS mount, or polling a lock held elsewhere, would keep the process alive past the
    // shutdown timeout (until ECS's SIGKILL). Whatever is left is abandoned instead.
    runtime.shutdown_timeout(ABANDON_BLOCKING_AFTER);
    code
}
