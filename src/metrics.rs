//! Prometheus metrics, registered in one registry that `GET /metrics` renders.

pub use crate::storage::StorageMetrics;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
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
    /// 1 while the readiness probe passes, 0 otherwise.
    pub ready: IntGauge,
    /// Temp files the orphan sweep met, by outcome: `removed` (a crashed writer's file),
    /// `in_use` (old, but its user's lock is held), `error` (could not be listed, checked or
    /// removed). Crashed writers leave the first; a failing file system the last.
    pub orphans_swept: IntCounterVec,
    /// The store's own metrics (`storage_*`): the store is handed these, not the rest.
    pub storage: StorageMetrics,
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
        let storage = StorageMetrics::new(LATENCY_BUCKETS);
        let ready = IntGauge::new("service_ready", "1 when the readiness probe passes.")
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
            Box::new(ready.clone()),
            Box::new(orphans_swept.clone()),
            Box::new(process_start_time),
            Box::new(build_info),
        ]
        .into_iter()
        .chain(storage.collectors())
        {
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
            ready,
            orphans_swept,
            storage,
        }
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
