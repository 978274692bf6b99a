//! Prometheus metrics, registered in one registry that `GET /metrics` renders.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets from 0.5 ms to 5 s: local requests take well under a millisecond, EFS adds one or
/// more per round trip, and anything past a few seconds is an outage.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// All of the service's metrics. Cheap to share behind an `Arc`; every handle is thread-safe.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by method, route template and status code.
    pub http_requests: IntCounterVec,
    /// Request latency from the first filter to the reply, by method and route template.
    pub http_duration: HistogramVec,
    /// Requests dropped before their answer (the client hung up, or the shutdown timeout cut
    /// them off), by method and route template. Not in `http_requests_total`: no status was sent.
    pub http_cancelled: IntCounterVec,
    /// Connections that ended abnormally, by reason: the client's doing (`incomplete_request`:
    /// it hung up mid-request; `malformed_request`, `head_too_large`, `head_timeout`,
    /// `timeout`, `closed`, `disconnected`), part of a head cut off by `shutdown`, or `other`
    /// (logged at WARN).
    pub connections_aborted: IntCounterVec,
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
    /// 1 while the readiness probe passes, 0 otherwise.
    pub ready: IntGauge,
    /// PUTs answered `write-unconfirmed`: the storage failed after the rename was issued, so
    /// the write may or may not have taken effect.
    pub writes_unconfirmed: IntCounter,
    /// Temp files the orphan sweep met, by outcome: `removed` (a crashed writer's file),
    /// `in_use` (old, but its user's lock is held), `error` (could not be listed, checked or
    /// removed). Crashed writers leave the first; a failing file system the last.
    pub orphans_swept: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            latency("http_request_duration_seconds", "HTTP request latency."),
            &["method", "route"],
        )
        .expect("valid metric");
        let http_cancelled = IntCounterVec::new(
            Opts::new(
                "http_requests_cancelled_total",
                "HTTP requests dropped before their answer was sent.",
            ),
            &["method", "route"],
        )
        .expect("valid metric");
        let connections_aborted = IntCounterVec::new(
            Opts::new(
                "http_connections_aborted_total",
                "Connections that ended abnormally, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let storage_duration = HistogramVec::new(
            latency(
                "storage_operation_duration_seconds",
                "Storage operation latency, including waiting for a slot and a lock.",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let storage_errors = IntCounterVec::new(
            Opts::new("storage_errors_total", "Failed storage operations."),
            &["operation", "kind"],
        )
        .expect("valid metric");
        let lock_wait = Histogram::with_opts(latency(
            "storage_lock_wait_seconds",
            "Time a writer waited for its user's lock.",
        ))
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
        let ready = IntGauge::new("service_ready", "1 when the readiness probe passes.")
            .expect("valid metric");
        let writes_unconfirmed = IntCounter::new(
            "storage_writes_unconfirmed_total",
            "Writes answered write-unconfirmed: they may or may not have taken effect.",
        )
        .expect("valid metric");
        let orphans_swept = IntCounterVec::new(
            Opts::new(
                "storage_orphans_swept_total",
                "Temp files met by the orphan sweep, by outcome: removed, in_use or error.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for outcome in ["removed", "in_use", "error"] {
            orphans_swept.with_label_values(&[outcome]);
        }
        // The Prometheus client convention for restarts: `changes()` of it counts them, and a
        // new value with a new `instance` is a replaced task. Set once, when the service starts.
        let process_start_time = Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        )
        .expect("valid metric");
        process_start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
        );
        let build_info = IntGaugeVec::new(
            Opts::new("hello_birthday_build_info", "Build information; always 1."),
            &["version", "commit"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[crate::VERSION, crate::GIT_COMMIT])
            .set(1);

        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(http_cancelled.clone()),
            Box::new(connections_aborted.clone()),
            Box::new(storage_duration.clone()),
            Box::new(storage_errors.clone()),
            Box::new(lock_wait.clone()),
            Box::new(lock_timeouts.clone()),
            Box::new(writes_fenced.clone()),
            Box::new(storage_in_flight.clone()),
            Box::new(ready.clone()),
            Box::new(writes_unconfirmed.clone()),
            Box::new(orphans_swept.clone()),
            Box::new(process_start_time),
            Box::new(build_info),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            http_cancelled,
            connections_aborted,
            storage_duration,
            storage_errors,
            lock_wait,
            lock_timeouts,
            writes_fenced,
            storage_in_flight,
            ready,
            writes_unconfirmed,
            orphans_swept,
        }
    }

    pub fn storage_error(&self, operation: &str, kind: &str) {
        self.storage_errors
            .with_label_values(&[operation, kind])
            .inc();
    }

    /// Counts what one orphan sweep met (see [`Metrics::orphans_swept`]).
    pub fn orphan_sweep(&self, removed: usize, in_use: usize, errors: usize) {
        for (outcome, count) in [("removed", removed), ("in_use", in_use), ("error", errors)] {
            self.orphans_swept
                .with_label_values(&[outcome])
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
