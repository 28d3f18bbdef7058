//! `BandJoinExec`: an inner equi-join with a time band, as one streaming merge.
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
use arrow::row::RowConverter;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{JoinSide, JoinType, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::utils::{JoinFilter, build_join_schema};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::merge::{
    KeyedBatch, Pending, PhysicalExprRef, RightCursor, RowRef, cmp_keys, key_converter,
    key_time_ordering,
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
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    left_time: PhysicalExprRef,
    right_time: PhysicalExprRef,
    bounds: BandBounds,
    /// The join's whole filter, applied to every candidate pair (the band included).
    filter: JoinFilter,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BandJoinExec {
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
        left_time: PhysicalExprRef,
        right_time: PhysicalExprRef,
        bounds: BandBounds,
        filter: JoinFilter,
    ) -> Result<Self> {
        let (schema, _) = build_join_schema(&left.schema(), &right.schema(), &JoinType::Inner);
        let schema = Arc::new(schema);
        let orderings: Vec<LexOrdering> = left
            .properties()
            .equivalence_properties()
            .oeq_class()
            .iter()
            .cloned()
            .collect();
        let eq = EquivalenceProperties::new_with_orderings(Arc::clone(&schema), orderings);
        let properties = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            match (left.boundedness(), right.boundedness()) {
                (Boundedness::Bounded, Boundedness::Bounded) => Boundedness::Bounded,
                _ => Boundedness::Unbounded {
                    requires_infinite_memory: false,
                },
            },
        );
        Ok(BandJoinExec {
            left,
            right,
            on,
            left_time,
            right_time,
            bounds,
            filter,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for BandJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<String> = self.on.iter().map(|(l, r)| format!("({l}, {r})")).collect();
        let b = &self.bounds;
        write!(
            f,
            "BandJoinExec: on=[{}], {} - {} in {}{}, {}{}, filter={}",
            on.join(", "),
            self.right_time,
            self.left_time,
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
        InputDistributionRequirements::new(vec![
            Distribution::SinglePartition,
            Distribution::SinglePartition,
        ])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let (left, right): (Vec<_>, Vec<_>) = self
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        vec![
            key_time_ordering(&left, &self.left_time).map(OrderingRequirements::from),
            key_time_ordering(&right, &self.right_time).map(OrderingRequirements::from),
        ]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in self.on.iter().flat_map(|(l, r)| [l, r]).chain([
            &self.left_time,
            &self.right_time,
            self.filter.expression(),
        ]) {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("BandJoinExec needs two children"),
        };
        Ok(Arc::new(BandJoinExec::try_new(
            left,
            right,
            self.on.clone(),
            Arc::clone(&self.left_time),
            Arc::clone(&self.right_time),
            self.bounds,
            self.filter.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("BandJoinExec has one partition, asked for {partition}");
        }
        let batch_size = context.session_config().batch_size();
        let left = self.left.execute(0, Arc::clone(&context))?;
        let right = self.right.execute(0, context)?;
        let key_types = self
            .on
            .iter()
            .map(|(l, _)| l.data_type(&self.left.schema()))
            .collect::<Result<Vec<_>>>()?;
        let converter = key_converter(&key_types)?;
        let (left_keys, right_keys): (Vec<_>, Vec<_>) = self
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        let merger = BandMerger {
            left_keys,
            left_time: Arc::clone(&self.left_time),
            right: RightCursor::new(
                right,
                right_keys,
                Arc::clone(&self.right_time),
                converter.clone(),
            ),
            converter,
            bounds: self.bounds,
            filter: self.filter.clone(),
            left_len: self.left.schema().fields().len(),
            schema: Arc::clone(&self.schema),
            window: VecDeque::new(),
            pending: Pending::default(),
            batch_size,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream =
            futures::stream::try_unfold((left, merger), |(mut left, mut merger)| async move {
                loop {
                    let Some(batch) = left.next().await.transpose()? else {
                        return Ok(None);
                    };
                    let out = merger.join_batch(&batch).await?;
                    if out.num_rows() > 0 {
                        merger.metrics.record_output(out.num_rows());
                        return Ok(Some((out, (left, merger))));
                    }
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct BandMerger {
    left_keys: Vec<PhysicalExprRef>,
    left_time: PhysicalExprRef,
    right: RightCursor,
    converter: Option<Arc<RowConverter>>,
    bounds: BandBounds,
    filter: JoinFilter,
    left_len: usize,
    schema: SchemaRef,
    /// Right rows of the current key within reach of the band, oldest first.
    window: VecDeque<RowRef>,
    pending: Pending,
    batch_size: usize,
    metrics: BaselineMetrics,
}

impl BandMerger {
    async fn join_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        use std::cmp::Ordering::*;
        let left = KeyedBatch::new(
            batch.clone(),
            &self.left_keys,
            &self.left_time,
            self.converter.as_deref(),
        )?;
        let mut parts = vec![];
        for i in 0..left.num_rows() {
            if !left.usable(i) {
                continue;
            }
            let t = left.time.value(i);
            if let Some(&front) = self.window.front()
                && cmp_keys(self.right.get(front), front.1, &left, i) != Equal
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
                match cmp_keys(r, pos.1, &left, i) {
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
        if parts.len() == 1
            && let Some(only) = parts.pop()
        {
            return Ok(only);
        }
        Ok(arrow::compute::concat_batches(&self.schema, &parts)?)
    }

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
