//! Configuration from flags and environment variables (flags win), via clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// A users-and-birthdays HTTP API that stores one JSON file per user in a shared directory.
#[derive(Debug, Clone, Parser)]
#[command(name = "hello-birthday", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// GET /health/live on the listen address; exit 0 if it answers 200, 1 otherwise.
    /// For container health checks in images without curl.
    Healthcheck,
}

/// Every setting of the server. Each has a flag and an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(
        long = "listen",
        env = "LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Directory holding the records, shared by every copy of the service (an EFS mount in
    /// production). Created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "./data", value_name = "PATH")]
    pub data_dir: PathBuf,

    /// Log format: human-readable text, or one JSON object per line for log collectors.
    /// The level comes from RUST_LOG (default "info").
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Longest a write waits for its user's lock (and any request for a storage slot) before
    /// answering 503 with Retry-After, in milliseconds.
    #[arg(long = "lock-timeout", env = "LOCK_TIMEOUT_MS", default_value_t = 2000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=59_000))]
    pub lock_timeout_ms: u64,

    /// Longest a request waits for its storage operation in all (slot, lock and file calls)
    /// before it is answered 503, in milliseconds. A write still running then is fenced: it
    /// never replaces the record once this has passed. Keep it below the load balancer's idle
    /// timeout (ALB: 60 s) and below the NFS lease (the fence relies on a lock held for less
    /// than the deadline being still held), and at least `--lock-timeout`.
    #[arg(long = "storage-timeout", env = "STORAGE_TIMEOUT_MS", default_value_t = 5000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=59_000))]
    pub storage_timeout_ms: u64,

    /// Most storage operations of requests in flight at once; more requests wait for a slot.
    #[arg(long, env = "MAX_STORAGE_OPS", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_storage_ops: u32,

    /// After SIGTERM/SIGINT, keep serving (with readiness 503) this long, so that a load
    /// balancer sees the instance go unready and stops sending it traffic, in seconds.
    #[arg(
        long = "drain-delay",
        env = "DRAIN_DELAY_SECS",
        default_value_t = 0,
        value_name = "SECS"
    )]
    pub drain_delay_secs: u64,

    /// After the drain delay, how long in-flight requests get to finish before the process
    /// exits anyway, in seconds. Keep it below the orchestrator's stop timeout (ECS: 30 s).
    #[arg(long = "shutdown-timeout", env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS, value_name = "SECS")]
    pub shutdown_timeout_secs: u64,

    /// Longest a client may take to send a whole request head (request line and headers), in
    /// milliseconds: from the connection's start for its first request, from the first byte
    /// for later ones. Past it the connection is closed without an answer. A load balancer
    /// sends a head at once; only a slow or hostile client ever waits on this.
    #[arg(long = "head-timeout", env = "HEAD_TIMEOUT_MS", default_value_t = 10_000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub head_timeout_ms: u64,

    /// Longest wait for the next piece of a request body once its head has arrived, in
    /// milliseconds; past it the request is answered 408 and the connection closed.
    #[arg(long = "body-chunk-timeout", env = "BODY_CHUNK_TIMEOUT_MS", default_value_t = 10_000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub body_chunk_timeout_ms: u64,

    /// Longest a request body may take to arrive in all, from the end of its head, in
    /// milliseconds; past it the request is answered 408 and the connection closed.
    #[arg(long = "body-timeout", env = "BODY_TIMEOUT_MS", default_value_t = 30_000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub body_timeout_ms: u64,

    /// How long a keep-alive connection may sit idle between an answer and the next request,
    /// in milliseconds, before it is closed. Keep it above the load balancer's idle timeout
    /// (ALB: 60 s): a target that closes first races the load balancer reusing the connection,
    /// and the client gets a 502.
    #[arg(long = "keep-alive-timeout", env = "KEEP_ALIVE_TIMEOUT_MS", default_value_t = 75_000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub keep_alive_timeout_ms: u64,

    /// Temp files left by crashed writers are removed once they are this old, in seconds
    /// (checked at startup and every sweep interval).
    #[arg(
        long = "orphan-age",
        env = "ORPHAN_AGE_SECS",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub orphan_age_secs: u64,
}

/// The default of `--shutdown-timeout`. Deployment checks compare ECS's `stopTimeout` to it.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 20;

/// The environment variable the log filter is read from (a `tracing` filter: `info`,
/// `hello_birthday=debug`, ...), and the filter used without it.
pub const LOG_FILTER_ENV: &str = "RUST_LOG";
pub const DEFAULT_LOG_FILTER: &str = "info";

/// One environment variable the service reads, and its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSetting {
    pub name: String,
    pub default: Option<String>,
}

