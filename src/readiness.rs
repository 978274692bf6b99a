//! Whether this instance should get traffic: the data directory works and it is not shutting
//! down. Behind `GET /health/ready` (and `/health`), which load balancers poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::storage::Store;

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
    /// Set once, by the first SIGTERM/SIGINT; never cleared.
    shutting_down: AtomicBool,
    /// The last probe's time and result. The async mutex also makes concurrent callers wait
    /// for one probe instead of each running their own.
    last_probe: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            shutting_down: AtomicBool::new(false),
            last_probe: Mutex::new(None),
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
            return Err(NotReady::ShuttingDown);
        }
        let mut last = self.last_probe.lock().await;
        let result = match &*last {
            Some((at, result)) if at.elapsed() < PROBE_CACHE => result.clone(),
            _ => {
                let result = self.store.probe().await.map_err(|e| e.to_string());
                if let Err(reason) = &result {
                    tracing::warn!(%reason, "readiness probe failed");
                }
                *last = Some((Instant::now(), result.clone()));
                result
            }
        };
        drop(last);
        // Shutdown may have begun while the probe ran.
        let ready = result.is_ok() && !self.is_shutting_down();
        self.metrics.ready.set(i64::from(ready));
        match result {
            Err(reason) => Err(NotReady::DataDir(reason)),
            Ok(()) if !ready => Err(NotReady::ShuttingDown),
            Ok(()) => Ok(()),
        }
    }
}
