//! Gap filling through SQL: long gaps across small batches, checked bucket by bucket against
//! the fills computed here, and a time column in a zone other than UTC.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::TimestampNanosecondType;
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use datafusion::datasource::MemTable;

use crate::support::context;

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
/// The offset of the zone +02:00, in seconds.
const TWO_HOURS: i64 = 7_200;

/// Samples (pod, minute, value) of a table `m(ts, pod, value)`, one row per batch.
fn register(ctx: &datafusion::prelude::SessionContext, samples: &[(&str, i64, f64)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("pod", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]));
    let batches = samples
        .iter()
        .map(|&(pod, minute, value)| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(
                        TimestampNanosecondArray::from(vec![minute * MINUTE + 7])
                            .with_timezone("UTC"),
                    ),
                    Arc::new(StringArray::from(vec![pod])),
                    Arc::new(Float64Array::from(vec![value])),
                ],
            )
            .expect("batch")
        })
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("table");
    ctx.register_table("m", Arc::new(table))
        .expect("registered");
}

async fn collect(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<RecordBatch> {
    vigil_query::sql::sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn long_gaps_fill_bucket_by_bucket() {
    let ctx = context();
    let samples = [
        ("a", 3, 10.0),
        ("a", 700, 20.0),
        ("a", 900, 0.0),
        ("b", 0, 5.0),
    ];
    register(&ctx, &samples);
    let minutes = 1_000;
    // 1,000 minutes: until 16:40.
    let sql = "SELECT time_bucket_gapfill(INTERVAL '1 minute', ts) AS minute, pod, \
               locf(avg(value)) AS carried, interpolate(max(value)) AS line \
               FROM m WHERE ts >= TIMESTAMP '1970-01-01T00:00:00Z' \
               AND ts < TIMESTAMP '1970-01-01T16:40:00Z' GROUP BY 1, 2 ORDER BY 2, 1";
    let batches = collect(&ctx, sql).await;
    let mut got = vec![];
    for b in &batches {
        let t = b.column(0).as_primitive::<TimestampNanosecondType>();
        let pod = b.column(1).as_string::<i32>();
        let carried = b.column(2).as_primitive::<Float64Type>();
        let line = b.column(3).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            got.push((
                pod.value(r).to_string(),
                t.value(r) / MINUTE,
                carried.is_valid(r).then(|| carried.value(r)),
                line.is_valid(r).then(|| line.value(r)),
            ));
        }
    }
    assert_eq!(got.len(), 2 * minutes as usize);
    for (pod, minute, carried, line) in got {
        let points: Vec<(i64, f64)> = samples
            .iter()
            .filter(|s| s.0 == pod)
            .map(|s| (s.1, s.2))
            .collect();
        let want_carried = points.iter().rev().find(|p| p.0 <= minute).map(|p| p.1);
        assert_eq!(carried, want_carried, "{pod} minute {minute}");
        let before = points.iter().rev().find(|p| p.0 <= minute);
        let after = points.iter().find(|p| p.0 >= minute);
        let want_line = match (before, after) {
            (Some(b), _) if b.0 == minute => Some(b.1),
            (Some(&(t0, v0)), Some(&(t1, v1))) => {
                Some(v0 + (v1 - v0) * ((minute - t0) as f64 / (t1 - t0) as f64))
            }
            _ => None,
        };
        match (line, want_line) {
            (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9, "{pod} minute {minute}: {x} {y}"),
            (x, y) => assert_eq!(x, y, "{pod} minute {minute}"),
        }
    }
}

#[tokio::test]
async fn buckets_keep_their_instant_in_another_zone() {
    let ctx = context();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    (125 - TWO_HOURS) * SECOND,
                    (300 - TWO_HOURS) * SECOND,
                ])
                .with_timezone("+02:00"),
            ),
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
        ],
    )
    .expect("batch");
    let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    ctx.register_table("z", Arc::new(table))
        .expect("registered");
    // Timestamps without a zone are local to the column's zone, as DataFusion compares them:
    // this range is local midnight to 00:06, from two hours before the epoch on.
    let sql = "SELECT time_bucket_gapfill(INTERVAL '1 minute', ts) AS minute, avg(value) AS v \
               FROM z WHERE ts >= TIMESTAMP '1970-01-01T00:00:00Z' \
               AND ts < TIMESTAMP '1970-01-01T00:06:00Z' GROUP BY 1 ORDER BY 1";
    let batches = collect(&ctx, sql).await;
    let mut got = vec![];
    for b in &batches {
        assert_eq!(
            b.column(0).data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()))
        );
        let t = b.column(0).as_primitive::<TimestampNanosecondType>();
        let v = b.column(1).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            got.push((
                t.value(r) / SECOND + TWO_HOURS,
                v.is_valid(r).then(|| v.value(r)),
            ));
        }
    }
    // Each value sits in the bucket holding its instant, 125 s and 300 s after local
    // midnight: minutes 2 and 5 (in seconds after local midnight).
    assert_eq!(
        got,
        vec![
            (0, None),
            (60, None),
            (120, Some(1.0)),
            (180, None),
            (240, None),
            (300, Some(2.0)),
        ]
    );
}
