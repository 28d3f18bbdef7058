//! `INSERT INTO <kind table>`: rows go through the engine's one write path
//! ([`crate::WritePath`]: validated, durable, observed), in one atomic write per statement.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::datasource::sink::DataSink;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::TryStreamExt;
use vigil_model::schema::kind_schema;
use vigil_storage::SignalKind;

use crate::error::EngineError;
use crate::write::WritePath;

/// Writes an `INSERT`'s rows into the store.
#[derive(Debug)]
pub struct StoreSink {
    kind: SignalKind,
    schema: SchemaRef,
    writes: Arc<WritePath>,
}

impl StoreSink {
    pub fn new(kind: SignalKind, writes: Arc<WritePath>) -> Self {
        StoreSink {
            kind,
            // Nullable everywhere, so that a missing required value reaches the store's
            // validation, whose error names the column, instead of DataFusion's generic check.
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(
                kind_schema(kind)
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            writes,
        }
    }
}

impl DisplayAs for StoreSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSink: table={}", self.kind.table_name())
    }
}

#[async_trait]
impl DataSink for StoreSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let batches: Vec<_> = data.try_collect().await?;
        let writes = Arc::clone(&self.writes);
        let kind = self.kind;
        let receipt = tokio::task::spawn_blocking(move || writes.write_all(kind, &batches))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| match e {
                // The store's own error, so that callers can tell a bad row from a failure.
                EngineError::Storage(storage) => DataFusionError::External(Box::new(storage)),
                other => DataFusionError::External(Box::new(other)),
            })?;
        Ok(receipt.rows as u64)
    }
}
