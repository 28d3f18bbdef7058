//! `retention_rules` and `retention_holds`: the policy in effect and the legal holds, as
//! tables (`SHOW RETENTION` and `SHOW HOLDS` read them).

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use vigil_model::schema::ts_type;
use vigil_storage::Store;
use vigil_storage::retention::format_duration;

use crate::table::Visibility;

/// The columns of `retention_rules`.
pub static RULES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("rule", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("metric", DataType::Utf8, true),
        Field::new("keep", DataType::Utf8, false),
        Field::new("downsample", DataType::Utf8, true),
        Field::new("in_effect_since", ts_type(), false),
    ]))
});

/// The columns of `retention_holds`.
pub static HOLDS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("pod", DataType::Utf8, false),
        Field::new("from_ts", ts_type(), false),
        Field::new("to_ts", ts_type(), false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("placed_at", ts_type(), false),
    ]))
});

fn times(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// `retention_rules`: one row per rule, in the order given; empty when everything is kept.
pub fn rules_table(store: &Store, visibility: &Visibility) -> Result<MemTable> {
    // Rule numbers stay those of the whole policy (they give precedence); a session
    // restricted to some namespaces sees the rules for every namespace and for its own.
    let (numbers, rules): (Vec<i64>, Vec<vigil_storage::RetentionRule>) = store
        .retention_policy()
        .rules()
        .iter()
        .zip(1..)
        .filter(|(r, _)| r.namespace.is_none() || visibility.sees(r.namespace.as_deref()))
        .map(|(r, n)| (n, r.clone()))
        .unzip();
    let since = store.retention_policy_since();
    let downsample = |r: &vigil_storage::RetentionRule| {
        (!r.downsample.is_empty()).then(|| {
            r.downsample
                .iter()
                .map(|s| {
                    format!(
                        "{} for {}",
                        format_duration(s.step),
                        format_duration(s.keep)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(numbers)),
        Arc::new(StringArray::from_iter_values(
            rules.iter().map(|r| r.kind.table_name()),
        )),
        Arc::new(StringArray::from_iter(
            rules.iter().map(|r| r.namespace.clone()),
        )),
        Arc::new(StringArray::from_iter(
            rules.iter().map(|r| r.metric.clone()),
        )),
        Arc::new(StringArray::from_iter_values(
            rules.iter().map(|r| format_duration(r.keep)),
        )),
        Arc::new(StringArray::from_iter(rules.iter().map(downsample))),
        times(rules.iter().map(|_| since)),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&RULES_SCHEMA), columns)?;
    MemTable::try_new(Arc::clone(&RULES_SCHEMA), vec![vec![batch]])
}

/// `retention_holds`: the holds in effect when a query reads it.
#[derive(Debug)]
pub struct HoldsTable {
    store: Arc<Store>,
    visibility: Visibility,
}

impl HoldsTable {
    /// Holds of namespaces `visibility` hides (and holds of any namespace, for a restricted
    /// session) are not shown.
    pub fn new(store: Arc<Store>, visibility: Visibility) -> Self {
        HoldsTable { store, visibility }
    }
}

#[async_trait]
impl TableProvider for HoldsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&HOLDS_SCHEMA)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut holds = self
            .store
            .holds()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        holds.retain(|h| self.visibility.sees(h.namespace.as_deref()));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                holds.iter().map(|h| h.id as i64),
            )),
            Arc::new(StringArray::from_iter(
                holds.iter().map(|h| h.namespace.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                holds.iter().map(|h| h.pod.as_str()),
            )),
            times(holds.iter().map(|h| h.from_ns)),
            times(holds.iter().map(|h| h.to_ns)),
            Arc::new(StringArray::from_iter_values(
                holds.iter().map(|h| h.reason.as_str()),
            )),
            times(holds.iter().map(|h| h.placed_ns)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&HOLDS_SCHEMA), columns)?;
        let table = MemTable::try_new(Arc::clone(&HOLDS_SCHEMA), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
