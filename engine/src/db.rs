//! [`Db`]: the embedding API. Open a directory, write Arrow batches, run SQL.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use vigil_storage::schema::kind_schema;
use vigil_storage::{CompactionStats, FlushStats, PodObservation, SignalKind, Store, WriteReceipt};

use crate::error::{EngineError, Result};
use crate::options::DbOptions;
use crate::table::{KindTable, PodsTable, SignalsTable};

/// An open vigil database: a store on disk and a SQL session over it.
///
/// `Db` is `Send + Sync`; share it behind an `Arc`. Writes block until durable; queries are
/// `async` and need a Tokio runtime.
pub struct Db {
    store: Arc<Store>,
    ctx: SessionContext,
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
        let ctx = vigil_query::new_context(&options.session)?;
        for kind in SignalKind::ALL {
            ctx.register_table(
                kind.table_name(),
                Arc::new(KindTable::new(kind, Arc::clone(&store))),
            )?;
        }
        ctx.register_table("signals", Arc::new(SignalsTable::new(Arc::clone(&store))))?;
        ctx.register_table("pods", Arc::new(PodsTable::new(Arc::clone(&store))))?;
        Ok(Db { store, ctx })
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
    /// functions; see `docs/sql.md`). Two more statements manage the store: `FLUSH` writes hot rows to
    /// segments, `COMPACT` merges small segments; each returns one row of counts.
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        if let Some(command) = StoreCommand::parse(sql) {
            return self.run_command(command).await;
        }
        let frame = self.frame(sql).await?;
        Ok(frame.execute_stream().await?)
    }

    /// Plans one SQL statement (temporal extensions included) without running it.
    pub async fn frame(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame> {
        Ok(vigil_query::sql::sql(&self.ctx, sql).await?)
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

    /// The store underneath, for statistics and verification.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The DataFusion session, to register more tables or functions.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
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

    async fn run_command(&self, command: StoreCommand) -> Result<SendableRecordBatchStream> {
        let store = Arc::clone(&self.store);
        let (names, values): (Vec<&str>, Vec<u64>) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                Ok(match command {
                    StoreCommand::Flush => {
                        let s = store.flush()?;
                        (
                            vec!["segments_written", "rows_flushed"],
                            vec![s.segments as u64, s.rows],
                        )
                    }
                    StoreCommand::Compact => {
                        let s = store.compact()?;
                        (
                            vec!["segments_merged", "segments_written", "rows_compacted"],
                            vec![s.inputs as u64, s.outputs as u64, s.rows],
                        )
                    }
                })
            })
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::UInt64, false))
                .collect::<Vec<_>>(),
        ));
        let columns = values
            .into_iter()
            .map(|v| Arc::new(UInt64Array::from(vec![v])) as _)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(datafusion::error::DataFusionError::from)?;
        let stream = futures::stream::iter(vec![Ok(batch)]);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Store-management statements understood before SQL parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreCommand {
    Flush,
    Compact,
}

impl StoreCommand {
    fn parse(sql: &str) -> Option<StoreCommand> {
        let text = sql.trim().trim_end_matches(';').trim();
        if text.eq_ignore_ascii_case("FLUSH") {
            Some(StoreCommand::Flush)
        } else if text.eq_ignore_ascii_case("COMPACT") {
            Some(StoreCommand::Compact)
        } else {
            None
        }
    }
}
