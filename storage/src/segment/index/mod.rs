//! The per-segment index: a roaring bitmap of row numbers for every pod id, and a roaring
//! bitmap of row *blocks* for every distinct value of the kind's value-indexed columns.
//!
//! Rows are numbered from 0 across the whole segment file, in file order. Rows of one pod are
//! contiguous (segments are sorted by pod), so row-level pod bitmaps are a few runs each.
//! In (pod, ts) order values of other columns interleave from row to row, so they are
//! indexed by block of [`BLOCK_ROWS`] rows: bit `b` is set when any row in
//! `[b * BLOCK_ROWS, (b + 1) * BLOCK_ROWS)` has the value. That keeps the index a few KiB per
//! value and the row selections it yields coarse enough to read efficiently. Series-major
//! (metric) segments keep each (pod, name) contiguous, so there blocks are single rows and
//! the bitmaps are runs. Bitmaps are run-compressed when that is smaller. A column with
//! more than [`MAX_INDEXED_VALUES`] distinct values in a segment is marked
//! [`ColumnIndex::Unindexed`] there: it cannot prune that segment, but never gives a wrong
//! answer.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use roaring::RoaringBitmap;

use crate::SignalKind;
use crate::codec::{DecodeResult, Decoder, Encoder};
use crate::pods::PodKey;
use crate::schema::value_indexed_columns;
use crate::segment::sort::RowOrder;

/// Above this many distinct values in one segment a column is not indexed there.
pub const MAX_INDEXED_VALUES: usize = 4096;

/// Rows per block of the value index.
pub const BLOCK_ROWS: u32 = 1024;

/// Block bitmaps of one value-indexed column in one segment.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnIndex {
    /// Blocks of rows per distinct non-null value.
    Values(BTreeMap<String, RoaringBitmap>),
    /// Too many distinct values; the column cannot prune this segment.
    Unindexed,
}

/// Everything the index knows about one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentIndex {
    /// Rows per pod id. Rows with a NULL pod are in no bitmap.
    pub pods: BTreeMap<u32, RoaringBitmap>,
    /// Row blocks per value, per value-indexed column.
    pub columns: BTreeMap<String, ColumnIndex>,
    /// Rows per block of `columns` (the segment's [`RowOrder::value_block_rows`]); not
    /// encoded, it follows from the order the metadata records.
    pub block_rows: u32,
}

impl Default for SegmentIndex {
    fn default() -> Self {
        SegmentIndex {
            pods: BTreeMap::new(),
            columns: BTreeMap::new(),
            block_rows: BLOCK_ROWS,
        }
    }
}

impl SegmentIndex {
    /// The rows whose pod id is one of `ids`.
    pub fn pod_rows(&self, ids: &[u32]) -> RoaringBitmap {
        ids.iter()
            .filter_map(|id| self.pods.get(id))
            .fold(RoaringBitmap::new(), |acc, b| acc | b)
    }

    /// Whether [`SegmentIndex::value_rows`] of `column` gives exactly the rows with the
    /// values (bitmaps of rows, not blocks, and the column indexed).
    pub fn is_exact(&self, column: &str) -> bool {
        self.block_rows == 1 && matches!(self.columns.get(column), Some(ColumnIndex::Values(_)))
    }

    /// A superset of the rows whose `column` is one of `values` (whole blocks), or `None`
    /// when the column is not indexed in this segment (so the index cannot say).
    pub fn value_rows(&self, column: &str, values: &[String]) -> Option<RoaringBitmap> {
        match self.columns.get(column)? {
            ColumnIndex::Unindexed => None,
            ColumnIndex::Values(map) => {
                let blocks = values
                    .iter()
                    .filter_map(|v| map.get(v))
                    .fold(RoaringBitmap::new(), |acc, b| acc | b);
                if self.block_rows == 1 {
                    return Some(blocks);
                }
                let mut rows = RoaringBitmap::new();
                for block in blocks {
                    let start = block.saturating_mul(self.block_rows);
                    rows.insert_range(start..start.saturating_add(self.block_rows));
                }
                Some(rows)
            }
        }
    }

    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.u32(self.pods.len() as u32);
        for (id, rows) in &self.pods {
            e.u32(*id);
            encode_bitmap(e, rows);
        }
        e.u32(self.columns.len() as u32);
        for (name, index) in &self.columns {
            e.str(name);
            match index {
                ColumnIndex::Unindexed => {
                    e.u8(0);
                }
                ColumnIndex::Values(values) => {
                    e.u8(1).u32(values.len() as u32);
                    for (value, rows) in values {
                        e.str(value);
                        encode_bitmap(e, rows);
                    }
                }
            }
        }
    }

    pub(crate) fn decode(d: &mut Decoder<'_>, block_rows: u32) -> DecodeResult<SegmentIndex> {
        let mut index = SegmentIndex {
            block_rows,
            ..SegmentIndex::default()
        };
        let pods = d.u32("pod bitmap count")?;
        for _ in 0..pods {
            let id = d.u32("pod id")?;
            index.pods.insert(id, decode_bitmap(d, "pod bitmap")?);
        }
        let columns = d.u32("indexed column count")?;
        for _ in 0..columns {
            let name = d.str("indexed column name")?.to_string();
            let column = match d.u8("column index state")? {
                0 => ColumnIndex::Unindexed,
                1 => {
                    let n = d.u32("indexed value count")?;
                    let mut values = BTreeMap::new();
                    for _ in 0..n {
                        let value = d.str("indexed value")?.to_string();
                        values.insert(value, decode_bitmap(d, "value bitmap")?);
                    }
                    ColumnIndex::Values(values)
                }
                other => return Err(format!("unknown column index state {other} for `{name}`")),
            };
            index.columns.insert(name, column);
        }
        Ok(index)
    }
}

