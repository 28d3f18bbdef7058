//! Pruning really skips data, and never changes answers: the same queries over hot rows,
//! segments, and compacted segments give the same results, while the scan reports how many
//! segments and row groups it skipped.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::physical_plan::ExecutionPlan;
use vigil::table::VigilScanExec;
use vigil::{Db, SignalKind};

use crate::support::{open, query, runtime};

const HOUR: i64 = 3_600_000_000_000;
/// 2023-11-14T22:00:00Z: hour-aligned, so each generated hour is one segment window.
const T0: i64 = 1_699_999_200_000_000_000;
const PODS: usize = 40;

/// One hour of 10-second samples of two metrics for every pod.
fn hour(h: i64) -> RecordBatch {
    let mut ts = Vec::new();
    let mut ns = Vec::new();
    let mut pods = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for step in 0..360i64 {
        for p in 0..PODS {
            for (m, name) in ["container_cpu_usage_cores", "container_memory_bytes"]
                .iter()
                .enumerate()
            {
                ts.push(T0 + h * HOUR + step * 10_000_000_000);
                ns.push(format!("ns-{}", p % 4));
                pods.push(format!("pod-{p:02}"));
                names.push(name.to_string());
                values.push((p * 1000 + step as usize + m) as f64);
            }
        }
    }
    vigil_tests::metric_batch(ts, ns, pods, names, values)
}

fn scan_summary(db: &Db, sql: &str) -> vigil::table::ScanSummary {
    let rt = runtime();
    let plan = rt
        .block_on(async { db.session().sql(sql).await?.create_physical_plan().await })
        .expect("plan");
    fn find(plan: &Arc<dyn ExecutionPlan>) -> Option<vigil::table::ScanSummary> {
        if let Some(scan) = (plan.as_ref() as &dyn Any).downcast_ref::<VigilScanExec>() {
            return Some(scan.summary().clone());
        }
        plan.children().into_iter().find_map(find)
    }
    find(&plan).expect("a VigilScanExec in the plan")
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(value) FROM metrics WHERE pod = 'pod-07'",
    "SELECT count(*), sum(value) FROM metrics WHERE pod IN ('pod-01', 'pod-33') AND name = 'container_memory_bytes'",
    "SELECT count(*), min(ts), max(ts) FROM metrics WHERE ts >= TIMESTAMP '2023-11-15T00:00:00Z'",
    "SELECT namespace, count(*) FROM metrics WHERE namespace = 'ns-2' GROUP BY namespace",
    "SELECT pod, ts, value FROM metrics WHERE pod = 'pod-39' AND ts BETWEEN TIMESTAMP '2023-11-14T23:00:00Z' AND TIMESTAMP '2023-11-14T23:00:40Z' ORDER BY pod, ts, value",
    "SELECT count(*) FROM metrics WHERE pod = 'no-such-pod'",
];

#[test]
fn pruning_skips_segments_and_row_groups_without_changing_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    for h in 0..3 {
        db.write(SignalKind::Metric, &hour(h)).expect("write");
    }
    let hot_answers: Vec<String> = QUERIES.iter().map(|q| query(&db, q)).collect();

    db.flush().expect("flush");
    assert_eq!(db.stats().segments, 3, "one segment per hour window");
    let cold_answers: Vec<String> = QUERIES.iter().map(|q| query(&db, q)).collect();
    assert_eq!(hot_answers, cold_answers);

    let s = scan_summary(&db, QUERIES[2]);
    assert_eq!(s.prune.segments_total, 3);
    assert_eq!(s.prune.segments_pruned_by_time, 2, "{s:?}");

    let s = scan_summary(&db, QUERIES[0]);
    let read = s.prune.row_groups_total - s.prune.row_groups_pruned_by_index;
    assert!(s.prune.row_groups_total >= 3 * 28, "{s:?}");
    assert!(
        read <= 6,
        "a one-pod query reads at most two row groups per segment: {s:?}"
    );

    let s = scan_summary(&db, QUERIES[5]);
    assert_eq!(s.prune.segments_pruned_by_index, 3, "{s:?}");

    // Segments written across a second flush and then compacted answer the same.
    db.write(SignalKind::Metric, &hour(0)).expect("write again");
    db.flush().expect("flush");
    db.compact().expect("compact");
    assert_eq!(db.stats().segments, 3);
    let doubled = query(
        &db,
        "SELECT count(*) FROM metrics WHERE ts < TIMESTAMP '2023-11-14T23:00:00Z'",
    );
    assert!(
        doubled.contains(&(2 * 360 * PODS * 2).to_string()),
        "{doubled}"
    );
}

