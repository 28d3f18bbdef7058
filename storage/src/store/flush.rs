//! Flush: hot rows become segments.
//!
//! Take the current version; S = its highest hot sequence number. Per (kind, time window),
//! sort the hot rows in the kind's order and write a segment file; then apply one manifest
//! edit (the protocol of `store::shared::edit`) that adds the segments and removes the hot
//! records <= S (`flushed_seq = S`). A crash before the edit commits leaves orphan files
//! (deleted at open) and the hot rows intact; after it, the segments are live and the hot
//! rows gone, atomically.

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampNanosecondType;

use crate::SignalKind;
use crate::error::Result;
use crate::schema::kind_schema;
use crate::segment::sort::{RowOrder, sort_batch};
use crate::store::Shared;
use crate::store::shared::{Cause, Task, VersionEdit};

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub segments: usize,
    pub rows: u64,
}

pub(crate) fn flush(shared: &Shared) -> Result<FlushStats> {
    let _serial = shared.lock(Task::Flush);
    let version = shared.current();
    let Some(upto) = version.hot.iter().map(|h| h.seq).max() else {
        return Ok(FlushStats::default());
    };
    let window = shared.options().window_ns();

    let mut groups: BTreeMap<(SignalKind, i64), Vec<RecordBatch>> = BTreeMap::new();
    for hot in version.hot.iter() {
        for (start, part) in split_by_window(&hot.batch, window)? {
            groups.entry((hot.kind, start)).or_default().push(part);
        }
    }

    let mut pending = shared.pending();
    let ids = pending.reserve(groups.len())?;
    let mut edit = VersionEdit::new(Cause::Flush);
    edit.flush_hot_upto(upto);
    for (((kind, start), parts), id) in groups.iter().zip(ids) {
        let rows = concat_batches(&kind_schema(*kind), parts)?;
        let sorted = sort_batch(&rows, RowOrder::of(*kind))?;
        let mut writer = pending.create(id, *kind)?;
        shared
            .pods()
            .with_lookup(|lookup| writer.write(&sorted, lookup))?;
        edit.add(writer.finish(*start, upto, 0)?);
        crate::failpoints::crash_point!("flush::after_segment_write");
    }
    let stats = FlushStats {
        segments: edit.added().len(),
        rows: edit.added().iter().map(|m| m.rows).sum(),
    };
    shared.apply(edit, pending)?;
    tracing::debug!(
        segments = stats.segments,
        rows = stats.rows,
        upto,
        "flushed hot rows"
    );
    Ok(stats)
}

/// Splits a batch by time window: `(window start, rows in that window)`.
pub(crate) fn split_by_window(batch: &RecordBatch, window: i64) -> Result<Vec<(i64, RecordBatch)>> {
    let Some(ts) = batch
        .column_by_name("ts")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    else {
        return Ok(Vec::new());
    };
    let start = |t: i64| t.div_euclid(window) * window;
    let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) else {
        return Ok(Vec::new());
    };
    if start(lo) == start(hi) {
        return Ok(vec![(start(lo), batch.clone())]);
    }
    let mut rows_of: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (row, &t) in ts.values().iter().enumerate() {
        rows_of.entry(start(t)).or_default().push(row as u32);
    }
    let mut out = Vec::with_capacity(rows_of.len());
    for (s, rows) in rows_of {
        let indices = UInt32Array::from(rows);
        out.push((s, take_record_batch(batch, &indices)?));
    }
    Ok(out)
}
