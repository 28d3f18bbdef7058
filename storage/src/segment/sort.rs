//! The segment orders, for sorting in memory and for merging already-sorted inputs with
//! bounded memory.
//!
//! Every kind is stored in (pod ASC NULLS LAST, ts ASC) order except metrics, which are
//! series-major: (pod, name, ts). A pod's metric names alternate sample by sample, so in
//! (pod, ts) order a scan of one metric decodes every other metric's rows too; series-major,
//! the rows of one (pod, name) are contiguous and the value index selects them exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, interleave_record_batch, lexsort_to_indices,
    take_record_batch,
};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};

use crate::SignalKind;
use crate::error::Result;

/// The order of the rows in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    /// (pod, ts): every kind but metrics, and metric segments written before format 4.
    PodTs,
    /// (pod, name, ts): series-major, how metric segments are written.
    PodNameTs,
}

impl RowOrder {
    /// The order segments of `kind` are written in.
    pub fn of(kind: SignalKind) -> RowOrder {
        match kind {
            SignalKind::Metric => RowOrder::PodNameTs,
            _ => RowOrder::PodTs,
        }
    }

    /// The sort key, in order.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            RowOrder::PodTs => &["pod", "ts"],
            RowOrder::PodNameTs => &["pod", "name", "ts"],
        }
    }

    /// The code stored in segment metadata.
    pub fn code(self) -> u8 {
        match self {
            RowOrder::PodTs => 0,
            RowOrder::PodNameTs => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<RowOrder> {
        match code {
            0 => Some(RowOrder::PodTs),
            1 => Some(RowOrder::PodNameTs),
            _ => None,
        }
    }

    /// Rows per block of the value index: series-major segments keep a value's rows
    /// contiguous, so their value bitmaps hold rows (a few runs); in (pod, ts) order values
    /// interleave row by row and bitmaps hold blocks of rows.
    pub fn value_block_rows(self) -> u32 {
        match self {
            RowOrder::PodTs => crate::segment::index::BLOCK_ROWS,
            RowOrder::PodNameTs => 1,
        }
    }
}

fn options() -> SortOptions {
    SortOptions {
        descending: false,
        nulls_first: false,
    }
}

/// Sorts a batch by `order`. The key columns must be columns of the batch. Rows equal in
/// the key are ordered by `name` and `node` when the batch has them, which makes the order
/// deterministic and keeps equal values together for the encoders.
pub fn sort_batch(batch: &RecordBatch, order: RowOrder) -> Result<RecordBatch> {
    if batch.num_rows() <= 1 {
        return Ok(batch.clone());
    }
    let mut keys = key_columns(batch, order);
    keys.extend(
        ["name", "node"]
            .iter()
            .filter(|n| !order.key_columns().contains(n))
            .filter_map(|n| batch.column_by_name(n).cloned()),
    );
    let columns = keys
        .into_iter()
        .map(|values| SortColumn {
            values,
            options: Some(options()),
        })
        .collect::<Vec<_>>();
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

fn key_columns(batch: &RecordBatch, order: RowOrder) -> Vec<ArrayRef> {
    order
        .key_columns()
        .iter()
        .filter_map(|name| batch.column_by_name(name).cloned())
        .collect()
}

/// Re-sorts input sorted by pod into `order`, one pod at a time: memory holds one pod's
/// rows (plus the batch that ends them). Turns a segment written in another order into the
/// current one without sorting the whole segment.
pub struct ResortWithinPod<I> {
    input: I,
    order: RowOrder,
    /// Rows of one pod, not known to be complete yet.
    pending: Vec<RecordBatch>,
    done: bool,
}

impl<I> std::fmt::Debug for ResortWithinPod<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResortWithinPod")
            .field("order", &self.order)
            .finish()
    }
}

impl<I> ResortWithinPod<I>
where
    I: Iterator<Item = Result<RecordBatch>>,
{
    pub fn new(input: I, order: RowOrder) -> Self {
        ResortWithinPod {
            input,
            order,
            pending: Vec::new(),
            done: false,
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.done {
                let rest = std::mem::take(&mut self.pending);
                return self.sorted(rest);
            }
            let Some(batch) = self.input.next().transpose()? else {
                self.done = true;
                continue;
            };
            if batch.num_rows() == 0 {
                continue;
            }
            // Rows before the batch's last pod are complete (no later row has their pod),
            // and so is every pending row unless the whole batch continues their pod.
            let start = last_pod_start(&batch);
            let continues = self
                .pending
                .last()
                .is_none_or(|p| pod_at(p, p.num_rows() - 1) == pod_at(&batch, 0));
            if start == 0 && continues {
                self.pending.push(batch);
                continue;
            }
            let mut complete = std::mem::take(&mut self.pending);
            complete.push(batch.slice(0, start));
            self.pending
                .push(batch.slice(start, batch.num_rows() - start));
            return self.sorted(complete);
        }
    }

    /// `batches` as one batch in the target order; `None` when they hold no row.
    fn sorted(&self, batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let rows = concat_batches(&first.schema(), &batches)?;
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        sort_batch(&rows, self.order).map(Some)
    }
}

