//! The columnar filler against a naive reference (the row-at-a-time algorithm gap filling
//! used before: a map of each series' rows by bucket, searched around every gap) on random
//! series split at random batch boundaries, and the cases that matter spelled out.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fill::Filler;
use super::node::{Fill, GapFillSpec};
use crate::sorted_join::key_converter;

/// One row of the aggregate's output: series key, bucket (nanoseconds), a float aggregate
/// and an integer one.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    key: Option<&'static str>,
    t: Option<i64>,
    v: Option<f64>,
    n: Option<i64>,
}

fn row(key: &'static str, t: i64, v: Option<f64>) -> Row {
    Row {
        key: Some(key),
        t: Some(t),
        v,
        n: v.map(|x| x as i64),
    }
}

/// An output row: bucket, key, the two aggregates.
type Out = (i64, Option<String>, Option<f64>, Option<i64>);

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]))
}

fn spec(first: i64, buckets: i64, stride: i64, v: Fill, n: Fill) -> GapFillSpec {
    GapFillSpec {
        time: 0,
        series: vec![1],
        stride,
        origin: 0,
        first,
        last: first + (buckets - 1) * stride,
        fills: vec![Fill::Null, Fill::Null, v, n],
    }
}

fn batch(rows: &[Row]) -> RecordBatch {
    let t = TimestampNanosecondArray::from(rows.iter().map(|r| r.t).collect::<Vec<_>>())
        .with_timezone("UTC");
    let k: StringArray = rows.iter().map(|r| r.key).collect();
    let v: Float64Array = rows.iter().map(|r| r.v).collect();
    let n: Int64Array = rows.iter().map(|r| r.n).collect();
    let columns: Vec<ArrayRef> = vec![Arc::new(t), Arc::new(k), Arc::new(v), Arc::new(n)];
    RecordBatch::try_new(schema(), columns).expect("valid batch")
}

/// Runs the filler over `rows` split before each index of `cuts`, `batch_size` rows out.
fn fill(rows: &[Row], spec: &GapFillSpec, cuts: &[usize], batch_size: usize) -> Vec<Out> {
    let converter = key_converter(&[DataType::Utf8]).expect("converter");
    let mut filler =
        Filler::new(Arc::new(spec.clone()), schema(), converter, batch_size).expect("filler");
    let mut out = vec![];
    let drain = |filler: &mut Filler, out: &mut Vec<RecordBatch>| {
        while let Some(b) = filler.next_batch().expect("next batch") {
            assert!(
                b.num_rows() <= batch_size,
                "batches hold at most batch_size rows"
            );
            assert!(b.num_rows() > 0, "no empty batches");
            out.push(b);
        }
    };
    let mut start = 0;
    for &cut in cuts.iter().chain([&rows.len()]) {
        filler.push(&batch(&rows[start..cut])).expect("push");
        drain(&mut filler, &mut out);
        start = cut;
    }
    filler.finish().expect("finish");
    drain(&mut filler, &mut out);
    out.iter().flat_map(rows_of).collect()
}

fn rows_of(b: &RecordBatch) -> Vec<Out> {
    let t = b.column(0).as_primitive::<TimestampNanosecondType>();
    let k = b.column(1).as_string::<i32>();
    let v = b.column(2).as_primitive::<Float64Type>();
    let n = b.column(3).as_primitive::<Int64Type>();
    assert_eq!(
        b.column(0).data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    );
    (0..b.num_rows())
        .map(|r| {
            (
                t.value(r),
                k.is_valid(r).then(|| k.value(r).to_string()),
                v.is_valid(r).then(|| v.value(r)),
                n.is_valid(r).then(|| n.value(r)),
            )
        })
        .collect()
}

/// A bucket of a series with its two values as numbers.
type Point = (i64, Option<f64>, Option<f64>);

