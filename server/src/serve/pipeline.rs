//! The ingest pipeline every endpoint shares: admission (a bound on request bytes in flight),
//! decoding off the async workers, durable writes, pod observations and the server's metrics.
//!
//! A request is acknowledged only after every row it produced is durable (per the store's
//! durability); when the bound is reached, requests are refused at once with a retryable
//! status instead of queueing without limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;
use vigil::{Db, EngineError, SignalKind};
use vigil_ingest::Decoded;

use super::config::Ingest;
use super::telemetry::{KindLabel, SignalLabel, Telemetry};

/// Why a request was refused as a whole.
#[derive(Debug)]
pub enum Refusal {
    /// Too many bytes in flight: retry later.
    Busy,
    /// Larger than `ingest.max_request_bytes`.
    TooLarge { size: u64, limit: u64 },
    /// The request cannot be decoded; the message names the problem.
    Invalid(String),
    /// The server failed (storage error): retryable.
    Internal(String),
    /// The server is shutting down.
    Unavailable,
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Busy => "busy",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Invalid(_) => "invalid",
            Refusal::Internal(_) => "internal",
            Refusal::Unavailable => "unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Busy => "vigil is busy writing earlier requests; retry later".into(),
            Refusal::TooLarge { size, limit } => format!(
                "request body of {size} bytes is larger than the limit of {limit} bytes (ingest.max_request_bytes)"
            ),
            Refusal::Invalid(m) | Refusal::Internal(m) => m.clone(),
            Refusal::Unavailable => "vigil is shutting down".into(),
        }
    }
}

/// A body that cannot be decoded at all is the client's mistake.
impl From<vigil_ingest::IngestError> for Refusal {
    fn from(e: vigil_ingest::IngestError) -> Refusal {
        Refusal::Invalid(e.to_string())
    }
}

/// What an accepted request produced.
#[derive(Debug, Default)]
pub struct Accepted {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty when nothing was rejected.
    pub message: String,
}

/// Shared by every endpoint.
#[derive(Debug)]
pub struct Pipeline {
    db: Arc<Db>,
    admission: Arc<Semaphore>,
    limits: Ingest,
    pub telemetry: Telemetry,
    accepting: AtomicBool,
}

/// Admission is counted in KiB so that the semaphore's `u32` permits cover terabytes.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

impl Pipeline {
    pub fn new(db: Arc<Db>, limits: Ingest) -> Pipeline {
        Pipeline {
            db,
            admission: Arc::new(Semaphore::new(kib(limits.max_inflight_bytes) as usize)),
            limits,
            telemetry: Telemetry::new(),
            accepting: AtomicBool::new(true),
        }
    }

    /// Now, by the database's clock: the time of records that carry none.
    pub fn now_ns(&self) -> i64 {
        self.db.now_ns()
    }

    pub fn limits(&self) -> &Ingest {
        &self.limits
    }

    /// False once shutdown has begun (`/readyz` then fails).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    /// Checks a body's size against the limit.
    pub fn check_size(&self, size: u64) -> Result<(), Refusal> {
        let limit = self.limits.max_request_bytes;
        if size > limit {
            return Err(Refusal::TooLarge { size, limit });
        }
        Ok(())
    }

    /// Admits, decodes, writes. `signal` labels the metrics; `decode` runs on a blocking
    /// thread and may itself refuse the request.
    pub async fn ingest<F>(
        &self,
        signal: &'static str,
        size: u64,
        decode: F,
    ) -> Result<Accepted, Refusal>
    where
        F: FnOnce() -> Result<Decoded, Refusal> + Send + 'static,
    {
        let outcome = self.admit_and_write(size, decode).await;
        match &outcome {
            Ok(a) => {
                self.telemetry
                    .bytes
                    .get_or_create(&SignalLabel {
                        signal: signal.into(),
                    })
                    .inc_by(size);
                if a.rejected > 0 {
                    self.telemetry
                        .rejected_records
                        .get_or_create(&SignalLabel {
                            signal: signal.into(),
                        })
                        .inc_by(a.rejected);
                }
            }
            Err(refusal) => {
                self.telemetry.reject(signal, refusal.reason());
                match refusal {
                    Refusal::Internal(m) => tracing::error!(signal, "ingest failed: {m}"),
                    other => tracing::debug!(
                        signal,
                        reason = other.reason(),
                        "request refused: {}",
                        other.message()
                    ),
                }
            }
        }
        outcome
    }

