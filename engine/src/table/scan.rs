//! Builds the physical plan of a scan of one kind: the pruned segments as one Parquet
//! partition each, and the selected hot rows, sorted, as one more partition. Every partition
//! is in the kind's row order ((pod, ts), or (pod, name, ts) for metrics) and says so, so
//! DataFusion merges instead of sorting; a filter `name = '...'` makes a metric scan
//! (pod, ts)-ordered as far as DataFusion's equivalence analysis is concerned.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, col};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use vigil_model::schema::{ColumnType, columns, kind_schema};
use vigil_storage::prune::{prune_segments, select_hot};
use vigil_storage::segment::sort::{RowOrder, sort_batch};
use vigil_storage::{PruneStats, ScanFilter, SegmentScan, SignalKind, Store, Version};

use crate::table::access::access_plan;
use crate::table::segment_reader::SegmentReaderFactory;

/// The ordering of `order`'s key columns, ascending, NULLs last, over `schema`, which has
/// them all.
pub fn row_ordering(schema: &SchemaRef, order: RowOrder) -> Result<LexOrdering> {
    let options = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let exprs = order
        .key_columns()
        .iter()
        .map(|name| Ok(PhysicalSortExpr::new(col(name, schema)?, options)))
        .collect::<Result<Vec<_>>>()?;
    LexOrdering::new(exprs)
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("empty ordering".into()))
}

/// The string columns of a kind whose equality filters can prune.
pub fn string_columns(kind: SignalKind) -> Vec<&'static str> {
    columns(kind)
        .filter(|c| c.ty == ColumnType::Utf8)
        .map(|c| c.name)
        .collect()
}

/// One kind's part of a scan: its plan and what pruning did.
#[derive(Debug)]
pub struct KindScan {
    pub plan: Arc<dyn ExecutionPlan>,
    /// The segments read, by the location of their file (as the plan names it).
    pub segments: Vec<(String, SegmentScan)>,
    pub prune: PruneStats,
    pub hot_rows: usize,
    pub hot_rows_total: usize,
}

/// Whether `filter` is one the scan of `kind` answers exactly, so DataFusion need not apply
/// it again (nor read its column): `name = '...'` and `name IN (...)` on metrics, which
/// series-major segments index row by row and hot rows are filtered by.
pub fn is_exact_filter(kind: SignalKind, filter: &Expr) -> bool {
    fn is_name(e: &Expr) -> bool {
        matches!(e, Expr::Column(c) if c.name == "name")
    }
    fn is_text(e: &Expr) -> bool {
        matches!(
            e,
            Expr::Literal(
                ScalarValue::Utf8(Some(_))
                    | ScalarValue::LargeUtf8(Some(_))
                    | ScalarValue::Utf8View(Some(_)),
                _
            )
        )
    }
    if kind != SignalKind::Metric {
        return false;
    }
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if *op == Operator::Eq => {
            (is_name(left) && is_text(right)) || (is_text(left) && is_name(right))
        }
        Expr::InList(list) => !list.negated && is_name(&list.expr) && list.list.iter().all(is_text),
        _ => false,
    }
}

