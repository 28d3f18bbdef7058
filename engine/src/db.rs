//! [`Db`]: the embedding API. Open a directory, write Arrow batches, run SQL.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use vigil_model::schema::kind_schema;
use vigil_query::SessionOptions;
use vigil_storage::{
    Clock, CompactionStats, FlushStats, Hold, HoldRequest, PodObservation, RetentionReport,
    SignalKind, Store, WriteReceipt,
};

use crate::error::{EngineError, Result};
use crate::options::DbOptions;
use crate::session::{Access, Session};
use crate::write::{WriteObserver, WritePath};

/// Counts of what a database holds, for statistics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Live segment files.
    pub segments: usize,
    /// Rows in them.
    pub segment_rows: u64,
    /// Bytes of them on disk.
    pub segment_bytes: u64,
    /// Rows acknowledged and not yet in a segment.
    pub hot_rows: u64,
    /// Pods in the pod dictionary.
    pub pods: usize,
}

/// An open vigil database: a store on disk and a SQL session over it.
///
/// `Db` is `Send + Sync`; share it behind an `Arc`. Writes block until durable; queries are
/// `async` and need a Tokio runtime.
pub struct Db {
    store: Arc<Store>,
    writes: Arc<WritePath>,
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
    /// True if `dir` holds a store, without opening (or creating) one.
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        Store::exists(dir)
    }

    pub fn open_with(dir: impl AsRef<Path>, options: DbOptions) -> Result<Db> {
        let store = Arc::new(Store::open(dir, options.store)?);
        let writes = Arc::new(WritePath::new(Arc::clone(&store)));
        let full = Session::new(Arc::clone(&writes), &options.session, Access::full())?;
        Ok(Db {
            store,
            writes,
            session_options: options.session,
            full,
        })
    }

    /// A SQL session with its own access: the rows it may see (every table scan filters
    /// them, whatever the SQL) and whether it may write. Servers open one per principal.
    pub fn open_session(&self, access: Access) -> Result<Session> {
        Session::new(Arc::clone(&self.writes), &self.session_options, access)
    }

    /// Writes one batch of `kind`; returns once it is durable and visible to queries.
    ///
    /// Columns are matched by name (see `docs/schema.md`); missing optional columns are
    /// stored as NULL. Blocks the calling thread; from async code, use
    /// [`Db::write_async`].
    pub fn write(&self, kind: SignalKind, batch: &RecordBatch) -> Result<WriteReceipt> {
        self.writes.write_all(kind, std::slice::from_ref(batch))
    }

    /// Writes several batches of one kind atomically: after a crash all are there or none.
    pub fn write_all(&self, kind: SignalKind, batches: &[RecordBatch]) -> Result<WriteReceipt> {
        self.writes.write_all(kind, batches)
    }

    /// [`Db::write`] without blocking an async runtime's worker thread.
    pub async fn write_async(&self, kind: SignalKind, batch: RecordBatch) -> Result<WriteReceipt> {
        let writes = Arc::clone(&self.writes);
        tokio::task::spawn_blocking(move || writes.write_all(kind, std::slice::from_ref(&batch)))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// Tells `observer` of every write committed from now on, by every path (these methods,
    /// SQL `INSERT`), once each, after it is durable.
    pub fn observe_writes(&self, observer: Arc<dyn WriteObserver>) {
        self.writes.observe(observer);
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

    /// Every legal hold in effect, by id.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        Ok(self.store.holds()?)
    }

    /// Reads every segment file and checks its size and CRC against the manifest; the error
    /// names the first file that differs.
    pub fn verify(&self) -> Result<()> {
        Ok(self.store.verify()?)
    }

    /// What the store holds now.
    pub fn stats(&self) -> StoreStats {
        let version = self.store.version();
        StoreStats {
            segments: version.segments.len(),
            segment_rows: version.segment_rows(),
            segment_bytes: version.segments.iter().map(|s| s.meta().file_size).sum(),
            hot_rows: version.hot_rows() as u64,
            pods: self.store.pods().len(),
        }
    }

    /// Now, by the database's clock (the one given in its options): what retention, holds and
    /// token expiry compare against.
    pub fn now_ns(&self) -> i64 {
        self.store.options().clock.now_ns()
    }

    /// The database's clock, for components that keep time on its behalf.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.store.options().clock)
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
