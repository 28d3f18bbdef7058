//! The segment order, (pod ASC NULLS LAST, ts ASC), for sorting in memory and for merging
//! already-sorted inputs with bounded memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{
    SortColumn, SortOptions, interleave_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};

use crate::error::Result;

fn options() -> SortOptions {
    SortOptions {
        descending: false,
        nulls_first: false,
    }
}

/// Sorts a batch by (pod, ts). `pod` and `ts` must be columns of the batch. Rows with the
/// same pod and ts are ordered by `name` and `node` when the batch has them, which makes
/// the order deterministic and keeps equal values together for the encoders.
pub fn sort_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    if batch.num_rows() <= 1 {
        return Ok(batch.clone());
    }
    let mut keys = sort_key_columns(batch);
    keys.extend(
        ["name", "node"]
            .iter()
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

fn sort_key_columns(batch: &RecordBatch) -> Vec<arrow::array::ArrayRef> {
    ["pod", "ts"]
        .iter()
        .filter_map(|name| batch.column_by_name(name).cloned())
        .collect()
}

/// Merges inputs that are each sorted by (pod, ts) into one sorted sequence of batches of at
/// most `batch_rows` rows. Memory holds one batch per input plus one output batch.
pub struct SortedMerge<I> {
    schema: SchemaRef,
    inputs: Vec<I>,
    current: Vec<Option<(RecordBatch, arrow::row::Rows)>>,
    heap: BinaryHeap<Reverse<(OwnedRow, usize, usize)>>,
    converter: RowConverter,
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
    pub fn new(schema: SchemaRef, inputs: Vec<I>, batch_rows: usize) -> Result<Self> {
        let fields = ["pod", "ts"]
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
            let rows = self.converter.convert_columns(&sort_key_columns(&batch))?;
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
