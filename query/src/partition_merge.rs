//! The partition merge: the sorted partitions of one input combined into one sorted stream,
//! by key runs. (This is the only "merge" of the crate in the classic sense; the joins that
//! consume it are the sorted joins of [`crate::sorted_join`].)
//!
//! The temporal operators read inputs sorted by (keys, time) whose partitions are each
//! sorted that way: vigil's scans give one partition per segment, and segments cover
//! windows of time, so a key's rows of one partition seldom interleave in time with its
//! rows of another. DataFusion's `SortPreservingMergeExec` compares every row with a row of each
//! other partition, on row-encoded keys. [`merge_partitions`] compares keys once per *run*
//! (the rows of one key in one batch) and, among the partitions holding the smallest key,
//! hands over whole stretches of rows at once: from the partition whose next row is earliest,
//! every row up to the next row of another partition (found by binary search). Partitions
//! that do not overlap in time cost one comparison per key and partition; ones that do are
//! merged row stretch by row stretch, as exactly as a row-by-row merge. Ties in (keys, time)
//! go to the lower partition first, as in DataFusion's `SortPreservingMergeExec`.
//!
//! Each partition is read ahead on its own task (as DataFusion's does), and the merge
//! runs on a task of its own ahead of its consumer, so decoding, merging and joining run in
//! parallel.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::make_comparator;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{SortOptions, concat, take};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use datafusion::common::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::common::spawn_buffered;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::{StreamExt, TryStreamExt};

use crate::time::time_values;

/// Batches each partition may read ahead of the merge.
const READ_AHEAD: usize = 2;

/// What the merge orders by: key expressions, a time expression, and the encoder of keys
/// (`None` without keys: every row then has the same key).
#[derive(Debug, Clone)]
pub struct MergeOrder {
    pub keys: Vec<PhysicalExprRef>,
    pub time: PhysicalExprRef,
    pub converter: Option<Arc<RowConverter>>,
}

