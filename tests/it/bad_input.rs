//! Bad input never panics and never loses what was already accepted: wrong batches, bad SQL,
//! truncated or damaged segment files, a truncated RocksDB WAL or table file.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use vigil::{Db, EngineError, SignalKind, StorageError};
use vigil_tests::crash_batch;

use crate::support::{count, open, runtime};

fn batch(columns: Vec<(&str, Arc<dyn arrow::array::Array>)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch")
}

fn rows(db: &Db) -> i64 {
    count(db, "SELECT count(*) FROM metrics")
}

#[test]
fn bad_batches_are_refused_with_the_column_named_and_nothing_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.write(SignalKind::Metric, &crash_batch(1))
        .expect("good batch");
    let before = rows(&db);

    let missing_ts = batch(vec![
        ("name", Arc::new(StringArray::from(vec!["cpu"]))),
        (
            "value",
            Arc::new(arrow::array::Float64Array::from(vec![1.0])),
        ),
    ]);
    let e = db.write(SignalKind::Metric, &missing_ts).unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains("column `ts`"),
        "{e}"
    );

    let wrong_type = batch(vec![
        ("ts", Arc::new(Int64Array::from(vec![1]))),
        ("name", Arc::new(StringArray::from(vec!["cpu"]))),
        ("value", Arc::new(StringArray::from(vec!["0.5"]))),
    ]);
    let e = db.write(SignalKind::Metric, &wrong_type).unwrap_err();
    assert!(
        e.to_string().contains("column `value`") && e.to_string().contains("DOUBLE"),
        "{e}"
    );

    let e = "metrix".parse::<SignalKind>().unwrap_err();
    assert!(
        e.to_string().contains("unknown signal kind `metrix`"),
        "{e}"
    );

    // A batch of one kind offered as another is refused by its columns.
    let e = db.write(SignalKind::Audit, &crash_batch(2)).unwrap_err();
    assert!(e.to_string().contains("invalid audit batch"), "{e}");

    // write_all is all or nothing: a bad second batch keeps the good first one out.
    let e = db
        .write_all(SignalKind::Metric, &[crash_batch(3), wrong_type])
        .unwrap_err();
    assert!(
        matches!(e, EngineError::Storage(StorageError::InvalidBatch { .. })),
        "{e}"
    );
    assert_eq!(rows(&db), before);

    db.write(SignalKind::Metric, &crash_batch(4))
        .expect("the store still accepts writes");
    assert_eq!(rows(&db), before + vigil_tests::crash_batch_rows(4) as i64);
}

#[test]
fn bad_sql_is_a_clear_error_and_the_database_carries_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.write(SignalKind::Metric, &crash_batch(1))
        .expect("write");
    let rt = runtime();
    for (sql, expect) in [
        ("SELEC * FROM metrics", "SELEC"),
        ("SELECT nope FROM metrics", "nope"),
        ("SELECT * FROM metricz", "metricz"),
        ("SELECT count(* FROM metrics", "Expected"),
        ("INSERT INTO signals (ts) VALUES (now())", "signals"),
        (
            "INSERT INTO metrics (ts, name) VALUES (now(), 'x')",
            "value",
        ),
    ] {
        let e = rt.block_on(db.query(sql)).unwrap_err();
        assert!(e.is_user_error(), "{sql}: {e:?}");
        assert!(e.to_string().contains(expect), "{sql}: {e}");
    }
    assert_eq!(rows(&db), vigil_tests::crash_batch_rows(1) as i64);
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .expect("segments dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_truncated_segment_is_reported_by_name_and_the_store_opens_again_once_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        db.write(SignalKind::Metric, &crash_batch(7))
            .expect("write");
        db.flush().expect("flush");
        db.close().expect("close");
    }
    let file = segment_files(dir.path()).pop().expect("one segment");
    let original = std::fs::read(&file).expect("read");
    std::fs::write(&file, &original[..original.len() / 2]).expect("truncate");
    let e = Db::open_with(dir.path(), crate::support::test_options()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&file.file_name().unwrap().to_string_lossy().to_string()),
        "{msg}"
    );
    assert!(msg.contains("truncated"), "{msg}");

    std::fs::write(&file, &original).expect("restore");
    let db = open(dir.path());
    assert_eq!(rows(&db), vigil_tests::crash_batch_rows(7) as i64);
}

