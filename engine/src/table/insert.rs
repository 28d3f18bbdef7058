//! `INSERT INTO <kind table>`: rows go through the same validated, durable write path as
//! [`vigil_storage::Store::write_all`], in one atomic write per statement.

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
use vigil_storage::schema::kind_schema;
use vigil_storage::{SignalKind, Store};

/// Writes an `INSERT`'s rows into the store.
#[derive(Debug)]
pub struct StoreSink {
    kind: SignalKind,
    schema: SchemaRef,
    store: Arc<Store>,
}

impl StoreSink {
    pub fn new(kind: SignalKind, store: Arc<Store>) -> Self {
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
            store,
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
        let store = Arc::clone(&self.store);
        let kind = self.kind;
        let receipt = tokio::task::spawn_blocking(move || store.write_all(kind, &batches))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(receipt.rows as u64)
    }
}
