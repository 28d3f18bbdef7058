//! The child process of the retention crash test: opens a store on a manual clock at NOW_NS
//! with the test's retention rules and runs one pass; a fail point aborts it at a named
//! step, or the parent kills it with SIGKILL part-way.
//!
//! Usage: retention_runner DIR NOW_NS

use std::sync::Arc;
use std::time::Duration;

use vigil_storage::{ManualClock, RetentionOptions, SegmentLayout, Store, StoreOptions};

fn main() {
    let _scenario = fail::FailScenario::setup();
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let now: i64 = args[2].parse().expect("NOW_NS");
    let options = StoreOptions {
        background: false,
        segment_window: Duration::from_secs(3600),
        layout: SegmentLayout {
            row_group_rows: 1_000,
            page_rows: 100,
            zstd_level: 1,
        },
        clock: Arc::new(ManualClock::new(now)),
        retention: RetentionOptions {
            policy: vigil_tests::retention_policy(),
            change_grace: Duration::ZERO,
            ..RetentionOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open(dir, options).expect("open store");
    println!("ready");
    let report = store.enforce_retention().expect("retention pass");
    println!("done {}", report.total_deleted());
    store.close().expect("close");
}
