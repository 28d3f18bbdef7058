//! `VigilScanExec`: the top of every vigil table scan. It passes its input through, narrowed
//! to the pods of a join's dynamic filter when one arrives complete (see
//! [`crate::table::join_pods`]), and says, in `EXPLAIN` and as metrics in `EXPLAIN ANALYZE`,
//! what pruning saved.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::physical_plan::filter_pushdown::{
    ChildFilterDescription, ChildPushdownResult, FilterDescription, FilterPushdownPhase,
    FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::Count;
use parking_lot::Mutex;
use vigil_storage::{SegmentScan, Store};

use crate::table::join_pods::{PlannedSegments, allowed_pods, is_pod_filter};
use crate::table::scan::KindScan;

use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use vigil_storage::PruneStats;

/// What one table scan pruned, summed over kinds for `signals`, and the segments it reads.
#[derive(Debug, Clone, Default)]
pub struct ScanSummary {
    pub table: String,
    pub prune: PruneStats,
    pub hot_rows: usize,
    pub hot_rows_total: usize,
    /// The segments read, by the location of their file.
    pub segments: Vec<(String, SegmentScan)>,
}

impl ScanSummary {
    /// Adds one kind's scan.
    pub fn add(&mut self, scan: &KindScan) {
        self.segments.extend(scan.segments.iter().cloned());
        let (prune, hot_rows, hot_rows_total) = (&scan.prune, scan.hot_rows, scan.hot_rows_total);
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

/// An input narrowed to a set of pods.
type NarrowedInput = (BTreeSet<String>, Arc<dyn ExecutionPlan>);

/// Pass-through node carrying a scan's pruning summary.
#[derive(Debug)]
pub struct VigilScanExec {
    summary: ScanSummary,
    input: Arc<dyn ExecutionPlan>,
    /// The planned segments, to narrow to a join's pods.
    segments: PlannedSegments,
    /// Dynamic filters from joins above that may name pods.
    pod_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// The input narrowed to the last pod set seen (every partition narrows alike).
    narrowed: Mutex<Option<NarrowedInput>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    rows_after_join_filter: Count,
}

impl VigilScanExec {
    pub fn new(summary: ScanSummary, store: Arc<Store>, input: Arc<dyn ExecutionPlan>) -> Self {
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
        let rows_after_join_filter =
            MetricBuilder::new(&metrics).global_counter("segment_rows_after_join_filter");
        VigilScanExec {
            properties: Arc::clone(input.properties()),
            segments: PlannedSegments::new(store, summary.segments.clone()),
            summary,
            input,
            pod_filters: Vec::new(),
            narrowed: Mutex::new(None),
            metrics,
            rows_after_join_filter,
        }
    }

    fn with_pod_filters(&self, pod_filters: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        VigilScanExec {
            summary: self.summary.clone(),
            input: Arc::clone(&self.input),
            segments: self.segments.clone(),
            pod_filters,
            narrowed: Mutex::new(None),
            properties: Arc::clone(&self.properties),
            metrics: self.metrics.clone(),
            rows_after_join_filter: self.rows_after_join_filter.clone(),
        }
    }

    /// The pods every complete pod filter allows, `None` when none says.
    fn join_pods(&self) -> Option<BTreeSet<String>> {
        let mut pods: Option<BTreeSet<String>> = None;
        for filter in &self.pod_filters {
            if let Some(allowed) = allowed_pods(filter) {
                pods = Some(match pods {
                    None => allowed,
                    Some(p) => p.intersection(&allowed).cloned().collect(),
                });
            }
        }
        pods
    }

    /// The input to execute: narrowed to the joins' pods when they are known.
    fn input_to_run(&self) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(pods) = self.join_pods() else {
            return Ok(Arc::clone(&self.input));
        };
        let mut narrowed = self.narrowed.lock();
        if let Some((seen, plan)) = narrowed.as_ref()
            && *seen == pods
        {
            return Ok(Arc::clone(plan));
        }
        let (plan, rows) = self.segments.narrow(&self.input, &pods)?;
        self.rows_after_join_filter.add(rows as usize);
        *narrowed = Some((pods, Arc::clone(&plan)));
        Ok(plan)
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
        let mut node = self.with_pod_filters(self.pod_filters.clone());
        node.properties = Arc::clone(input.properties());
        node.input = input;
        Ok(Arc::new(node))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        Ok(FilterDescription::new()
            .with_child(ChildFilterDescription::all_unsupported(&parent_filters)))
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let pod_filters: Vec<_> = child_pushdown_result
            .parent_filters
            .iter()
            .map(|f| Arc::clone(&f.filter))
            .filter(is_pod_filter)
            .collect();
        let mut result = FilterPushdownPropagation::all_unsupported(child_pushdown_result);
        if !pod_filters.is_empty() {
            result = result.with_updated_node(
                Arc::new(self.with_pod_filters(pod_filters)) as Arc<dyn ExecutionPlan>
            );
        }
        Ok(result)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input_to_run()?.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
