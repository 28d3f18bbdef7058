//! The machinery shared by the two *sorted joins* (ASOF and time-band), which walk two
//! inputs sorted by (keys, time) side by side: the inputs and what the joins require of them
//! ([`JoinInputs`]), batches with encoded keys and normalised times ([`KeyedBatch`]), a
//! cursor over the sorted right input that keeps only the batches still referenced
//! ([`RightCursor`]), output assembly from (left row, right row) pairs ([`Pending`]), and
//! the output stream ([`joined_stream`]).
//!
//! Each input arrives in several sorted partitions; [`JoinInputs::open`] combines them with
//! [`crate::partition_merge::merge_partitions`], vigil's merge of sorted partitions, rather
//! than DataFusion's `SortPreservingMergeExec`, so the filters a join pushes reach the scans.
//! [`boundedness`] and [`key_converter`] also serve the other one-pass operators (gap
//! filling, MATCH_RECOGNIZE).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortOptions, interleave, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use std::future::Future;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_datafusion_err, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalExprRef,
    PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildFilterDescription, ChildPushdownResult, FilterDescription, FilterPushdownPhase,
};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, InputDistributionRequirements,
    Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use crate::dynamic_filter::{leave_open, new_key_filter, publish_keys};
use crate::partition_merge::{MergeOrder, key_runs, merge_partitions};
use crate::time::time_values;

/// A right row: (global batch index, row).
pub type RowRef = (usize, usize);

/// Bounded when every child is.
pub fn boundedness(children: &[&Arc<dyn ExecutionPlan>]) -> Boundedness {
    if children
        .iter()
        .all(|c| matches!(c.boundedness(), Boundedness::Bounded))
    {
        Boundedness::Bounded
    } else {
        Boundedness::Unbounded {
            requires_infinite_memory: false,
        }
    }
}

/// The two inputs of a sorted join, each sorted by its keys then its time, and the
/// expressions it joins on. Both joins hold one and delegate the plumbing of
/// `ExecutionPlan` to it.
#[derive(Debug, Clone)]
pub struct JoinInputs {
    pub left: Arc<dyn ExecutionPlan>,
    pub right: Arc<dyn ExecutionPlan>,
    /// Equality keys, (left expression, right expression).
    pub on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    pub left_time: PhysicalExprRef,
    pub right_time: PhysicalExprRef,
    /// The right keys' filter this join publishes once it has read the whole left side
    /// (when that side is small), set by filter pushdown.
    pub dynamic_filter: Option<Arc<DynamicFilterPhysicalExpr>>,
}

/// Left rows read ahead to learn every left key before the right side starts; a left side
/// longer than this is streamed and the right side unfiltered.
pub const KEY_PREFETCH_ROWS: usize = 65_536;

impl JoinInputs {
    /// One partition, in the left input's order (left columns come first and keep their
    /// positions in `schema`).
    pub fn properties(&self, schema: &SchemaRef) -> PlanProperties {
        let orderings: Vec<LexOrdering> = self
            .left
            .properties()
            .equivalence_properties()
            .oeq_class()
            .iter()
            .cloned()
            .collect();
        PlanProperties::new(
            EquivalenceProperties::new_with_orderings(Arc::clone(schema), orderings),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            boundedness(&[&self.left, &self.right]),
        )
    }

