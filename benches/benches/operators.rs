//! The one-pass operators on in-memory tables, where their own cost dominates: gap filling
//! with long gaps (`locf` and `interpolate` over series whose samples are thousands of
//! buckets apart) and MATCH_RECOGNIZE with long matches under ALL ROWS PER MATCH (running
//! measures over matches of thousands of rows).
//!
//! The benches use SQL text and vigil-query's public session only, so they run unchanged
//! against older versions of the operators for a side-by-side comparison.
//!
//! `cargo bench -p vigil-benches --bench operators`

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use vigil_query::{SessionOptions, new_context};

/// Series in the gap-filling table.
const SERIES: usize = 4;
/// One-second buckets per series in the queried range.
const BUCKETS: i64 = 100_000;
/// Buckets between two samples of a series: each gap spans this many buckets.
const GAP: i64 = 5_000;
/// 2024-01-01T00:00:00Z in nanoseconds.
const START: i64 = 1_704_067_200_000_000_000;
const SECOND: i64 = 1_000_000_000;

fn context() -> SessionContext {
    new_context(&SessionOptions {
        target_partitions: 2,
        ..SessionOptions::default()
    })
    .expect("context")
}

/// `m(ts, pod, value)`: `SERIES` pods, one sample every `GAP` seconds.
fn gapfill_table() -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("pod", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let (mut ts, mut pods, mut values) = (vec![], vec![], vec![]);
    for s in 0..SERIES {
        // Offset each series so the gaps of different series do not line up.
        let mut t = (s as i64 * 997) % GAP;
        while t < BUCKETS {
            ts.push(START + t * SECOND);
            pods.push(format!("pod-{s}"));
            values.push((t % 101) as f64);
            t += GAP;
        }
    }
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(pods)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .expect("batch");
    MemTable::try_new(schema, vec![vec![batch]]).expect("table")
}

fn gapfill_sql(fill: &str) -> String {
    // The range is spelled as literals: gap filling reads it from WHERE before simplification.
    // BUCKETS seconds after 2024-01-01T00:00:00Z is 2024-01-02T03:46:40Z.
    format!(
        "SELECT time_bucket_gapfill(INTERVAL '1 second', ts) AS second, pod, {fill}(avg(value)) AS v \
         FROM m WHERE ts >= TIMESTAMP '2024-01-01T00:00:00Z' AND ts < TIMESTAMP '2024-01-02T03:46:40Z' \
         GROUP BY 1, 2"
    )
}

/// `e(k, t, c, v)`: per key, one match of `len` rows (a start row, `len - 2` middle rows and
/// an end row), then a few rows no match takes.
fn match_table(len: usize, keys: i64) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("c", DataType::Utf8, false),
        Field::new("v", DataType::Float64, false),
    ]));
    let (mut k, mut t, mut c, mut v) = (vec![], vec![], vec![], vec![]);
    for key in 0..keys {
        for i in 0..len + 10 {
            k.push(key);
            t.push(i as i64);
            c.push(match i {
                0 => "s",
                i if i + 1 < len => "m",
                i if i + 1 == len => "e",
                _ => "x",
            });
            v.push(((i * 37) % 1_000) as f64 / 10.0);
        }
    }
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(k)),
            Arc::new(Int64Array::from(t)),
            Arc::new(StringArray::from(c)),
            Arc::new(Float64Array::from(v)),
        ],
    )
    .expect("batch");
    // Batches of 8,192 rows, as a scan would give them.
    let rows = batch.num_rows();
    let batches = (0..rows)
        .step_by(8_192)
        .map(|start| batch.slice(start, 8_192.min(rows - start)))
        .collect();
    MemTable::try_new(schema, vec![batches]).expect("table")
}

const MATCH_SQL: &str = "SELECT * FROM e MATCH_RECOGNIZE (
  PARTITION BY k ORDER BY t
  MEASURES FIRST(st.t) AS started, LAST(mid.v) AS last_mid, COUNT(*) AS n, SUM(v) AS total,
           AVG(mid.v) AS mean, MIN(v) AS low, MAX(v) AS high, MATCH_NUMBER() AS m,
           CLASSIFIER() AS cls
  ALL ROWS PER MATCH
  PATTERN (st mid+ en)
  DEFINE st AS c = 's', mid AS c = 'm', en AS c = 'e'
)";

async fn run(ctx: &SessionContext, sql: &str) -> usize {
    let frame = vigil_query::sql::sql(ctx, sql).await.expect("plan");
    let batches = frame.collect().await.expect("run");
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn operators(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let ctx = context();
    ctx.register_table("m", Arc::new(gapfill_table()))
        .expect("register");
    let mut group = c.benchmark_group("gapfill_long_gaps");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for fill in ["locf", "interpolate"] {
        let sql = gapfill_sql(fill);
        let rows = rt.block_on(run(&ctx, &sql));
        assert_eq!(
            rows,
            SERIES * BUCKETS as usize,
            "every bucket of every series"
        );
        group.bench_function(fill, |b| b.iter(|| rt.block_on(run(&ctx, &sql))));
    }
    group.finish();

    let mut group = c.benchmark_group("match_recognize_all_rows");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let keys = 2;
    for len in [1_000usize, 4_000] {
        let ctx = context();
        ctx.register_table("e", Arc::new(match_table(len, keys)))
            .expect("register");
        let rows = rt.block_on(run(&ctx, MATCH_SQL));
        assert_eq!(rows, len * keys as usize, "every row of every match");
        group.bench_with_input(BenchmarkId::new("match_rows", len), &len, |b, _| {
            b.iter(|| rt.block_on(run(&ctx, MATCH_SQL)))
        });
    }
    group.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);