/// Every environment variable the service reads, as clap itself describes the settings (and
/// the log filter): the deployment checks and the tests ask this rather than reading the source.
pub fn environment() -> Vec<EnvSetting> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut settings: Vec<EnvSetting> = command
        .get_arguments()
        .filter_map(|arg| {
            Some(EnvSetting {
                name: arg.get_env()?.to_str()?.to_owned(),
                default: arg
                    .get_default_values()
                    .first()
                    .map(|value| value.to_string_lossy().into_owned()),
            })
        })
        .collect();
    settings.push(EnvSetting {
        name: LOG_FILTER_ENV.to_owned(),
        default: Some(DEFAULT_LOG_FILTER.to_owned()),
    });
    settings
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    pub fn lock_timeout(&self) -> Duration {
        Duration::from_millis(self.lock_timeout_ms)
    }
    pub fn storage_timeout(&self) -> Duration {
        Duration::from_millis(self.storage_timeout_ms)
    }
    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.drain_delay_secs)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
    pub fn orphan_age(&self) -> Duration {
        Duration::from_secs(self.orphan_age_secs)
    }
    /// The connection-level timeouts, as the server loop takes them.
    pub fn connection_timeouts(&self) -> ConnectionTimeouts {
        ConnectionTimeouts {
            head: Duration::from_millis(self.head_timeout_ms),
            body_chunk: Duration::from_millis(self.body_chunk_timeout_ms),
            body: Duration::from_millis(self.body_timeout_ms),
            keep_alive: Duration::from_millis(self.keep_alive_timeout_ms),
        }
    }
}

/// How long a connection may wait on its client at each stage (see the flags of the same
/// names). Nothing bounds the time the service itself takes here: `--storage-timeout` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// For a whole request head.
    pub head: Duration,
    /// Between two pieces of a request body.
    pub body_chunk: Duration,
    /// For a whole request body.
    pub body: Duration,
    /// Between an answer and the next request's first byte.
    pub keep_alive: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_serve_locally_from_data() {
        let cli = Cli::try_parse_from(["hello-birthday"]).unwrap();
        assert!(cli.command.is_none());
        let s = cli.settings;
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.lock_timeout(), Duration::from_secs(2));
        assert_eq!(s.storage_timeout(), Duration::from_secs(5));
        assert_eq!(s.drain_delay(), Duration::ZERO);
        assert_eq!(s.shutdown_timeout(), Duration::from_secs(20));
        assert_eq!(
            s.connection_timeouts(),
            ConnectionTimeouts {
                head: Duration::from_secs(10),
                body_chunk: Duration::from_secs(10),
                body: Duration::from_secs(30),
                // Above the ALB's 60 s idle timeout, as nginx's 75 s is.
                keep_alive: Duration::from_secs(75),
            }
        );
    }

    #[test]
    fn the_environment_lists_every_setting_with_the_default_clap_applies() {
        let environment = environment();
        let names: Vec<&str> = environment.iter().map(|s| s.name.as_str()).collect();
        for expected in ["LISTEN_ADDR", "DATA_DIR", "STORAGE_TIMEOUT_MS", "RUST_LOG"] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        // One per setting (and the log filter): the healthcheck subcommand's `--help` and
        // `--version` read none.
        let settings = Cli::try_parse_from(["hello-birthday"]).unwrap().settings;
        let keep_alive = environment
            .iter()
            .find(|s| s.name == "KEEP_ALIVE_TIMEOUT_MS")
            .unwrap();
        assert_eq!(
            keep_alive.default.as_deref(),
            Some(settings.keep_alive_timeout_ms.to_string().as_str())
        );
        let shutdown = environment
            .iter()
            .find(|s| s.name == "SHUTDOWN_TIMEOUT_SECS")
            .unwrap();
        assert_eq!(
            shutdown.default,
            Some(DEFAULT_SHUTDOWN_TIMEOUT_SECS.to_string())
        );
    }

    #[test]
    fn rejects_out_of_range_values() {
        for args in [
            ["hello-birthday", "--lock-timeout", "0"],
            ["hello-birthday", "--max-storage-ops", "0"],
            ["hello-birthday", "--storage-timeout", "60000"],
            ["hello-birthday", "--lock-timeout", "60000"],
            ["hello-birthday", "--listen", "localhost"],
            ["hello-birthday", "--log-format", "xml"],
            ["hello-birthday", "--head-timeout", "0"],
            ["hello-birthday", "--body-chunk-timeout", "0"],
            ["hello-birthday", "--body-timeout", "0"],
            ["hello-birthday", "--keep-alive-timeout", "0"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
