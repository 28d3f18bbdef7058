//! `KeyFilter`: the rows of one input (the probe) whose keys occur in another (the build),
//! in the probe's order. A semi join that keeps its probe's partitions and ordering, reads the
//! build side first and hands its keys to the probe's scan as a dynamic filter, so a scan
//! that can prune by key reads only rows that can pass.
//!
//! MATCH_RECOGNIZE uses it to read only the partitions where a variable every match needs
//! occurs (see `match_recognize::reduce`). Keys compare as GROUP BY compares them: NULL keys
//! are equal to each other.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, DataFusionError, Result, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_plan::filter_pushdown::{
    ChildFilterDescription, ChildPushdownResult, FilterDescription, FilterPushdownPhase,
    FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use crate::dynamic_filter::{leave_open, new_key_filter, publish_keys};

/// `probe` rows whose `keys` occur among `build`'s rows (every column of `build` is a key, in
/// the order of `keys`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyFilterNode {
    pub probe: LogicalPlan,
    pub build: LogicalPlan,
    pub keys: Vec<Expr>,
}

impl PartialOrd for KeyFilterNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.keys.partial_cmp(&other.keys)
    }
}

impl UserDefinedLogicalNodeCore for KeyFilterNode {
    fn name(&self) -> &str {
        "KeyFilter"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.probe, &self.build]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.probe.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        self.keys.clone()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        write!(f, "KeyFilter: keys=[{}]", keys.join(", "))
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [probe, build]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("KeyFilter needs two inputs".into()))?;
        Ok(KeyFilterNode {
            probe,
            build,
            keys: exprs,
        })
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let schema = self.probe.schema();
        let mut probe: Vec<usize> = output_columns.to_vec();
        for key in &self.keys {
            let Expr::Column(c) = key else {
                return None;
            };
            probe.push(schema.index_of_column(c).ok()?);
        }
        probe.sort_unstable();
        probe.dedup();
        let build = (0..self.build.schema().fields().len()).collect();
        Some(vec![probe, build])
    }
}

/// Plans [`KeyFilterNode`]s as [`KeyFilterExec`]s.
#[derive(Debug, Default)]
pub struct KeyFilterExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for KeyFilterExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<KeyFilterNode>() else {
            return Ok(None);
        };
        let ([probe_plan, _], [probe, build]) = (logical_inputs, physical_inputs) else {
            return internal_err!("KeyFilter needs two inputs");
        };
        let keys = node
            .keys
            .iter()
            .map(|k| planner.create_physical_expr(k, probe_plan.schema(), session, ctx))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(KeyFilterExec::try_new(
            Arc::clone(probe),
            Arc::clone(build),
            keys,
        )?)))
    }
}

/// The distinct keys of the build side.
#[derive(Debug)]
struct KeySet {
    converter: RowConverter,
    rows: HashSet<Vec<u8>>,
}

