//! The per-segment index: a roaring bitmap of row numbers for every pod id, and a roaring
//! bitmap of row *blocks* for every distinct value of the kind's value-indexed columns.
//!
//! Rows are numbered from 0 across the whole segment file, in file order. Rows of one pod are
//! contiguous (segments are sorted by pod), so row-level pod bitmaps are a few runs each.
//! Values of other columns interleave from row to row (a pod's metric names alternate), so
//! they are indexed by block of [`BLOCK_ROWS`] rows: bit `b` is set when any row in
//! `[b * BLOCK_ROWS, (b + 1) * BLOCK_ROWS)` has the value. That keeps the index a few KiB per
//! value and the row selections it yields coarse enough to read efficiently. A column with
//! more than [`MAX_INDEXED_VALUES`] distinct values in a segment is marked
//! [`ColumnIndex::Unindexed`] there: it cannot prune that segment, but never gives a wrong
//! answer.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use roaring::RoaringBitmap;

use crate::codec::{DecodeResult, Decoder, Encoder};
use crate::kind::SignalKind;
use crate::pods::PodKey;
use crate::schema::value_indexed_columns;

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentIndex {
    /// Rows per pod id. Rows with a NULL pod are in no bitmap.
    pub pods: BTreeMap<u32, RoaringBitmap>,
    /// Row blocks per value, per value-indexed column.
    pub columns: BTreeMap<String, ColumnIndex>,
}

impl SegmentIndex {
    /// The rows whose pod id is one of `ids`.
    pub fn pod_rows(&self, ids: &[u32]) -> RoaringBitmap {
        ids.iter()
            .filter_map(|id| self.pods.get(id))
            .fold(RoaringBitmap::new(), |acc, b| acc | b)
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
                let mut rows = RoaringBitmap::new();
                for block in blocks {
                    let start = block.saturating_mul(BLOCK_ROWS);
                    rows.insert_range(start..start.saturating_add(BLOCK_ROWS));
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

    pub(crate) fn decode(d: &mut Decoder<'_>) -> DecodeResult<SegmentIndex> {
        let mut index = SegmentIndex::default();
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
    pods: BTreeMap<u32, RoaringBitmap>,
    columns: Vec<(&'static str, Option<BTreeMap<String, RoaringBitmap>>)>,
}

impl IndexBuilder {
    pub fn new(kind: SignalKind) -> Self {
        IndexBuilder {
            next_row: 0,
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
        for (name, values) in &mut self.columns {
            let Some(map) = values else { continue };
            let Some(array) = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            for row in 0..array.len() {
                if array.is_null(row) {
                    continue;
                }
                let v = array.value(row);
                let block = (base + row as u32) / BLOCK_ROWS;
                match map.get_mut(v) {
                    Some(blocks) => {
                        if blocks.max() != Some(block) {
                            append(blocks, block);
                        }
                    }
                    None => {
                        if map.len() >= MAX_INDEXED_VALUES {
                            *values = None;
                            break;
                        }
                        let mut blocks = RoaringBitmap::new();
                        append(&mut blocks, block);
                        map.insert(v.to_string(), blocks);
                    }
                }
            }
        }
        self.next_row = base + batch.num_rows() as u32;
    }

    pub fn finish(self) -> SegmentIndex {
        let columns = self
            .columns
            .into_iter()
            .map(|(name, values)| {
                let index = match values {
                    Some(map) => ColumnIndex::Values(map),
                    None => ColumnIndex::Unindexed,
                };
                (name.to_string(), index)
            })
            .collect();
        SegmentIndex {
            pods: self.pods,
            columns,
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