/// Plans the scan of `kind` with `projection` (indices into the kind's schema).
///
/// Filters [`is_exact_filter`] calls exact are answered by the index: when a segment's index
/// cannot (its `name` column has too many values to index) or the filters did not reduce to
/// values of `name`, they are applied here, reading `name` for them.
pub fn scan_kind(
    state: &dyn Session,
    store: &Store,
    version: &Version,
    kind: SignalKind,
    filter: &ScanFilter,
    filters: &[Expr],
    projection: Option<&Vec<usize>>,
) -> Result<KindScan> {
    let schema = kind_schema(kind);
    let (segments, prune) = prune_segments(version, kind, filter, store.pods());
    let exact: Vec<Expr> = filters
        .iter()
        .filter(|f| is_exact_filter(kind, f))
        .cloned()
        .collect();
    let names = filter.values.get("name");
    let indexed = names.is_some()
        && segments
            .iter()
            .all(|s| s.segment.meta().index.is_exact("name"));
    let recheck = !exact.is_empty() && !indexed;
    let order = RowOrder::of(kind);
    // One metric name, selected exactly: rows are in (pod, ts) order.
    let ordering = if !exact.is_empty() && indexed && names.is_some_and(|n| n.len() == 1) {
        row_ordering(&schema, RowOrder::PodTs)?
    } else {
        row_ordering(&schema, order)?
    };
    // Re-checking needs `name`, which the projection may have left out for an exact filter.
    let name_index = schema.index_of("name").ok();
    let wanted = projection.cloned();
    let projection = match (&wanted, name_index) {
        (Some(p), Some(n)) if recheck && !p.contains(&n) => {
            let mut p = p.clone();
            p.push(n);
            Some(p)
        }
        _ => wanted.clone(),
    };
    let projection = projection.as_ref();
    let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let mut planned = Vec::with_capacity(segments.len());

    if !segments.is_empty() {
        let mut options = state.config_options().execution.parquet.clone();
        options.schema_force_view_types = false;
        // Segments carry no bloom filters: their own index answers equality filters.
        options.bloom_filter_on_read = false;
        let table_options = datafusion::config::TableParquetOptions {
            global: options,
            ..Default::default()
        };
        // Segment files never change, so their footers and page indexes are cached across
        // queries in the session's metadata cache (page indexes too: `segment_reader`).
        let runtime = state.runtime_env();
        let store = runtime.object_store(ObjectStoreUrl::local_filesystem())?;
        let reader = SegmentReaderFactory::new(CachedParquetFileReaderFactory::new(
            store,
            runtime.cache_manager.get_file_metadata_cache(),
        ));
        let mut source = ParquetSource::new(Arc::clone(&schema))
            .with_table_parquet_options(table_options)
            .with_parquet_file_reader_factory(Arc::new(reader));
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let groups = segments
            .iter()
            .map(|scan| {
                let path = scan.segment.path().to_string_lossy().into_owned();
                let mut file = PartitionedFile::new(path, scan.segment.meta().file_size);
                planned.push((file.object_meta.location.to_string(), scan.clone()));
                if let Some(plan) = access_plan(scan) {
                    file = file.with_extension(plan);
                }
                FileGroup::new(vec![file])
            })
            .collect();
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(groups)
                .with_output_ordering(vec![ordering.clone()])
                .with_projection_indices(projection.cloned())?
                .build();
        inputs.push(DataSourceExec::from_data_source(config));
    }

    let hot_rows_total: usize = version.hot_batches(kind).map(|h| h.batch.num_rows()).sum();
    let hot = select_hot(version, kind, filter)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let hot_rows: usize = hot.iter().map(|b| b.num_rows()).sum();
    if hot_rows > 0 {
        let all = datafusion::arrow::compute::concat_batches(&schema, &hot)?;
        let sorted = sort_batch(&all, order)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let source =
            MemorySourceConfig::try_new(&[vec![sorted]], Arc::clone(&schema), projection.cloned())?
                .try_with_sort_information(vec![ordering])?;
        inputs.push(DataSourceExec::from_data_source(source));
    }

    let read_any = !inputs.is_empty();
    let plan = match inputs.len() {
        0 => {
            let projected = match wanted.as_ref() {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            Arc::new(EmptyExec::new(projected)) as Arc<dyn ExecutionPlan>
        }
        _ => UnionExec::try_new(inputs)?,
    };
    let plan = match conjunction(exact) {
        Some(predicate) if recheck && read_any => {
            recheck_filter(state, plan, predicate, wanted.as_ref())?
        }
        _ => plan,
    };
    Ok(KindScan {
        plan,
        segments: planned,
        prune,
        hot_rows,
        hot_rows_total,
    })
}

/// `plan` filtered by `predicate`, then projected to `wanted` (indices into the kind's
/// schema; `plan` has them first, in order, and maybe `name` after them).
fn recheck_filter(
    state: &dyn Session,
    plan: Arc<dyn ExecutionPlan>,
    predicate: Expr,
    wanted: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let scanned = plan.schema();
    let df_schema = DFSchema::try_from(Arc::clone(&scanned))?;
    let predicate = state.create_physical_expr(predicate, &df_schema)?;
    let filtered = Arc::new(FilterExec::try_new(predicate, plan)?);
    let keep = wanted.map_or(scanned.fields().len(), |w| w.len());
    if keep == scanned.fields().len() {
        return Ok(filtered);
    }
    let exprs = (0..keep)
        .map(|i| {
            let name = scanned.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(ProjectionExec::try_new(exprs, filtered)?))
}
