//! [`Db`]: the embedding API. Open a directory, write Arrow batches, run SQL.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use vigil_query::SessionOptions;
use vigil_storage::schema::kind_schema;
use vigil_storage::{
    CompactionStats, FlushStats, Hold, HoldRequest, PodObservation, RetentionReport, SignalKind,
    Store, WriteReceipt,
};

use crate::error::{EngineError, Result};
use crate::options::DbOptions;
use crate::session::{Access, Session};

/// An open vigil database: a store on disk and a SQL session over it.
///
/// `Db` is `Send + Sync`; share it behind an `Arc`. Writes block until durable; queries are
/// `async` and need a Tokio runtime.
pub struct Db {
    store: Arc<Store>,
    session_options: SessionOptions,
    /// The embedding program's own session: every row, every statement.
    full: Session,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (or creates) the database in `dir` with default options: `sync` durability,
    /// background flush and compaction.
    pub fn open(dir: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(dir, DbOptions::default())
    }

    /// Opens (or creates) the database in `dir`, recovering from any earlier crash.
    pub fn open_with(dir: impl AsRef<Path>, options: DbOptions) -> Result<Db> {
        let store = Arc::new(Store::open(dir, options.store)?);
        let full = Session::new(Arc::clone(&store), &options.session, Access::full())?;
        Ok(Db {
            store,
            session_options: options.session,
            full,
        })
    }

    /// A SQL session with its own access: the rows it may see (every table scan filters
    /// them, whatever the SQL) and whether it may write. Servers open one per principal.
    pub fn open_session(&self, access: Access) -> Result<Session> {
        Session::new(Arc::clone(&self.store), &self.session_options, access)
    }

    /// Writes one batch of `kind`; returns once it is durable and visible to queries.
    ///
    /// Columns are matched by name (see `docs/schema.md`); missing optional columns are
    /// stored as NULL. Blocks the calling thread; from async code, use
    /// [`Db::write_async`].
    pub fn write(&self, kind: SignalKind, batch: &RecordBatch) -> Result<WriteReceipt> {
        Ok(self.store.write(kind, batch)?)
    }

    /// Writes several batches of one kind atomically: after a crash all are there or none.
    pub fn write_all(&self, kind: SignalKind, batches: &[RecordBatch]) -> Result<WriteReceipt> {
        Ok(self.store.write_all(kind, batches)?)
    }

    /// [`Db::write`] without blocking an async runtime's worker thread.
    pub async fn write_async(&self, kind: SignalKind, batch: RecordBatch) -> Result<WriteReceipt> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.write(kind, &batch))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// Folds observations of pods into the `pods` table; durable like a write when it returns.
    pub fn observe_pods(&self, observations: &[PodObservation]) -> Result<()> {
        Ok(self.store.observe_pods(observations)?)
    }

    /// Runs one SQL statement and streams its result.
    ///
    /// DataFusion's SQL plus vigil's temporal extensions (ASOF JOIN, MATCH_RECOGNIZE, time
    /// functions; see `docs/sql.md`). More statements manage the store: `FLUSH` writes hot
    /// rows to segments, `COMPACT` merges small segments, `ENFORCE RETENTION` runs a
    /// retention pass (each returns one row of counts); `SHOW RETENTION` and `SHOW HOLDS` list
    /// the policy and the legal holds.
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        self.full.sql(sql).await
    }

    /// Plans one SQL statement (temporal extensions included) without running it.
    pub async fn frame(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame> {
        Ok(vigil_query::sql::sql(self.full.context(), sql).await?)
    }

    /// Runs one SQL statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let stream = self.sql(sql).await?;
        Ok(stream.try_collect().await?)
    }

    /// Writes every hot row into segments now.
    pub fn flush(&self) -> Result<FlushStats> {
        Ok(self.store.flush()?)
    }

    /// Merges small segments now.
    pub fn compact(&self) -> Result<CompactionStats> {
        Ok(self.store.compact()?)
    }

    /// Runs a retention pass now: logs what the policy removes, then removes it (rolling
    /// metrics up first where a rule says so). See `docs/retention.md`.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        Ok(self.store.enforce_retention()?)
    }

    /// What a retention pass now would remove, changing nothing.
    pub fn retention_dry_run(&self) -> Result<RetentionReport> {
        Ok(self.store.retention_dry_run()?)
    }

    /// Keeps the rows of a pod in a time range whatever the retention policy says, until
    /// released (detections use it to keep raw data around an alert).
    pub fn place_hold(&self, request: HoldRequest) -> Result<Hold> {
        Ok(self.store.place_hold(request)?)
    }

    /// Ends a hold; false when no hold has this id.
    pub fn release_hold(&self, id: u64) -> Result<bool> {
        Ok(self.store.release_hold(id)?)
    }

    /// The store underneath, for statistics and verification.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The DataFusion session, to register more tables or functions.
    pub fn session(&self) -> &SessionContext {
        self.full.context()
    }

    /// The Arrow schema of a kind's table.
    pub fn schema(kind: SignalKind) -> datafusion::arrow::datatypes::SchemaRef {
        kind_schema(kind)
    }

    /// Stops background work and closes the store. Every acknowledged write is durable
    /// already; closing only ends the threads. Dropping a `Db` does the same.
    pub fn close(self) -> Result<()> {
        Ok(self.store.close()?)
    }
}
