//! `AsofJoinExec`: an ASOF join as one streaming merge of two inputs sorted by (keys, time).
//!
//! Both inputs arrive sorted by their equality keys and then their time (DataFusion adds a
//! merge or a sort only where an input is not already in that order; vigil's tables are, by
//! pod). A cursor walks the right input once; each left row takes the closest right row of its
//! key that satisfies the inequality. Memory is the current left batch plus the right batches
//! between the oldest candidate and the cursor, capped by flushing output early.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
};

use crate::asof::node::AsofOp;
use crate::merge::{
    BatchJoiner, KeyMemo, KeyedBatch, LeftKeys, MergeInputs, Pending, RightCursor, RowRef,
    concat_parts, joined_stream,
};

/// Right batches kept before pending output is flushed so older ones can be released.
const MAX_RETAINED_BATCHES: usize = 16;

/// The physical ASOF join.
#[derive(Debug)]
pub struct AsofJoinExec {
    inputs: MergeInputs,
    op: AsofOp,
    nearest: bool,
    /// On the scale of [`crate::time::time_values`].
    tolerance: Option<i64>,
    join_type: JoinType,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AsofJoinExec {
    pub fn try_new(
        inputs: MergeInputs,
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
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
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
        MergeInputs::distribution()
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
        Ok(Arc::new(AsofJoinExec::try_new(
            self.inputs.with_children(children)?,
            self.op,
            self.nearest,
            self.tolerance,
            self.join_type,
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let (left, left_keys, right) = self.inputs.open(partition, context)?;
        let merger = Merger {
            left_keys,
            right,
            op: self.op,
            nearest: self.nearest,
            tolerance: self.tolerance,
            keep_unmatched: self.join_type == JoinType::Left,
            schema: Arc::clone(&self.schema),
            back: None,
            pending: Pending::default(),
            memo: KeyMemo::default(),
        };
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        Ok(joined_stream(
            Arc::clone(&self.schema),
            left,
            merger,
            metrics,
        ))
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
            result = result.with_updated_node(Arc::new(AsofJoinExec::try_new(
                inputs,
                self.op,
                self.nearest,
                self.tolerance,
                self.join_type,
                Arc::clone(&self.schema),
            )?) as Arc<dyn ExecutionPlan>);
        }
        Ok(result)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct Merger {
    left_keys: LeftKeys,
    right: RightCursor,
    op: AsofOp,
    nearest: bool,
    tolerance: Option<i64>,
    keep_unmatched: bool,
    schema: SchemaRef,
    /// The latest right row at or before the current left row, of the current key.
    back: Option<RowRef>,
    pending: Pending,
    memo: KeyMemo,
}

impl BatchJoiner for Merger {
    async fn join_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let left = self.left_keys.keyed(batch)?;
        self.memo.reset();
        let mut parts = vec![];
        for i in 0..left.num_rows() {
            let found = if left.usable(i) {
                self.find(&left, i, &mut parts).await?
            } else {
                None
            };
            if found.is_some() || self.keep_unmatched {
                self.pending.push(i, found);
            }
        }
        parts.push(self.flush(&left.batch)?);
        concat_parts(&self.schema, parts)
    }
}

impl Merger {
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
        loop {
            let back = self.back;
            let (pending, schema) = (&mut self.pending, &self.schema);
            let next = self
                .right
                .peek(|right| {
                    if right.retained() >= MAX_RETAINED_BATCHES {
                        parts.push(pending.build(schema, &left.batch, right)?);
                        let pos = right.pos.0;
                        right.release_before(back.map_or(pos, |b| b.0.min(pos)));
                    }
                    Ok(())
                })
                .await?;
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
                    let rt = r.time.value(pos.1);
                    let consume = match (looks_back, strict) {
                        (true, true) => rt < t,
                        (true, false) => rt <= t,
                        (false, true) => rt <= t,
                        (false, false) => rt < t,
                    };
                    if !consume {
                        break;
                    }
                    if looks_back {
                        self.back = Some(pos);
                    }
                    self.right.advance();
                }
            }
        }
        let ahead = self.right.current().filter(|&pos| {
            let r = self.right.get(pos);
            r.usable(pos.1) && self.memo.cmp(r, pos, left, i) == Equal
        });
        let distance = |at: RowRef| (self.right.get(at).time.value(at.1) - t).abs();
        let chosen = if self.nearest {
            match (self.back, ahead) {
                (Some(b), Some(a)) => Some(if distance(a) < distance(b) { a } else { b }),
                (b, a) => b.or(a),
            }
        } else if self.op.looks_back() {
            self.back
        } else {
            ahead
        };
        Ok(chosen.filter(|&at| self.tolerance.is_none_or(|tol| distance(at) <= tol)))
    }

    /// Builds the output for the pending rows, then releases right batches nobody needs.
    fn flush(&mut self, left: &RecordBatch) -> Result<RecordBatch> {
        let out = self.pending.build(&self.schema, left, &self.right)?;
        let pos = self.right.pos.0;
        let keep_from = self.back.map_or(pos, |b| b.0.min(pos));
        self.right.release_before(keep_from);
        Ok(out)
    }
}
