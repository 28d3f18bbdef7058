//! The table of one signal kind: `metrics`, `logs`, `spans`, `audit`, `events`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{Result, not_impl_err};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use vigil_model::schema::kind_schema;
use vigil_storage::{SignalKind, Store, Version};

use crate::table::insert::StoreSink;
use crate::table::scan::{is_exact_filter, scan_kind, string_columns};
use crate::table::{ScanSummary, VigilScanExec, Visibility, scan_filter};
use crate::write::WritePath;

/// The table of one signal kind (`metrics`, `logs`, `spans`, `audit`, `events`).
#[derive(Debug)]
pub struct KindTable {
    kind: SignalKind,
    store: Arc<Store>,
    visibility: Visibility,
    /// Reads this version instead of the store's current one.
    pinned: Option<Version>,
    /// Where `INSERT` writes; `None`: the table refuses inserts.
    writes: Option<Arc<WritePath>>,
}

impl KindTable {
    pub fn new(kind: SignalKind, store: Arc<Store>) -> Self {
        KindTable {
            kind,
            store,
            visibility: Visibility::all(),
            pinned: None,
            writes: None,
        }
    }

    /// The same table accepting `INSERT`, through the engine's write path.
    pub fn with_writes(mut self, writes: Arc<WritePath>) -> Self {
        self.writes = Some(writes);
        self
    }

    /// The same table reading `version` whenever it is scanned (so two tables pinned to one
    /// version see one state of the store).
    pub fn pinned(mut self, version: Version) -> Self {
        self.pinned = Some(version);
        self
    }

    /// The same table showing only the rows `visibility` allows.
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

#[async_trait]
impl TableProvider for KindTable {
    fn schema(&self) -> SchemaRef {
        kind_schema(self.kind)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match is_exact_filter(self.kind, f) {
                true => TableProviderFilterPushDown::Exact,
                false => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut summary = ScanSummary {
            table: self.kind.table_name().to_string(),
            ..Default::default()
        };
        let version = self.pinned.clone().unwrap_or_else(|| self.store.version());
        let plan = self.visibility.scan(
            &kind_schema(self.kind),
            projection,
            filters,
            |filters, projection| {
                let filter = scan_filter(filters, &string_columns(self.kind));
                let scan = scan_kind(
                    state,
                    &self.store,
                    &version,
                    self.kind,
                    &filter,
                    filters,
                    projection,
                )?;
                summary.add(&scan);
                Ok(scan.plan)
            },
        )?;
        Ok(Arc::new(VigilScanExec::new(
            summary,
            Arc::clone(&self.store),
            plan,
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "{} is append-only: {insert_op} is not supported",
                self.kind.table_name()
            );
        }
        if self.visibility.allowed().is_some() {
            return datafusion::common::plan_err!(
                "a session restricted to some namespaces cannot insert"
            );
        }
        let Some(writes) = &self.writes else {
            return datafusion::common::plan_err!("{} is read-only here", self.kind.table_name());
        };
        let sink = StoreSink::new(self.kind, Arc::clone(writes));
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
