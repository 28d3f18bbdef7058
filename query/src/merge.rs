//! Pieces shared by the merge joins (ASOF and time-band): batches with encoded keys and
//! normalised times, a cursor over the sorted right input that keeps only the batches still
//! referenced, and output assembly from (left row, right row) pairs.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortOptions, interleave, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use futures::StreamExt;

use crate::time::time_values;

pub type PhysicalExprRef = Arc<dyn PhysicalExpr>;

/// A right row: (global batch index, row).
pub type RowRef = (usize, usize);

/// The order both inputs of a merge join need: keys, then time, ascending, nulls last.
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

/// One input batch with its keys encoded for comparison and its times normalised.
#[derive(Debug)]
pub struct KeyedBatch {
    pub batch: RecordBatch,
    keys: Option<Rows>,
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
        let keys = match converter {
            Some(c) => Some(c.convert_columns(&key_arrays)?),
            None => None,
        };
        let time = time_values(&time.evaluate(&batch)?.into_array(batch.num_rows())?)?;
        Ok(KeyedBatch {
            batch,
            keys,
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
}

/// Compares the keys of two rows (from the same converter).
pub fn cmp_keys(a: &KeyedBatch, ai: usize, b: &KeyedBatch, bi: usize) -> Ordering {
    match (&a.keys, &b.keys) {
        (Some(ak), Some(bk)) => ak.row(ai).cmp(&bk.row(bi)),
        _ => Ordering::Equal,
    }
}

/// The right input of a merge join, read once, with the batches still referenced.
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
            while self.pos.0 < self.first + self.batches.len()
                && self.pos.1 >= self.get(self.pos).num_rows()
            {
                self.pos = (self.pos.0 + 1, 0);
            }
            if self.pos.0 < self.first + self.batches.len() {
                return Ok(Some(self.pos));
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

    /// Output columns for `picks` of right rows (`None` gives NULLs).
    pub fn gather(&self, picks: &[Option<RowRef>]) -> Result<Vec<ArrayRef>> {
        let schema = self.schema();
        let null_source = self.batches.len();
        let indices: Vec<(usize, usize)> = picks
            .iter()
            .map(|r| match r {
                Some((b, row)) => (b - self.first, *row),
                None => (null_source, 0),
            })
            .collect();
        let mut out = Vec::with_capacity(schema.fields().len());
        for (c, field) in schema.fields().iter().enumerate() {
            let nulls = new_null_array(field.data_type(), 1);
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
}

/// Output rows of a merge join, collected as (left row, right row) pairs.
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
        let indices = UInt32Array::from(std::mem::take(&mut self.left));
        let picks = std::mem::take(&mut self.right);
        let mut columns: Vec<ArrayRef> = left
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        columns.extend(right.gather(&picks)?);
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(indices.len())),
        )?)
    }
}
