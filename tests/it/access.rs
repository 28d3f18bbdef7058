//! A session restricted to some namespaces sees only their rows in every table, whatever the
//! SQL (unions, subqueries, joins, the catalog); a read-only session cannot write, create
//! tables, touch files or change settings; a query over its memory limit fails alone.

use std::collections::BTreeMap;

use arrow::array::{Array, RecordBatch};
use futures::TryStreamExt;
use vigil::{
    Access, Db, EngineError, PodObservation, QueryLimits, QueryMemory, Session, SignalKind,
    Visibility,
};

use crate::support::{count, first_int, open, runtime};

const T0: i64 = 1_700_000_000_000_000_000;

/// Four namespaces of metrics, half flushed to segments and half hot, plus pods.
fn fill(db: &Db) {
    let batch = |offset: i64| {
        let mut ts = Vec::new();
        let mut ns = Vec::new();
        let mut pods = Vec::new();
        let mut names = Vec::new();
        let mut values = Vec::new();
        for i in 0..400i64 {
            ts.push(T0 + offset + i * 1_000_000_000);
            ns.push(format!("ns-{}", i % 4));
            pods.push(format!("pod-{}", i % 10));
            names.push("container_cpu_usage_cores".to_string());
            values.push(i as f64);
        }
        vigil_tests::metric_batch(ts, ns, pods, names, values)
    };
    db.write(SignalKind::Metric, &batch(0)).expect("write");
    db.flush().expect("flush");
    db.write(SignalKind::Metric, &batch(1_000_000_000_000))
        .expect("write");
    let observations: Vec<PodObservation> = (0..10)
        .map(|i| PodObservation {
            ts_ns: T0,
            namespace: Some(format!("ns-{}", i % 4)),
            pod: format!("pod-{i}"),
            labels: Some(BTreeMap::new()),
            source: "otlp".into(),
            ..Default::default()
        })
        .collect();
    db.observe_pods(&observations).expect("observe");
}

fn collect(session: &Session, sql: &str) -> Result<Vec<RecordBatch>, EngineError> {
    runtime().block_on(async {
        let stream = session.sql(sql).await?;
        Ok(stream.try_collect().await?)
    })
}