    /// Inputs in any number of partitions, each sorted: the join combines them itself with
    /// [`merge_partitions`] (see [`Self::open`]), so filters it pushes reach its children's
    /// scans directly (DataFusion's `SortPreservingMergeExec` does not pass them on).
    pub fn distribution() -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![
            Distribution::UnspecifiedDistribution,
            Distribution::UnspecifiedDistribution,
        ])
    }

    /// Each input sorted by [`key_time_ordering`].
    pub fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
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

    pub fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    /// Visits the keys and times, then `extra`.
    pub fn apply_expressions(
        &self,
        extra: &[&PhysicalExprRef],
        f: &mut dyn FnMut(&PhysicalExprRef) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let exprs = self
            .on
            .iter()
            .flat_map(|(l, r)| [l, r])
            .chain([&self.left_time, &self.right_time])
            .chain(extra.iter().copied());
        for e in exprs {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// Filters for the children: none from the parent; in the post-optimization phase, a
    /// dynamic filter on the right keys (right rows whose keys no left row has never join,
    /// in ASOF LEFT joins too).
    pub fn gather_filters(
        &self,
        phase: FilterPushdownPhase,
        parent_filters: Vec<PhysicalExprRef>,
        config: &ConfigOptions,
    ) -> FilterDescription {
        let left = ChildFilterDescription::all_unsupported(&parent_filters);
        let mut right = ChildFilterDescription::all_unsupported(&parent_filters);
        if phase == FilterPushdownPhase::Post
            && self.dynamic_filter.is_none()
            && !self.on.is_empty()
            && config.optimizer.enable_join_dynamic_filter_pushdown
        {
            let keys: Vec<_> = self.on.iter().map(|(_, r)| Arc::clone(r)).collect();
            right = right.with_self_filter(new_key_filter(&keys));
        }
        FilterDescription::new().with_child(left).with_child(right)
    }

    /// These inputs holding the dynamic filter its right child accepted, if any.
    pub fn with_pushed_filter(&self, result: &ChildPushdownResult) -> Option<JoinInputs> {
        let pushed = result.self_filters.get(1)?.first()?;
        let predicate: Arc<dyn PhysicalExpr> = Arc::clone(&pushed.predicate);
        let any: Arc<dyn std::any::Any + Send + Sync> = predicate;
        let filter = Arc::downcast::<DynamicFilterPhysicalExpr>(any).ok()?;
        Some(JoinInputs {
            dynamic_filter: Some(filter),
            ..self.clone()
        })
    }

    /// The same join inputs over new children.
    pub fn with_children(&self, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<JoinInputs> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("a sorted join needs two children"),
        };
        Ok(JoinInputs {
            left,
            right,
            ..self.clone()
        })
    }

    /// Starts both inputs: the left stream, how to key its batches, and the right cursor.
    pub fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<(SendableRecordBatchStream, LeftKeys, RightCursor)> {
        if partition != 0 {
            return internal_err!("a sorted join has one partition, asked for {partition}");
        }
        let (left_keys, right_keys): (Vec<_>, Vec<_>) = self
            .on
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        let key_types = self
            .on
            .iter()
            .map(|(l, _)| l.data_type(&self.left.schema()))
            .collect::<Result<Vec<_>>>()?;
        let converter = key_converter(&key_types)?;
        let order = |keys: &[PhysicalExprRef], time: &PhysicalExprRef| MergeOrder {
            keys: keys.to_vec(),
            time: Arc::clone(time),
            converter: converter.clone(),
        };
        let mut left = merge_partitions(
            Arc::clone(&self.left),
            order(&left_keys, &self.left_time),
            Arc::clone(&context),
        );
        if let Some(filter) = &self.dynamic_filter {
            left = publish_left_keys(
                left,
                left_keys.clone(),
                Arc::clone(filter),
                right_keys.clone(),
                self.right.schema(),
            );
        }
        // Executed when first polled: after the left side has published its keys.
        let right = merge_partitions(
            Arc::clone(&self.right),
            order(&right_keys, &self.right_time),
            context,
        );
        let cursor = RightCursor::new(
            right,
            right_keys,
            Arc::clone(&self.right_time),
            converter.clone(),
        );
        let keys = LeftKeys {
            keys: left_keys,
            time: Arc::clone(&self.left_time),
            converter,
        };
        Ok((left, keys, cursor))
    }
}

