//! `hello-birthday`: a users-and-birthdays HTTP API that keeps one JSON file per user on a
//! shared file system, so that any number of copies can serve the same data.
//!
//! Layout, one module per concern:
//! - [`configuration`]: command-line flags and environment variables.
//! - [`domain`]: `Username`, `DateOfBirth` and birthday arithmetic; parsed, then trusted.
//! - [`storage`]: records on disk, locks, atomic replace, NFS/EFS retries.
//! - [`routes`]: warp filters and handlers; [`problem`] is the RFC 9457 error body.
//! - [`readiness`]: the cached data-directory probe and the shutdown flag behind `/health`.
//! - [`metrics`] and [`telemetry`]: Prometheus metrics, logs.
//! - [`startup`]: builds the app from configuration, serves, shuts down gracefully.
//! - [`healthcheck`]: the `healthcheck` subcommand for container health checks.
#![forbid(unsafe_code)]

pub mod configuration;
pub mod domain;
pub mod healthcheck;
pub mod metrics;
pub mod problem;
pub mod random;
pub mod readiness;
pub mod routes;
pub mod server;
pub mod startup;
pub mod storage;
pub mod telemetry;

/// The crate version, reported in logs and `hello_birthday_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this binary was built from, when the build passed `GIT_COMMIT`
/// (the Dockerfile does); "unknown" otherwise.
pub const GIT_COMMIT: &str = match option_env!("GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};
