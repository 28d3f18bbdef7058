//! Compaction: small segments of one kind and time window are merged into one.
//!
//! The merge streams the inputs in the kind's order ([`RowOrder`]) with bounded memory. The
//! output replaces the inputs in one manifest edit (`store::shared::edit`); the input files
//! are deleted when the last query holding them finishes. A crash before the edit commits
//! leaves an orphan output file; after it, orphan input files. `Store::open` deletes both.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::schema::kind_schema;
use crate::segment::Segment;
use crate::segment::sort::{RowOrder, SortedMerge};
use crate::store::Shared;
use crate::store::shared::{Cause, Task, VersionEdit};
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
    let _serial = shared.lock(Task::Compaction);
    let mut stats = CompactionStats::default();
    for inputs in pick(
        &shared.current(),
        shared.options().compaction_target_rows,
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

/// Rewrites every segment whose rows are not in its kind's current order (metric segments
/// written before format 4 are in (pod, ts) order), one at a time, each swapped in
/// atomically like a compaction: a crash leaves the rest for the next open.
pub(crate) fn rewrite_in_current_order(shared: &Shared) -> Result<usize> {
    let _serial = shared.lock(Task::Compaction);
    let stale: Vec<Arc<Segment>> = shared
        .current()
        .segments
        .iter()
        .filter(|s| s.meta().order != RowOrder::of(s.meta().kind))
        .cloned()
        .collect();
    for segment in &stale {
        let rows = merge(shared, std::slice::from_ref(segment))?;
        tracing::info!(
            segment = segment.meta().id,
            kind = %segment.meta().kind,
            rows,
            "rewrote a segment in its kind's current row order"
        );
    }
    Ok(stale.len())
}

/// Merges `inputs` (all of one kind and window) into one new segment that replaces them in
/// one manifest edit. The caller holds the compaction lock.
fn merge(shared: &Shared, inputs: &[Arc<Segment>]) -> Result<u64> {
    let first = inputs[0].meta();
    let (kind, window_start) = (first.kind, first.window_start);
    let schema = kind_schema(kind);
    let readers = inputs
        .iter()
        .map(|segment| segment.read_in_order(8192))
        .collect::<Result<Vec<_>>>()?;
    let merged = SortedMerge::new(Arc::clone(&schema), readers, 8192, RowOrder::of(kind))?;
    let mut pending = shared.pending();
    let mut writer = pending.new_segment(kind)?;
    for batch in merged {
        let batch = batch?.with_schema(Arc::clone(&schema))?;
        shared
            .pods()
            .with_lookup(|lookup| writer.write(&batch, lookup))?;
    }
    let max_seq = inputs.iter().map(|s| s.meta().max_seq).max().unwrap_or(0);
    let top = inputs.iter().map(|s| s.meta().level).max().unwrap_or(0);
    // A segment rewritten alone (into the current order) keeps its level.
    let level = if inputs.len() == 1 {
        top
    } else {
        top.saturating_add(1)
    };
    let meta = writer.finish(window_start, max_seq, level)?;
    let rows = meta.rows;
    let input_rows: u64 = inputs.iter().map(|s| s.meta().rows).sum();
    if rows != input_rows {
        // Dropping `pending` deletes the output.
        return Err(StorageError::corrupted(
            shared.segments_dir(),
            format!("compaction read {rows} rows from segments that hold {input_rows}"),
        ));
    }
    let mut edit = VersionEdit::new(Cause::Compaction);
    edit.add(meta);
    for segment in inputs {
        edit.remove(Arc::clone(segment));
    }
    shared.apply(edit, pending)?;
    tracing::debug!(inputs = inputs.len(), rows, %kind, "compacted segments");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::options::StoreOptions;
    use crate::segment::SegmentMeta;
    use crate::segment::index::IndexBuilder;
    use crate::segment::sort::sort_batch;
    use crate::store::Store;
    use crate::validate::normalize;

    /// Rows of 3 pods x 3 metric names x 40 samples, names alternating sample by sample.
    fn metrics() -> RecordBatch {
        let n = 3 * 3 * 40;
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("pod", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let names = ["cpu", "mem", "net"];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| {
                    1_700_000_000_000_000_000 + (i as i64 / 3) * 1_000_000_000
                }))),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("pod-{}", (i * 7) % 3)),
                )),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| names[i % 3]))),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .unwrap();
        normalize(SignalKind::Metric, &batch).unwrap()
    }

    fn options() -> StoreOptions {
        StoreOptions {
            background: false,
            ..StoreOptions::default()
        }
    }

    fn all_rows(segment: &Segment) -> RecordBatch {
        let batches = segment
            .read_in_order(64)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap();
        concat_batches(&kind_schema(SignalKind::Metric), &batches).unwrap()
    }

    fn keys(batch: &RecordBatch) -> Vec<(String, String, i64)> {
        let pods = batch.column_by_name("pod").unwrap().as_string::<i32>();
        let names = batch.column_by_name("name").unwrap().as_string::<i32>();
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    pods.value(i).to_string(),
                    names.value(i).to_string(),
                    ts.value(i),
                )
            })
            .collect()
    }

    #[test]
    fn segments_in_an_older_order_are_rewritten_series_major_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let input = metrics();
        {
            let store = Store::open(dir.path(), options()).unwrap();
            store.write(SignalKind::Metric, &input).unwrap();
            store.flush().unwrap();
            // Turn the flushed segment into one written before format 4: (pod, ts) order,
            // block index, version-1 metadata.
            let shared = &store.shared;
            let old = Arc::clone(&shared.current().segments[0]);
            assert_eq!(old.meta().order, RowOrder::PodNameTs);
            let legacy = sort_batch(&all_rows(&old), RowOrder::PodTs).unwrap();
            let serial = shared.lock(Task::Compaction);
            let mut pending = shared.pending();
            let mut writer = pending.new_segment(SignalKind::Metric).unwrap();
            shared
                .pods()
                .with_lookup(|lookup| writer.write(&legacy, lookup))
                .unwrap();
            let mut meta = writer
                .finish(old.meta().window_start, old.meta().max_seq, 0)
                .unwrap();
            let mut index = IndexBuilder::new(SignalKind::Metric, RowOrder::PodTs);
            shared
                .pods()
                .with_lookup(|lookup| index.add(&legacy, lookup));
            meta.order = RowOrder::PodTs;
            meta.index = index.finish();
            // As version-1 metadata encodes it: no order byte.
            let mut bytes = meta.encode();
            bytes.remove(2);
            bytes[0] = 1;
            let decoded = SegmentMeta::decode(meta.id, &bytes).unwrap();
            assert_eq!(decoded, meta);
            assert_eq!(decoded.index.block_rows, crate::segment::index::BLOCK_ROWS);
            let mut edit = VersionEdit::new(Cause::Compaction);
            edit.add(meta);
            edit.remove(old);
            shared.apply(edit, pending).unwrap();
            drop(serial);
            store.close().unwrap();
        }

        let store = Store::open(dir.path(), options()).unwrap();
        let segments = store.version().segments;
        assert_eq!(segments.len(), 1);
        let segment = &segments[0];
        assert_eq!(segment.meta().order, RowOrder::PodNameTs);
        assert!(segment.meta().index.is_exact("name"));
        let rows = all_rows(segment);
        let mut expected = keys(&input);
        expected.sort();
        assert_eq!(keys(&rows), expected, "every row, in (pod, name, ts) order");
        // The rewritten segment's index selects exactly the rows of a name.
        let cpu = segment
            .meta()
            .index
            .value_rows("name", &["cpu".to_string()])
            .unwrap();
        let want: Vec<u32> = keys(&rows)
            .iter()
            .enumerate()
            .filter(|(_, k)| k.1 == "cpu")
            .map(|(i, _)| i as u32)
            .collect();
        assert_eq!(cpu.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn resorting_within_pods_handles_runs_across_batches() {
        let input = sort_batch(&metrics(), RowOrder::PodTs).unwrap();
        // Batches of 7 rows: pod runs (120 rows) span many batches and end mid-batch.
        let batches: Vec<Result<RecordBatch>> = (0..input.num_rows())
            .step_by(7)
            .map(|at| Ok(input.slice(at, 7.min(input.num_rows() - at))))
            .collect();
        let out =
            crate::segment::sort::ResortWithinPod::new(batches.into_iter(), RowOrder::PodNameTs)
                .collect::<Result<Vec<_>>>()
                .unwrap();
        let out = concat_batches(&input.schema(), &out).unwrap();
        let mut expected = keys(&input);
        expected.sort();
        assert_eq!(keys(&out), expected);
    }
}
