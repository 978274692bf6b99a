//! Whether this instance should get traffic: the data directory works and it is not shutting
//! down. Behind `GET /health/ready` (and `/health`), which load balancers poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::storage::{StorageError, Store};

/// How long a probe result is reused. Three load balancer nodes, a container health check and
/// a curious operator should not each cost EFS a write per request.
pub const PROBE_CACHE: Duration = Duration::from_secs(1);

/// Why the instance is not ready. Messages are shown to probe clients: no paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    ShuttingDown,
    DataDir(String),
}

pub struct Readiness {
    store: Store,
    metrics: Arc<Metrics>,
    /// How long a check waits for the probe before it reports not ready.
    probe_timeout: Duration,
    /// Set once, by the first SIGTERM/SIGINT; never cleared.
    shutting_down: AtomicBool,
    /// The async mutex makes concurrent checks share one probe instead of each running their own.
    probe: Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    /// The last result and when it was learnt.
    last: Option<(Instant, Result<(), String>)>,
    /// A probe still running. It lives in a task of its own, so a check that gives up (or whose
    /// client hangs up) leaves it to finish, and the next check picks up its result instead of
    /// starting a second probe on the same file.
    running: Option<JoinHandle<Result<(), StorageError>>>,
}

impl Readiness {
    pub fn new(store: Store, metrics: Arc<Metrics>, probe_timeout: Duration) -> Self {
        Self {
            store,
            metrics,
            probe_timeout,
            shutting_down: AtomicBool::new(false),
            probe: Mutex::new(ProbeState::default()),
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.metrics.ready.set(0);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub async fn check(&self) -> Result<(), NotReady> {
        if self.is_shutting_down() {
            // Also here: a check that was probing when shutdown began may have set it to 1.
            self.metrics.ready.set(0);
            return Err(NotReady::ShuttingDown);
        }
        let result = self.probe_result().await;
        // Shutdown may have begun while the probe ran.
        let ready = result.is_ok() && !self.is_shutting_down();
        self.metrics.ready.set(i64::from(ready));
        match result {
            Err(reason) => Err(NotReady::DataDir(reason)),
            Ok(()) if !ready => Err(NotReady::ShuttingDown),
            Ok(()) => Ok(()),
        }
    }

    /// The cached result if it is fresh, else the result of a (possibly already running) probe.
    async fn probe_result(&self) -> Result<(), String> {
        let mut state = self.probe.lock().await;
        if let Some((at, result)) = &state.last
            && at.elapsed() < PROBE_CACHE
        {
            return result.clone();
        }
        let store = &self.store;
        let running = state.running.get_or_insert_with(|| {
            let store = store.clone();
            tokio::spawn(async move { store.probe().await })
        });
        let result = match tokio::time::timeout(self.probe_timeout, running).await {
            Ok(finished) => {
                state.running = None;
                match finished {
                    Ok(probed) => probed.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("the probe task failed: {e}")),
                }
            }
            Err(_) => Err(format!(
                "the probe has not finished after {:?}",
                self.probe_timeout
            )),
        };
        if let Err(reason) = &result {
            tracing::warn!(%reason, "readiness probe failed");
        }
        state.last = Some((Instant::now(), result.clone()));
        result
    }
}
