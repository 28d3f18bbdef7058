//! The child process of the crash test: writes numbered batches in `sync` mode from several
//! threads, with flushes and compactions happening all the time, and prints `ack <id>` for
//! every write the store acknowledged, with retention passes running as well. The parent kills it with SIGKILL (or a fail point
//! aborts it) and checks the store afterwards.
//!
//! Usage: crash_writer DIR FIRST_ID WRITERS [COUNT]
//!
//! With COUNT, one writer writes COUNT batches in order and then the process aborts,
//! leaving the store exactly as a crash would.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_storage::{
    Durability, RetentionOptions, RetentionPolicy, RetentionRule, SegmentLayout, SignalKind, Store,
    StoreOptions,
};
use vigil_tests::crash_batch;

fn main() {
    let _scenario = fail::FailScenario::setup();
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let first: u64 = args[2].parse().expect("FIRST_ID");
    let writers: u64 = args[3].parse().expect("WRITERS");
    let count: Option<u64> = args.get(4).map(|c| c.parse().expect("COUNT"));
    let options = StoreOptions {
        durability: Durability::Sync,
        flush_rows: 3_000,
        flush_age: Duration::from_millis(200),
        stall_rows: 50_000,
        compaction_target_rows: 40_000,
        compaction_min_inputs: 2,
        segment_window: Duration::from_secs(600),
        layout: SegmentLayout {
            row_group_rows: 1_000,
            page_rows: 100,
            zstd_level: 1,
        },
        background: true,
        // Retention passes run all the time too, with rules that apply to these rows
        // (kept a century) and to others (a second), so they evaluate and delete nothing
        // acknowledged.
        retention: RetentionOptions {
            policy: RetentionPolicy::new(vec![
                RetentionRule::new(SignalKind::Metric, Duration::from_secs(100 * 365 * 86_400)),
                RetentionRule {
                    metric: Some("not_crash_*".into()),
                    ..RetentionRule::new(SignalKind::Metric, Duration::from_secs(1))
                },
                RetentionRule::new(SignalKind::Log, Duration::from_secs(1)),
            ])
            .expect("valid rules"),
            check_every: Duration::from_secs(1),
            change_grace: Duration::ZERO,
        },
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(dir, options).expect("open store"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    println!("ready");
    if let Some(count) = count {
        for id in first..first + count {
            store
                .write(SignalKind::Metric, &crash_batch(id))
                .expect("write");
            println!("ack {id}");
        }
        std::process::abort();
    }
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(&store);
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut id = first + w;
                loop {
                    let batch = crash_batch(id);
                    store.write(SignalKind::Metric, &batch).expect("write");
                    let mut out = out.lock().expect("stdout lock");
                    writeln!(out, "ack {id}").expect("stdout");
                    out.flush().expect("stdout");
                    id += writers;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