/// Every partition of `plan` (each sorted by `order`) as one stream in that order, executed
/// when the stream is first polled (so dynamic filters published before then reach the
/// scans).
pub fn merge_partitions(
    plan: Arc<dyn ExecutionPlan>,
    order: MergeOrder,
    context: Arc<TaskContext>,
) -> SendableRecordBatchStream {
    let schema = plan.schema();
    let batch_size = context.session_config().batch_size();
    let start = async move {
        let partitions = plan.output_partitioning().partition_count();
        if partitions == 1 {
            return plan.execute(0, context);
        }
        let inputs = (0..partitions)
            .map(|p| {
                Ok(Input::new(spawn_buffered(
                    plan.execute(p, Arc::clone(&context))?,
                    READ_AHEAD,
                )))
            })
            .collect::<Result<Vec<_>>>()?;
        let merge = RunMerge {
            inputs,
            order,
            pending: Vec::new(),
            pending_rows: 0,
            batch_size,
            schema: plan.schema(),
        };
        let stream = futures::stream::try_unfold(merge, |mut merge| async move {
            Ok(merge.next_batch().await?.map(|batch| (batch, merge)))
        });
        // The merge runs on a task of its own, ahead of its consumer (the join), so merging
        // and joining use both cores.
        Ok(spawn_buffered(
            Box::pin(RecordBatchStreamAdapter::new(plan.schema(), stream)),
            READ_AHEAD,
        ))
    };
    let stream = futures::stream::once(start).try_flatten().boxed();
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// One sorted partition and its current batch.
struct Input {
    stream: SendableRecordBatchStream,
    cursor: Option<Cursor>,
    done: bool,
}

impl Input {
    fn new(stream: SendableRecordBatchStream) -> Self {
        Input {
            stream,
            cursor: None,
            done: false,
        }
    }

    /// Makes sure the input has a row to offer unless it has ended.
    async fn fill(&mut self, order: &MergeOrder) -> Result<()> {
        while self.cursor.is_none() && !self.done {
            match self.stream.next().await.transpose()? {
                None => self.done = true,
                Some(batch) if batch.num_rows() == 0 => {}
                Some(batch) => self.cursor = Some(Cursor::new(batch, order)?),
            }
        }
        Ok(())
    }
}

/// A batch, its key runs and times, and the next row to hand over.
struct Cursor {
    batch: RecordBatch,
    time: Int64Array,
    /// Exclusive end row of each run of equal keys.
    ends: Vec<usize>,
    /// The keys of each run, encoded (`None` without keys).
    keys: Option<Rows>,
    run: usize,
    row: usize,
}

impl Cursor {
    fn new(batch: RecordBatch, order: &MergeOrder) -> Result<Self> {
        let n = batch.num_rows();
        let key_arrays = order
            .keys
            .iter()
            .map(|k| k.evaluate(&batch)?.into_array(n))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let time = time_values(&order.time.evaluate(&batch)?.into_array(n)?)?;
        let (ends, keys) = key_runs(&key_arrays, order.converter.as_deref(), n)?;
        Ok(Cursor {
            batch,
            time,
            ends,
            keys,
            run: 0,
            row: 0,
        })
    }

    fn run_end(&self) -> usize {
        self.ends[self.run]
    }

    /// Orders times with NULL after every value (the inputs' NULLS LAST).
    fn time_at(&self, row: usize) -> (bool, i64) {
        if self.time.is_valid(row) {
            (false, self.time.value(row))
        } else {
            (true, 0)
        }
    }

    fn head_time(&self) -> (bool, i64) {
        self.time_at(self.row)
    }
}

/// The runs of equal keys of a batch (exclusive ends) and each run's encoded key.
pub fn key_runs(
    key_arrays: &[ArrayRef],
    converter: Option<&RowConverter>,
    rows: usize,
) -> Result<(Vec<usize>, Option<Rows>)> {
    let Some(converter) = converter else {
        return Ok((vec![rows], None));
    };
    let ends = run_ends(key_arrays, rows)?;
    let starts = UInt32Array::from_iter_values(
        std::iter::once(0)
            .chain(ends.iter().copied())
            .take(ends.len())
            .map(|s| s as u32),
    );
    let firsts = key_arrays
        .iter()
        .map(|a| take(a.as_ref(), &starts, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let keys = converter.convert_columns(&firsts)?;
    Ok((ends, Some(keys)))
}

/// The end of each run of equal keys in rows sorted by those keys (equal keys are
/// contiguous; NULLs equal each other). Runs are found by galloping from each run's first
/// row, so a long run costs a few comparisons, not one per row.
fn run_ends(key_arrays: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
    let comparators = key_arrays
        .iter()
        .map(|a| make_comparator(a.as_ref(), a.as_ref(), SortOptions::default()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let same = |i: usize, j: usize| comparators.iter().all(|c| c(i, j) == Ordering::Equal);
    let mut ends = Vec::new();
    let mut start = 0;
    while start < rows {
        // Double the step while the row there still has the run's keys...
        let (mut known, mut step) = (start, 1);
        while start + step < rows && same(start, start + step) {
            known = start + step;
            step *= 2;
        }
        // ...then the run ends in (known, min(start + step, rows)]: binary search.
        let (mut lo, mut hi) = (known + 1, (start + step).min(rows));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if same(start, mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        ends.push(lo);
        start = lo;
    }
    Ok(ends)
}

fn cmp_run_keys(a: &Cursor, b: &Cursor) -> Ordering {
    match (&a.keys, &b.keys) {
        (Some(ak), Some(bk)) => ak.row(a.run).cmp(&bk.row(b.run)),
        _ => Ordering::Equal,
    }
}

struct RunMerge {
    inputs: Vec<Input>,
    order: MergeOrder,
    /// Stretches handed over, not yet in an output batch: (batch, offset, length).
    pending: Vec<(RecordBatch, usize, usize)>,
    pending_rows: usize,
    batch_size: usize,
    schema: SchemaRef,
}

impl RunMerge {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.pending_rows >= self.batch_size {
                return self.build().map(Some);
            }
            for input in &mut self.inputs {
                input.fill(&self.order).await?;
            }
            let heads: Vec<usize> = (0..self.inputs.len())
                .filter(|&i| self.inputs[i].cursor.is_some())
                .collect();
            let cursor = |i: usize| self.inputs[i].cursor.as_ref();
            let Some(&first) = heads.first() else {
                return if self.pending_rows > 0 {
                    self.build().map(Some)
                } else {
                    Ok(None)
                };
            };
            // The inputs whose next run has the smallest key.
            let mut smallest = vec![first];
            for &i in &heads[1..] {
                let (Some(c), Some(best)) = (cursor(i), cursor(smallest[0])) else {
                    continue;
                };
                match cmp_run_keys(c, best) {
                    Ordering::Less => smallest = vec![i],
                    Ordering::Equal => smallest.push(i),
                    Ordering::Greater => {}
                }
            }
            let (from, end) = if let [only] = smallest[..] {
                let Some(c) = cursor(only) else { continue };
                (only, c.run_end())
            } else {
                // The earliest next row goes first (ties to the lower input), with every row
                // of its run that precedes the next row of any other of these inputs.
                let rank = |i: usize| cursor(i).map(|c| (c.head_time(), i));
                let mut ranked: Vec<_> = smallest.iter().filter_map(|&i| rank(i)).collect();
                ranked.sort_unstable();
                let (from, bound) = (ranked[0].1, ranked[1]);
                let Some(c) = cursor(from) else { continue };
                // The head row precedes `bound` by construction, so the stretch is never empty.
                let rest = &(c.row + 1..c.run_end());
                let after = partition_point(rest, |r| (c.time_at(r), from) < bound);
                (from, after)
            };
            self.hand_over(from, end);
        }
    }

    /// Moves input `i`'s rows up to `end` (within its current run) to the output.
    fn hand_over(&mut self, i: usize, end: usize) {
        let Some(c) = self.inputs[i].cursor.as_mut() else {
            return;
        };
        let len = end - c.row;
        if len > 0 {
            self.pending.push((c.batch.clone(), c.row, len));
            self.pending_rows += len;
        }
        c.row = end;
        if c.row == c.run_end() {
            c.run += 1;
            if c.run == c.ends.len() {
                self.inputs[i].cursor = None;
            }
        }
    }

    fn build(&mut self) -> Result<RecordBatch> {
        let parts = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        if let [(batch, offset, len)] = &parts[..] {
            return Ok(batch.slice(*offset, *len));
        }
        let columns = (0..self.schema.fields().len())
            .map(|c| {
                let slices: Vec<ArrayRef> = parts
                    .iter()
                    .map(|(b, offset, len)| b.column(c).slice(*offset, *len))
                    .collect();
                let refs: Vec<&dyn Array> = slices.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&refs)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = parts.iter().map(|(_, _, len)| len).sum();
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// The first index of `range` for which `before` is false (`before` holds for a prefix).
fn partition_point(range: &std::ops::Range<usize>, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (range.start, range.end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
