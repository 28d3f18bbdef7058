//! ASOF JOIN results equal DuckDB's on the same data, for all four inequalities, inner and
//! LEFT. DuckDB runs in Python (`pip install duckdb`; `scripts/test.sh` installs it) over
//! Parquet files holding exactly the rows written to vigil.

use std::collections::BTreeSet;
use std::fs::File;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::Float64Type;
use parquet::arrow::ArrowWriter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil::{Db, SignalKind};

use crate::support::{open, runtime};

const DUCKDB: &str = r#"
import sys, duckdb
audit, metrics, op, join = sys.argv[1:5]
con = duckdb.connect()
con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet('{audit}')")
con.execute(f"CREATE VIEW m AS SELECT * FROM read_parquet('{metrics}')")
rows = con.execute(f"SELECT a.audit_id, m.value FROM a {join} m ON a.pod = m.pod AND a.ts {op} m.ts").fetchall()
for audit_id, value in rows:
    print(f"{audit_id}\t{'NULL' if value is None else repr(float(value))}")
"#;

fn random_batches(rng: &mut StdRng) -> (RecordBatch, RecordBatch) {
    let pods = ["api-1", "api-2", "miner-7", "web-3"];
    let base = 1_714_521_600_000_000_000i64;
    let pick_pod = |rng: &mut StdRng| -> Option<String> {
        (!rng.random_bool(0.05)).then(|| pods[rng.random_range(0..pods.len())].to_string())
    };
    // Metrics: distinct (pod, ts) so the closest row is unique.
    let mut seen = BTreeSet::new();
    let (mut mts, mut mpod, mut mval) = (vec![], vec![], vec![]);
    for i in 0..400 {
        let pod = pick_pod(rng);
        let ts = base + rng.random_range(0..600) * 1_000_000_000;
        if !seen.insert((pod.clone(), ts)) {
            continue;
        }
        mts.push(ts);
        mpod.push(pod);
        mval.push(i as f64 / 4.0);
    }
    let metrics = RecordBatch::try_from_iter(vec![
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(mts).with_timezone("UTC")) as Arc<dyn Array>,
        ),
        ("pod", Arc::new(StringArray::from(mpod)) as _),
        (
            "name",
            Arc::new(StringArray::from(vec![Some("cpu"); seen.len()])) as _,
        ),
        ("value", Arc::new(Float64Array::from(mval)) as _),
    ])
    .expect("metrics batch");
    let n = 300;
    let ats: Vec<i64> = (0..n)
        .map(|_| base + rng.random_range(-30..630) * 1_000_000_000)
        .collect();
    let apod: Vec<Option<String>> = (0..n).map(|_| pick_pod(rng)).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("a{i:04}")).collect();
    let verbs = vec![Some("get"); n];
    let audit = RecordBatch::try_from_iter(vec![
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(ats).with_timezone("UTC")) as Arc<dyn Array>,
        ),
        ("pod", Arc::new(StringArray::from(apod)) as _),
        ("audit_id", Arc::new(StringArray::from(ids)) as _),
        ("verb", Arc::new(StringArray::from(verbs)) as _),
    ])
    .expect("audit batch");
    (audit, metrics)
}

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    let file = File::create(path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

fn vigil_rows(db: &Db, op: &str, join: &str) -> Vec<String> {
    let sql = format!(
        "SELECT a.audit_id, m.value FROM audit a {join} metrics m ON a.pod = m.pod AND a.ts {op} m.ts"
    );
    let batches = runtime()
        .block_on(db.query(&sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = vec![];
    for b in batches {
        let ids = b.column(0).as_string::<i32>();
        let values = b.column(1).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            let v = if values.is_null(r) {
                "NULL".to_string()
            } else {
                format!("{:?}", values.value(r))
            };
            out.push(format!("{}\t{v}", ids.value(r)));
        }
    }
    out.sort();
    out
}

#[test]
fn asof_join_agrees_with_duckdb() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = open(&tmp.path().join("db"));
    let mut rng = StdRng::seed_from_u64(2026);
    let (audit, metrics) = random_batches(&mut rng);
    // Half the metrics go to segments, half stay hot, so the join spans both.
    let half = metrics.num_rows() / 2;
    db.write(SignalKind::Metric, &metrics.slice(0, half))
        .expect("write metrics");
    db.flush().expect("flush");
    db.write(
        SignalKind::Metric,
        &metrics.slice(half, metrics.num_rows() - half),
    )
    .expect("write metrics");
    db.write(SignalKind::Audit, &audit).expect("write audit");
    let audit_path = tmp.path().join("audit.parquet");
    let metrics_path = tmp.path().join("metrics.parquet");
    write_parquet(&audit_path, &audit);
    write_parquet(&metrics_path, &metrics);

    for op in [">=", ">", "<=", "<"] {
        for join in ["ASOF JOIN", "ASOF LEFT JOIN"] {
            let output = Command::new("python3")
                .arg("-c")
                .arg(DUCKDB)
                .args([&audit_path, &metrics_path])
                .args([op, join])
                .output()
                .expect("python3 runs");
            assert!(
                output.status.success(),
                "DuckDB failed (is the Python package installed? `pip install duckdb`): {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let mut duck: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            duck.sort();
            let ours = vigil_rows(&db, op, join);
            assert!(!duck.is_empty(), "{join} {op}: DuckDB returned nothing");
            assert_eq!(ours, duck, "{join} with a.ts {op} m.ts differs from DuckDB");
        }
    }
}