/// A store with hour 0 in a segment and hour 1 in hot rows.
fn segment_hour_and_hot_hour() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    db.write(SignalKind::Metric, &hour(0)).expect("write");
    db.flush().expect("flush");
    db.write(SignalKind::Metric, &hour(1))
        .expect("write hot rows");
    (dir, db)
}

#[test]
fn scans_declare_their_order_so_no_full_sort_is_planned() {
    let (_dir, db) = segment_hour_and_hot_hour();
    // Metrics are stored (pod, name, ts): one metric name is (pod, ts) order already.
    let plan = query(
        &db,
        "EXPLAIN SELECT pod, ts, value FROM metrics \
         WHERE name = 'container_cpu_usage_cores' ORDER BY pod, ts",
    );
    assert!(plan.contains("SortPreservingMergeExec"), "{plan}");
    assert!(
        !plan.contains("SortExec:"),
        "a sort was planned although the scan is ordered:\n{plan}"
    );
    // Every name: each pod's rows are sorted on their own, never the whole table.
    let plan = query(
        &db,
        "EXPLAIN SELECT pod, ts, value FROM metrics ORDER BY pod, ts",
    );
    assert!(plan.contains("PartialSortExec"), "{plan}");
    assert!(
        !plan.contains(" SortExec:"),
        "a full sort was planned although the scan is sorted by pod:\n{plan}"
    );
    // And the merged output really is in order.
    let rt = runtime();
    let batches = rt
        .block_on(db.query("SELECT pod, ts FROM metrics ORDER BY pod, ts"))
        .expect("query");
    let mut last: Option<(String, i64)> = None;
    let mut n = 0;
    for b in &batches {
        let pods = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("pod");
        let ts = b
            .column(1)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .expect("ts");
        for i in 0..b.num_rows() {
            let cur = (pods.value(i).to_string(), ts.value(i));
            if let Some(prev) = &last {
                assert!(prev <= &cur, "{prev:?} before {cur:?}");
            }
            last = Some(cur);
            n += 1;
        }
    }
    assert_eq!(n, 2 * 360 * PODS * 2);
}

#[test]
fn explain_analyze_reports_what_was_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    for h in 0..2 {
        db.write(SignalKind::Metric, &hour(h)).expect("write");
    }
    db.flush().expect("flush");
    let out = query(
        &db,
        "EXPLAIN ANALYZE SELECT count(*) FROM metrics WHERE pod = 'pod-03' AND ts < TIMESTAMP '2023-11-14T23:00:00Z'",
    );
    for metric in [
        "segments_pruned_by_time=1",
        "segments_total=2",
        "row_groups_pruned_by_index=",
        "row_groups_pruned_statistics",
    ] {
        assert!(out.contains(metric), "{metric} missing from:\n{out}");
    }
}

/// Rows the scans of `plan` read after narrowing to a join's pods, and rows they had planned.
fn narrowed_rows(plan: &Arc<dyn ExecutionPlan>) -> (usize, u64) {
    let mut after = 0;
    let mut planned = 0;
    if let Some(scan) = (plan.as_ref() as &dyn Any).downcast_ref::<VigilScanExec>() {
        after += scan
            .metrics()
            .and_then(|m| m.sum_by_name("segment_rows_after_join_filter"))
            .map_or(0, |v| v.as_usize());
        planned += scan.summary().prune.rows_selected;
    }
    for child in plan.children() {
        let (a, p) = narrowed_rows(child);
        after += a;
        planned += p;
    }
    (after, planned)
}

