//! Shared set-up for the integration tests.

use std::time::Duration;

use vigil::{Db, DbOptions, SegmentLayout, SessionOptions, StoreOptions};

/// Options for deterministic tests: no background work, small row groups and pages so that
/// pruning shows on small data, two partitions for stable plans.
pub fn test_options() -> DbOptions {
    DbOptions {
        store: StoreOptions {
            background: false,
            segment_window: Duration::from_secs(3600),
            layout: SegmentLayout {
                row_group_rows: 1_000,
                page_rows: 100,
                zstd_level: 1,
            },
            ..StoreOptions::default()
        },
        session: SessionOptions {
            target_partitions: 2,
            ..SessionOptions::default()
        },
    }
}

pub fn open(dir: &std::path::Path) -> Db {
    Db::open_with(dir, test_options()).expect("open db")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a query and renders it as a pretty table.
pub fn query(db: &Db, sql: &str) -> String {
    let rt = runtime();
    let batches = rt
        .block_on(db.query(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}

/// Runs a query returning one integer.
pub fn count(db: &Db, sql: &str) -> i64 {
    let rt = runtime();
    let batches = rt
        .block_on(db.query(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    first_int(&batches)
}

/// The first column of the first row, as an integer.
pub fn first_int(batches: &[arrow::array::RecordBatch]) -> i64 {
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("one row");
    let col =
        arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Int64).expect("cast");
    col.as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("int64")
        .value(0)
}

#[allow(dead_code)]
pub fn wait_until(mut f: impl FnMut() -> bool, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// This package's directory as cargo runs the tests (not where the binary was compiled: a
/// build cache shared between checkouts may hold a binary compiled elsewhere).
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