fn scalar(session: &Session, sql: &str) -> i64 {
    first_int(&collect(session, sql).unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn strings(session: &Session, sql: &str) -> Vec<String> {
    let batches = collect(session, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for b in batches {
        let col =
            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        let col = col
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("utf8");
        out.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_namespace_scoped_session_sees_only_its_namespaces_whatever_the_sql() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    fill(&db);
    let scoped = db
        .open_session(Access::read_only(Visibility::namespaces(["ns-1"])))
        .expect("session");
    let own = count(&db, "SELECT count(*) FROM metrics WHERE namespace = 'ns-1'");
    assert_eq!(own, 200, "100 rows of ns-1 in segments, 100 hot");
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 800);

    assert_eq!(scalar(&scoped, "SELECT count(*) FROM metrics"), own);
    assert_eq!(scalar(&scoped, "SELECT count(*) FROM signals"), own);
    // The rollup views read through the session's own tables.
    assert_eq!(scalar(&scoped, "SELECT sum(count) FROM metrics_1m"), own);
    assert_eq!(
        scalar(&scoped, "SELECT count(DISTINCT namespace) FROM metrics_1h"),
        1
    );
    for sql in [
        "SELECT namespace FROM metrics",
        "SELECT namespace FROM signals",
        "SELECT namespace FROM pods",
        // The SQL asks for other namespaces: it gets nothing of them.
        "SELECT namespace FROM metrics WHERE namespace <> 'ns-1' OR namespace IS NULL \
         UNION ALL SELECT 'ns-1'",
        "SELECT namespace FROM (SELECT * FROM signals WHERE namespace IN ('ns-0', 'ns-2', 'ns-1'))",
        "SELECT m.namespace FROM metrics m JOIN pods p ON m.pod = p.pod",
        "SELECT namespace FROM metrics WHERE pod IN (SELECT pod FROM metrics WHERE namespace = 'ns-3') \
         UNION SELECT 'ns-1'",
    ] {
        assert_eq!(strings(&scoped, sql), vec!["ns-1".to_string()], "{sql}");
    }
    // Rows of other namespaces are not there even through projections that drop the
    // namespace column, or aggregates.
    assert_eq!(
        scalar(&scoped, "SELECT count(*) FROM metrics WHERE pod = 'pod-0'"),
        0,
        "pod-0 is in ns-0"
    );
    assert_eq!(
        scalar(&scoped, "SELECT CAST(sum(value) AS BIGINT) FROM metrics"),
        count(
            &db,
            "SELECT CAST(sum(value) AS BIGINT) FROM metrics WHERE namespace = 'ns-1'"
        )
    );
    assert_eq!(
        scalar(&scoped, "SELECT count(*) FROM pods"),
        count(&db, "SELECT count(*) FROM pods WHERE namespace = 'ns-1'")
    );
    // The catalog lists tables, not rows; it works and shows the same tables.
    assert!(
        scalar(
            &scoped,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'metrics'"
        ) == 1
    );
    // Audit rows are visible only when the object acted on is in an allowed namespace too
    // (or is cluster-scoped): a caller in ns-1 reading secrets in ns-2 shows nothing of ns-2.
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new(
            "ts",
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Nanosecond,
                Some("UTC".into()),
            ),
            false,
        ),
        arrow::datatypes::Field::new("namespace", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("pod", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("verb", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("object_namespace", arrow::datatypes::DataType::Utf8, true),
    ]));
    let audit = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(
                arrow::array::TimestampNanosecondArray::from(vec![T0, T0 + 1, T0 + 2, T0 + 3])
                    .with_timezone("UTC"),
            ),
            std::sync::Arc::new(arrow::array::StringArray::from(vec![
                Some("ns-1"),
                Some("ns-1"),
                Some("ns-1"),
                None,
            ])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["pod-1"; 4])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["get"; 4])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec![
                Some("ns-1"),
                Some("ns-2"),
                None,
                Some("ns-1"),
            ])),
        ],
    )
    .expect("audit batch");
    db.write(SignalKind::Audit, &audit).expect("write audit");
    assert_eq!(
        scalar(&scoped, "SELECT count(*) FROM audit"),
        2,
        "own object, and a cluster-scoped one"
    );
    assert_eq!(
        strings(
            &scoped,
            "SELECT coalesce(object_namespace, '-') FROM signals WHERE kind = 'audit'"
        ),
        vec!["-".to_string(), "ns-1".to_string()]
    );
    // EXPLAIN would show counts of the whole store.
    assert!(matches!(
        collect(&scoped, "EXPLAIN ANALYZE SELECT * FROM metrics"),
        Err(EngineError::NotAllowed(_))
    ));
    assert!(matches!(
        collect(&scoped, "EXPLAIN SELECT * FROM metrics"),
        Err(EngineError::NotAllowed(_))
    ));
    // A restricted session cannot also write.
    assert!(matches!(
        db.open_session(Access {
            visibility: Visibility::namespaces(["ns-1"]),
            writes: true
        }),
        Err(EngineError::NotAllowed(_))
    ));
    // No namespaces at all: nothing.
    let none = db
        .open_session(Access::read_only(Visibility::namespaces(
            Vec::<String>::new(),
        )))
        .expect("session");
    assert_eq!(scalar(&none, "SELECT count(*) FROM signals"), 0);
}

