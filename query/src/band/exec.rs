//! `BandJoinExec`: an inner equi-join with a time band, as one streaming pass over inputs
//! sorted by (keys, time) (a sorted join, built on [`crate::sorted_join`]).
//!
//! Both inputs arrive sorted by (keys, time). For each left row, the right rows of its key
//! whose time lies in `[t + low, t + high]` sit in a sliding window: rows enter as the cursor
//! passes them and leave once they fall below the band. Memory is the window (bounded by a
//! key's rows within the band) plus the current left batch.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{JoinSide, JoinType, Result, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::joins::utils::{JoinFilter, build_join_schema};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, PlanProperties,
};

use crate::sorted_join::{
    BatchJoiner, JoinInputs, KeyMemo, LeftKeys, Pending, RightCursor, RowRef, concat_parts,
    joined_stream,
};

/// Right batches kept before pending output is flushed so older ones can be released.
const MAX_RETAINED_BATCHES: usize = 16;

/// `right.time - left.time` must lie within these bounds (on the normalised time scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandBounds {
    pub low: i64,
    pub low_strict: bool,
    pub high: i64,
    pub high_strict: bool,
}

impl BandBounds {
    fn below(&self, left: i64, right: i64) -> bool {
        let d = right.saturating_sub(left);
        if self.low_strict {
            d <= self.low
        } else {
            d < self.low
        }
    }

    fn above(&self, left: i64, right: i64) -> bool {
        let d = right.saturating_sub(left);
        if self.high_strict {
            d >= self.high
        } else {
            d > self.high
        }
    }
}

/// The physical band join.
#[derive(Debug)]
pub struct BandJoinExec {
    inputs: JoinInputs,
    bounds: BandBounds,
    /// The join's whole filter, applied to every candidate pair (the band included).
    filter: JoinFilter,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BandJoinExec {
    pub fn new(inputs: JoinInputs, bounds: BandBounds, filter: JoinFilter) -> Self {
        let (schema, _) = build_join_schema(
            &inputs.left.schema(),
            &inputs.right.schema(),
            &JoinType::Inner,
        );
        let schema = Arc::new(schema);
        let properties = Arc::new(inputs.properties(&schema));
        BandJoinExec {
            inputs,
            bounds,
            filter,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for BandJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inputs;
        let on: Vec<String> = i.on.iter().map(|(l, r)| format!("({l}, {r})")).collect();
        let b = &self.bounds;
        write!(
            f,
            "BandJoinExec: on=[{}], {} - {} in {}{}, {}{}, filter={}",
            on.join(", "),
            i.right_time,
            i.left_time,
            if b.low_strict { "(" } else { "[" },
            b.low,
            b.high,
            if b.high_strict { ")" } else { "]" },
            self.filter.expression()
        )
    }
}

impl ExecutionPlan for BandJoinExec {
    fn name(&self) -> &str {
        "BandJoinExec"
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
        self.inputs
            .apply_expressions(&[self.filter.expression()], f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(BandJoinExec::new(
            self.inputs.with_children(children)?,
            self.bounds,
            self.filter.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        let (left, left_keys, right) = self.inputs.open(partition, context)?;
        let joiner = BandJoiner {
            left_keys,
            right,
            bounds: self.bounds,
            filter: self.filter.clone(),
            left_len: self.inputs.left.schema().fields().len(),
            schema: Arc::clone(&self.schema),
            window: VecDeque::new(),
            pending: Pending::default(),
            batch_size,
            memo: KeyMemo::default(),
        };
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        Ok(joined_stream(
            Arc::clone(&self.schema),
            left,
            joiner,
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
            result = result.with_updated_node(Arc::new(BandJoinExec::new(
                inputs,
                self.bounds,
                self.filter.clone(),
            )) as Arc<dyn ExecutionPlan>);
        }
        Ok(result)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct BandJoiner {
    left_keys: LeftKeys,
    right: RightCursor,
    bounds: BandBounds,
    filter: JoinFilter,
    left_len: usize,
    schema: SchemaRef,
    /// Right rows of the current key within reach of the band, oldest first.
    window: VecDeque<RowRef>,
    pending: Pending,
    batch_size: usize,
    memo: KeyMemo,
}

impl BatchJoiner for BandJoiner {
    async fn join_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        use std::cmp::Ordering::*;
        let left = self.left_keys.keyed(batch)?;
        self.memo.reset();
        let mut parts = vec![];
        for i in 0..left.num_rows() {
            if !left.usable(i) {
                continue;
            }
            let t = left.time.value(i);
            if let Some(&front) = self.window.front()
                && self.memo.cmp(self.right.get(front), front, &left, i) != Equal
            {
                self.window.clear();
            }
            loop {
                let window_front = self.window.front().copied();
                let (pending, schema, filter, left_len) =
                    (&mut self.pending, &self.schema, &self.filter, self.left_len);
                let next = self
                    .right
                    .peek(|right| {
                        if right.retained() >= MAX_RETAINED_BATCHES {
                            if !pending.is_empty() {
                                let out = pending.build(schema, &left.batch, right)?;
                                parts.push(apply_filter(filter, left_len, out)?);
                            }
                            let pos = right.pos.0;
                            right.release_before(window_front.map_or(pos, |w| w.0.min(pos)));
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
                match self.memo.cmp(r, pos, &left, i) {
                    Less => self.right.advance(),
                    Greater => break,
                    Equal => {
                        let rt = r.time.value(pos.1);
                        if self.bounds.above(t, rt) {
                            break;
                        }
                        if !self.bounds.below(t, rt) {
                            self.window.push_back(pos);
                        }
                        self.right.advance();
                    }
                }
            }
            while let Some(&front) = self.window.front() {
                if self
                    .bounds
                    .below(t, self.right.get(front).time.value(front.1))
                {
                    self.window.pop_front();
                } else {
                    break;
                }
            }
            for k in 0..self.window.len() {
                self.pending.push(i, Some(self.window[k]));
            }
            if self.pending.len() >= self.batch_size {
                parts.push(self.flush(&left.batch)?);
            }
        }
        parts.push(self.flush(&left.batch)?);
        concat_parts(&self.schema, parts)
    }
}

impl BandJoiner {
    fn flush(&mut self, left: &RecordBatch) -> Result<RecordBatch> {
        let out = self.pending.build(&self.schema, left, &self.right)?;
        let pos = self.right.pos.0;
        let keep_from = self.window.front().map_or(pos, |w| w.0.min(pos));
        self.right.release_before(keep_from);
        apply_filter(&self.filter, self.left_len, out)
    }
}

/// Keeps the pairs that satisfy the join's whole filter.
fn apply_filter(filter: &JoinFilter, left_len: usize, joined: RecordBatch) -> Result<RecordBatch> {
    if joined.num_rows() == 0 {
        return Ok(joined);
    }
    let columns = filter
        .column_indices()
        .iter()
        .map(|ci| match ci.side {
            JoinSide::Left => Ok(Arc::clone(joined.column(ci.index))),
            JoinSide::Right => Ok(Arc::clone(joined.column(left_len + ci.index))),
            JoinSide::None => internal_err!("band join filter refers to neither side"),
        })
        .collect::<Result<Vec<_>>>()?;
    let intermediate = RecordBatch::try_new(Arc::clone(filter.schema()), columns)?;
    let mask = filter
        .expression()
        .evaluate(&intermediate)?
        .into_array(intermediate.num_rows())?;
    Ok(filter_record_batch(&joined, mask.as_boolean())?)
}
