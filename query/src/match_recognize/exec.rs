//! `MatchRecognizeExec`: row pattern recognition in one pass over input sorted by
//! (partition, order).
//!
//! Each input batch is classified at once, vectorised: every DEFINE condition is evaluated
//! over the whole batch (PREV/NEXT read neighbouring rows of the same partition), giving
//! each row a bit set of the variables it satisfies. The automaton of
//! [`crate::match_recognize::pattern`] then consumes those bit sets row by row. Rows are kept
//! only while a live partial match may still use them. Each decided match goes to
//! [`crate::match_recognize::measures`], which computes its measures running, in one pass
//! over its rows, and records output rows as references into the stored batches; each input
//! batch's output is gathered from them before any batch is released.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, Rows};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_datafusion_err, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalExprRef,
    PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::match_recognize::measures::{Batches, MatchRow, Output, Stored};
use crate::match_recognize::node::PrimitiveKind;
use crate::match_recognize::pattern::{Found, Matcher, Program, Skip, next_start};
use crate::sorted_join::{boundedness, key_converter};
use crate::time::time_values;

/// A measure primitive, planned.
#[derive(Debug, Clone)]
pub struct PhysicalPrimitive {
    pub kind: PrimitiveKind,
    pub var: Option<usize>,
    pub expr: Option<PhysicalExprRef>,
    pub data_type: DataType,
}

/// Everything the operator needs besides its input.
#[derive(Debug, Clone)]
pub struct MatchPlan {
    pub partition_by: Vec<PhysicalExprRef>,
    pub order_by: Vec<PhysicalSortExpr>,
    pub navs: Vec<(PhysicalExprRef, i64)>,
    pub defines: Vec<Option<PhysicalExprRef>>,
    pub define_schema: SchemaRef,
    pub primitives: Vec<PhysicalPrimitive>,
    pub measures: Vec<PhysicalExprRef>,
    pub measure_schema: SchemaRef,
    pub program: Arc<Program>,
    pub vars: Vec<String>,
    /// On the scale of [`time_values`] of the first ORDER BY expression.
    pub within: Option<i64>,
    pub skip: Skip,
    pub all_rows: bool,
}

/// The physical MATCH_RECOGNIZE.
#[derive(Debug)]
pub struct MatchRecognizeExec {
    input: Arc<dyn ExecutionPlan>,
    plan: Arc<MatchPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl MatchRecognizeExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, plan: MatchPlan, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            boundedness(&[&input]),
        );
        MatchRecognizeExec {
            input,
            plan: Arc::new(plan),
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    fn ordering(&self) -> Option<LexOrdering> {
        let ascending = arrow::compute::SortOptions {
            descending: false,
            nulls_first: false,
        };
        LexOrdering::new(
            self.plan
                .partition_by
                .iter()
                .map(|e| PhysicalSortExpr::new(Arc::clone(e), ascending))
                .chain(self.plan.order_by.iter().cloned()),
        )
    }
}