    async fn admit_and_write<F>(&self, size: u64, decode: F) -> Result<Accepted, Refusal>
    where
        F: FnOnce() -> Result<Decoded, Refusal> + Send + 'static,
    {
        if !self.accepting() {
            return Err(Refusal::Unavailable);
        }
        self.check_size(size)?;
        let permits = kib(size);
        // Owned, and moved into the write below: if the client goes away, the work still runs
        // to its end and keeps its share of the bound until then.
        let permit = Arc::clone(&self.admission)
            .try_acquire_many_owned(permits)
            .map_err(|_| Refusal::Busy)?;
        self.telemetry.inflight_bytes.inc_by(size as i64);
        let _inflight = InflightGuard(&self.telemetry, size as i64);

        let decoded = tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| Refusal::Internal(format!("decoder task failed: {e}")))??;
        let started = Instant::now();
        let db = Arc::clone(&self.db);
        let message = decoded.error_message();
        let (accepted, rejected) = (decoded.accepted, decoded.rejected);
        let batches = decoded.batches;
        let pods = decoded.pods;
        let written = tokio::task::spawn_blocking(
            move || -> Result<Vec<(SignalKind, usize)>, EngineError> {
                let _permit = permit;
                let mut written = Vec::new();
                for (kind, batch) in &batches {
                    db.write(*kind, batch)?;
                    written.push((*kind, batch.num_rows()));
                }
                db.observe_pods(&pods)?;
                Ok(written)
            },
        )
        .await
        .map_err(|e| Refusal::Internal(format!("write task failed: {e}")))?
        .map_err(|e| {
            if e.is_user_error() {
                Refusal::Invalid(e.to_string())
            } else {
                Refusal::Internal(e.to_string())
            }
        })?;
        self.telemetry
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        for (kind, n) in written {
            self.telemetry
                .rows
                .get_or_create(&KindLabel {
                    kind: kind.as_str().into(),
                })
                .inc_by(n as u64);
        }
        Ok(Accepted {
            accepted,
            rejected,
            message,
        })
    }
}

struct InflightGuard<'a>(&'a Telemetry, i64);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight_bytes.dec_by(self.1);
    }
}

#[cfg(test)]
mod tests {
    use vigil::WriteLog;
    use vigil_ingest::Namespaces;
    use vigil_ingest::otlp::{Encoding, Signal};

    use super::*;

    #[test]
    fn an_accepted_request_is_one_observed_write_per_kind_it_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(crate::test_support::quiet_db(dir.path()));
        let log = Arc::new(WriteLog::default());
        db.observe_writes(Arc::clone(&log) as _);
        let pipeline = Pipeline::new(Arc::clone(&db), Ingest::default());
        // Two log records and a Kubernetes event (as the Collector's k8s_events receiver
        // sends them): one request, two kinds.
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"k8s.namespace.name","value":{"stringValue":"shop"}},
            {"key":"k8s.pod.name","value":{"stringValue":"web-1"}}]},
            "scopeLogs":[{"logRecords":[
              {"timeUnixNano":"1700000000000000000","body":{"stringValue":"hello"}},
              {"timeUnixNano":"1700000001000000000","body":{"stringValue":"again"}}]}]},
          {"resource":{"attributes":[]},"scopeLogs":[{"logRecords":[
              {"timeUnixNano":"1700000002000000000",
               "attributes":[{"key":"k8s.event.reason","value":{"stringValue":"Pulled"}},
                 {"key":"k8s.event.name","value":{"stringValue":"web-1.17"}},
                 {"key":"k8s.namespace.name","value":{"stringValue":"shop"}}],
               "body":{"stringValue":"Successfully pulled image"}}]}]}]}"#;
        let now = pipeline.now_ns();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let accepted = rt
            .block_on(pipeline.ingest("logs", body.len() as u64, move || {
                vigil_ingest::otlp::decode(
                    Signal::Logs,
                    Encoding::Json,
                    body,
                    now,
                    &Namespaces::Any,
                )
                .map_err(Refusal::from)
            }))
            .expect("accepted");
        assert_eq!(accepted.rejected, 0, "{}", accepted.message);
        let seen: Vec<(SignalKind, usize)> =
            log.writes().iter().map(|w| (w.kind, w.rows)).collect();
        let mut kinds: Vec<SignalKind> = seen.iter().map(|(k, _)| *k).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), seen.len(), "one write per kind: {seen:?}");
        assert_eq!(
            seen.iter().map(|(_, n)| n).sum::<usize>() as u64,
            accepted.accepted,
            "{seen:?}"
        );
        assert!(seen.contains(&(SignalKind::Log, 2)), "{seen:?}");

        // A request refused as a whole writes nothing.
        let refused = rt.block_on(pipeline.ingest("logs", 3, || {
            vigil_ingest::otlp::decode(Signal::Logs, Encoding::Json, b"{]", 0, &Namespaces::Any)
                .map_err(Refusal::from)
        }));
        assert!(matches!(refused, Err(Refusal::Invalid(_))));
        assert_eq!(log.writes().len(), seen.len());
    }
}
