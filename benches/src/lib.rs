//! Shared set-up of vigil's benchmarks: the data (from `vigil-synth`) and store options.

pub mod process;

use std::path::Path;

use arrow::array::RecordBatch;
use vigil::{Db, DbOptions, Durability, StoreOptions};
use vigil_synth::{Cluster, ClusterSpec};

/// `n` metric batches of 8,192 rows from a 2,000-pod cluster.
pub fn metric_batches(n: usize) -> Vec<RecordBatch> {
    let cluster = Cluster::new(ClusterSpec {
        pods: 2_000,
        duration: std::time::Duration::from_secs(6 * 3600),
        ..ClusterSpec::default()
    });
    cluster.metrics().take(n).collect()
}

/// A store with default options but the given durability.
pub fn open_store(dir: &Path, durability: Durability) -> Db {
    Db::open_with(
        dir,
        DbOptions {
            store: StoreOptions {
                durability,
                ..StoreOptions::default()
            },
            ..DbOptions::default()
        },
    )
    .expect("open store")
}

/// Writes `batches` of metric rows into `db` from `writers` threads (batch i goes to thread
/// i mod writers) and returns how long it took.
pub fn ingest_concurrently(
    db: &Db,
    batches: &[RecordBatch],
    writers: usize,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                for batch in batches.iter().skip(w).step_by(writers) {
                    db.write(vigil::SignalKind::Metric, batch).expect("write");
                }
            });
        }
    });
    start.elapsed()
}

/// Median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Total size of a store's segment files.
pub fn segment_bytes(store: &Path) -> std::io::Result<u64> {
    dir_bytes(&store.join("segments"))
}

/// Writes batches to a Parquet file (zstd) for the comparison engines to load.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let file = std::fs::File::create(path)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(())
}

/// The temporal benchmark's queries: (name, SQL). compare.py runs the same questions.
pub const TEMPORAL_QUERIES: &[(&str, &str)] = &[
    (
        "asof_audit_to_cpu",
        "SELECT count(*) AS n, sum(m.value) AS cpu FROM audit a \
         ASOF JOIN (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m \
         ON a.pod = m.pod AND a.ts >= m.ts",
    ),
    (
        "asof_cpu_to_audit",
        "SELECT count(*) AS n, count(a.verb) AS matched FROM \
         (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m \
         ASOF JOIN (SELECT pod, ts, verb FROM audit) a ON m.pod = a.pod AND m.ts >= a.ts",
    ),
    (
        "band_crypto_miner",
        "SELECT e.namespace, e.pod, e.image, max(m.value) AS peak_cpu \
         FROM events e JOIN metrics m \
           ON m.pod = e.pod AND m.ts BETWEEN e.ts AND e.ts + INTERVAL '30 minutes' \
         WHERE e.reason = 'Pulled' AND e.image NOT LIKE 'registry.corp.example/%' \
           AND m.name = 'container_cpu_usage_cores' AND m.value > 0.9 \
         GROUP BY 1, 2, 3 HAVING count(*) >= 30",
    ),
    (
        "match_recognize_story",
        "SELECT * FROM signals MATCH_RECOGNIZE ( \
           PARTITION BY pod ORDER BY ts \
           MEASURES pull.image AS image, FIRST(hot.ts) AS hot_at, api.verb AS verb, api.resource AS resource \
           ONE ROW PER MATCH AFTER MATCH SKIP PAST LAST ROW \
           PATTERN (pull x*? hot+ x*? api) WITHIN INTERVAL '1 hour' \
           DEFINE pull AS kind = 'event' AND reason = 'Pulled' AND image NOT LIKE 'registry.corp.example/%', \
                  hot  AS kind = 'metric' AND name = 'container_cpu_usage_cores' AND value > 0.95, \
                  api  AS kind = 'audit' AND resource IN ('secrets', 'pods/exec'))",
    ),
];
