//! Flush: hot rows become segments.
//!
//! Protocol (each step durable before the next):
//! 1. take the current version; S = its highest hot sequence number;
//! 2. per (kind, time window), sort the hot rows in the kind's order and write a segment file
//!    (temporary name, fsync, rename, fsync directory);
//! 3. one synced RocksDB write: the new manifest entries, deletion of hot records <= S, and
//!    `flushed_seq = S`;
//! 4. publish a version with the new segments and without hot batches <= S.
//!
//! A crash before 3 leaves orphan files (deleted at open) and the hot rows intact; after 3,
//! the segments are live and the hot rows gone, atomically.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use rocksdb::WriteBatch;

use crate::error::Result;
use crate::kind::SignalKind;
use crate::schema::kind_schema;
use crate::segment::sort::{RowOrder, sort_batch};
use crate::segment::writer::SegmentWriter;
use crate::segment::{Segment, SegmentMeta};
use crate::store::Shared;

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub segments: usize,
    pub rows: u64,
}

pub(crate) fn flush(shared: &Shared) -> Result<FlushStats> {
    let _serial = shared.flush_lock.lock();
    let version = shared.current();
    let Some(upto) = version.hot.iter().map(|h| h.seq).max() else {
        return Ok(FlushStats::default());
    };
    let window = shared.options.window_ns();

    let mut groups: BTreeMap<(SignalKind, i64), Vec<RecordBatch>> = BTreeMap::new();
    for hot in version.hot.iter() {
        for (start, part) in split_by_window(&hot.batch, window)? {
            groups.entry((hot.kind, start)).or_default().push(part);
        }
    }

    // Reserve the segment ids durably before any file exists, so that open can tell the
    // files of an interrupted flush from files the manifest lost.
    let ids: Vec<u64> = groups
        .keys()
        .map(|_| shared.allocate_segment_id())
        .collect();
    let mut reserve = WriteBatch::default();
    for &id in &ids {
        shared.kv.put_pending(&mut reserve, id);
    }
    shared.kv.write(reserve, true)?;

    let mut written: Vec<SegmentMeta> = Vec::new();
    let result = (|| -> Result<()> {
        for (((kind, start), parts), &id) in groups.iter().zip(&ids) {
            let rows = concat_batches(&kind_schema(*kind), parts)?;
            let sorted = sort_batch(&rows, RowOrder::of(*kind))?;
            let mut writer =
                SegmentWriter::create(&shared.segments_dir, id, *kind, &shared.options.layout)?;
            shared
                .pods
                .with_lookup(|lookup| writer.write(&sorted, lookup))?;
            written.push(writer.finish(*start, upto, 0)?);
            fail::fail_point!("flush::after_segment_write", |_| crate::failpoints::crash());
        }
        Ok(())
    })();
    if let Err(e) = result {
        abandon(shared, &written, &ids);
        return Err(e);
    }

    let mut batch = WriteBatch::default();
    for meta in &written {
        shared.kv.put_segment(&mut batch, meta);
    }
    for &id in &ids {
        shared.kv.delete_pending(&mut batch, id);
    }
    shared.kv.delete_hot_upto(&mut batch, upto);
    shared.kv.put_next_segment_id(
        &mut batch,
        shared
            .next_segment_id
            .load(std::sync::atomic::Ordering::SeqCst),
    );
    fail::fail_point!("flush::before_manifest", |_| crate::failpoints::crash());
    if let Err(e) = shared.kv.write(batch, true) {
        abandon(shared, &written, &ids);
        return Err(e);
    }
    fail::fail_point!("flush::after_manifest", |_| crate::failpoints::crash());
    if let Err(e) = shared.kv.flush_memtables(false) {
        tracing::warn!(error = %e, "could not schedule a RocksDB memtable flush");
    }

    let stats = FlushStats {
        segments: written.len(),
        rows: written.iter().map(|m| m.rows).sum(),
    };
    {
        let mut current = shared.version.write();
        let hot = current
            .hot
            .iter()
            .filter(|h| h.seq > upto)
            .cloned()
            .collect();
        let mut segments: Vec<Arc<Segment>> = current.segments.iter().cloned().collect();
        segments.extend(
            written
                .into_iter()
                .map(|m| Arc::new(Segment::new(m, &shared.segments_dir))),
        );
        current.hot = Arc::new(hot);
        current.segments = Arc::new(segments);
    }
    let (lock, cvar) = &shared.flushed;
    *lock.lock() += 1;
    cvar.notify_all();
    tracing::debug!(
        segments = stats.segments,
        rows = stats.rows,
        upto,
        "flushed hot rows"
    );
    Ok(stats)
}

/// Cleans up after a failed flush: the files go; their pending records go once they have.
fn abandon(shared: &Shared, written: &[SegmentMeta], ids: &[u64]) {
    for meta in written {
        let _ = std::fs::remove_file(shared.segments_dir.join(meta.file_name()));
    }
    let mut batch = WriteBatch::default();
    for &id in ids {
        shared.kv.delete_pending(&mut batch, id);
    }
    // If this fails too, open finds the pending records and finishes the clean-up.
    let _ = shared.kv.write(batch, true);
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