impl DisplayAs for MatchRecognizeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        let partition: Vec<String> = p.partition_by.iter().map(|e| e.to_string()).collect();
        write!(
            f,
            "MatchRecognizeExec: partition_by=[{}], vars=[{}], states={}, {}",
            partition.join(", "),
            p.vars.join(", "),
            p.program.len(),
            if p.all_rows {
                "all rows per match"
            } else {
                "one row per match"
            }
        )?;
        if let Some(w) = p.within {
            write!(f, ", within={w}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MatchRecognizeExec {
    fn name(&self) -> &str {
        "MatchRecognizeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![Distribution::SinglePartition])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.ordering().map(OrderingRequirements::from)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let p = &self.plan;
        let exprs = p
            .partition_by
            .iter()
            .chain(p.order_by.iter().map(|o| &o.expr))
            .chain(p.navs.iter().map(|(e, _)| e))
            .chain(p.primitives.iter().filter_map(|x| x.expr.as_ref()));
        for e in exprs {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.pop() else {
            return internal_err!("MatchRecognizeExec needs one child");
        };
        Ok(Arc::new(MatchRecognizeExec::new(
            input,
            self.plan.as_ref().clone(),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("MatchRecognizeExec has one partition, asked for {partition}");
        }
        let input = self.input.execute(0, Arc::clone(&context))?;
        let input_schema = self.input.schema();
        let key_types = self
            .plan
            .partition_by
            .iter()
            .map(|e| e.data_type(&input_schema))
            .collect::<Result<Vec<_>>>()?;
        let state = Runner {
            plan: Arc::clone(&self.plan),
            schema: Arc::clone(&self.schema),
            input_schema,
            converter: key_converter(&key_types)?,
            held: None,
            carry: None,
            prev_key: None,
            rows: VecDeque::new(),
            rows_base: 0,
            batches: VecDeque::new(),
            batches_base: 0,
            matcher: Matcher::new(Arc::clone(&self.plan.program), self.plan.within.is_some()),
            match_number: 0,
            out: Output::new(&self.plan),
            ready: VecDeque::new(),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::try_unfold(
            (input, state, false),
            |(mut input, mut state, mut ended)| async move {
                loop {
                    if let Some(batch) = state.ready.pop_front() {
                        state.metrics.record_output(batch.num_rows());
                        return Ok(Some((batch, (input, state, ended))));
                    }
                    if ended {
                        return Ok(None);
                    }
                    match input.next().await.transpose()? {
                        Some(batch) if batch.num_rows() == 0 => {}
                        Some(batch) => state.push(batch)?,
                        None => {
                            state.end()?;
                            ended = true;
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One classified row of the current partition.
#[derive(Debug, Clone, Copy)]
struct RowInfo {
    batch: usize,
    row: u32,
    mask: u64,
    time: i64,
}

struct Runner {
    plan: Arc<MatchPlan>,
    schema: SchemaRef,
    input_schema: SchemaRef,
    converter: Option<Arc<RowConverter>>,
    /// With NEXT, a batch waits for the next one (its lookahead).
    held: Option<RecordBatch>,
    /// The last rows before the batch being classified (for PREV).
    carry: Option<RecordBatch>,
    prev_key: Option<OwnedRow>,
    rows: VecDeque<RowInfo>,
    /// Partition-relative index of `rows[0]`.
    rows_base: usize,
    batches: VecDeque<Stored>,
    batches_base: usize,
    matcher: Matcher,
    match_number: i64,
    out: Output,
    ready: VecDeque<RecordBatch>,
    metrics: BaselineMetrics,
}

impl Runner {
    fn lookahead_rows(&self) -> usize {
        self.plan
            .navs
            .iter()
            .map(|(_, o)| (*o).max(0) as usize)
            .max()
            .unwrap_or(0)
    }

    fn lookbehind_rows(&self) -> usize {
        self.plan
            .navs
            .iter()
            .map(|(_, o)| (-*o).max(0) as usize)
            .max()
            .unwrap_or(0)
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if self.lookahead_rows() == 0 {
            return self.process(batch, None);
        }
        match self.held.replace(batch.clone()) {
            Some(previous) => self.process(previous, Some(&batch)),
            None => Ok(()),
        }
    }

    fn end(&mut self) -> Result<()> {
        if let Some(last) = self.held.take() {
            self.process(last, None)?;
        }
        self.drive(true)?;
        self.flush()
    }

    fn partition_rows(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        let Some(converter) = &self.converter else {
            return Ok(None);
        };
        let arrays = self
            .plan
            .partition_by
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(converter.convert_columns(&arrays)?))
    }

    /// Bit set per row of the variables it satisfies.
    fn classify(&mut self, batch: &RecordBatch, next: Option<&RecordBatch>) -> Result<Vec<u64>> {
        let plan = Arc::clone(&self.plan);
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if !plan.navs.is_empty() {
            let behind = self.lookbehind_rows();
            let ahead = self.lookahead_rows();
            let mut parts = vec![];
            if let Some(c) = &self.carry {
                parts.push(c.clone());
            }
            let carry_len = self.carry.as_ref().map_or(0, |c| c.num_rows());
            parts.push(batch.clone());
            if let Some(next) = next {
                parts.push(next.slice(0, ahead.min(next.num_rows())));
            }
            let ext = concat_batches(&self.input_schema, &parts)?;
            let keys = self.partition_rows(&ext)?;
            let same_partition = |a: usize, b: usize| match &keys {
                Some(k) => k.row(a) == k.row(b),
                None => true,
            };
            for (expr, offset) in &plan.navs {
                let values = expr.evaluate(&ext)?.into_array(ext.num_rows())?;
                let indices: UInt32Array = (0..n)
                    .map(|j| {
                        let at = carry_len + j;
                        let src = at as i64 + offset;
                        (src >= 0
                            && (src as usize) < ext.num_rows()
                            && same_partition(at, src as usize))
                        .then_some(src as u32)
                    })
                    .collect();
                columns.push(take(values.as_ref(), &indices, None)?);
            }
            // Keep the last rows for the next batch's PREV.
            let upto = concat_batches(
                &self.input_schema,
                &[
                    self.carry
                        .clone()
                        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&self.input_schema))),
                    batch.clone(),
                ],
            )?;
            let keep = behind.min(upto.num_rows());
            self.carry = Some(upto.slice(upto.num_rows() - keep, keep));
        }
        let define_batch = RecordBatch::try_new_with_options(
            Arc::clone(&plan.define_schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let mut masks = vec![0u64; n];
        for (v, define) in plan.defines.iter().enumerate() {
            match define {
                None => masks.iter_mut().for_each(|m| *m |= 1 << v),
                Some(expr) => {
                    let result = expr.evaluate(&define_batch)?.into_array(n)?;
                    let result = cast(&result, &DataType::Boolean)?;
                    let bools = result.as_boolean();
                    for (j, m) in masks.iter_mut().enumerate() {
                        if bools.is_valid(j) && bools.value(j) {
                            *m |= 1 << v;
                        }
                    }
                }
            }
        }
        Ok(masks)
    }

    fn process(&mut self, batch: RecordBatch, next: Option<&RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        let masks = self.classify(&batch, next)?;
        let plan = Arc::clone(&self.plan);
        let times = match (plan.within, plan.order_by.first()) {
            (Some(_), Some(o)) => Some(time_values(&o.expr.evaluate(&batch)?.into_array(n)?)?),
            _ => None,
        };
        let keys = self.partition_rows(&batch)?;
        let partition = plan
            .partition_by
            .iter()
            .map(|e| e.evaluate(&batch)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        let primitives = plan
            .primitives
            .iter()
            .map(|p| {
                p.expr
                    .as_ref()
                    .map(|e| {
                        let values = e.evaluate(&batch)?.into_array(n)?;
                        match p.kind {
                            PrimitiveKind::Sum | PrimitiveKind::Avg => {
                                Ok(cast(&values, &p.data_type)?)
                            }
                            _ => Ok(values),
                        }
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let batch_index = self.batches_base + self.batches.len();
        self.batches
            .push_back(Stored::new(batch, partition, primitives));
        for (j, &mask) in masks.iter().enumerate() {
            if let Some(keys) = &keys {
                let key = keys.row(j);
                let changed = self.prev_key.as_ref().is_some_and(|p| p.row() != key);
                if changed {
                    self.drive(true)?;
                    self.rows.clear();
                    self.rows_base = 0;
                    self.matcher.restart(0);
                    self.match_number = 0;
                }
                if changed || self.prev_key.is_none() {
                    self.prev_key = Some(key.owned());
                }
            }
            self.rows.push_back(RowInfo {
                batch: batch_index,
                row: j as u32,
                mask,
                time: times
                    .as_ref()
                    .map_or(0, |t| if t.is_valid(j) { t.value(j) } else { i64::MIN }),
            });
            self.drive(false)?;
        }
        // Output rows point into the stored batches: flush them before releasing any.
        self.flush()?;
        self.release();
        Ok(())
    }

    /// Feeds the buffered rows to the automaton and emits the matches it decides.
    fn drive(&mut self, at_end: bool) -> Result<()> {
        loop {
            let total = self.rows_base + self.rows.len();
            let next = self.matcher.next_row();
            let found = if next < total {
                let info = self.rows[next - self.rows_base];
                if self.matcher.would_ignore(info.mask) {
                    self.matcher.skip_row();
                    continue;
                }
                let within = self.plan.within;
                let rows = &self.rows;
                let base = self.rows_base;
                self.matcher.feed(
                    |v| info.mask & (1 << v) != 0,
                    |start| match within {
                        None => true,
                        Some(w) => {
                            let t0 = rows[start - base].time;
                            t0 != i64::MIN && info.time != i64::MIN && info.time - t0 <= w
                        }
                    },
                )
            } else if at_end {
                match self.matcher.finish() {
                    Some(found) => Some(found),
                    None => break,
                }
            } else {
                break;
            };
            if let Some(found) = found {
                self.emit(&found)?;
                self.matcher.restart(next_start(&found, self.plan.skip));
            }
        }
        Ok(())
    }

    /// Drops rows and batches no live match can use any more.
    fn release(&mut self) {
        let keep_from = self.matcher.oldest_needed().min(self.matcher.next_row());
        while self.rows_base < keep_from && !self.rows.is_empty() {
            self.rows.pop_front();
            self.rows_base += 1;
        }
        let oldest_batch = self.rows.front().map_or(
            self.batches_base + self.batches.len().saturating_sub(1),
            |r| r.batch,
        );
        while self.batches_base < oldest_batch && self.batches.len() > 1 {
            self.batches.pop_front();
            self.batches_base += 1;
        }
    }

    fn emit(&mut self, found: &Found) -> Result<()> {
        self.match_number += 1;
        let rows = found
            .vars
            .iter()
            .enumerate()
            .map(|(k, &var)| {
                let info = self
                    .rows
                    .get(found.start + k - self.rows_base)
                    .ok_or_else(|| internal_datafusion_err!("a match row was released"))?;
                Ok(MatchRow {
                    batch: info.batch,
                    row: info.row as usize,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let batches = Batches {
            stored: &self.batches,
            base: self.batches_base,
        };
        self.out
            .push_match(&self.plan, &rows, self.match_number, batches)
    }

    fn flush(&mut self) -> Result<()> {
        let plan = Arc::clone(&self.plan);
        let leading_types: Vec<DataType> = if plan.all_rows {
            self.input_schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        } else {
            (0..plan.partition_by.len())
                .map(|c| self.schema.field(c).data_type().clone())
                .collect()
        };
        let batches = Batches {
            stored: &self.batches,
            base: self.batches_base,
        };
        let Some(out) = self.out.build(&plan, batches, &leading_types)? else {
            return Ok(());
        };
        let leading = out.leading;
        let mut measure_columns: Vec<ArrayRef> = vec![];
        if !plan.all_rows {
            measure_columns.extend(leading.iter().cloned());
        } else {
            // Measures see the partition columns: evaluate them on the output rows.
            let input = RecordBatch::try_new(Arc::clone(&self.input_schema), leading.clone())?;
            for e in &plan.partition_by {
                measure_columns.push(e.evaluate(&input)?.into_array(out.rows)?);
            }
        }
        measure_columns.extend(out.primitives);
        let measure_batch = RecordBatch::try_new_with_options(
            Arc::clone(&plan.measure_schema),
            measure_columns,
            &RecordBatchOptions::new().with_row_count(Some(out.rows)),
        )?;
        let mut columns = leading;
        for expr in &plan.measures {
            let value = expr.evaluate(&measure_batch)?.into_array(out.rows)?;
            let target = self.schema.field(columns.len()).data_type().clone();
            columns.push(if value.data_type() == &target {
                value
            } else {
                cast(&value, &target)?
            });
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(out.rows)),
        )?;
        self.ready.push_back(batch);
        Ok(())
    }
}
