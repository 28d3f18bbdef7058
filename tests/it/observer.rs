//! The write observer: every path that writes rows reaches a registered observer exactly once
//! per committed write, after it is durable, with the rows as stored; refused writes never.

use std::sync::Arc;

use arrow::array::RecordBatch;
use vigil::{LoggedWrite, SignalKind, WriteLog};

use crate::support::{count, open, runtime};

const T0: i64 = 1_700_000_000_000_000_000;

/// `n` CPU samples of one pod, in a partial schema (the store fills the other columns).
fn samples(pod: &str, n: usize) -> RecordBatch {
    vigil_tests::metric_batch(
        (0..n as i64).map(|i| T0 + i * 1_000_000_000).collect(),
        vec!["shop".to_string(); n],
        vec![pod.to_string(); n],
        vec!["cpu".to_string(); n],
        (0..n).map(|i| i as f64).collect(),
    )
}

#[test]
fn every_write_path_reaches_the_observer_exactly_once_per_committed_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let log = Arc::new(WriteLog::default());
    db.observe_writes(Arc::clone(&log) as _);

    let one = db
        .write(SignalKind::Metric, &samples("a", 3))
        .expect("write");
    let all = db
        .write_all(SignalKind::Metric, &[samples("b", 2), samples("c", 4)])
        .expect("write_all");
    let rt = runtime();
    let later = rt
        .block_on(db.write_async(SignalKind::Metric, samples("d", 5)))
        .expect("write_async");
    let inserted = count(
        &db,
        "INSERT INTO metrics (ts, pod, name, value) VALUES \
         (TIMESTAMP '2023-11-14 22:13:20Z', 'e', 'cpu', 1.0), \
         (TIMESTAMP '2023-11-14 22:13:21Z', 'e', 'cpu', 2.0)",
    );
    assert_eq!(inserted, 2);

    let writes = log.writes();
    let expected = |kind, batches, rows, first_seq, last_seq| LoggedWrite {
        kind,
        batches,
        rows,
        first_seq,
        last_seq,
        canonical: true,
    };
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert_eq!(
        writes[0],
        expected(SignalKind::Metric, 1, 3, one.first_seq, one.last_seq)
    );
    assert_eq!(
        writes[1],
        expected(SignalKind::Metric, 2, 6, all.first_seq, all.last_seq)
    );
    assert_eq!(
        writes[2],
        expected(SignalKind::Metric, 1, 5, later.first_seq, later.last_seq)
    );
    assert_eq!((writes[3].kind, writes[3].rows), (SignalKind::Metric, 2));
    assert!(writes[3].canonical);
    assert!(writes[3].first_seq > later.last_seq);
    // What the observer was told is what the store holds.
    let observed: usize = writes.iter().map(|w| w.rows).sum();
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), observed as i64);
}

#[test]
fn refused_and_empty_writes_are_not_observed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let log = Arc::new(WriteLog::default());
    db.observe_writes(Arc::clone(&log) as _);

    // A batch without the required `value` column, and one good batch with it: the write is
    // all or nothing, so neither is stored and nothing is observed.
    let bad = samples("a", 2).project(&[0, 1, 2, 3]).expect("project");
    assert!(
        db.write_all(SignalKind::Metric, &[samples("a", 2), bad])
            .is_err()
    );
    assert!(db.write(SignalKind::Metric, &samples("a", 0)).is_ok());
    let rt = runtime();
    assert!(
        rt.block_on(db.query("INSERT INTO metrics SELECT * FROM metrics WHERE value > 1e300"))
            .is_ok(),
        "an insert of no rows succeeds"
    );
    assert!(
        rt.block_on(db.query(
            "INSERT INTO metrics (ts, pod, name) VALUES (TIMESTAMP '2023-11-14 22:13:20Z', 'x', 'cpu')"
        ))
        .is_err(),
        "a row without a value is refused"
    );
    assert_eq!(log.writes(), Vec::new());
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 0);
}

/// An observer that panics does not fail the write nor keep later observers from hearing
/// of it.
#[derive(Debug)]
struct Panics;

impl vigil::WriteObserver for Panics {
    fn committed(&self, _write: &vigil::CommittedWrite<'_>) {
        panic!("observer bug");
    }
}

#[test]
fn a_panicking_observer_neither_fails_the_write_nor_silences_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let log = Arc::new(WriteLog::default());
    db.observe_writes(Arc::new(Panics));
    db.observe_writes(Arc::clone(&log) as _);
    db.write(SignalKind::Metric, &samples("a", 3))
        .expect("the write stands");
    assert_eq!(log.writes().len(), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 3);
}
