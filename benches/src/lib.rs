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