#[test]
fn a_read_only_session_cannot_write_create_touch_files_or_change_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    fill(&db);
    let reader = db
        .open_session(Access::read_only(Visibility::all()))
        .expect("session");
    let out = dir.path().join("stolen.csv");
    for sql in [
        format!(
            "COPY (SELECT * FROM metrics) TO '{}' STORED AS CSV",
            out.display()
        ),
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "CREATE VIEW v AS SELECT * FROM metrics".to_string(),
        "INSERT INTO metrics SELECT * FROM metrics".to_string(),
        "DROP TABLE metrics".to_string(),
        "EXPLAIN ANALYZE INSERT INTO metrics SELECT * FROM metrics".to_string(),
        "PREPARE p AS SELECT 1".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "FLUSH".to_string(),
        "COMPACT".to_string(),
    ] {
        match collect(&reader, &sql) {
            Err(EngineError::NotAllowed(message)) => {
                assert!(message.contains("only read"), "{sql}: {message}")
            }
            other => panic!("{sql}: expected NotAllowed, got {other:?}"),
        }
    }
    assert!(!out.exists(), "COPY wrote a file");
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 800);
    // Reading the local file system through a URL table is not available either.
    assert!(collect(&reader, "SELECT * FROM '/etc/passwd'").is_err());
    // Reads, EXPLAIN, SHOW and DESCRIBE work.
    for sql in [
        "SELECT count(*) FROM metrics",
        "EXPLAIN SELECT * FROM metrics",
        "SHOW TABLES",
        "DESCRIBE metrics",
    ] {
        collect(&reader, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // The embedding program's own session may do all of it.
    assert_eq!(count(&db, "FLUSH"), 1);
}

#[test]
fn a_query_over_its_memory_limit_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    fill(&db);
    let session = db
        .open_session(Access::read_only(Visibility::all()))
        .expect("session");
    let rt = runtime();
    let heavy = "SELECT a.ts, b.ts FROM metrics a JOIN metrics b ON a.pod <> b.pod ORDER BY a.value, b.value";
    let result: Result<Vec<RecordBatch>, EngineError> = rt.block_on(async {
        let planned = session.plan(heavy).await?;
        let limits = QueryLimits {
            memory: Some(QueryMemory::new(64 << 10)),
            ..QueryLimits::default()
        };
        let stream = session.execute(planned, None, limits).await?;
        Ok(stream.try_collect().await?)
    });
    let e = result.expect_err("64 KiB is not enough");
    assert!(
        e.to_string().contains("Resources exhausted") || e.to_string().contains("memory"),
        "{e}"
    );
    // The same session goes on, with and without limits.
    assert_eq!(scalar(&session, "SELECT count(*) FROM metrics"), 800);
}

/// Runs `sql` with `limit` bytes of query memory: the error, if any.
fn run_limited(session: &Session, sql: &str, limit: usize) -> Result<usize, String> {
    runtime().block_on(async {
        let planned = session.plan(sql).await.map_err(|e| e.to_string())?;
        let limits = QueryLimits {
            memory: Some(QueryMemory::new(limit)),
            ..QueryLimits::default()
        };
        let stream = session
            .execute(planned, None, limits)
            .await
            .map_err(|e| e.to_string())?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| e.to_string())?;
        Ok(batches.iter().map(RecordBatch::num_rows).sum())
    })
}

#[test]
fn growing_functions_and_result_batches_count_against_the_query_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    fill(&db);
    let session = db
        .open_session(Access::read_only(Visibility::all()))
        .expect("session");
    // 800 rows of 100 KB each would be 80 MB for the batch: refused before it is built.
    let e = run_limited(&session, "SELECT repeat('x', 100000) FROM metrics", 1 << 20).unwrap_err();
    assert!(e.contains("repeat()") && e.contains("would produce"), "{e}");
    // A constant folded while planning is held to the same bound.
    let e = run_limited(&session, "SELECT lpad('a', 2147483647)", 1 << 20).unwrap_err();
    assert!(e.contains("lpad()"), "{e}");
    // A result batch larger than what is left of the limit ends the query, even from a
    // plain scan that reserves nothing itself.
    let e = run_limited(&session, "SELECT * FROM metrics", 4 << 10).unwrap_err();
    assert!(e.contains("query result"), "{e}");
    // Within the limits the same statements run.
    assert_eq!(
        run_limited(&session, "SELECT repeat('x', 10) FROM metrics", 1 << 20),
        Ok(800)
    );
    assert_eq!(
        run_limited(&session, "SELECT * FROM metrics", 64 << 20),
        Ok(800)
    );
    // Without a query limit the default bound (1 GiB per call) still holds.
    let e = scalar_error(&session, "SELECT length(lpad('a', 2147483647))");
    assert!(e.contains("lpad()") && e.contains("1.0 GiB"), "{e}");
}

fn scalar_error(session: &Session, sql: &str) -> String {
    runtime()
        .block_on(async {
            let stream = session.sql(sql).await?;
            let _: Vec<RecordBatch> = stream.try_collect().await?;
            Ok::<_, EngineError>(())
        })
        .expect_err("refused")
        .to_string()
}
