use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::codec::{Decoder, Encoder};
use crate::validate::normalize;

/// `n` metric rows: pods in runs of `per_pod`, names alternating `cpu`/`mem`.
fn metrics(n: usize, per_pod: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("pod", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("pod-{:03}", i / per_pod)),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| if i % 2 == 0 { "cpu" } else { "mem" }),
            )),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ],
    )
    .unwrap();
    normalize(SignalKind::Metric, &batch).unwrap()
}

fn build(batches: &[RecordBatch]) -> SegmentIndex {
    build_in(RowOrder::PodTs, batches)
}

fn build_in(order: RowOrder, batches: &[RecordBatch]) -> SegmentIndex {
    let mut builder = IndexBuilder::new(SignalKind::Metric, order);
    let lookup = |k: &PodKey| k.pod.strip_prefix("pod-").and_then(|n| n.parse().ok());
    for b in batches {
        builder.add(b, &lookup);
    }
    builder.finish()
}

#[test]
fn pods_are_rows_and_values_are_blocks() {
    let index = build(&[metrics(3000, 700)]);
    // pod-001 holds rows 700..1400, in one run.
    let rows = index.pod_rows(&[1]);
    assert_eq!(rows.len(), 700);
    assert_eq!((rows.min(), rows.max()), (Some(700), Some(1399)));
    // Both names appear in every block: the index gives whole blocks, covering every row.
    let cpu = index.value_rows("name", &["cpu".to_string()]).unwrap();
    assert!((0..3000u32).step_by(2).all(|r| cpu.contains(r)));
    assert_eq!(cpu.len(), 3 * u64::from(BLOCK_ROWS));
    assert_eq!(
        index
            .value_rows("name", &["disk".to_string()])
            .unwrap()
            .len(),
        0
    );
    assert_eq!(index.value_rows("no_such_column", &["x".to_string()]), None);
}

#[test]
fn row_numbers_continue_across_batches() {
    let index = build(&[metrics(1000, 1000), metrics(1000, 1000)]);
    // Both batches call their pod pod-000; the second one's rows are 1000..2000.
    assert_eq!(index.pod_rows(&[0]).len(), 2000);
    let blocks = match &index.columns["name"] {
        ColumnIndex::Values(v) => v["mem"].clone(),
        ColumnIndex::Unindexed => panic!("indexed"),
    };
    assert_eq!(blocks.iter().collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn too_many_values_unindex_the_column() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let n = MAX_INDEXED_VALUES + 1;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("m{i}")),
            )),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ],
    )
    .unwrap();
    let index = build(&[normalize(SignalKind::Metric, &batch).unwrap()]);
    assert_eq!(index.columns["name"], ColumnIndex::Unindexed);
    assert_eq!(index.value_rows("name", &["m1".to_string()]), None);
}

#[test]
fn encoding_round_trips_and_truncation_is_detected() {
    let index = build(&[metrics(5000, 333)]);
    let mut e = Encoder::new();
    index.encode(&mut e);
    let bytes = e.finish();
    let decoded = SegmentIndex::decode(&mut Decoder::new(&bytes), BLOCK_ROWS).unwrap();
    assert_eq!(decoded, index);
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(SegmentIndex::decode(&mut Decoder::new(&bytes[..cut]), BLOCK_ROWS).is_err());
    }
}

#[test]
fn series_major_values_are_rows_in_runs() {
    // Sorted (pod, name, ts): each pod's cpu rows, then its mem rows.
    let batch = metrics(3000, 700);
    let sorted = crate::segment::sort::sort_batch(&batch, RowOrder::PodNameTs).unwrap();
    let index = build_in(RowOrder::PodNameTs, std::slice::from_ref(&sorted));
    assert_eq!(index.block_rows, 1);
    let cpu = index.value_rows("name", &["cpu".to_string()]).unwrap();
    let names = sorted
        .column_by_name("name")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let expected: Vec<u32> = (0..3000u32)
        .filter(|&r| names.value(r as usize) == "cpu")
        .collect();
    assert_eq!(cpu.iter().collect::<Vec<_>>(), expected);
    // One run per pod (5 pods), so run compression keeps the bitmap tiny.
    assert!(
        cpu.serialized_size() < 100,
        "{} bytes",
        cpu.serialized_size()
    );

    let mut e = Encoder::new();
    index.encode(&mut e);
    let bytes = e.finish();
    let decoded = SegmentIndex::decode(&mut Decoder::new(&bytes), 1).unwrap();
    assert_eq!(decoded, index);
}