/// Runs `sql` and returns its rows as text, with what its scans read.
fn run_counting(db: &Db, sql: &str) -> (String, usize, u64) {
    let rt = runtime();
    rt.block_on(async {
        let frame = db.frame(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let task = Arc::new(frame.task_ctx());
        let plan = frame.create_physical_plan().await.expect("plan");
        let batches = datafusion::physical_plan::collect(Arc::clone(&plan), task)
            .await
            .expect("run");
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string();
        let (after, planned) = narrowed_rows(&plan);
        (text, after, planned)
    })
}

#[test]
fn join_keys_narrow_the_other_side_to_their_pods_without_changing_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    for h in 0..3 {
        db.write(SignalKind::Metric, &hour(h)).expect("write");
    }
    db.flush().expect("flush");
    // The left side picks pods by value, so only the running join knows them.
    let left = "SELECT pod, ts FROM metrics WHERE name = 'container_memory_bytes' \
                AND value IN (3001.0, 17001.0, 17100.0)";
    let joins = [
        format!(
            "SELECT a.pod, a.ts, count(*), sum(m.value) FROM ({left}) a JOIN metrics m \
             ON m.pod = a.pod AND m.ts BETWEEN a.ts AND a.ts + INTERVAL '1 minute' \
             WHERE m.name = 'container_cpu_usage_cores' GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        format!(
            "SELECT a.pod, a.ts, m.ts, m.value FROM ({left}) a ASOF JOIN \
             (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m \
             MATCH_CONDITION (a.ts > m.ts) ON a.pod = m.pod ORDER BY 1, 2"
        ),
        "SELECT * FROM metrics MATCH_RECOGNIZE (PARTITION BY pod ORDER BY ts, name \
         MEASURES a.value AS a, FIRST(b.value) AS b PATTERN (a x*? b+) \
         DEFINE a AS value = 17005.0, b AS name = 'container_cpu_usage_cores') ORDER BY pod"
            .to_string(),
    ];
    let mut narrowed = vec![];
    for sql in &joins {
        let (rows, after, planned) = run_counting(&db, sql);
        assert!(rows.lines().count() > 4, "{sql} finds rows:\n{rows}");
        assert!(
            after > 0 && (after as u64) * 10 < planned,
            "{sql}: the scans read {after} of the {planned} rows they planned"
        );
        narrowed.push(rows);
    }
    let rt = runtime();
    rt.block_on(
        db.session()
            .sql("SET datafusion.optimizer.enable_join_dynamic_filter_pushdown = false"),
    )
    .expect("set");
    for (sql, expected) in joins.iter().zip(&narrowed) {
        let (rows, after, _) = run_counting(&db, sql);
        assert_eq!(after, 0, "{sql}: no narrowing without dynamic filters");
        assert_eq!(&rows, expected, "{sql}: the same answer read in full");
    }
}

#[test]
fn metric_name_filters_are_answered_by_the_index_exactly() {
    let (_dir, db) = segment_hour_and_hot_hour();
    // Series-major segments index names by row: DataFusion neither re-filters nor reads `name`.
    let sql = "SELECT count(*), sum(value) FROM metrics WHERE name = 'container_cpu_usage_cores'";
    let plan = query(&db, &format!("EXPLAIN {sql}"));
    assert!(!plan.contains("FilterExec"), "{plan}");
    let per_hour = 360 * PODS;
    // cpu values are p * 1000 + step, the same every hour.
    let sum_per_hour: usize = (0..PODS)
        .map(|p| (0..360).map(|s| p * 1000 + s).sum::<usize>())
        .sum();
    let answer = query(&db, sql);
    assert!(answer.contains(&(2 * per_hour).to_string()), "{answer}");
    assert!(answer.contains(&(2 * sum_per_hour).to_string()), "{answer}");
    let both = query(
        &db,
        "SELECT count(*) FROM metrics WHERE name IN ('container_cpu_usage_cores', 'container_memory_bytes') AND pod = 'pod-03'",
    );
    assert!(both.contains(&(2 * 2 * 360).to_string()), "{both}");

    // A segment whose names are too many to index: the scan applies the filter itself.
    let n = 5000;
    let many = vigil_tests::metric_batch(
        (0..n).map(|i| T0 + 2 * HOUR + i as i64).collect(),
        vec!["ns-0".to_string(); n],
        vec!["pod-00".to_string(); n],
        (0..n).map(|i| format!("m{i}")).collect(),
        (0..n).map(|i| i as f64).collect(),
    );
    db.write(SignalKind::Metric, &many).expect("write");
    db.flush().expect("flush");
    let plan = query(&db, "EXPLAIN SELECT value FROM metrics WHERE name = 'm42'");
    assert!(plan.contains("FilterExec"), "{plan}");
    let one = query(
        &db,
        "SELECT count(*), sum(value) FROM metrics WHERE name = 'm42'",
    );
    assert!(one.contains("| 1 ") && one.contains("| 42.0"), "{one}");
    let answer = query(&db, sql);
    assert!(answer.contains(&(2 * per_hour).to_string()), "{answer}");
}