/// The pod of row `row`, `None` when NULL or when the batch has no `pod` column.
fn pod_at(batch: &RecordBatch, row: usize) -> Option<&str> {
    let pods = batch.column_by_name("pod")?.as_string_opt::<i32>()?;
    pods.is_valid(row).then(|| pods.value(row))
}

/// The first row of the run of rows that share the last row's pod (NULL pods are one run).
fn last_pod_start(rows: &RecordBatch) -> usize {
    let last = pod_at(rows, rows.num_rows() - 1);
    let mut start = rows.num_rows() - 1;
    while start > 0 && pod_at(rows, start - 1) == last {
        start -= 1;
    }
    start
}

impl<I> Iterator for ResortWithinPod<I>
where
    I: Iterator<Item = Result<RecordBatch>>,
{
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// Merges inputs that are each sorted in `order` into one sorted sequence of batches of at
/// most `batch_rows` rows. Memory holds one batch per input plus one output batch.
pub struct SortedMerge<I> {
    schema: SchemaRef,
    inputs: Vec<I>,
    current: Vec<Option<(RecordBatch, arrow::row::Rows)>>,
    heap: BinaryHeap<Reverse<(OwnedRow, usize, usize)>>,
    converter: RowConverter,
    order: RowOrder,
    batch_rows: usize,
}

impl<I> std::fmt::Debug for SortedMerge<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedMerge")
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

impl<I> SortedMerge<I>
where
    I: Iterator<Item = Result<RecordBatch>>,
{
    pub fn new(
        schema: SchemaRef,
        inputs: Vec<I>,
        batch_rows: usize,
        order: RowOrder,
    ) -> Result<Self> {
        let fields = order
            .key_columns()
            .iter()
            .map(|name| {
                Ok(SortField::new_with_options(
                    schema.field_with_name(name)?.data_type().clone(),
                    options(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(fields)?;
        let n = inputs.len();
        let mut merge = SortedMerge {
            schema,
            inputs,
            current: (0..n).map(|_| None).collect(),
            heap: BinaryHeap::new(),
            converter,
            order,
            batch_rows: batch_rows.max(1),
        };
        for i in 0..n {
            merge.advance_input(i)?;
        }
        Ok(merge)
    }

    /// Loads the next non-empty batch of input `i` and pushes its first row.
    fn advance_input(&mut self, i: usize) -> Result<()> {
        self.current[i] = None;
        for batch in self.inputs[i].by_ref() {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let rows = self
                .converter
                .convert_columns(&key_columns(&batch, self.order))?;
            self.heap.push(Reverse((rows.row(0).owned(), i, 0)));
            self.current[i] = Some((batch, rows));
            return Ok(());
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        // Batches referenced by `picks`, kept alive even after an input moves on.
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut source_of: Vec<Option<usize>> = vec![None; self.inputs.len()];
        while picks.len() < self.batch_rows {
            let Some(Reverse((_, input, row))) = self.heap.pop() else {
                break;
            };
            let Some((batch, rows)) = &self.current[input] else {
                continue;
            };
            let src = match source_of[input] {
                Some(s) => s,
                None => {
                    sources.push(batch.clone());
                    source_of[input] = Some(sources.len() - 1);
                    sources.len() - 1
                }
            };
            picks.push((src, row));
            if row + 1 < batch.num_rows() {
                self.heap
                    .push(Reverse((rows.row(row + 1).owned(), input, row + 1)));
            } else {
                source_of[input] = None;
                self.advance_input(input)?;
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&RecordBatch> = sources.iter().collect();
        let out = interleave_record_batch(&refs, &picks)?;
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            out.columns().to_vec(),
        )?))
    }
}

impl<I> Iterator for SortedMerge<I>
where
    I: Iterator<Item = Result<RecordBatch>>,
{
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}