/// The left stream, read ahead by up to [`KEY_PREFETCH_ROWS`] rows: when it ends within
/// them, its keys narrow `filter` (over `right_keys`); either way the filter is complete
/// before the first left batch is returned, and so before the right side is read.
fn publish_left_keys(
    mut left: SendableRecordBatchStream,
    left_keys: Vec<PhysicalExprRef>,
    filter: Arc<DynamicFilterPhysicalExpr>,
    right_keys: Vec<PhysicalExprRef>,
    right_schema: SchemaRef,
) -> SendableRecordBatchStream {
    let schema = left.schema();
    let read_ahead = async move {
        let mut buffered = Vec::new();
        let mut rows = 0;
        let mut ended = false;
        while rows <= KEY_PREFETCH_ROWS {
            match left.next().await {
                Some(Ok(batch)) => {
                    rows += batch.num_rows();
                    buffered.push(batch);
                }
                Some(Err(e)) => {
                    leave_open(&filter);
                    return Err(e);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            let mut values = vec![Vec::with_capacity(buffered.len()); left_keys.len()];
            for batch in &buffered {
                for (k, key) in left_keys.iter().enumerate() {
                    values[k].push(key.evaluate(batch)?.into_array(batch.num_rows())?);
                }
            }
            publish_keys(&filter, &right_keys, &values, &right_schema)?;
        } else {
            leave_open(&filter);
        }
        let rest = if ended {
            futures::stream::empty().boxed()
        } else {
            left.boxed()
        };
        Ok::<_, datafusion::error::DataFusionError>(
            futures::stream::iter(buffered.into_iter().map(Ok)).chain(rest),
        )
    };
    let stream = futures::stream::once(read_ahead).try_flatten().boxed();
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// How left batches are keyed, with the same encoder as the right cursor.
#[derive(Debug)]
pub struct LeftKeys {
    keys: Vec<PhysicalExprRef>,
    time: PhysicalExprRef,
    converter: Option<Arc<RowConverter>>,
}

impl LeftKeys {
    pub fn keyed(&self, batch: &RecordBatch) -> Result<KeyedBatch> {
        KeyedBatch::new(
            batch.clone(),
            &self.keys,
            &self.time,
            self.converter.as_deref(),
        )
    }
}

/// A sorted join's state: turns each left batch into output rows.
pub trait BatchJoiner: Send + 'static {
    fn join_batch(
        &mut self,
        batch: &RecordBatch,
    ) -> impl Future<Output = Result<RecordBatch>> + Send;
}

/// The output stream of a sorted join: each left batch joined, empty results skipped.
pub fn joined_stream<J: BatchJoiner>(
    schema: SchemaRef,
    left: SendableRecordBatchStream,
    joiner: J,
    metrics: BaselineMetrics,
) -> SendableRecordBatchStream {
    let stream = futures::stream::try_unfold(
        (left, joiner, metrics),
        |(mut left, mut joiner, metrics)| async move {
            loop {
                let Some(batch) = left.next().await.transpose()? else {
                    return Ok(None);
                };
                let out = joiner.join_batch(&batch).await?;
                if out.num_rows() > 0 {
                    metrics.record_output(out.num_rows());
                    return Ok(Some((out, (left, joiner, metrics))));
                }
            }
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The output parts of one left batch as one batch.
pub fn concat_parts(schema: &SchemaRef, mut parts: Vec<RecordBatch>) -> Result<RecordBatch> {
    if parts.len() == 1
        && let Some(only) = parts.pop()
    {
        return Ok(only);
    }
    Ok(arrow::compute::concat_batches(schema, &parts)?)
}

/// The order both inputs of a sorted join need: keys, then time, ascending, nulls last.
pub fn key_time_ordering(keys: &[PhysicalExprRef], time: &PhysicalExprRef) -> Option<LexOrdering> {
    LexOrdering::new(
        keys.iter()
            .chain([time])
            .map(|e| PhysicalSortExpr::new(Arc::clone(e), ascending())),
    )
}

fn ascending() -> SortOptions {
    SortOptions {
        descending: false,
        nulls_first: false,
    }
}

/// A row encoder for keys of these types, in [`key_time_ordering`]'s order; `None` when there
/// are no keys (every row then has the same key).
pub fn key_converter(types: &[DataType]) -> Result<Option<Arc<RowConverter>>> {
    if types.is_empty() {
        return Ok(None);
    }
    let fields = types
        .iter()
        .map(|t| SortField::new_with_options(t.clone(), ascending()))
        .collect();
    Ok(Some(Arc::new(RowConverter::new(fields)?)))
}

/// One input batch with its keys encoded for comparison (once per run of equal keys) and
/// its times normalised.
#[derive(Debug)]
pub struct KeyedBatch {
    pub batch: RecordBatch,
    /// The key of each run of equal keys; `None` without keys.
    run_keys: Option<Rows>,
    /// The run of each row.
    run_of: Vec<u32>,
    /// Rows whose keys are all non-null; `None` when every row is.
    key_valid: Option<NullBuffer>,
    pub time: Int64Array,
}

impl KeyedBatch {
    pub fn new(
        batch: RecordBatch,
        keys: &[PhysicalExprRef],
        time: &PhysicalExprRef,
        converter: Option<&RowConverter>,
    ) -> Result<Self> {
        let key_arrays = keys
            .iter()
            .map(|k| k.evaluate(&batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let key_valid = key_arrays.iter().fold(None, |acc: Option<NullBuffer>, a| {
            NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
        });
        let (ends, run_keys) = key_runs(&key_arrays, converter, batch.num_rows())?;
        let mut run_of = Vec::with_capacity(batch.num_rows());
        let mut start = 0;
        for (run, &end) in ends.iter().enumerate() {
            run_of.resize(run_of.len() + (end - start), run as u32);
            start = end;
        }
        let time = time_values(&time.evaluate(&batch)?.into_array(batch.num_rows())?)?;
        Ok(KeyedBatch {
            batch,
            run_keys,
            run_of,
            key_valid,
            time,
        })
    }

    /// True when the row has non-null keys and time, so it can match at all.
    pub fn usable(&self, row: usize) -> bool {
        self.key_valid.as_ref().is_none_or(|v| v.is_valid(row)) && self.time.is_valid(row)
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The end (exclusive) of the run of equal keys that holds `row`.
    pub fn run_end(&self, row: usize) -> usize {
        let run = self.run_of[row];
        row + self.run_of[row..].partition_point(|&r| r == run)
    }
}

/// Compares the keys of two rows (from the same converter).
pub fn cmp_keys(a: &KeyedBatch, ai: usize, b: &KeyedBatch, bi: usize) -> Ordering {
    match (&a.run_keys, &b.run_keys) {
        (Some(ak), Some(bk)) => ak
            .row(a.run_of[ai] as usize)
            .cmp(&bk.row(b.run_of[bi] as usize)),
        _ => Ordering::Equal,
    }
}

/// The last key comparison of a right row with a left row, by (right batch, right run, left
/// run): rows of one run compare alike, so a join walking runs compares keys about once per
/// pair of runs. [`KeyMemo::reset`] before each left batch (left runs are per batch).
#[derive(Debug, Default)]
pub struct KeyMemo {
    last: Option<((usize, u32, u32), Ordering)>,
}

impl KeyMemo {
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// `cmp_keys` of right row `at` (in `right`, its batch) and left row `i`.
    pub fn cmp(&mut self, right: &KeyedBatch, at: RowRef, left: &KeyedBatch, i: usize) -> Ordering {
        let id = (at.0, right.run_of[at.1], left.run_of[i]);
        if let Some((last, ordering)) = self.last
            && last == id
        {
            return ordering;
        }
        let ordering = cmp_keys(right, at.1, left, i);
        self.last = Some((id, ordering));
        ordering
    }
}

/// The right input of a sorted join, read once, with the batches still referenced.
pub struct RightCursor {
    stream: SendableRecordBatchStream,
    keys: Vec<PhysicalExprRef>,
    time: PhysicalExprRef,
    converter: Option<Arc<RowConverter>>,
    batches: VecDeque<KeyedBatch>,
    /// Global index of `batches[0]`.
    first: usize,
    /// Next unconsumed row.
    pub pos: RowRef,
    done: bool,
}

impl std::fmt::Debug for RightCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RightCursor")
            .field("first", &self.first)
            .field("pos", &self.pos)
            .field("retained", &self.batches.len())
            .field("done", &self.done)
            .finish()
    }
}

impl RightCursor {
    pub fn new(
        stream: SendableRecordBatchStream,
        keys: Vec<PhysicalExprRef>,
        time: PhysicalExprRef,
        converter: Option<Arc<RowConverter>>,
    ) -> Self {
        RightCursor {
            stream,
            keys,
            time,
            converter,
            batches: VecDeque::new(),
            first: 0,
            pos: (0, 0),
            done: false,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    pub fn get(&self, at: RowRef) -> &KeyedBatch {
        &self.batches[at.0 - self.first]
    }

    /// Batches held in memory.
    pub fn retained(&self) -> usize {
        self.batches.len()
    }

    /// The row under the cursor, loading the next batch when needed (`on_load` runs before a
    /// load, so the caller can flush output and let old batches go); `None` at the end.
    pub async fn peek(
        &mut self,
        mut on_load: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<Option<RowRef>> {
        loop {
            if let Some(pos) = self.settle() {
                return Ok(Some(pos));
            }
            if self.done {
                return Ok(None);
            }
            on_load(self)?;
            match self.stream.next().await.transpose()? {
                None => self.done = true,
                Some(b) if b.num_rows() == 0 => {}
                Some(b) => {
                    let keyed =
                        KeyedBatch::new(b, &self.keys, &self.time, self.converter.as_deref())?;
                    self.batches.push_back(keyed);
                }
            }
        }
    }

    /// Moves past the row under the cursor.
    pub fn advance(&mut self) {
        self.pos.1 += 1;
    }

    /// Moves the cursor to row `row` of its batch (at or after the current row).
    pub fn advance_to(&mut self, row: usize) {
        debug_assert!(row >= self.pos.1);
        self.pos.1 = row;
    }

    /// The row under the cursor if it is loaded, moving past exhausted batches; `None` when
    /// [`RightCursor::peek`] would have to load (or the input is done).
    pub fn settle(&mut self) -> Option<RowRef> {
        while self.pos.0 < self.first + self.batches.len()
            && self.pos.1 >= self.get(self.pos).num_rows()
        {
            self.pos = (self.pos.0 + 1, 0);
        }
        (self.pos.0 < self.first + self.batches.len()).then_some(self.pos)
    }

    /// The row under the cursor if it is loaded, without loading anything.
    pub fn current(&self) -> Option<RowRef> {
        let mut pos = self.pos;
        while pos.0 < self.first + self.batches.len() {
            if pos.1 < self.get(pos).num_rows() {
                return Some(pos);
            }
            pos = (pos.0 + 1, 0);
        }
        None
    }

    /// Drops batches before global index `keep_from`.
    pub fn release_before(&mut self, keep_from: usize) {
        while self.first < keep_from && !self.batches.is_empty() {
            self.batches.pop_front();
            self.first += 1;
        }
    }

    /// Right columns `columns` (indices into the right schema) for `picks` of right rows
    /// (`None` gives NULLs).
    pub fn gather(&self, picks: &[Option<RowRef>], columns: &[usize]) -> Result<Vec<ArrayRef>> {
        if let Some(batch) = self.single_source(picks) {
            // Every pick is in one batch (or NULL): a `take`, without interleaving.
            let rows: Vec<u32> = picks
                .iter()
                .map(|r| r.map_or(0, |(_, row)| row as u32))
                .collect();
            let nulls = picks
                .iter()
                .any(Option::is_none)
                .then(|| picks.iter().map(Option::is_some).collect::<NullBuffer>());
            let indices = UInt32Array::new(rows.into(), nulls);
            return columns
                .iter()
                .map(|&c| Ok(take(batch.column(c).as_ref(), &indices, None)?))
                .collect();
        }
        let schema = self.schema();
        let null_source = self.batches.len();
        let indices: Vec<(usize, usize)> = picks
            .iter()
            .map(|r| match r {
                Some((b, row)) => (b - self.first, *row),
                None => (null_source, 0),
            })
            .collect();
        let mut out = Vec::with_capacity(columns.len());
        for &c in columns {
            let nulls = new_null_array(schema.field(c).data_type(), 1);
            let mut sources: Vec<&dyn Array> = self
                .batches
                .iter()
                .map(|b| b.batch.column(c).as_ref())
                .collect();
            sources.push(nulls.as_ref());
            out.push(interleave(&sources, &indices)?);
        }
        Ok(out)
    }

    /// The one retained batch every pick is in, if there is one (any batch when all picks
    /// are NULL).
    fn single_source(&self, picks: &[Option<RowRef>]) -> Option<&RecordBatch> {
        let mut source = None;
        for &(b, _) in picks.iter().flatten() {
            match source {
                None => source = Some(b),
                Some(s) if s != b => return None,
                Some(_) => {}
            }
        }
        let at = source.unwrap_or(self.first).checked_sub(self.first)?;
        self.batches.get(at).map(|b| &b.batch)
    }
}

/// Output rows of a sorted join, collected as (left row, right row) pairs.
#[derive(Debug, Default)]
pub struct Pending {
    pub left: Vec<u32>,
    pub right: Vec<Option<RowRef>>,
}

impl Pending {
    pub fn push(&mut self, left: usize, right: Option<RowRef>) {
        self.left.push(left as u32);
        self.right.push(right);
    }

    /// Room for `rows` more output rows.
    pub fn reserve(&mut self, rows: usize) {
        self.left.reserve(rows);
        self.right.reserve(rows);
    }

    pub fn len(&self) -> usize {
        self.left.len()
    }

    pub fn is_empty(&self) -> bool {
        self.left.is_empty()
    }

    /// Left columns then right columns, in `schema`; empties `self`.
    pub fn build(
        &mut self,
        schema: &SchemaRef,
        left: &RecordBatch,
        right: &RightCursor,
    ) -> Result<RecordBatch> {
        self.build_projected(schema, left, right, None)
    }

    /// The columns `projection` picks (indices into left columns then right columns; all
    /// of them for `None`), in `schema`; empties `self`. Columns not picked are not built.
    pub fn build_projected(
        &mut self,
        schema: &SchemaRef,
        left: &RecordBatch,
        right: &RightCursor,
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let indices = UInt32Array::from(std::mem::take(&mut self.left));
        let picks = std::mem::take(&mut self.right);
        let left_len = left.num_columns();
        let all: Vec<usize>;
        let wanted = match projection {
            Some(p) => p,
            None => {
                all = (0..left_len + right.schema().fields().len()).collect();
                &all
            }
        };
        let right_columns: Vec<usize> = wanted
            .iter()
            .filter_map(|&c| c.checked_sub(left_len))
            .collect();
        let mut right_arrays = right.gather(&picks, &right_columns)?.into_iter();
        let columns = wanted
            .iter()
            .map(|&c| {
                if c < left_len {
                    Ok(take(left.column(c).as_ref(), &indices, None)?)
                } else {
                    right_arrays
                        .next()
                        .ok_or_else(|| internal_datafusion_err!("right column {c} not gathered"))
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(indices.len())),
        )?)
    }
}