/// The reference: each series' rows in a map by bucket, every gap filled by searching it.
fn naive(rows: &[Row], spec: &GapFillSpec) -> Vec<Out> {
    let mut out = vec![];
    let mut i = 0;
    while i < rows.len() {
        let key = rows[i].key;
        let mut j = i;
        let mut by_bucket: BTreeMap<i64, (Option<f64>, Option<i64>)> = BTreeMap::new();
        while j < rows.len() && rows[j].key == key {
            if let Some(t) = rows[j].t {
                by_bucket.insert(t, (rows[j].v, rows[j].n));
            }
            j += 1;
        }
        let numbers: Vec<Point> = by_bucket
            .iter()
            .map(|(&t, &(v, n))| (t, v, n.map(|x| x as f64)))
            .collect();
        let around = |t: i64, pick: fn(&Point) -> Option<f64>| {
            let before = numbers
                .iter()
                .rev()
                .filter(|p| p.0 < t)
                .find_map(|p| pick(p).map(|x| (p.0, x)));
            let after = numbers
                .iter()
                .filter(|p| p.0 > t)
                .find_map(|p| pick(p).map(|x| (p.0, x)));
            match (before, after) {
                (Some((t0, v0)), Some((t1, v1))) => {
                    Some(v0 + (v1 - v0) * ((t - t0) as f64 / (t1 - t0) as f64))
                }
                _ => None,
            }
        };
        let (mut last_v, mut last_n) = (None, None);
        let mut t = spec.first;
        while t <= spec.last {
            let (v, n) = by_bucket.get(&t).copied().unwrap_or((None, None));
            if v.is_some() {
                last_v = v;
            }
            if n.is_some() {
                last_n = n;
            }
            let v = v.or(match spec.fills[2] {
                Fill::Null => None,
                Fill::Locf => last_v,
                Fill::Interpolate => around(t, |p| p.1),
            });
            let n = n.or(match spec.fills[3] {
                Fill::Null => None,
                Fill::Locf => last_n,
                Fill::Interpolate => around(t, |p| p.2).map(|x| x.round() as i64),
            });
            out.push((t, key.map(str::to_string), v, n));
            t += spec.stride;
        }
        i = j;
    }
    out
}

/// Random rows sorted by (key, bucket), NULLs last: some buckets outside the range, some
/// off the grid, some NULL, a few repeated.
fn random_rows(rng: &mut StdRng, spec: &GapFillSpec, n: usize) -> Vec<Row> {
    let keys = [Some("a"), Some("b"), Some("c"), None];
    let mut rows: Vec<Row> = (0..n)
        .map(|_| {
            let bucket = rng.random_range(-3..=(spec.last - spec.first) / spec.stride + 3);
            let t = match rng.random_range(0..20) {
                0 => None,
                1 => Some(spec.first + bucket * spec.stride + spec.stride / 3),
                _ => Some(spec.first + bucket * spec.stride),
            };
            let v = (!rng.random_bool(0.25)).then(|| rng.random_range(-50..50) as f64 / 4.0);
            let n = (!rng.random_bool(0.25)).then(|| rng.random_range(-100..100));
            Row {
                key: keys[rng.random_range(0..keys.len())],
                t,
                v,
                n,
            }
        })
        .collect();
    let nulls_last = |x: Option<i64>| (x.is_none(), x);
    rows.sort_by(|a, b| {
        (a.key.is_none(), a.key, nulls_last(a.t)).cmp(&(b.key.is_none(), b.key, nulls_last(b.t)))
    });
    rows
}

#[test]
fn random_series_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(7);
    let fills = [Fill::Null, Fill::Locf, Fill::Interpolate];
    let mut filled = 0;
    for case in 0..400 {
        let buckets = rng.random_range(1..40);
        let spec = spec(
            1_000,
            buckets,
            10,
            fills[rng.random_range(0..3)],
            fills[rng.random_range(0..3)],
        );
        let n = rng.random_range(0..30);
        let rows = random_rows(&mut rng, &spec, n);
        let mut cuts: Vec<usize> = (0..rng.random_range(0..6))
            .map(|_| rng.random_range(0..=rows.len()))
            .collect();
        cuts.sort();
        let batch_size = rng.random_range(1..12);
        let got = fill(&rows, &spec, &cuts, batch_size);
        let want = naive(&rows, &spec);
        assert_eq!(
            got, want,
            "case {case}: {spec:?}, cuts {cuts:?}, batch size {batch_size}, rows {rows:?}"
        );
        filled += got.iter().filter(|o| o.2.is_some()).count();
    }
    assert!(
        filled > 1_000,
        "the cases must fill values, filled {filled}"
    );
}

#[test]
fn locf_carries_across_batches_and_starts_null() {
    let rows = [
        row("a", 20, Some(1.0)),
        row("a", 50, None),
        row("a", 70, Some(3.0)),
        row("b", 30, Some(9.0)),
    ];
    let spec = spec(0, 10, 10, Fill::Locf, Fill::Locf);
    // Each row in its own batch, one output row per batch.
    let got = fill(&rows, &spec, &[1, 2, 3], 1);
    let a: Vec<Option<f64>> = got.iter().take(10).map(|o| o.2).collect();
    let one = Some(1.0);
    let three = Some(3.0);
    assert_eq!(
        a,
        [None, None, one, one, one, one, one, three, three, three]
    );
    let b: Vec<Option<f64>> = got.iter().skip(10).map(|o| o.2).collect();
    assert_eq!(
        b[..3],
        [None, None, None],
        "locf never carries into another series"
    );
    assert!(b[3..].iter().all(|v| *v == Some(9.0)));
    assert!(got[10..].iter().all(|o| o.1.as_deref() == Some("b")));
}