/// The physical [`KeyFilterNode`]: partitions and ordering are the probe's.
#[derive(Debug)]
pub struct KeyFilterExec {
    probe: Arc<dyn ExecutionPlan>,
    build: Arc<dyn ExecutionPlan>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    dynamic_filter: Option<Arc<DynamicFilterPhysicalExpr>>,
    /// Built once, by whichever probe partition starts first.
    key_set: Arc<OnceCell<Arc<KeySet>>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl KeyFilterExec {
    pub fn try_new(
        probe: Arc<dyn ExecutionPlan>,
        build: Arc<dyn ExecutionPlan>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Self> {
        if keys.len() != build.schema().fields().len() {
            return internal_err!(
                "KeyFilter has {} keys but its build side {} columns",
                keys.len(),
                build.schema().fields().len()
            );
        }
        Ok(KeyFilterExec {
            properties: Arc::clone(probe.properties()),
            probe,
            build,
            keys,
            dynamic_filter: None,
            key_set: Arc::new(OnceCell::new()),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn with(&self, probe: Arc<dyn ExecutionPlan>, build: Arc<dyn ExecutionPlan>) -> Self {
        KeyFilterExec {
            properties: Arc::clone(probe.properties()),
            probe,
            build,
            keys: self.keys.clone(),
            dynamic_filter: self.dynamic_filter.clone(),
            key_set: Arc::new(OnceCell::new()),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for KeyFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        write!(f, "KeyFilterExec: keys=[{}]", keys.join(", "))
    }
}

impl ExecutionPlan for KeyFilterExec {
    fn name(&self) -> &str {
        "KeyFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![
            Distribution::UnspecifiedDistribution,
            Distribution::SinglePartition,
        ])
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.probe, &self.build]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for k in &self.keys {
            if f(k)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [probe, build]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("KeyFilterExec needs two children".into()))?;
        Ok(Arc::new(self.with(probe, build)))
    }

    fn gather_filters_for_pushdown(
        &self,
        phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        let mut probe = ChildFilterDescription::from_child(&parent_filters, &self.probe)?;
        if phase == FilterPushdownPhase::Post
            && self.dynamic_filter.is_none()
            && config.optimizer.enable_join_dynamic_filter_pushdown
        {
            probe = probe.with_self_filter(new_key_filter(&self.keys));
        }
        Ok(FilterDescription::new()
            .with_child(probe)
            .with_child(ChildFilterDescription::all_unsupported(&parent_filters)))
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let pushed = child_pushdown_result
            .self_filters
            .first()
            .and_then(|f| f.first())
            .map(|f| Arc::clone(&f.predicate));
        let mut result = FilterPushdownPropagation::all_unsupported(child_pushdown_result);
        if let Some(predicate) = pushed {
            let any: Arc<dyn std::any::Any + Send + Sync> = predicate;
            if let Ok(filter) = Arc::downcast::<DynamicFilterPhysicalExpr>(any) {
                let mut node = self.with(Arc::clone(&self.probe), Arc::clone(&self.build));
                node.dynamic_filter = Some(filter);
                result = result.with_updated_node(Arc::new(node) as Arc<dyn ExecutionPlan>);
            }
        }
        Ok(result)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let key_set = Arc::clone(&self.key_set);
        let build = Arc::clone(&self.build);
        let probe = Arc::clone(&self.probe);
        let keys = self.keys.clone();
        let filter = self.dynamic_filter.clone();
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let opened = async move {
            let set = key_set
                .get_or_try_init(|| {
                    collect_keys(
                        build,
                        Arc::clone(&context),
                        filter,
                        keys.clone(),
                        probe.schema(),
                    )
                })
                .await?;
            let set = Arc::clone(set);
            let rows = probe.execute(partition, context)?;
            Ok::<_, DataFusionError>(rows.map(move |batch| {
                let batch = batch?;
                let kept = keep_known(&batch, &keys, &set)?;
                metrics.record_output(kept.num_rows());
                Ok(kept)
            }))
        };
        let stream = futures::stream::once(opened).try_flatten().boxed();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Reads the build side into its distinct keys and publishes them to the probe's filter.
async fn collect_keys(
    build: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    filter: Option<Arc<DynamicFilterPhysicalExpr>>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    probe_schema: arrow::datatypes::SchemaRef,
) -> Result<Arc<KeySet>> {
    let fields = build
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let mut rows = HashSet::new();
    let mut nulls = false;
    let mut stream = build.execute(0, context)?;
    let collected = async {
        while let Some(batch) = stream.next().await.transpose()? {
            nulls |= batch.columns().iter().any(|c| c.null_count() > 0);
            let converted = converter.convert_columns(batch.columns())?;
            for row in converted.iter() {
                if !rows.contains(row.as_ref()) {
                    rows.insert(row.as_ref().to_vec());
                }
            }
        }
        Ok::<_, DataFusionError>(())
    }
    .await;
    if let Err(e) = collected {
        if let Some(f) = &filter {
            leave_open(f);
        }
        return Err(e);
    }
    if let Some(filter) = &filter {
        if nulls {
            // `IN` lists drop NULL keys, which here are a key like any other.
            leave_open(filter);
        } else {
            let parser = converter.parser();
            let columns: Vec<ArrayRef> =
                converter.convert_rows(rows.iter().map(|r| parser.parse(r)))?;
            let values: Vec<Vec<ArrayRef>> = columns.into_iter().map(|c| vec![c]).collect();
            publish_keys(filter, &keys, &values, &probe_schema)?;
        }
    }
    Ok(Arc::new(KeySet { converter, rows }))
}

/// The rows of `batch` whose keys are in `set`.
fn keep_known(
    batch: &RecordBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    set: &KeySet,
) -> Result<RecordBatch> {
    let columns = keys
        .iter()
        .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
        .collect::<Result<Vec<_>>>()?;
    let rows = set.converter.convert_columns(&columns)?;
    let mask: BooleanArray = rows
        .iter()
        .map(|r| Some(set.rows.contains(r.as_ref())))
        .collect();
    Ok(filter_record_batch(batch, &mask)?)
}
