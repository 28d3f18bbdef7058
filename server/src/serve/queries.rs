//! SQL served over the network, with limits: at most `max_concurrent` queries run at once and
//! `max_queued` wait; each has a deadline (waiting, planning and streaming included) and a
//! memory limit. A query over a limit fails alone; dropping its stream (a client that went
//! away) cancels it and frees its slot.
//!
//! Queries plan and run on a runtime of their own ([`QueryRuntime`]): a CPU-bound query
//! occupies its threads, never the ones that accept connections, answer health checks and
//! take ingest, so the server stays responsive and notices a client going away.
//!
//! Each query runs under an [`Interrupt`], a child of the server's: its deadline, its client
//! going away and the server stopping reach every scan and join of its plan, so a CPU-bound
//! query ends within a batch instead of when it next yields. A panic while planning or running
//! a query (a bug, in vigil or in a dependency) ends that query alone, with an internal error
//! and the statement logged. With `query.max_resident_bytes` set, the query holding the most
//! memory is cancelled when the process passes that ceiling (see `memory_ceiling`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;
use vigil::QueryError as vigil_query_error;
use vigil::{EngineError, Interrupt, Interrupted, Planned, QueryLimits, QueryMemory, Session};

use super::config::Query as QueryConfig;
use super::memory_ceiling::{MemoryCeiling, Registered, RunningQueries};
use super::telemetry::QueryMetrics;

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
    /// The server is stopping.
    #[error("the server is stopping; retry on another replica or after the restart")]
    Unavailable,
    /// Over the deadline.
    #[error("query took longer than {0} s (query.timeout_seconds)")]
    Timeout(u64),
    /// Over the memory limit.
    #[error("{0} (query.memory_limit_bytes)")]
    ResourcesExhausted(String),
    /// Cancelled to bring the server back under its memory ceiling.
    #[error(
        "the server's resident memory passed its ceiling (query.max_resident_bytes) and this \
         query held the most memory: it was cancelled; retry later"
    )]
    MemoryCeiling,
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
            QueryFailure::Unavailable => "unavailable",
            QueryFailure::Timeout(_) => "timeout",
            QueryFailure::ResourcesExhausted(_) => "resources_exhausted",
            QueryFailure::MemoryCeiling => "memory_ceiling",
            QueryFailure::Internal(_) => "internal",
        }
    }

    /// The gRPC status a Flight SQL client gets.
    pub fn status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            // Flight clients have no field for the position: it goes in the message.
            QueryFailure::Invalid {
                location: Some((line, column)),
                ..
            } => tonic::Status::invalid_argument(format!(
                "{message} (at line {line}, column {column})"
            )),
            QueryFailure::Invalid { .. } => tonic::Status::invalid_argument(message),
            QueryFailure::NotAllowed(_) => tonic::Status::permission_denied(message),
            QueryFailure::Busy { .. } | QueryFailure::Unavailable => {
                tonic::Status::unavailable(message)
            }
            QueryFailure::Timeout(_) => tonic::Status::deadline_exceeded(message),
            QueryFailure::ResourcesExhausted(_) | QueryFailure::MemoryCeiling => {
                tonic::Status::resource_exhausted(message)
            }
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
                location: e.location(),
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
            && let Some(why) = inner.downcast_ref::<DeadlinePassed>()
        {
            return match why {
                DeadlinePassed::Timeout(s) => QueryFailure::Timeout(*s),
                DeadlinePassed::Stopping => QueryFailure::Unavailable,
            };
        }
        // Deadlines and stops come relabelled as `DeadlinePassed` (see `relabel`).
        if let Some(why) = Interrupted::of(&e) {
            return match why {
                Interrupted::Stopping => QueryFailure::Unavailable,
                Interrupted::MemoryCeiling => QueryFailure::MemoryCeiling,
                Interrupted::Deadline | Interrupted::Cancelled => {
                    QueryFailure::Internal(why.to_string())
                }
            };
        }
        let location = vigil::error::location_of(&e);
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

