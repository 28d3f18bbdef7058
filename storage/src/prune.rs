//! Pruning: which segments, row groups and rows a scan must read, decided from the manifest
//! and the segment index before any byte of a segment is read.
//!
//! A [`ScanFilter`] is a conjunction of a time range and column `IN` lists. Segments outside
//! the time range go first, then the index: the rows of the requested pods (via the pod
//! dictionary) intersected with the rows of each requested value of each value-indexed column.
//! A segment with no such rows is skipped; in the others, row groups without such rows are
//! skipped and the rest read only the selected rows. Filters on columns the index does not
//! cover are left to the reader; pruning only ever removes rows that cannot match.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and, filter_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use roaring::RoaringBitmap;

use crate::SignalKind;
use crate::error::Result;
use crate::pods::PodDictionary;
use crate::schema::{Indexed, column};
use crate::segment::Segment;
use crate::version::Version;

/// A conjunction of constraints a scan's rows must meet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFilter {
    /// Smallest `ts` wanted, inclusive, nanoseconds.
    pub min_ts: Option<i64>,
    /// Largest `ts` wanted, inclusive, nanoseconds.
    pub max_ts: Option<i64>,
    /// Column -> the values it may take (string columns only).
    pub values: BTreeMap<String, Vec<String>>,
    /// Set when the filter is known to match nothing (e.g. `WHERE false`).
    pub matches_nothing: bool,
}

impl ScanFilter {
    /// True when the filter can match no row at all (an empty time range or `IN ()`).
    pub fn is_empty_set(&self) -> bool {
        self.matches_nothing
            || matches!((self.min_ts, self.max_ts), (Some(lo), Some(hi)) if lo > hi)
            || self.values.values().any(|v| v.is_empty())
    }

    fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        self.min_ts.is_none_or(|lo| max_ts >= lo) && self.max_ts.is_none_or(|hi| min_ts <= hi)
    }
}

/// One segment to read, and which of its rows.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    pub segment: Arc<Segment>,
    /// The rows to read (segment row numbers), or `None` for all of them.
    pub rows: Option<RoaringBitmap>,
    /// Per row group: whether it has any row to read.
    pub row_groups: Vec<bool>,
}

impl SegmentScan {
    /// The same scan reading only the rows of these pods (ids from the pod dictionary): how
    /// a scan planned before a join knew its keys narrows once it does.
    pub fn restrict_to_pods(&self, ids: &[u32]) -> SegmentScan {
        let meta = self.segment.meta();
        let mut rows = meta.index.pod_rows(ids);
        if let Some(selected) = &self.rows {
            rows &= selected;
        }
        SegmentScan {
            segment: Arc::clone(&self.segment),
            row_groups: row_groups_with(&meta.row_groups, &rows),
            rows: Some(rows),
        }
    }

    /// Rows this scan reads.
    pub fn rows_selected(&self) -> u64 {
        match &self.rows {
            Some(rows) => rows.len(),
            None => self.segment.meta().rows,
        }
    }
}

/// Per row group (of these sizes): whether any of `rows` falls in it.
fn row_groups_with(sizes: &[u64], rows: &RoaringBitmap) -> Vec<bool> {
    let mut groups = Vec::with_capacity(sizes.len());
    let mut start = 0u64;
    for &n in sizes {
        let end = start + n;
        let any = rows.range_cardinality(start as u32..end.min(u64::from(u32::MAX) + 1) as u32) > 0
            || (end > u64::from(u32::MAX) && rows.max().is_some_and(|m| u64::from(m) >= start));
        groups.push(any);
        start = end;
    }
    groups
}

/// Every id of the pods with these names.
pub fn pod_ids<'a>(pods: &PodDictionary, names: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    names.into_iter().flat_map(|n| pods.ids_named(n)).collect()
}

/// What pruning saved, for `EXPLAIN` and `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    pub segments_total: usize,
    pub segments_pruned_by_time: usize,
    pub segments_pruned_by_index: usize,
    pub row_groups_total: usize,
    pub row_groups_pruned_by_index: usize,
    pub rows_total: u64,
    pub rows_selected: u64,
}

