//! Building the application from its settings, serving, and shutting down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

use crate::configuration::Settings;
use crate::domain::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::{AppState, service};
use crate::storage::{StorageError, Store, StoreConfig, SweepScope};

/// The orphan sweep never runs more often than this, however small `--orphan-age` is: each one
/// lists `tmp/` and the data directory, a few round trips on EFS for nothing most minutes.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Why the service could not start. One line each, naming the offending value.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "--lock-timeout ({lock:?}) must not exceed --storage-timeout ({storage:?}): the lock wait is part of the storage deadline"
    )]
    LockTimeoutAboveStorageTimeout { lock: Duration, storage: Duration },
    #[error("data directory {} is not a directory", .0.display())]
    DataDirNotADirectory(PathBuf),
    #[error("data directory {} is not usable: {source}", .path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why serving ended other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("in-flight requests did not finish within the shutdown timeout of {0:?}")]
    ShutdownTimedOut(Duration),
    #[error("the server task failed: {0}")]
    Server(#[from] tokio::task::JoinError),
}

/// A ready-to-serve application: storage opened and checked, listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    settings: Settings,
}

impl Application {
    /// Opens the data directory (creating it) and binds the listener. Fails fast, before
    /// serving anything, when either is unusable.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock injected (tests pin the date).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        if settings.lock_timeout() > settings.storage_timeout() {
            return Err(StartupError::LockTimeoutAboveStorageTimeout {
                lock: settings.lock_timeout(),
                storage: settings.storage_timeout(),
            });
        }
        let metrics = Arc::new(Metrics::new());
        let data_dir = settings.data_dir.clone();
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(StartupError::DataDirNotADirectory(data_dir));
        }
        let config = StoreConfig {
            lock_timeout: settings.lock_timeout(),
            storage_timeout: settings.storage_timeout(),
            max_concurrent_ops: settings.max_storage_ops as usize,
        };
        let store = Store::open(&data_dir, config, metrics.storage.clone()).map_err(|source| {
            StartupError::DataDir {
                path: data_dir,
                source,
            }
        })?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let readiness = Arc::new(Readiness::new(
            store.clone(),
            Arc::clone(&metrics),
            settings.lock_timeout(),
        ));
        Ok(Self {
            listener,
            state: AppState {
                store,
                clock,
                readiness,
                metrics,
            },
            settings,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then: readiness turns 503 at once; requests are
    /// still served for the drain delay (so load balancers can take the instance out);
    /// then the listener closes, idle keep-alive connections are closed, and in-flight
    /// requests get up to the shutdown timeout to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            state,
            settings,
        } = self;
        tracing::info!(
            addr = %listener.local_addr().expect("bound"),
            data_dir = %settings.data_dir.display(),
            version = crate::VERSION,
            commit = crate::GIT_COMMIT,
            "listening"
        );
        let sweeper = tokio::spawn(sweep_periodically(
            state.store.clone(),
            settings.orphan_age(),
            Arc::clone(&state.metrics),
        ));
        let (stop_accepting, stopped) = oneshot::channel::<()>();
        let server = crate::server::serve(
            listener,
            service(state.clone()),
            settings.connection_timeouts(),
            Arc::clone(&state.metrics),
            async {
                // A dropped sender also stops the server.
                let _ = stopped.await;
            },
        );
        let mut server = tokio::spawn(server);

        // The signal, then the drain delay, all while the server keeps serving.
        let drain = settings.drain_delay();
        let signalled_and_drained = async {
            shutdown.await;
            state.readiness.begin_shutdown();
            tracing::info!(drain_delay = ?drain, "shutdown requested: readiness is now 503");
            tokio::time::sleep(drain).await;
        };
        let ended_early = tokio::select! {
            () = signalled_and_drained => None,
            finished = &mut server => Some(finished),
        };
        sweeper.abort();
        if let Some(finished) = ended_early {
            return finished.map_err(ServeError::from);
        }
        let _ = stop_accepting.send(());
        let timeout = settings.shutdown_timeout();
        tracing::info!(shutdown_timeout = ?timeout, "no longer accepting connections; finishing in-flight requests");
        match tokio::time::timeout(timeout, server).await {
            Ok(finished) => {
                finished?;
                tracing::info!("shutdown complete");
                Ok(())
            }
            Err(_) => Err(ServeError::ShutdownTimedOut(timeout)),
        }
    }
}

/// Removes orphaned temp files now and then every `max(orphan_age, 1 min)`. The first sweep
/// also looks where versions before `tmp/` left theirs (it lists every user, so only once).
async fn sweep_periodically(store: Store, orphan_age: Duration, metrics: Arc<Metrics>) {
    let mut interval = tokio::time::interval(orphan_age.max(MIN_SWEEP_INTERVAL));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scope = SweepScope::WithLegacy;
    loop {
        interval.tick().await;
        let swept = store.sweep_orphans(orphan_age, scope).await;
        scope = SweepScope::InFlight;
        if let Ok(report) = &swept {
            metrics.orphan_sweep(report.removed, report.in_use, report.errors);
        }
        match swept {
            Ok(report) if report.removed > 0 || report.in_use > 0 || report.errors > 0 => {
                tracing::info!(
                    removed = report.removed,
                    in_use = report.in_use,
                    errors = report.errors,
                    "orphan sweep"
                );
            }
            Ok(_) => tracing::debug!("orphan sweep found nothing"),
            Err(error) => tracing::warn!(%error, "orphan sweep failed"),
        }
    }
}

/// How long the process waits, after serving has ended, for blocking file-system calls that
/// are still running before it exits without them.
pub const ABANDON_BLOCKING_AFTER: Duration = Duration::from_secs(1);

/// SIGTERM (what ECS sends) and SIGINT (Ctrl-C), caught from the moment of [`install`]:
/// a signal that arrives while the application is still starting is not lost.
///
/// [`install`]: ShutdownSignal::install
pub struct ShutdownSignal {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignal {
    /// Installs the handlers now. Needs a running Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT received since [`ShutdownSignal::install`].
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("received SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("received SIGINT"),
        }
    }
}