/// Why a running query was ended from outside.
#[derive(Debug)]
enum DeadlinePassed {
    Timeout(u64),
    Stopping,
}

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadlinePassed::Timeout(s) => {
                write!(f, "query took longer than {s} s (query.timeout_seconds)")
            }
            DeadlinePassed::Stopping => f.write_str("the server is stopping"),
        }
    }
}

impl std::error::Error for DeadlinePassed {}

/// Stack of every thread that plans or runs queries. Statements nest at most
/// `vigil_query::sql::depth::MAX_DEPTH` expression levels, which plan within a default
/// thread's 2 MiB; this leaves room for what a dependency's recursion (an optimizer rule, a
/// nested type) takes beyond that. Untouched stack costs no memory.
pub const QUERY_THREAD_STACK_BYTES: usize = 16 << 20;

/// The runtime queries plan and run on, one thread per core, apart from the runtime that
/// serves connections. Shut down without waiting when dropped (the interrupts have ended
/// its queries by then).
#[derive(Debug)]
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> std::io::Result<QueryRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("vigil-query")
            .thread_stack_size(QUERY_THREAD_STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(QueryRuntime(Some(runtime)))
    }

    fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(runtime) => runtime.spawn(task),
            None => unreachable!("the runtime is only taken when dropped"),
        }
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs queries within the configured limits.
#[derive(Debug)]
pub struct Queries {
    config: QueryConfig,
    runtime: QueryRuntime,
    slots: Arc<Semaphore>,
    /// Turns true when the server stops: new queries are refused, running ones end.
    stop: tokio::sync::watch::Sender<bool>,
    /// The parent of every query's interrupt: tripped when the server stops.
    interrupt: Interrupt,
    metrics: QueryMetrics,
    /// The running queries with their memory, for the memory ceiling.
    running_queries: Arc<RunningQueries>,
    /// Watches resident memory when `query.max_resident_bytes` is set.
    _ceiling: Option<MemoryCeiling>,
}

/// A running query's slot: held by the task that drives it.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: QueryMetrics,
    /// Its entry among the running queries, once it starts.
    registered: Option<Registered>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.running.dec();
    }
}

/// One place in the queue, given back however the wait ends (a client that goes away drops
/// the waiting future).
struct QueuePlace(QueryMetrics);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.queued.dec();
    }
}

/// When a query must be done: from its arrival, waiting and planning included.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant, Instant);

impl Deadline {
    /// Seconds since the query arrived.
    fn elapsed(&self) -> f64 {
        self.1.elapsed().as_secs_f64()
    }
}

