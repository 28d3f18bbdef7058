//! The `pods` table: the history of every pod the store has heard of, one row per version
//! (see `vigil_storage::pod_history`). Small (one row per pod and change), so each scan
//! reads a snapshot into memory.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, ListBuilder, MapBuilder, MapFieldNames, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use vigil_model::schema::{string_map_type, ts_type};
use vigil_storage::{PodVersion, Store};

use crate::table::Visibility;

/// The columns of `pods`, documented in `docs/schema.md`.
pub static PODS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let list = || DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("cluster", DataType::Utf8, false),
        Field::new("namespace", DataType::Utf8, false),
        Field::new("pod", DataType::Utf8, false),
        Field::new("uid", DataType::Utf8, true),
        Field::new("node", DataType::Utf8, true),
        Field::new("pod_ips", list(), false),
        Field::new("images", list(), false),
        Field::new("image_ids", list(), false),
        Field::new("service_account", DataType::Utf8, true),
        Field::new("owner_kind", DataType::Utf8, true),
        Field::new("owner_name", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("valid_from", ts_type(), false),
        Field::new("valid_to", ts_type(), true),
        Field::new("first_seen", ts_type(), false),
        Field::new("last_seen", ts_type(), false),
        Field::new("sources", list(), false),
    ]))
});

/// The `pods` table.
#[derive(Debug)]
pub struct PodsTable {
    store: Arc<Store>,
    visibility: Visibility,
}

impl PodsTable {
    pub fn new(store: Arc<Store>) -> Self {
        PodsTable {
            store,
            visibility: Visibility::all(),
        }
    }

    /// The same table showing only the pods `visibility` allows.
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

fn to_batch(versions: &[PodVersion]) -> Result<RecordBatch> {
    let mut strings: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut lists: Vec<ListBuilder<StringBuilder>> = (0..4)
        .map(|_| ListBuilder::new(StringBuilder::new()))
        .collect();
    let mut labels = MapBuilder::new(
        Some(MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut times: Vec<TimestampNanosecondBuilder> = (0..4)
        .map(|_| TimestampNanosecondBuilder::new().with_timezone("UTC"))
        .collect();
    for v in versions {
        let texts = [
            Some(&v.cluster),
            Some(&v.namespace),
            Some(&v.pod),
            v.uid.as_ref(),
            v.node.as_ref(),
            v.service_account.as_ref(),
            v.owner_kind.as_ref(),
            v.owner_name.as_ref(),
        ];
        for (b, t) in strings.iter_mut().zip(texts) {
            b.append_option(t);
        }
        let sources: Vec<String> = v.sources.iter().cloned().collect();
        for (b, items) in lists
            .iter_mut()
            .zip([&v.pod_ips, &v.images, &v.image_ids, &sources])
        {
            for item in items {
                b.values().append_value(item);
            }
            b.append(true);
        }
        for (k, val) in &v.labels {
            labels.keys().append_value(k);
            labels.values().append_value(val);
        }
        labels.append(true)?;
        times[0].append_value(v.valid_from);
        times[1].append_option(v.valid_to);
        times[2].append_value(v.first_seen);
        times[3].append_value(v.last_seen);
    }
    let mut s = strings
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut l = lists
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut t = times
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let next = |it: &mut dyn Iterator<Item = ArrayRef>| it.next().expect("built above");
    let columns = vec![
        next(&mut s), // cluster
        next(&mut s), // namespace
        next(&mut s), // pod
        next(&mut s), // uid
        next(&mut s), // node
        next(&mut l), // pod_ips
        next(&mut l), // images
        next(&mut l), // image_ids
        next(&mut s), // service_account
        next(&mut s), // owner_kind
        next(&mut s), // owner_name
        Arc::new(labels.finish()),
        next(&mut t), // valid_from
        next(&mut t), // valid_to
        next(&mut t), // first_seen
        next(&mut t), // last_seen
        next(&mut l), // sources
    ];
    Ok(RecordBatch::try_new(Arc::clone(&PODS_SCHEMA), columns)?)
}

#[async_trait]
impl TableProvider for PodsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&PODS_SCHEMA)
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
        let mut history = self.store.pod_history();
        history.retain(|v| self.visibility.sees(Some(&v.namespace)));
        let batch = to_batch(&history)?;
        let table = MemTable::try_new(Arc::clone(&PODS_SCHEMA), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