#[test]
fn a_damaged_segment_fails_verification_and_queries_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        db.write(SignalKind::Metric, &crash_batch(8))
            .expect("write");
        db.flush().expect("flush");
        db.close().expect("close");
    }
    let file = segment_files(dir.path()).pop().expect("one segment");
    let mut bytes = std::fs::read(&file).expect("read");
    // Overwrite the middle of the file (column data) with garbage, same size.
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).expect("damage");
    let db = open(dir.path());
    let e = db.verify().unwrap_err();
    assert!(e.to_string().contains("CRC-32"), "{e}");
    // Reading may fail or not, depending on what was hit; it must not panic.
    let rt = runtime();
    let _ = rt.block_on(db.query("SELECT sum(value) FROM metrics"));
    // Writes still work.
    db.write(SignalKind::Metric, &crash_batch(9))
        .expect("write after damage");
}

#[test]
fn a_torn_wal_tail_loses_a_suffix_of_the_writes_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let count = 40u64;
    // A child writes 40 batches in order (flushing into segments along the way) and aborts.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir.path())
        .arg("100")
        .arg("1")
        .arg(count.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run crash_writer");
    assert!(!status.success(), "the child aborts after writing");
    let mut logs: Vec<_> = std::fs::read_dir(dir.path().join("kv"))
        .expect("kv dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let wal = logs.pop().expect("a WAL file");
    let len = std::fs::metadata(&wal).expect("wal").len();
    assert!(len > 4_000, "the WAL holds the writes ({len} bytes)");
    // Cut the end off, as a torn write at a crash would.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open wal");
    file.set_len(len - 700).expect("truncate wal");
    drop(file);

    let db = open(dir.path());
    let rt = runtime();
    let batches = rt
        .block_on(db.query("SELECT value, count(*) FROM metrics GROUP BY value ORDER BY value"))
        .expect("query");
    let mut present = Vec::new();
    for b in &batches {
        let v = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("f64");
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("i64");
        for i in 0..b.num_rows() {
            let id = v.value(i) as u64;
            assert_eq!(
                n.value(i),
                vigil_tests::crash_batch_rows(id) as i64,
                "batch {id} is whole"
            );
            present.push(id);
        }
    }
    // What survives is a prefix of the writes: only the torn tail is gone.
    let ids: Vec<u64> = (100..100 + count).collect();
    assert!(
        present.len() >= ids.len() - 2,
        "lost more than the torn tail: {present:?}"
    );
    assert_eq!(present[..], ids[..present.len()]);
    db.verify().expect("segments match the manifest");
}

#[test]
fn a_truncated_rocksdb_table_file_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        db.write(SignalKind::Metric, &crash_batch(40))
            .expect("write");
        db.flush().expect("flush: the manifest goes into RocksDB");
        db.write(SignalKind::Metric, &crash_batch(41))
            .expect("a hot write");
        // A clean close writes RocksDB's memtables to table files.
        db.close().expect("close");
    }
    let kv = dir.path().join("kv");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&kv)
        .expect("kv dir")
        .filter_map(|e| e.ok())
    {
        if entry.file_name().to_string_lossy().ends_with(".sst") {
            let len = entry.metadata().expect("meta").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(entry.path())
                .expect("open");
            f.set_len(len / 2).expect("truncate");
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no RocksDB table file to damage");
    let result =
        std::panic::catch_unwind(|| Db::open_with(dir.path(), crate::support::test_options()));
    let opened = result.expect("opening a damaged store must not panic");
    let e = opened.expect_err("a truncated RocksDB table file cannot open cleanly");
    assert!(
        e.to_string().contains("RocksDB") && e.to_string().contains(".sst"),
        "{e}"
    );
}

#[test]
fn a_truncated_rocksdb_manifest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open(dir.path());
        db.write(SignalKind::Metric, &crash_batch(50))
            .expect("write");
        db.flush().expect("flush");
        db.write(SignalKind::Metric, &crash_batch(51))
            .expect("a hot write");
        db.close().expect("close");
    }
    let kv = dir.path().join("kv");
    for entry in std::fs::read_dir(&kv)
        .expect("kv dir")
        .filter_map(|e| e.ok())
    {
        if entry.file_name().to_string_lossy().starts_with("MANIFEST-") {
            let len = entry.metadata().expect("meta").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(entry.path())
                .expect("open");
            f.set_len(len - len / 4).expect("truncate");
        }
    }
    // RocksDB either recovers (its MANIFEST is a log; the WAL holds the rest) or refuses
    // with a message; it must not panic, and whatever opens must hold every row.
    let result =
        std::panic::catch_unwind(|| Db::open_with(dir.path(), crate::support::test_options()));
    match result.expect("opening a damaged store must not panic") {
        Ok(db) => assert_eq!(
            rows(&db),
            (vigil_tests::crash_batch_rows(50) + vigil_tests::crash_batch_rows(51)) as i64
        ),
        Err(e) => assert!(e.to_string().contains("RocksDB"), "{e}"),
    }
}
