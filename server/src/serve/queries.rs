//! SQL served over the network, with limits: at most `max_concurrent` queries run at once and
//! `max_queued` wait; each has a deadline (waiting, planning and streaming included) and a
//! memory limit. A query over a limit fails alone; dropping its stream (a client that went
//! away) cancels it and frees its slot.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use vigil::QueryError as vigil_query_error;
use vigil::{EngineError, Planned, QueryLimits, Session};

use super::config::Query as QueryConfig;

/// Why a query failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// Bad SQL or parameters; the message points at the problem.
    #[error("{message}")]
    Invalid {
        message: String,
        /// 1-based line and column in the SQL, where known.
        location: Option<(u64, u64)>,
    },
    /// The session may not run it.
    #[error("{0}")]
    NotAllowed(String),
    /// Too many queries running and waiting.
    #[error(
        "too many queries: {running} running and {queued} waiting (query.max_concurrent, query.max_queued); retry later"
    )]
    Busy { running: usize, queued: usize },
    /// Over the deadline.
    #[error("query took longer than {0} s (query.timeout_seconds)")]
    Timeout(u64),
    /// Over the memory limit.
    #[error("{0} (query.memory_limit_bytes)")]
    ResourcesExhausted(String),
    /// The server failed.
    #[error("{0}")]
    Internal(String),
}

impl QueryFailure {
    /// A short code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            QueryFailure::Invalid { .. } => "invalid_sql",
            QueryFailure::NotAllowed(_) => "not_allowed",
            QueryFailure::Busy { .. } => "busy",
            QueryFailure::Timeout(_) => "timeout",
            QueryFailure::ResourcesExhausted(_) => "resources_exhausted",
            QueryFailure::Internal(_) => "internal",
        }
    }

    /// The gRPC status a Flight SQL client gets.
    pub fn status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            QueryFailure::Invalid { .. } => tonic::Status::invalid_argument(message),
            QueryFailure::NotAllowed(_) => tonic::Status::permission_denied(message),
            QueryFailure::Busy { .. } => tonic::Status::unavailable(message),
            QueryFailure::Timeout(_) => tonic::Status::deadline_exceeded(message),
            QueryFailure::ResourcesExhausted(_) => tonic::Status::resource_exhausted(message),
            QueryFailure::Internal(_) => tonic::Status::internal(message),
        }
    }

    pub fn from_engine(e: EngineError) -> QueryFailure {
        match e {
            EngineError::NotAllowed(m) => QueryFailure::NotAllowed(m),
            EngineError::Sql(df) | EngineError::Query(vigil_query_error::DataFusion(df)) => {
                QueryFailure::from_datafusion(df)
            }
            e if e.is_user_error() => QueryFailure::Invalid {
                location: location_in_message(&e.to_string()),
                message: e.to_string(),
            },
            e => QueryFailure::Internal(e.to_string()),
        }
    }

    pub fn from_datafusion(e: DataFusionError) -> QueryFailure {
        let root = e.find_root();
        if let DataFusionError::ResourcesExhausted(m) = root {
            return QueryFailure::ResourcesExhausted(format!("Resources exhausted: {m}"));
        }
        if let DataFusionError::External(inner) = root
            && let Some(failure) = inner.downcast_ref::<DeadlinePassed>()
        {
            return QueryFailure::Timeout(failure.0);
        }
        let location = e
            .diagnostic()
            .and_then(|d| d.span)
            .map(|span| (span.start.line, span.start.column))
            .or_else(|| location_in_message(&e.to_string()));
        let engine = EngineError::Sql(e);
        if engine.is_user_error() {
            QueryFailure::Invalid {
                message: engine.to_string(),
                location,
            }
        } else {
            QueryFailure::Internal(engine.to_string())
        }
    }
}

/// sqlparser's "... at Line: 3, Column: 14".
fn location_in_message(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.find("Line: ")? + 6..];
    let (line, rest) = rest.split_once(',')?;
    let rest = rest.trim_start().strip_prefix("Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// The error a stream yields once its deadline passes.
#[derive(Debug)]
struct DeadlinePassed(u64);

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query took longer than {} s (query.timeout_seconds)",
            self.0
        )
    }
}

impl std::error::Error for DeadlinePassed {}

/// Runs queries within the configured limits.
#[derive(Debug)]
pub struct Queries {
    config: QueryConfig,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    running: Arc<AtomicUsize>,
}

/// A running query's slot: held by its result stream.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Queries {
    pub fn new(config: QueryConfig) -> Queries {
        Queries {
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            queued: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_seconds)
    }

    /// Plans `sql` for `session` (checked against its access), within the deadline.
    pub async fn plan(&self, session: &Session, sql: &str) -> Result<Planned, QueryFailure> {
        match tokio::time::timeout(self.timeout(), session.plan(sql)).await {
            Ok(planned) => planned.map_err(QueryFailure::from_engine),
            Err(_) => Err(QueryFailure::Timeout(self.config.timeout_seconds)),
        }
    }

    /// Plans and starts `sql`: waits for a slot (or refuses when the queue is full), then
    /// streams the result under the deadline and memory limit. The slot is freed when the
    /// stream ends or is dropped.
    pub async fn run(
        &self,
        session: &Session,
        planned: Planned,
        params: Option<ParamValues>,
    ) -> Result<SendableRecordBatchStream, QueryFailure> {
        let deadline = Instant::now() + self.timeout();
        let slot = self.admit(deadline).await?;
        let limits = QueryLimits {
            memory_limit: usize::try_from(self.config.memory_limit_bytes).ok(),
        };
        let stream = tokio::time::timeout_at(deadline, session.execute(planned, params, limits))
            .await
            .map_err(|_| QueryFailure::Timeout(self.config.timeout_seconds))?
            .map_err(QueryFailure::from_engine)?;
        Ok(Box::pin(Bounded {
            schema: stream.schema(),
            inner: stream,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            timeout_seconds: self.config.timeout_seconds,
            slot: Some(slot),
        }))
    }

    async fn admit(&self, deadline: Instant) -> Result<Slot, QueryFailure> {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let queued = self.queued.fetch_add(1, Ordering::AcqRel);
                if queued >= self.config.max_queued {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return Err(QueryFailure::Busy {
                        running: self.running(),
                        queued,
                    });
                }
                let waited =
                    tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
                        .await;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(QueryFailure::Internal("server stopping".into())),
                    Err(_) => return Err(QueryFailure::Timeout(self.config.timeout_seconds)),
                }
            }
        };
        self.running.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            _permit: permit,
            running: Arc::clone(&self.running),
        })
    }
}

/// A result stream under a deadline, holding its query's slot until it ends.
struct Bounded {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    deadline: Pin<Box<Sleep>>,
    timeout_seconds: u64,
    slot: Option<Slot>,
}

impl Stream for Bounded {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.slot.is_none() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.slot = None;
            let seconds = self.timeout_seconds;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                DeadlinePassed(seconds),
            )))));
        }
        let next = self.inner.as_mut().poll_next(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Finished or failed: free the slot now, not when the client lets go.
            self.slot = None;
        }
        next
    }
}

impl RecordBatchStream for Bounded {
    fn schema(&self) -> SchemaRef {
        SchemaRef::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_from_parser_messages() {
        assert_eq!(
            location_in_message(
                "sql parser error: Expected: end of statement, found: FRM at Line: 2, Column: 9"
            ),
            Some((2, 9))
        );
        assert_eq!(location_in_message("no location"), None);
    }
}