#[test]
fn interpolate_uses_neighbours_outside_the_range_and_leaves_the_ends_null() {
    // A row before the range and one after it interpolate the buckets between; a NULL value
    // in the middle is skipped over; the integer column rounds.
    let rows = [
        row("a", -20, Some(0.0)),
        row("a", 30, None),
        row("a", 80, Some(10.0)),
        row("b", 30, Some(5.0)),
    ];
    let spec = spec(0, 10, 10, Fill::Interpolate, Fill::Interpolate);
    let got = fill(&rows, &spec, &[2], 4);
    for (k, out) in got.iter().take(9).enumerate() {
        let want = (k * 10 + 20) as f64 / 10.0;
        let v = out.2.expect("interpolated");
        assert!((v - want).abs() < 1e-9, "bucket {k}: {v} != {want}");
    }
    assert_eq!(got[9].2, None, "nothing after the last value");
    let n: Vec<Option<i64>> = got.iter().take(10).map(|o| o.3).collect();
    assert_eq!(n[1], Some(3), "3.0 exactly");
    assert_eq!(n[2], Some(4), "4.0");
    assert_eq!(
        n[0],
        Some(2),
        "2.0 from the neighbour before the range and the one after it"
    );
    // b has one value: nothing to interpolate between.
    let b: Vec<Option<f64>> = got.iter().skip(10).map(|o| o.2).collect();
    assert_eq!(b.iter().filter(|v| v.is_some()).count(), 1);
}

#[test]
fn long_gaps_stream_in_batches() {
    let buckets = 200_000;
    let rows = [
        row("a", 0, Some(0.0)),
        row("a", (buckets - 1) * 10, Some(1.0)),
        row("b", 10, Some(7.0)),
    ];
    let spec = spec(0, buckets, 10, Fill::Interpolate, Fill::Locf);
    let got = fill(&rows, &spec, &[], 8_192);
    assert_eq!(got.len(), 2 * buckets as usize);
    let mid = &got[(buckets / 2) as usize];
    assert!((mid.2.expect("interpolated") - 0.5).abs() < 1e-4, "{mid:?}");
    assert_eq!(mid.3, Some(0), "locf of the integer column");
    assert_eq!(got[buckets as usize].3, None, "b starts empty");
    assert_eq!(got.last().and_then(|o| o.3), Some(7));
}

#[test]
fn without_series_keys_a_series_needs_a_bucket() {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Second, Some("+02:00".into())),
            true,
        ),
        Field::new("v", DataType::Float64, true),
    ]));
    let spec = Arc::new(GapFillSpec {
        time: 0,
        series: vec![],
        stride: 1_000_000_000,
        origin: 0,
        first: 0,
        last: 3_000_000_000,
        fills: vec![Fill::Null, Fill::Locf],
    });
    let run = |times: Vec<Option<i64>>| {
        let t = TimestampSecondArray::from(times).with_timezone("+02:00");
        let v = Float64Array::from(vec![Some(2.5); t.len()]);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(t), Arc::new(v)])
            .expect("batch");
        let mut filler =
            Filler::new(Arc::clone(&spec), Arc::clone(&schema), None, 100).expect("filler");
        filler.push(&batch).expect("push");
        filler.finish().expect("finish");
        let mut out = vec![];
        while let Some(b) = filler.next_batch().expect("batch") {
            out.push(b);
        }
        out
    };
    assert!(run(vec![None]).is_empty(), "only a NULL bucket: no output");
    let out = run(vec![Some(1)]);
    assert_eq!(out.len(), 1);
    let t = out[0].column(0);
    assert_eq!(
        t.data_type(),
        &DataType::Timestamp(TimeUnit::Second, Some("+02:00".into()))
    );
    // The instants stay the same in a zone other than UTC: seconds 0, 1, 2, 3.
    let seconds = t.as_primitive::<arrow::datatypes::TimestampSecondType>();
    assert_eq!(seconds.values().to_vec(), vec![0, 1, 2, 3]);
    let v = out[0].column(1).as_primitive::<Float64Type>();
    assert_eq!(
        (0..4).map(|r| v.is_valid(r)).collect::<Vec<_>>(),
        vec![false, true, true, true]
    );
}
