//! Ingest throughput of metric rows in 8,192-row batches: `buffered` with one writer, `sync`
//! with one and with four writers (group commit). Each iteration writes the same pre-built
//! batches into a fresh store with background flushing on, as in production.
//!
//! `cargo bench -p vigil-benches -p vigil-server --bench ingest`

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil::Durability;
use vigil_benches::{ingest_concurrently, metric_batches, open_store};

const BATCHES: usize = 96;

fn ingest(c: &mut Criterion) {
    let batches = metric_batches(BATCHES);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(rows as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, durability, writers) in [
        ("buffered/1-writer", Durability::Buffered, 1),
        ("sync/1-writer", Durability::Sync, 1),
        ("sync/4-writers", Durability::Sync, 4),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let db = open_store(dir.path(), durability);
                    total += ingest_concurrently(&db, &batches, writers);
                    drop(db);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