impl Queries {
    pub fn new(config: QueryConfig, metrics: QueryMetrics) -> std::io::Result<Queries> {
        let running_queries = Arc::new(RunningQueries::default());
        let ceiling = config
            .max_resident_bytes
            .map(|ceiling| MemoryCeiling::start(ceiling, Arc::clone(&running_queries)))
            .transpose()?;
        Ok(Queries {
            runtime: QueryRuntime::new()?,
            metrics,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            stop: tokio::sync::watch::Sender::new(false),
            interrupt: Interrupt::new(),
            running_queries,
            _ceiling: ceiling,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        usize::try_from(self.metrics.running.get()).unwrap_or(0)
    }

    /// Refuses new queries and ends the running ones (the server is stopping).
    pub fn stop(&self) {
        self.stop.send_replace(true);
        self.interrupt.interrupt(Interrupted::Stopping);
        self.slots.close();
    }

    /// The deadline of a query arriving now.
    pub fn deadline(&self) -> Deadline {
        let now = Instant::now();
        Deadline(now + Duration::from_secs(self.config.timeout_seconds), now)
    }

    fn timed_out(&self) -> QueryFailure {
        QueryFailure::Timeout(self.config.timeout_seconds)
    }

    /// Plans `sql` for `session` (checked against its access), within the deadline.
    pub async fn plan(
        &self,
        session: &Arc<Session>,
        sql: &str,
        deadline: Deadline,
    ) -> Result<Planned, QueryFailure> {
        let planned = if *self.stop.borrow() {
            Err(QueryFailure::Unavailable)
        } else {
            let session = Arc::clone(session);
            let text = sql.to_string();
            let mut planning = self.runtime.spawn(async move { session.plan(&text).await });
            match tokio::time::timeout_at(deadline.0, &mut planning).await {
                Ok(Ok(planned)) => planned.map_err(QueryFailure::from_engine),
                Ok(Err(failed)) => Err(task_failed("planning", sql, failed)),
                Err(_) => {
                    planning.abort();
                    Err(self.timed_out())
                }
            }
        };
        if let Err(failure) = &planned {
            self.metrics.ended(failure.code(), deadline.elapsed());
        }
        planned
    }

    /// Starts a planned statement: waits for a slot (or refuses when the queue is full),
    /// then runs it under the deadline and memory limit on a task of its own, which hands
    /// batches over as the client takes them. The task ends, freeing the slot, when the
    /// result is complete, the client goes away, the deadline passes (even if the client
    /// stopped reading) or the server stops.
    pub async fn run(
        &self,
        session: &Arc<Session>,
        planned: Planned,
        params: Option<ParamValues>,
        deadline: Deadline,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, QueryFailure> {
        let started = self.start(session, planned, params, deadline, sql).await;
        if let Err(failure) = &started {
            self.metrics.ended(failure.code(), deadline.elapsed());
        }
        started
    }

    async fn start(
        &self,
        session: &Arc<Session>,
        planned: Planned,
        params: Option<ParamValues>,
        deadline: Deadline,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, QueryFailure> {
        let mut slot = self.admit(deadline).await?;
        let interrupt = self.interrupt.child().with_deadline(deadline.0.into_std());
        let memory =
            QueryMemory::new(usize::try_from(self.config.memory_limit_bytes).unwrap_or(usize::MAX));
        slot.registered = Some(
            self.running_queries
                .register(memory.clone(), interrupt.clone()),
        );
        let limits = QueryLimits {
            memory: Some(memory),
            interrupt: Some(interrupt.clone()),
        };
        let ending = Ending {
            deadline,
            timeout_seconds: self.config.timeout_seconds,
            stop: self.stop.subscribe(),
        };
        let session = Arc::clone(session);
        let mut starting = self
            .runtime
            .spawn(async move { session.execute(planned, params, limits).await });
        let stream = match tokio::time::timeout_at(deadline.0, &mut starting).await {
            Err(_) => {
                starting.abort();
                return Err(self.timed_out());
            }
            Ok(Err(failed)) => return Err(task_failed("starting", sql, failed)),
            Ok(Ok(Err(EngineError::Sql(e)))) => {
                let e = relabel(e, self.config.timeout_seconds);
                return Err(QueryFailure::from_datafusion(e));
            }
            Ok(Ok(started)) => started.map_err(QueryFailure::from_engine)?,
        };
        let schema = stream.schema();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let statement: Arc<str> = sql.into();
        self.runtime.spawn(drive(
            stream,
            tx,
            slot,
            ending,
            self.metrics.clone(),
            statement,
        ));
        // The client's end: dropping it (a client gone) interrupts the query wherever it is.
        let client = CancelOnDrop(interrupt);
        let batches = futures::stream::unfold((rx, client), |(mut rx, client)| async move {
            rx.recv().await.map(|item| (item, (rx, client)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    async fn admit(&self, deadline: Deadline) -> Result<Slot, QueryFailure> {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(QueryFailure::Unavailable),
            Err(TryAcquireError::NoPermits) => {
                // The queued gauge is the queue's count: `inc` answers how many were before.
                let queued = usize::try_from(self.metrics.queued.inc()).unwrap_or(0);
                let _place = QueuePlace(self.metrics.clone());
                if queued >= self.config.max_queued {
                    return Err(QueryFailure::Busy {
                        running: self.running(),
                        queued,
                    });
                }
                let slots = Arc::clone(&self.slots);
                match tokio::time::timeout_at(deadline.0, slots.acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(QueryFailure::Unavailable),
                    Err(_) => return Err(self.timed_out()),
                }
            }
        };
        self.metrics.running.inc();
        Ok(Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
            registered: None,
        })
    }
}

/// What ends a running query from outside: its deadline, or the server stopping.
struct Ending {
    deadline: Deadline,
    timeout_seconds: u64,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// `e` with an interruption for the deadline or the stop said the way clients are told of
/// those ([`DeadlinePassed`]).
fn relabel(e: DataFusionError, timeout_seconds: u64) -> DataFusionError {
    match Interrupted::of(&e) {
        Some(Interrupted::Deadline) => {
            DataFusionError::External(Box::new(DeadlinePassed::Timeout(timeout_seconds)))
        }
        Some(Interrupted::Stopping) => {
            DataFusionError::External(Box::new(DeadlinePassed::Stopping))
        }
        _ => e,
    }
}

impl Ending {
    async fn wait(mut self) -> DeadlinePassed {
        tokio::select! {
            () = tokio::time::sleep_until(self.deadline.0) => {
                DeadlinePassed::Timeout(self.timeout_seconds)
            }
            _ = self.stop.wait_for(|s| *s) => DeadlinePassed::Stopping,
        }
    }
}

/// Moves a query's batches to its client until the result ends, the client goes away or
/// `ending` comes. Dropping `stream` cancels the query; dropping `slot` frees its place.
async fn drive(
    mut stream: SendableRecordBatchStream,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    slot: Slot,
    ending: Ending,
    metrics: QueryMetrics,
    sql: Arc<str>,
) {
    let deadline = ending.deadline;
    let timeout_seconds = ending.timeout_seconds;
    let forward = async {
        loop {
            let item = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                Ok(None) => break,
                Ok(Some(item)) => item.map_err(|e| relabel(e, timeout_seconds)),
                Err(panic) => {
                    let failure = panicked("running", &sql, &*panic);
                    let _ = tx
                        .send(Err(DataFusionError::Execution(failure.to_string())))
                        .await;
                    return "internal";
                }
            };
            let failure = item.as_ref().err().map(|e| match e.find_root() {
                DataFusionError::ResourcesExhausted(_) => "resources_exhausted",
                DataFusionError::External(inner) => match inner.downcast_ref::<DeadlinePassed>() {
                    Some(DeadlinePassed::Timeout(_)) => "timeout",
                    Some(DeadlinePassed::Stopping) => "unavailable",
                    None => match Interrupted::of(e) {
                        Some(Interrupted::Cancelled) => "cancelled",
                        Some(Interrupted::MemoryCeiling) => "memory_ceiling",
                        _ => "failed",
                    },
                },
                _ => "failed",
            });
            if tx.send(item).await.is_err() {
                return "cancelled"; // the client went away
            }
            if let Some(code) = failure {
                return code;
            }
        }
        "ok"
    };
    let outcome = tokio::select! {
        outcome = forward => outcome,
        why = ending.wait() => {
            let code = match why {
                DeadlinePassed::Timeout(_) => "timeout",
                DeadlinePassed::Stopping => "unavailable",
            };
            // The client may not be reading: do not wait for room to tell it.
            let _ = tx.try_send(Err(DataFusionError::External(Box::new(why))));
            code
        }
    };
    metrics.ended(outcome, deadline.elapsed());
    drop(stream);
    drop(slot);
}

/// Interrupts a query when its client's end of the result is dropped.
struct CancelOnDrop(Interrupt);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.interrupt(Interrupted::Cancelled);
    }
}

/// A planning or starting task that did not finish: a panic, or the runtime stopping.
fn task_failed(step: &str, sql: &str, failed: tokio::task::JoinError) -> QueryFailure {
    match failed.try_into_panic() {
        Ok(panic) => panicked(step, sql, &*panic),
        Err(_) => QueryFailure::Unavailable,
    }
}

/// A query that panicked, logged with its statement: it fails alone.
fn panicked(step: &str, sql: &str, panic: &(dyn std::any::Any + Send)) -> QueryFailure {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(step, statement = sql, panic = %why, "a query panicked; it failed alone");
    QueryFailure::Internal(format!(
        "the query failed inside the server while {step} ({why}); the server logged it and \
         goes on"
    ))
}
