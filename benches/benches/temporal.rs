//! The temporal operators on a generated cluster with the seed scenarios (400 pods, 3 hours,
//! every kind): ASOF JOIN both ways, the crypto-miner band join and the MATCH_RECOGNIZE
//! sequence, as `vigil-bench temporal` runs them at full size against DuckDB and chDB.
//!
//! `cargo bench -p vigil-benches -p vigil-server --bench temporal`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::{Durability, SignalKind};
use vigil_benches::{TEMPORAL_QUERIES, open_store};
use vigil_synth::{Cluster, ClusterSpec};

fn temporal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_store(dir.path(), Durability::Buffered);
    let cluster = Cluster::new(ClusterSpec {
        pods: 400,
        duration: Duration::from_secs(3 * 3600),
        audit_per_pod_hour: 84,
        ..ClusterSpec::default()
    });
    for kind in SignalKind::ALL {
        for batch in cluster.batches(kind) {
            db.write(kind, &batch).expect("write");
        }
    }
    for (kind, batch) in cluster.scenarios().batches {
        db.write(kind, &batch).expect("write");
    }
    db.flush().expect("flush");
    while db.compact().expect("compact").outputs > 0 {}
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("temporal");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, sql) in TEMPORAL_QUERIES {
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(db.query(sql)).expect("query"));
        });
    }
    group.finish();
}

criterion_group!(benches, temporal);
criterion_main!(benches);
