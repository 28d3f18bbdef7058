//! Compaction: small segments of one kind and time window are merged into one.
//!
//! The merge streams the inputs in (pod, ts) order with bounded memory. The manifest swap
//! (add the output, delete the inputs) is one synced RocksDB write; the input files are
//! deleted when the last query holding them finishes. A crash before the swap leaves an
//! orphan output file; after it, orphan input files. `Store::open` deletes both kinds.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::sync::Arc;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rocksdb::WriteBatch;

use crate::error::{Result, StorageError};
use crate::kind::SignalKind;
use crate::schema::kind_schema;
use crate::segment::Segment;
use crate::segment::sort::SortedMerge;
use crate::segment::writer::SegmentWriter;
use crate::store::Shared;
use crate::version::Version;

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments merged away.
    pub inputs: usize,
    /// Segments written.
    pub outputs: usize,
    pub rows: u64,
}

/// Merges, per (kind, window), groups of at least `min_inputs` small segments.
pub(crate) fn compact(shared: &Shared, min_inputs: usize) -> Result<CompactionStats> {
    let _serial = shared.compaction_lock.lock();
    let mut stats = CompactionStats::default();
    for inputs in pick(
        &shared.current(),
        shared.options.compaction_target_rows,
        min_inputs,
    ) {
        let rows = merge(shared, &inputs)?;
        stats.inputs += inputs.len();
        stats.outputs += 1;
        stats.rows += rows;
    }
    Ok(stats)
}

/// Chooses what to merge: in each (kind, window), the small segments, oldest first, in runs
/// that stay under the target size.
pub(crate) fn pick(
    version: &Version,
    target_rows: u64,
    min_inputs: usize,
) -> Vec<Vec<Arc<Segment>>> {
    let mut by_window: BTreeMap<(SignalKind, i64), Vec<Arc<Segment>>> = BTreeMap::new();
    for segment in version.segments.iter() {
        let meta = segment.meta();
        if meta.rows < target_rows / 2 {
            by_window
                .entry((meta.kind, meta.window_start))
                .or_default()
                .push(Arc::clone(segment));
        }
    }
    let mut plans = Vec::new();
    for (_, mut small) in by_window {
        small.sort_by_key(|s| s.meta().id);
        let mut run: Vec<Arc<Segment>> = Vec::new();
        let mut rows = 0;
        for segment in small {
            if !run.is_empty() && rows + segment.meta().rows > target_rows {
                if run.len() >= min_inputs {
                    plans.push(std::mem::take(&mut run));
                }
                run.clear();
                rows = 0;
            }
            rows += segment.meta().rows;
            run.push(segment);
        }
        if run.len() >= min_inputs {
            plans.push(run);
        }
    }
    plans
}

fn merge(shared: &Shared, inputs: &[Arc<Segment>]) -> Result<u64> {
    let first = inputs[0].meta();
    let (kind, window_start) = (first.kind, first.window_start);
    let schema = kind_schema(kind);
    let mut readers = Vec::with_capacity(inputs.len());
    for segment in inputs {
        let path = segment.path().to_path_buf();
        let file = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(8192)
            .build()?;
        readers.push(reader.map(move |b| b.map_err(StorageError::from)));
    }
    let merged = SortedMerge::new(Arc::clone(&schema), readers, 8192)?;
    let id = shared.allocate_segment_id();
    let mut reserve = WriteBatch::default();
    shared.kv.put_pending(&mut reserve, id);
    shared.kv.write(reserve, true)?;
    let written = (|| -> Result<SegmentWriter> {
        let mut writer =
            SegmentWriter::create(&shared.segments_dir, id, kind, &shared.options.layout)?;
        for batch in merged {
            let batch = batch?.with_schema(Arc::clone(&schema))?;
            shared
                .pods
                .with_lookup(|lookup| writer.write(&batch, lookup))?;
        }
        Ok(writer)
    })();
    let writer = match written {
        Ok(w) => w,
        Err(e) => {
            forget_pending(shared, id);
            return Err(e);
        }
    };
    let max_seq = inputs.iter().map(|s| s.meta().max_seq).max().unwrap_or(0);
    let level = inputs
        .iter()
        .map(|s| s.meta().level)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let meta = match writer.finish(window_start, max_seq, level) {
        Ok(meta) => meta,
        Err(e) => {
            forget_pending(shared, id);
            return Err(e);
        }
    };
    let rows = meta.rows;
    let input_rows: u64 = inputs.iter().map(|s| s.meta().rows).sum();
    if rows != input_rows {
        let _ = std::fs::remove_file(shared.segments_dir.join(meta.file_name()));
        forget_pending(shared, id);
        return Err(StorageError::corrupted(
            &shared.segments_dir,
            format!("compaction read {rows} rows from segments that hold {input_rows}"),
        ));
    }

    let mut batch = WriteBatch::default();
    shared.kv.put_segment(&mut batch, &meta);
    shared.kv.delete_pending(&mut batch, id);
    for segment in inputs {
        shared.kv.delete_segment(&mut batch, segment.meta().id);
        shared.kv.put_dropped(&mut batch, segment.meta().id);
    }
    shared.kv.put_next_segment_id(
        &mut batch,
        shared
            .next_segment_id
            .load(std::sync::atomic::Ordering::SeqCst),
    );
    fail::fail_point!("compaction::before_manifest", |_| crate::failpoints::crash(
    ));
    if let Err(e) = shared.kv.write(batch, true) {
        let _ = std::fs::remove_file(shared.segments_dir.join(meta.file_name()));
        forget_pending(shared, id);
        return Err(e);
    }
    fail::fail_point!("compaction::after_manifest", |_| crate::failpoints::crash());

    let gone: HashSet<u64> = inputs.iter().map(|s| s.meta().id).collect();
    {
        let mut current = shared.version.write();
        let mut segments: Vec<Arc<Segment>> = current
            .segments
            .iter()
            .filter(|s| !gone.contains(&s.meta().id))
            .cloned()
            .collect();
        segments.push(Arc::new(Segment::new(meta, &shared.segments_dir)));
        current.segments = Arc::new(segments);
    }
    for segment in inputs {
        segment.mark_obsolete();
    }
    tracing::debug!(inputs = inputs.len(), rows, %kind, "compacted segments");
    Ok(rows)
}

/// Drops the pending record of an abandoned output (its file is already gone or was never
/// complete). If this fails, open finishes the job.
fn forget_pending(shared: &Shared, id: u64) {
    let mut batch = WriteBatch::default();
    shared.kv.delete_pending(&mut batch, id);
    let _ = shared.kv.write(batch, true);
}
