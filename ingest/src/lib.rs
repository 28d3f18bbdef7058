//! # vigil-ingest: from the wire to rows
//!
//! Decoders for what vigil receives over the network or reads from files, each producing
//! Arrow batches of vigil's signal kinds (columns as in `docs/schema.md`) and observations of
//! pods for the `pods` table:
//!
//! - [`otlp`]: OpenTelemetry metrics, logs and traces (protobuf or OTLP/JSON), with Kubernetes
//!   `Event` objects sent as logs by the Collector's `k8s_events` and `k8sobjects` receivers
//!   turned into `event` rows;
//! - [`audit`]: Kubernetes audit events (`audit.k8s.io/v1` `Event` and `EventList`, JSON
//!   lines as the log backend writes them).
//!
//! The mapping rules are documented in `docs/ingest.md`. Nothing here touches the store: the
//! caller writes the batches. A sender restricted to [`Namespaces`] has its records of other
//! namespaces refused one by one. Decoders never panic on any input; bad records are counted and
//! described in [`Decoded::rejected`] and [`Decoded::errors`], a bad request is an
//! [`IngestError`].

pub mod audit;
pub mod error;
pub mod k8s_event;
pub mod namespaces;
pub mod otlp;
pub mod pods;

use arrow::array::RecordBatch;

pub use error::{IngestError, Result};
pub use namespaces::Namespaces;
pub use vigil_model::{BatchBuilder, PodObservation, SignalKind};

/// How many messages [`Decoded::errors`] keeps; the counts stay exact.
pub const MAX_ERRORS: usize = 10;

/// What one request or file decoded to.
#[derive(Debug, Default)]
pub struct Decoded {
    /// At most one batch per kind.
    pub batches: Vec<(SignalKind, RecordBatch)>,
    /// What the records said about pods, in input order.
    pub pods: Vec<PodObservation>,
    /// Records (data points, log records, spans, audit events) turned into rows.
    pub accepted: u64,
    /// Records refused, each for a reason in `errors`.
    pub rejected: u64,
    /// The first [`MAX_ERRORS`] reasons, each naming the record.
    pub errors: Vec<String>,
}

impl Decoded {
    /// Counts one refused record and keeps the reason if there is room.
    pub fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(reason());
        }
    }

    /// Adds the finished rows of a builder, if it has any. Decoders set only columns of the
    /// builder's kind and reject records without a required value, so a refusal here is a
    /// decoder's mistake, reported as a request that cannot be decoded.
    pub fn push_rows(&mut self, mut rows: BatchBuilder) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let kind = rows.kind();
        self.batches.push((kind, rows.finish()?));
        Ok(())
    }

    /// Rows of all kinds.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.num_rows()).sum()
    }

    /// One line for a partial-success message: the count and the first reasons.
    pub fn error_message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        let more = self.rejected as usize - self.errors.len().min(self.rejected as usize);
        let mut text = format!("{} rejected: {}", self.rejected, self.errors.join("; "));
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        text
    }
}