fn encode_bitmap(e: &mut Encoder, rows: &RoaringBitmap) {
    let mut bytes = Vec::with_capacity(rows.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = rows.serialize_into(&mut bytes);
    e.bytes(&bytes);
}

fn decode_bitmap(d: &mut Decoder<'_>, what: &str) -> DecodeResult<RoaringBitmap> {
    let bytes = d.bytes(what)?;
    RoaringBitmap::deserialize_from(bytes).map_err(|e| format!("{what} does not decode: {e}"))
}

/// Builds a [`SegmentIndex`] from the batches of a segment, in file order.
#[derive(Debug)]
pub struct IndexBuilder {
    next_row: u32,
    block_rows: u32,
    pods: BTreeMap<u32, RoaringBitmap>,
    columns: Vec<(&'static str, Option<BTreeMap<String, RoaringBitmap>>)>,
}

impl IndexBuilder {
    /// A builder for rows of `kind` arriving in `order`.
    pub fn new(kind: SignalKind, order: RowOrder) -> Self {
        IndexBuilder {
            next_row: 0,
            block_rows: order.value_block_rows(),
            pods: BTreeMap::new(),
            columns: value_indexed_columns(kind)
                .map(|c| (c.name, Some(BTreeMap::new())))
                .collect(),
        }
    }

    /// Adds the rows of `batch` (canonical schema of the kind). `pod_id` maps a pod key to its
    /// id; every pod written to a segment is in the dictionary.
    pub fn add(&mut self, batch: &RecordBatch, pod_id: &dyn Fn(&PodKey) -> Option<u32>) {
        let base = self.next_row;
        let strings = |name: &str| -> Option<&StringArray> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
        };
        if let Some(pods) = strings("pod") {
            let clusters = strings("cluster");
            let namespaces = strings("namespace");
            let value = crate::pods::opt_str;
            let mut last: Option<(PodKey, Option<u32>)> = None;
            for row in 0..batch.num_rows() {
                if pods.is_null(row) {
                    continue;
                }
                let key = PodKey::new(
                    value(clusters, row),
                    value(namespaces, row),
                    pods.value(row),
                );
                let id = match &last {
                    Some((k, id)) if *k == key => *id,
                    _ => {
                        let id = pod_id(&key);
                        last = Some((key, id));
                        id
                    }
                };
                if let Some(id) = id {
                    append(self.pods.entry(id).or_default(), base + row as u32);
                }
            }
        }
        let block_rows = self.block_rows;
        for (name, values) in &mut self.columns {
            let Some(map) = values else { continue };
            let Some(array) = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            // Rows of one value come in runs (long ones in series-major segments): each run
            // adds its blocks at once.
            let mut row = 0;
            while row < array.len() {
                if array.is_null(row) {
                    row += 1;
                    continue;
                }
                let v = array.value(row);
                let mut end = row + 1;
                while end < array.len() && array.is_valid(end) && array.value(end) == v {
                    end += 1;
                }
                let first = (base + row as u32) / block_rows;
                let last = (base + end as u32 - 1) / block_rows;
                row = end;
                let blocks = match map.get_mut(v) {
                    Some(blocks) => blocks,
                    None => {
                        if map.len() >= MAX_INDEXED_VALUES {
                            *values = None;
                            break;
                        }
                        map.entry(v.to_string()).or_default()
                    }
                };
                let from = blocks
                    .max()
                    .map_or(first, |m| first.max(m.saturating_add(1)));
                if from <= last {
                    blocks.insert_range(from..=last);
                }
            }
        }
        self.next_row = base + batch.num_rows() as u32;
    }

    pub fn finish(mut self) -> SegmentIndex {
        for rows in self.pods.values_mut() {
            rows.optimize();
        }
        let columns = self
            .columns
            .into_iter()
            .map(|(name, values)| {
                let index = match values {
                    Some(mut map) => {
                        map.values_mut().for_each(|rows| {
                            rows.optimize();
                        });
                        ColumnIndex::Values(map)
                    }
                    None => ColumnIndex::Unindexed,
                };
                (name.to_string(), index)
            })
            .collect();
        SegmentIndex {
            pods: self.pods,
            columns,
            block_rows: self.block_rows,
        }
    }
}

/// Adds a row number; rows arrive in ascending order, which `try_push` makes cheap.
fn append(rows: &mut RoaringBitmap, row: u32) {
    if rows.try_push(row).is_err() {
        rows.insert(row);
    }
}

#[cfg(test)]
mod tests;
