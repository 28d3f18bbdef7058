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
use arrow::row::RowConverter;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::asof::node::AsofOp;
use crate::merge::{
    KeyedBatch, Pending, PhysicalExprRef, RightCursor, RowRef, cmp_keys, key_converter,
    key_time_ordering,
};

/// Right batches kept before pending output is flushed so older ones can be released.
const MAX_RETAINED_BATCHES: usize = 16;

/// The physical ASOF join.
#[derive(Debug)]
pub struct AsofJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    left_time: PhysicalExprRef,
    right_time: PhysicalExprRef,
    op: AsofOp,
    nearest: bool,
    /// On the scale of [`time_values`].
    tolerance: Option<i64>,
    join_type: JoinType,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl AsofJoinExec {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
        left_time: PhysicalExprRef,
        right_time: PhysicalExprRef,
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
            return datafusion::common::plan_err!(
                "ASOF NEAREST takes >= or <= (the closest row at any distance, equal times included)"
            );
        }
        // Left columns come first and keep their positions, so the left order carries over.
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
        Ok(AsofJoinExec {
            left,
            right,
            on,
            left_time,
            right_time,
            op,
            nearest,
            tolerance,
            join_type,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for AsofJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<String> = self.on.iter().map(|(l, r)| format!("({l}, {r})")).collect();
        write!(
            f,
            "AsofJoinExec: type={}, on=[{}], match={} {} {}",
            self.join_type,
            on.join(", "),
            self.left_time,
            self.op.symbol(),
            self.right_time
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
        for e in self
            .on
            .iter()
            .flat_map(|(l, r)| [l, r])
            .chain([&self.left_time, &self.right_time])
        {
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
            Err(_) => return internal_err!("AsofJoinExec needs two children"),
        };
        Ok(Arc::new(AsofJoinExec::try_new(
            left,
            right,
            self.on.clone(),
            Arc::clone(&self.left_time),
            Arc::clone(&self.right_time),
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
        if partition != 0 {
            return internal_err!("AsofJoinExec has one partition, asked for {partition}");
        }
        let left = self.left.execute(0, Arc::clone(&context))?;
        let right = self.right.execute(0, context)?;
        let key_types = self
            .on
            .iter()
            .map(|(l, _)| l.data_type(&self.left.schema()))
            .collect::<Result<Vec<_>>>()?;
        let converter = key_converter(&key_types)?;
        let (left_keys, right_keys) = self
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        let merger = Merger {
            left_keys,
            left_time: Arc::clone(&self.left_time),
            right: RightCursor::new(
                right,
                right_keys,
                Arc::clone(&self.right_time),
                converter.clone(),
            ),
            converter,
            op: self.op,
            nearest: self.nearest,
            tolerance: self.tolerance,
            keep_unmatched: self.join_type == JoinType::Left,
            schema: Arc::clone(&self.schema),
            back: None,
            pending: Pending::default(),
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

struct Merger {
    left_keys: Vec<PhysicalExprRef>,
    left_time: PhysicalExprRef,
    right: RightCursor,
    converter: Option<Arc<RowConverter>>,
    op: AsofOp,
    nearest: bool,
    tolerance: Option<i64>,
    keep_unmatched: bool,
    schema: SchemaRef,
    /// The latest right row at or before the current left row, of the current key.
    back: Option<RowRef>,
    pending: Pending,
    metrics: BaselineMetrics,
}

impl Merger {
    async fn join_batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let left = KeyedBatch::new(
            batch.clone(),
            &self.left_keys,
            &self.left_time,
            self.converter.as_deref(),
        )?;
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
        if parts.len() == 1
            && let Some(only) = parts.pop()
        {
            return Ok(only);
        }
        Ok(arrow::compute::concat_batches(&self.schema, &parts)?)
    }

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
            && cmp_keys(self.right.get(b), b.1, left, i) != Equal
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
            match cmp_keys(r, pos.1, left, i) {
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
            r.usable(pos.1) && cmp_keys(r, pos.1, left, i) == Equal
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
