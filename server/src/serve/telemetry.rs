//! The server's own metrics, in Prometheus text format on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    /// `metrics`, `logs`, `traces` or `audit`.
    pub signal: String,
    /// `invalid`, `too_large`, `busy`, `unsupported_media_type`, `internal`.
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub signal: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, or the error code (`invalid_sql`, `not_allowed`, `busy`, `timeout`...).
    pub outcome: String,
}

/// The SQL side's metrics (handles into the same registry).
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    pub queries: Family<OutcomeLabel, Counter>,
    pub seconds: Histogram,
    pub running: Gauge,
    pub queued: Gauge,
}

impl QueryMetrics {
    /// Counts a query that ended with `outcome` after `seconds`.
    pub fn ended(&self, outcome: &str, seconds: f64) {
        self.queries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
        self.seconds.observe(seconds);
    }
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    pub rows: Family<KindLabel, Counter>,
    pub bytes: Family<SignalLabel, Counter>,
    pub rejected_requests: Family<RejectLabel, Counter>,
    pub rejected_records: Family<SignalLabel, Counter>,
    pub write_seconds: Histogram,
    pub inflight_bytes: Gauge,
    pub query: QueryMetrics,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("vigil");
        let rows = Family::<KindLabel, Counter>::default();
        registry.register("ingested_rows", "Rows made durable, per kind", rows.clone());
        let bytes = Family::<SignalLabel, Counter>::default();
        registry.register(
            "ingested_bytes",
            "Request bytes accepted (after decompression), per signal",
            bytes.clone(),
        );
        let rejected_requests = Family::<RejectLabel, Counter>::default();
        registry.register(
            "rejected_requests",
            "Requests refused, per signal and reason",
            rejected_requests.clone(),
        );
        let rejected_records = Family::<SignalLabel, Counter>::default();
        registry.register(
            "rejected_records",
            "Records (points, log records, spans, audit events) refused inside accepted requests",
            rejected_records.clone(),
        );
        let write_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "write_latency_seconds",
            "Time from decoded request to durable rows",
            write_seconds.clone(),
        );
        let inflight_bytes = Gauge::default();
        registry.register(
            "ingest_inflight_bytes",
            "Request bytes being decoded or written now",
            inflight_bytes.clone(),
        );
        let query = QueryMetrics {
            queries: Family::default(),
            seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            running: Gauge::default(),
            queued: Gauge::default(),
        };
        registry.register(
            "queries",
            "SQL queries (Flight SQL and HTTP) that ended, per outcome",
            query.queries.clone(),
        );
        registry.register(
            "query_seconds",
            "Time from a query's arrival to the end of its result",
            query.seconds.clone(),
        );
        registry.register(
            "queries_running",
            "SQL queries holding a slot",
            query.running.clone(),
        );
        registry.register(
            "queries_queued",
            "SQL queries waiting for a slot",
            query.queued.clone(),
        );
        Telemetry {
            query,
            registry,
            rows,
            bytes,
            rejected_requests,
            rejected_records,
            write_seconds,
            inflight_bytes,
        }
    }

    pub fn reject(&self, signal: &str, reason: &str) {
        self.rejected_requests
            .get_or_create(&RejectLabel {
                signal: signal.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
