//! Shared set-up of vigil's benchmarks: the data (from `vigil-synth`) and store options.

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
