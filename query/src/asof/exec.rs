//! `AsofJoinExec`: an ASOF join as one streaming pass over two inputs sorted by (keys, time)
//! (a sorted join, built on [`crate::sorted_join`]).
//!
//! Both inputs arrive sorted by their equality keys and then their time (DataFusion adds a
//! sort only where an input is not already in that order; vigil's tables are, by pod, and
//! their sorted partitions are combined by [`crate::partition_merge`]). A cursor walks the right input once; each left row takes the closest right row of its
//! key that satisfies the inequality. Memory is the current left batch plus the right batches
//! between the oldest candidate and the cursor, capped by flushing output early.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::projection::ProjectionMapping;
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::{
    EmbeddedProjection, ProjectionExec, try_embed_projection,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
};

use crate::asof::node::AsofOp;
use crate::sorted_join::{
    BatchJoiner, JoinInputs, KeyMemo, KeyedBatch, LeftKeys, Pending, RightCursor, RowRef,
    concat_parts, joined_stream,
};

/// Right batches kept before pending output is flushed so older ones can be released.
const MAX_RETAINED_BATCHES: usize = 16;

/// The physical ASOF join.
#[derive(Debug)]
pub struct AsofJoinExec {
    inputs: JoinInputs,
    op: AsofOp,
    nearest: bool,
    /// On the scale of [`crate::time::time_values`].
    tolerance: Option<i64>,
    join_type: JoinType,
    /// The join's full output: left columns then right columns.
    schema: SchemaRef,
    /// The columns of `schema` this node outputs (`None`: all), embedded from a projection
    /// above so columns nobody reads are not built.
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AsofJoinExec {
    pub fn try_new(
        inputs: JoinInputs,
        op: AsofOp,
        nearest: bool,
        tolerance: Option<i64>,
        join_type: JoinType,
        schema: SchemaRef,
    ) -> Result<Self> {
        if !matches!(join_type, JoinType::Inner | JoinType::Left) {
            return internal_err!("ASOF join type must be inner or left, got {join_type}");
        }
        if nearest && op.strict() {
            return plan_err!(
                "ASOF NEAREST takes >= or <= (the closest row at any distance, equal times included)"
            );
        }
        let properties = Arc::new(inputs.properties(&schema));
        Ok(AsofJoinExec {
            inputs,
            op,
            nearest,
            tolerance,
            join_type,
            schema,
            projection: None,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The same join over other inputs, keeping its projection.
    fn with_inputs(&self, inputs: JoinInputs) -> Result<Self> {
        let join = AsofJoinExec::try_new(
            inputs,
            self.op,
            self.nearest,
            self.tolerance,
            self.join_type,
            Arc::clone(&self.schema),
        )?;
        join.projected(self.projection.clone())
    }

    /// This join outputting only `projection` of its full output.
    fn projected(mut self, projection: Option<Vec<usize>>) -> Result<Self> {
        let full = self.inputs.properties(&self.schema);
        let properties = match &projection {
            None => full,
            Some(columns) => {
                let mapping = ProjectionMapping::from_indices(columns, &self.schema)?;
                let output = Arc::new(self.schema.project(columns)?);
                PlanProperties::new(
                    full.equivalence_properties().project(&mapping, output),
                    full.output_partitioning().clone(),
                    full.emission_type,
                    full.boundedness,
                )
            }
        };
        self.projection = projection;
        self.properties = Arc::new(properties);
        Ok(self)
    }
}

impl EmbeddedProjection for AsofJoinExec {
    fn with_projection(&self, projection: Option<Vec<usize>>) -> Result<Self> {
        // Indices into this node's output: map them to the full output.
        let projection = match (projection, &self.projection) {
            (Some(p), Some(own)) => Some(p.iter().map(|&i| own[i]).collect()),
            (p, _) => p,
        };
        self.with_inputs(self.inputs.clone())?.projected(projection)
    }
}

impl DisplayAs for AsofJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inputs;
        let on: Vec<String> = i.on.iter().map(|(l, r)| format!("({l}, {r})")).collect();
        write!(
            f,
            "AsofJoinExec: type={}, on=[{}], match={} {} {}",
            self.join_type,
            on.join(", "),
            i.left_time,
            self.op.symbol(),
            i.right_time
        )?;
        if self.nearest {
            write!(f, ", nearest")?;
        }
        if let Some(t) = self.tolerance {
            write!(f, ", tolerance={t}")?;
        }
        if let Some(columns) = &self.projection {
            let names: Vec<String> = columns
                .iter()
                .map(|&c| format!("{}@{c}", self.schema.field(c).name()))
                .collect();
            write!(f, ", projection=[{}]", names.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for AsofJoinExec {
    fn name(&self) -> &str {
        "AsofJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        JoinInputs::distribution()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.inputs.required_input_ordering()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.children()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inputs.apply_expressions(&[], f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(
            self.with_inputs(self.inputs.with_children(children)?)?,
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (left, left_keys, right) = self.inputs.open(partition, context)?;
        let joiner = AsofJoiner {
            left_keys,
            right,
            op: self.op,
            nearest: self.nearest,
            tolerance: self.tolerance,
            keep_unmatched: self.join_type == JoinType::Left,
            schema: self.schema(),
            projection: self.projection.clone(),
            back: None,
            pending: Pending::default(),
            memo: KeyMemo::default(),
        };
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        Ok(joined_stream(self.schema(), left, joiner, metrics))
    }

    fn gather_filters_for_pushdown(
        &self,
        phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        Ok(self.inputs.gather_filters(phase, parent_filters, config))
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let inputs = self.inputs.with_pushed_filter(&child_pushdown_result);
        let mut result = FilterPushdownPropagation::all_unsupported(child_pushdown_result);
        if let Some(inputs) = inputs {
            result = result
                .with_updated_node(Arc::new(self.with_inputs(inputs)?) as Arc<dyn ExecutionPlan>);
        }
        Ok(result)
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        try_embed_projection(projection, self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct AsofJoiner {
    left_keys: LeftKeys,
    right: RightCursor,
    op: AsofOp,
    nearest: bool,
    tolerance: Option<i64>,
    keep_unmatched: bool,
    /// The output schema (projected).
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    /// The latest right row at or before the current left row, of the current key.
    back: Option<RowRef>,
    pending: Pending,
    memo: KeyMemo,
}

impl BatchJoiner for AsofJoiner {
    async fn join_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let left = self.left_keys.keyed(batch)?;
        self.memo.reset();
        self.pending.reserve(left.num_rows());
        let mut parts = vec![];
        let mut i = 0;
        while i < left.num_rows() {
            if left.usable(i)
                && let Some(next) = self.match_run(&left, i)
            {
                i = next;
                continue;
            }
            let found = if left.usable(i) {
                self.find(&left, i, &mut parts).await?
            } else {
                None
            };
            if found.is_some() || self.keep_unmatched {
                self.pending.push(i, found);
            }
            i += 1;
        }
        parts.push(self.flush(&left.batch)?);
        concat_parts(&self.schema, parts)
    }
}

impl AsofJoiner {
    /// The right row matching left row `i`, advancing the cursor.
    async fn find(
        &mut self,
        left: &KeyedBatch,
        i: usize,
        parts: &mut Vec<RecordBatch>,
    ) -> Result<Option<RowRef>> {
        use std::cmp::Ordering::*;
        let t = left.time.value(i);
        if let Some(b) = self.back
            && self.memo.cmp(self.right.get(b), b, left, i) != Equal
        {
            self.back = None;
        }
        let looks_back = self.op.looks_back() || self.nearest;
        let strict = self.op.strict();
        // Whether a right row of the same key at time `rt` comes before the left row.
        let consumes = |rt: i64| match (looks_back, strict) {
            (true, true) => rt < t,
            (true, false) => rt <= t,
            (false, true) => rt <= t,
            (false, false) => rt < t,
        };
        loop {
            // Loaded rows are read without awaiting; only a load goes through `peek`.
            let next = match self.right.settle() {
                Some(pos) => Some(pos),
                None => {
                    let back = self.back;
                    let (pending, schema, projection) =
                        (&mut self.pending, &self.schema, self.projection.as_deref());
                    self.right
                        .peek(|right| {
                            if right.retained() >= MAX_RETAINED_BATCHES {
                                parts.push(pending.build_projected(
                                    schema,
                                    &left.batch,
                                    right,
                                    projection,
                                )?);
                                let pos = right.pos.0;
                                right.release_before(back.map_or(pos, |b| b.0.min(pos)));
                            }
                            Ok(())
                        })
                        .await?
                }
            };
            let Some(pos) = next else { break };
            let r = self.right.get(pos);
            if !r.usable(pos.1) {
                self.right.advance();
                continue;
            }
            match self.memo.cmp(r, pos, left, i) {
                Less => self.right.advance(),
                Greater => break,
                Equal => {
                    if !consumes(r.time.value(pos.1)) {
                        break;
                    }
                    // The rest of the run (same keys, times ascending, NULL times last)
                    // that the left row also passes goes at once.
                    let end = r.run_end(pos.1);
                    let mut k = pos.1 + 1;
                    while k < end && r.time.is_valid(k) && consumes(r.time.value(k)) {
                        k += 1;
                    }
                    if looks_back {
                        self.back = Some((pos.0, k - 1));
                    }
                    self.right.advance_to(k);
                }
            }
        }
        let distance = |at: RowRef| (self.right.get(at).time.value(at.1) - t).abs();
        let chosen = if self.op.looks_back() && !self.nearest {
            self.back
        } else {
            // The next right row of the key, at or after the left row's time.
            let ahead = self.right.current().filter(|&pos| {
                let r = self.right.get(pos);
                r.usable(pos.1) && self.memo.cmp(r, pos, left, i) == Equal
            });
            if self.nearest {
                match (self.back, ahead) {
                    (Some(b), Some(a)) => Some(if distance(a) < distance(b) { a } else { b }),
                    (b, a) => b.or(a),
                }
            } else {
                ahead
            }
        };
        Ok(chosen.filter(|&at| self.tolerance.is_none_or(|tol| distance(at) <= tol)))
    }

    /// The fast path of a backward join (`>=`, `>`, without NEAREST): matches left rows from
    /// `i` on, of one run of equal keys, against the run of the same keys under the right
    /// cursor, comparing times only. Returns the first left row it did not match, or `None`
    /// when it matched none and [`AsofJoiner::find`] must (keys differ, a row is unusable, or the
    /// right run may go on in a batch not loaded yet).
    fn match_run(&mut self, left: &KeyedBatch, i: usize) -> Option<usize> {
        if !self.op.looks_back() || self.nearest {
            return None;
        }
        let pos = self.right.settle()?;
        let r = self.right.get(pos);
        if !r.usable(pos.1) || self.memo.cmp(r, pos, left, i) != std::cmp::Ordering::Equal {
            return None;
        }
        if let Some(b) = self.back
            && self.memo.cmp(self.right.get(b), b, left, i) != std::cmp::Ordering::Equal
        {
            self.back = None;
        }
        let strict = self.op.strict();
        let (right_end, batch_end) = (r.run_end(pos.1), r.num_rows());
        let left_end = left.run_end(i);
        let mut k = pos.1;
        let mut back = self.back;
        let mut j = i;
        while j < left_end && left.time.is_valid(j) {
            let t = left.time.value(j);
            while k < right_end
                && r.time.is_valid(k)
                && (if strict {
                    r.time.value(k) < t
                } else {
                    r.time.value(k) <= t
                })
            {
                k += 1;
            }
            // Consumed rows come before every later left row too.
            if k > pos.1 {
                back = Some((pos.0, k - 1));
            }
            // Rows of the run may follow in the next right batch: `find` loads it.
            if k == right_end && right_end == batch_end {
                break;
            }
            let found = back.filter(|&at| {
                self.tolerance
                    .is_none_or(|tol| (self.right.get(at).time.value(at.1) - t).abs() <= tol)
            });
            if found.is_some() || self.keep_unmatched {
                self.pending.push(j, found);
            }
            j += 1;
        }
        self.back = back;
        self.right.advance_to(k);
        (j > i).then_some(j)
    }

    /// Builds the output for the pending rows, then releases right batches nobody needs.
    fn flush(&mut self, left: &RecordBatch) -> Result<RecordBatch> {
        let out = self.pending.build_projected(
            &self.schema,
            left,
            &self.right,
            self.projection.as_deref(),
        )?;
        let pos = self.right.pos.0;
        let keep_from = self.back.map_or(pos, |b| b.0.min(pos));
        self.right.release_before(keep_from);
        Ok(out)
    }
}
