//! `VigilScanExec`: the top of every vigil table scan. It passes its input through unchanged
//! and says, in `EXPLAIN` and as metrics in `EXPLAIN ANALYZE`, what pruning saved.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use vigil_storage::PruneStats;

/// What one table scan pruned, summed over kinds for `signals`.
#[derive(Debug, Clone, Default)]
pub struct ScanSummary {
    pub table: String,
    pub prune: PruneStats,
    pub hot_rows: usize,
    pub hot_rows_total: usize,
}

impl ScanSummary {
    pub fn add(&mut self, prune: PruneStats, hot_rows: usize, hot_rows_total: usize) {
        let p = &mut self.prune;
        p.segments_total += prune.segments_total;
        p.segments_pruned_by_time += prune.segments_pruned_by_time;
        p.segments_pruned_by_index += prune.segments_pruned_by_index;
        p.row_groups_total += prune.row_groups_total;
        p.row_groups_pruned_by_index += prune.row_groups_pruned_by_index;
        p.rows_total += prune.rows_total;
        p.rows_selected += prune.rows_selected;
        self.hot_rows += hot_rows;
        self.hot_rows_total += hot_rows_total;
    }
}

/// Pass-through node carrying a scan's pruning summary.
#[derive(Debug)]
pub struct VigilScanExec {
    summary: ScanSummary,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl VigilScanExec {
    pub fn new(summary: ScanSummary, input: Arc<dyn ExecutionPlan>) -> Self {
        let metrics = ExecutionPlanMetricsSet::new();
        let p = &summary.prune;
        let counters = [
            ("segments_total", p.segments_total),
            ("segments_pruned_by_time", p.segments_pruned_by_time),
            ("segments_pruned_by_index", p.segments_pruned_by_index),
            ("row_groups_total", p.row_groups_total),
            ("row_groups_pruned_by_index", p.row_groups_pruned_by_index),
            ("segment_rows_selected", p.rows_selected as usize),
            ("hot_rows_selected", summary.hot_rows),
        ];
        for (name, value) in counters {
            MetricBuilder::new(&metrics).global_counter(name).add(value);
        }
        VigilScanExec {
            properties: Arc::clone(input.properties()),
            summary,
            input,
            metrics,
        }
    }

    pub fn summary(&self) -> &ScanSummary {
        &self.summary
    }
}

impl DisplayAs for VigilScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let p = &s.prune;
        let read = p.segments_total - p.segments_pruned_by_time - p.segments_pruned_by_index;
        write!(
            f,
            "VigilScanExec: table={}, segments={read}/{} (pruned by time={}, by index={}), row_groups={}/{} (pruned by index={}), segment_rows={}/{}, hot_rows={}/{}",
            s.table,
            p.segments_total,
            p.segments_pruned_by_time,
            p.segments_pruned_by_index,
            p.row_groups_total
                .saturating_sub(p.row_groups_pruned_by_index),
            p.row_groups_total,
            p.row_groups_pruned_by_index,
            p.rows_selected,
            p.rows_total,
            s.hot_rows,
            s.hot_rows_total,
        )
    }
}

impl ExecutionPlan for VigilScanExec {
    fn name(&self) -> &str {
        "VigilScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("VigilScanExec needs one child".into())
        })?;
        Ok(Arc::new(VigilScanExec::new(self.summary.clone(), input)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
