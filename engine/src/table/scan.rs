//! Builds the physical plan of a scan of one kind: the pruned segments as one Parquet
//! partition each, and the selected hot rows, sorted, as one more partition. Every partition
//! is in (pod, ts) order and says so, so DataFusion merges instead of sorting.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use vigil_storage::prune::{prune_segments, select_hot};
use vigil_storage::schema::{ColumnType, columns, kind_schema};
use vigil_storage::segment::sort::sort_batch;
use vigil_storage::{PruneStats, ScanFilter, SegmentScan, SignalKind, Store, Version};

use crate::table::access::access_plan;
use crate::table::segment_reader::SegmentReaderFactory;

/// The (pod ASC NULLS LAST, ts ASC) ordering over `schema`, which has both columns.
pub fn pod_ts_ordering(schema: &SchemaRef) -> Result<LexOrdering> {
    let options = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let exprs = vec![
        PhysicalSortExpr::new(col("pod", schema)?, options),
        PhysicalSortExpr::new(col("ts", schema)?, options),
    ];
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

/// Plans the scan of `kind` with `projection` (indices into the kind's schema).
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
    let ordering = pod_ts_ordering(&schema)?;
    let (segments, prune) = prune_segments(version, kind, filter, store.pods());
    let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let mut planned = Vec::with_capacity(segments.len());

    if !segments.is_empty() {
        let mut options = state.config_options().execution.parquet.clone();
        options.schema_force_view_types = false;
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
        let sorted = sort_batch(&all)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let source =
            MemorySourceConfig::try_new(&[vec![sorted]], Arc::clone(&schema), projection.cloned())?
                .try_with_sort_information(vec![ordering])?;
        inputs.push(DataSourceExec::from_data_source(source));
    }

    let plan = match inputs.len() {
        0 => {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            Arc::new(EmptyExec::new(projected)) as Arc<dyn ExecutionPlan>
        }
        _ => UnionExec::try_new(inputs)?,
    };
    Ok(KindScan {
        plan,
        segments: planned,
        prune,
        hot_rows,
        hot_rows_total,
    })
}