/// Chooses the segments of `kind` a scan with `filter` must read.
pub fn prune_segments(
    version: &Version,
    kind: SignalKind,
    filter: &ScanFilter,
    pods: &PodDictionary,
) -> (Vec<SegmentScan>, PruneStats) {
    let mut stats = PruneStats::default();
    let mut scans = Vec::new();
    let pod_ids: Option<Vec<u32>> = filter
        .values
        .get("pod")
        .map(|names| pod_ids(pods, names.iter().map(String::as_str)));
    for segment in version.segments_of(kind) {
        let meta = segment.meta();
        stats.segments_total += 1;
        stats.row_groups_total += meta.row_groups.len();
        stats.rows_total += meta.rows;
        if filter.is_empty_set() || !filter.overlaps(meta.min_ts, meta.max_ts) {
            stats.segments_pruned_by_time += 1;
            continue;
        }
        let mut selected: Option<RoaringBitmap> = None;
        let mut intersect = |rows: RoaringBitmap| {
            selected = Some(match selected.take() {
                None => rows,
                Some(s) => s & rows,
            });
        };
        if let Some(ids) = &pod_ids {
            intersect(meta.index.pod_rows(ids));
        }
        for (name, values) in &filter.values {
            let Some(spec) = column(kind, name) else {
                continue;
            };
            if spec.indexed == Indexed::Values
                && let Some(rows) = meta.index.value_rows(name, values)
            {
                intersect(rows);
            }
        }
        let Some(rows) = selected else {
            stats.rows_selected += meta.rows;
            scans.push(SegmentScan {
                segment: Arc::clone(segment),
                rows: None,
                row_groups: vec![true; meta.row_groups.len()],
            });
            continue;
        };
        if rows.is_empty() {
            stats.segments_pruned_by_index += 1;
            stats.row_groups_pruned_by_index += meta.row_groups.len();
            continue;
        }
        let row_groups = row_groups_with(&meta.row_groups, &rows);
        stats.row_groups_pruned_by_index += row_groups.iter().filter(|&&any| !any).count();
        stats.rows_selected += rows.len();
        let all = rows.len() == meta.rows;
        scans.push(SegmentScan {
            segment: Arc::clone(segment),
            rows: (!all).then_some(rows),
            row_groups,
        });
    }
    (scans, stats)
}

/// The hot rows of `kind` that meet `filter`, batch by batch, in arrival order.
pub fn select_hot(
    version: &Version,
    kind: SignalKind,
    filter: &ScanFilter,
) -> Result<Vec<RecordBatch>> {
    if filter.is_empty_set() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for hot in version.hot_batches(kind) {
        if !hot.summary().may_match(filter) {
            continue;
        }
        let batch = &hot.batch;
        let mut mask: Option<BooleanArray> = None;
        let mut and_in = |m: BooleanArray| -> Result<()> {
            mask = Some(match mask.take() {
                None => m,
                Some(prev) => and(&prev, &m)?,
            });
            Ok(())
        };
        if (filter.min_ts.is_some() || filter.max_ts.is_some())
            && let Some(ts) = batch
                .column_by_name("ts")
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        {
            let (lo, hi) = (
                filter.min_ts.unwrap_or(i64::MIN),
                filter.max_ts.unwrap_or(i64::MAX),
            );
            and_in(
                ts.values()
                    .iter()
                    .map(|&t| Some(t >= lo && t <= hi))
                    .collect(),
            )?;
        }
        for (name, values) in &filter.values {
            let Some(array) = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            let m: BooleanArray = (0..array.len())
                .map(|i| Some(array.is_valid(i) && values.iter().any(|v| v == array.value(i))))
                .collect();
            and_in(m)?;
        }
        match mask {
            None => out.push(batch.clone()),
            Some(m) => {
                let filtered = filter_record_batch(batch, &m)?;
                if filtered.num_rows() > 0 {
                    out.push(filtered);
                }
            }
        }
    }
    Ok(out)
}
