//! The store's own metrics (every `storage_*` series but the orphan sweep's): the store
//! counts with these handles and knows nothing else of the application's registry, which
//! registers them (`crate::metrics`).

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

/// Handles to the store's metrics; cloning shares them.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    /// Latency of storage operations (get, put, probe, sweep), including queueing.
    pub storage_duration: HistogramVec,
    /// Failed storage operations, by operation and error kind.
    pub storage_errors: IntCounterVec,
    /// Time a writer waited for its user's lock (in-process queue plus the file lock).
    pub lock_wait: Histogram,
    /// Writers that gave up after the lock timeout and answered 503.
    pub lock_timeouts: IntCounter,
    /// Writes stopped before their rename, by reason: `deadline` (the request's deadline passed
    /// first) or `lock_lost` (another writer renamed while this one held the user's lock).
    pub writes_fenced: IntCounterVec,
    /// Storage operations holding a slot right now (at most `--max-storage-ops`): the
    /// saturation signal, and what an EFS stall makes climb.
    pub storage_in_flight: IntGauge,
    /// PUTs answered `write-unconfirmed`: the storage failed after the rename was issued, so
    /// the write may or may not have taken effect.
    pub writes_unconfirmed: IntCounter,
}

impl StorageMetrics {
    /// New, unregistered metrics; latency histograms get `buckets` (in seconds).
    pub fn new(buckets: &[f64]) -> Self {
        let storage_duration = HistogramVec::new(
            HistogramOpts::new(
                "storage_operation_duration_seconds",
                "Storage operation latency, including waiting for a slot and a lock.",
            )
            .buckets(buckets.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let storage_errors = IntCounterVec::new(
            Opts::new("storage_errors_total", "Failed storage operations."),
            &["operation", "kind"],
        )
        .expect("valid metric");
        let lock_wait = Histogram::with_opts(
            HistogramOpts::new(
                "storage_lock_wait_seconds",
                "Time a writer waited for its user's lock.",
            )
            .buckets(buckets.to_vec()),
        )
        .expect("valid metric");
        let lock_timeouts = IntCounter::new(
            "storage_lock_timeouts_total",
            "Writes that gave up waiting for a lock.",
        )
        .expect("valid metric");
        let writes_fenced = IntCounterVec::new(
            Opts::new(
                "storage_writes_fenced_total",
                "Writes stopped before their rename: past their deadline, or their lock lost.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        // Both series from the start, so that alerts on their rate see a zero, not a gap.
        for reason in ["deadline", "lock_lost"] {
            writes_fenced.with_label_values(&[reason]);
        }
        let storage_in_flight = IntGauge::new(
            "storage_operations_in_flight",
            "Storage operations running now, each holding one of --max-storage-ops slots.",
        )
        .expect("valid metric");
        let writes_unconfirmed = IntCounter::new(
            "storage_writes_unconfirmed_total",
            "Writes answered write-unconfirmed: they may or may not have taken effect.",
        )
        .expect("valid metric");
        Self {
            storage_duration,
            storage_errors,
            lock_wait,
            lock_timeouts,
            writes_fenced,
            storage_in_flight,
            writes_unconfirmed,
        }
    }

    /// Every metric, for a registry to register.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.storage_duration.clone()),
            Box::new(self.storage_errors.clone()),
            Box::new(self.lock_wait.clone()),
            Box::new(self.lock_timeouts.clone()),
            Box::new(self.writes_fenced.clone()),
            Box::new(self.storage_in_flight.clone()),
            Box::new(self.writes_unconfirmed.clone()),
        ]
    }

    pub fn storage_error(&self, operation: &str, kind: &str) {
        self.storage_errors
            .with_label_values(&[operation, kind])
            .inc();
    }
}

impl Default for StorageMetrics {
    fn default() -> Self {
        Self::new(prometheus::DEFAULT_BUCKETS)
    }
}
