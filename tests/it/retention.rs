//! Retention on a manual clock: rules per kind, namespace and metric pattern with the most
//! specific winning, downsampling checked against SQL aggregates of the raw rows, the rollup
//! views answering ranges that span raw and rolled-up data, legal holds, disk space given
//! back, no resurrection on reopen, and background passes that wait out a policy change.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use vigil::{
    Db, DbOptions, HoldRequest, ManualClock, RetentionOptions, RetentionPolicy, SignalKind,
};

use crate::support::{count, query, test_options, wait_until};

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// A day boundary: every bucket below starts on its step.
const S: i64 = (vigil_tests::T0 / DAY) * DAY;
const DAYS: i64 = 10;
const NOW: i64 = S + DAYS * DAY;
const PODS: [(&str, &str); 4] = [
    ("shop", "shop-a"),
    ("shop", "shop-b"),
    ("web", "web-a"),
    ("web", "web-b"),
];

fn options(clock: Arc<ManualClock>, background: bool, grace: Duration) -> DbOptions {
    let mut options = test_options();
    options.store.clock = clock;
    options.store.background = background;
    options.store.retention = RetentionOptions {
        policy: vigil_tests::retention_policy(),
        check_every: Duration::from_secs(60),
        change_grace: grace,
    };
    options
}

/// Ten days of one sample a minute for two metrics of four pods, a log line every ten
/// minutes and an audit event every hour per pod. Values are small integers, so sums are
/// exact whatever order they are added in.
fn fill(db: &Db) {
    for day in 0..DAYS {
        let (mut ts, mut ns, mut pods, mut names, mut values) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for m in 0..1440 {
            let t = S + day * DAY + m * MINUTE;
            for (namespace, pod) in PODS {
                for name in ["container_cpu_usage_cores", "http_requests_total"] {
                    ts.push(t);
                    ns.push(namespace.to_string());
                    pods.push(pod.to_string());
                    names.push(name.to_string());
                    values.push(((m * 7 + day) % 100) as f64);
                }
            }
        }
        db.write(
            SignalKind::Metric,
            &vigil_tests::metric_batch(ts, ns, pods, names, values),
        )
        .expect("write metrics");
        db.write(SignalKind::Log, &rows(day, 10, &["body"]))
            .expect("write logs");
        db.write(SignalKind::Audit, &rows(day, 60, &["verb"]))
            .expect("write audit");
    }
}

/// One row per pod every `every` minutes of `day`, with a string column per `extra`.
fn rows(day: i64, every: i64, extra: &[&str]) -> RecordBatch {
    let mut fields = vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("pod", DataType::Utf8, true),
    ];
    fields.extend(extra.iter().map(|e| Field::new(*e, DataType::Utf8, false)));
    let (mut ts, mut ns, mut pods) = (Vec::new(), Vec::new(), Vec::new());
    for m in (0..1440).step_by(every as usize) {
        for (namespace, pod) in PODS {
            ts.push(S + day * DAY + m * MINUTE);
            ns.push(namespace);
            pods.push(pod);
        }
    }
    let n = ts.len();
    let mut columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
        Arc::new(StringArray::from(ns)),
        Arc::new(StringArray::from(pods)),
    ];
    for _ in extra {
        columns.push(Arc::new(StringArray::from(vec!["get"; n])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn at(ns: i64) -> String {
    format!("to_timestamp_nanos({ns})")
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// The hold of the test: web-a, two whole hours of its first day.
fn hold() -> HoldRequest {
    HoldRequest {
        namespace: Some("web".into()),
        pod: "web-a".into(),
        from_ns: S + 12 * HOUR,
        to_ns: S + 14 * HOUR - 1,
        reason: "incident 42".into(),
    }
}

/// Rows of a rollup view (every column), ordered, for the part of the store the first rule
/// (downsampled) decides, from `from` on.
fn view_rows(db: &Db, view: &str, from: i64) -> String {
    query(
        db,
        &format!(
            "SELECT ts, namespace, pod, name, min, max, avg, sum, count FROM {view} \
             WHERE ts >= {} AND NOT (namespace = 'shop' AND name LIKE 'http_%') \
             ORDER BY ts, pod, name",
            at(from)
        ),
    )
}

#[test]
fn a_pass_keeps_deletes_and_downsamples_as_the_most_specific_rule_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOW));
    let db = Db::open_with(
        dir.path(),
        options(Arc::clone(&clock), false, Duration::ZERO),
    )
    .expect("open");
    fill(&db);
    let hold = db.place_hold(hold()).expect("hold");
    db.flush().expect("flush");

    // What the views answer from raw rows alone, before anything is rolled up.
    let hourly_before = view_rows(&db, "metrics_1h", NOW - 9 * DAY);
    let minutely_before = view_rows(&db, "metrics_1m", NOW - 6 * DAY);
    assert!(
        hourly_before.lines().count() > 9 * 24 * 6,
        "{}",
        hourly_before.lines().count()
    );
    let segments_dir = dir.path().join("segments");
    let bytes_before = dir_bytes(&segments_dir);

    let dry = db.retention_dry_run().expect("dry run");
    assert!(dry.dry_run);
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), 4 * 144 * DAYS);
    assert_eq!(
        dir_bytes(&segments_dir),
        bytes_before,
        "a dry run changes nothing"
    );

    let report = db.enforce_retention().expect("retention pass");
    assert!(!report.dry_run);

    // Logs: shop keeps 2 days, web (more specific rule) 5 days, plus web-a's held hours.
    let logs = |db: &Db, ns: &str| {
        count(
            db,
            &format!("SELECT count(*) FROM logs WHERE namespace = '{ns}'"),
        )
    };
    assert_eq!(logs(&db, "shop"), 2 * 2 * 144);
    assert_eq!(logs(&db, "web"), 2 * 5 * 144 + 12);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM logs WHERE ts < {}", at(NOW - 5 * DAY))
        ),
        12,
        "only the held rows are older than every log rule"
    );
    assert_eq!(
        dry.rows_deleted[&SignalKind::Log],
        report.rows_deleted[&SignalKind::Log]
    );
    assert_eq!(dry.rows_rolled_up > 0, report.rows_rolled_up > 0);
    // Audit: a year.
    assert_eq!(count(&db, "SELECT count(*) FROM audit"), 4 * 24 * DAYS);

    // shop's http metrics: 8 days raw, no rollups.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM metrics WHERE namespace = 'shop' AND name = 'http_requests_total'"
        ),
        2 * 8 * 1440
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM metric_rollups WHERE namespace = 'shop' AND name LIKE 'http%'"
        ),
        0
    );
    // Everything else: 3 days raw (plus the held hours of web-a), then 1m rollups to 6
    // days, then 1h rollups to 9 days.
    let series = 6;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM metrics WHERE NOT (namespace = 'shop' AND name LIKE 'http_%')"
        ),
        series * 3 * 1440 + 2 * 120
    );
    let rollups = |step: i64| {
        count(
            &db,
            &format!("SELECT count(*) FROM metric_rollups WHERE step_seconds = {step}"),
        )
    };
    assert_eq!(rollups(60), series * 3 * 1440);
    assert_eq!(rollups(3600), series * 3 * 24);
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM metric_rollups WHERE ts < {} OR (step_seconds = 60 AND ts < {}) \
                 OR (step_seconds = 3600 AND count <> 60)",
                at(NOW - 9 * DAY),
                at(NOW - 6 * DAY)
            )
        ),
        0
    );
    // Minutely rollups of 7 days were written, and hourly ones of the 4 oldest.
    assert!(report.rollup_rows_written as i64 > rollups(60) + rollups(3600));

    // Downsampling is exactly the SQL aggregate of the raw rows, over ranges that now span
    // hourly rollups, minutely rollups and raw rows.
    assert_eq!(view_rows(&db, "metrics_1h", NOW - 9 * DAY), hourly_before);
    assert_eq!(view_rows(&db, "metrics_1m", NOW - 6 * DAY), minutely_before);
    // Aggregates over a view plan and run (the view's schema matches its plan's).
    let daily = query(
        &db,
        "SELECT date_trunc('day', ts) AS day, sum(count) AS samples FROM metrics_1h \
         WHERE name = 'container_cpu_usage_cores' GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(daily.lines().count(), 4 + 10, "{daily}");
    assert!(daily.contains("| 5760    |"), "{daily}");

    // Disk space is given back.
    // Disk space is given back: the files of every dropped or replaced segment are gone
    // (only files the manifest lists remain), and the small rollup segments of a day are
    // merged. This data is small per hour, so files are mostly Parquet footers; the
    // benchmark measures a store of 50 million rows.
    let bytes_after = dir_bytes(&segments_dir);
    assert!(report.bytes_freed > 0);
    assert!(
        bytes_after < bytes_before * 17 / 20,
        "segments took {bytes_before} bytes before and {bytes_after} after: {report:?}"
    );
    let live = db.stats().segment_bytes;
    assert_eq!(bytes_after, live, "no file outside the manifest is left");

    // The rules and holds are queryable.
    let shown = query(&db, "SHOW RETENTION");
    assert!(
        shown.contains("http_*") && shown.contains("365d"),
        "{shown}"
    );
    assert!(shown.contains("1m for 6d, 1h for 9d"), "{shown}");
    let holds = query(&db, "SHOW HOLDS");
    assert!(
        holds.contains("incident 42") && holds.contains("web-a"),
        "{holds}"
    );

    // A second pass finds nothing; a reopen brings nothing back.
    let again = db.enforce_retention().expect("second pass");
    assert_eq!(
        (again.total_deleted(), again.rows_rolled_up),
        (0, 0),
        "{again:?}"
    );
    let metrics = count(&db, "SELECT count(*) FROM metrics");
    let rolled = count(&db, "SELECT count(*) FROM metric_rollups");
    db.close().expect("close");
    let db = Db::open_with(
        dir.path(),
        options(Arc::clone(&clock), false, Duration::ZERO),
    )
    .expect("reopen");
    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), metrics);
    assert_eq!(count(&db, "SELECT count(*) FROM metric_rollups"), rolled);
    assert_eq!(
        logs(&db, "shop") + logs(&db, "web"),
        4 * 144 + 10 * 144 + 12
    );

    // Released, the held rows go at the next pass.
    assert!(db.release_hold(hold.id).expect("release"));
    assert!(!db.release_hold(hold.id).expect("release twice"));
    db.enforce_retention().expect("pass after release");
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM logs WHERE ts < {}", at(NOW - 5 * DAY))
        ),
        0
    );
    db.close().expect("close");
}

#[test]
fn background_passes_wait_out_the_grace_of_a_changed_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(NOW));
    {
        let mut plain = test_options();
        plain.store.clock = Arc::clone(&clock) as _;
        let db = Db::open_with(dir.path(), plain).expect("open");
        fill(&db);
        db.flush().expect("flush");
        db.close().expect("close");
    }
    let db = Db::open_with(
        dir.path(),
        options(Arc::clone(&clock), true, Duration::from_secs(3600)),
    )
    .expect("open with a policy");
    let all_logs = 4 * 144 * DAYS;
    // The first passes run within the grace: they only log.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), all_logs);
    clock.advance(Duration::from_secs(1800));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), all_logs);
    // Past the grace, the next pass deletes (the clock moved 90 minutes since NOW).
    clock.advance(Duration::from_secs(3600));
    assert!(
        wait_until(
            || count(&db, "SELECT count(*) FROM logs WHERE namespace = 'shop'") < 2 * 144 * DAYS,
            Duration::from_secs(60)
        ),
        "no background pass deleted anything"
    );
    assert!(
        wait_until(
            || count(&db, "SELECT count(*) FROM metric_rollups") > 0,
            Duration::from_secs(60)
        ),
        "no background pass downsampled"
    );
    db.close().expect("close");
}

#[test]
fn bad_policies_are_refused_naming_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = test_options();
    options.store.retention.policy = RetentionPolicy::new(vec![
        vigil::RetentionRule::new(SignalKind::Log, Duration::from_secs(86_400)),
        vigil::RetentionRule::new(SignalKind::Metric, Duration::from_secs(86_400))
            .downsample(Duration::from_secs(7 * 60), Duration::from_secs(7 * 86_400)),
    ])
    .expect("valid alone");
    let e = Db::open_with(dir.path(), options).expect_err("a 7-minute step straddles windows");
    let text = e.to_string();
    assert!(text.contains("rule 2") && text.contains("7m"), "{text}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs the child pass with a fail point (it aborts there) or kills it after `kill_after`.
fn run_child(dir: &std::path::Path, failpoint: Option<&str>, kill_after: Option<Duration>) {
    use std::io::{BufRead, BufReader};
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_retention_runner"));
    cmd.arg(dir).arg(NOW.to_string());
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(fp) = failpoint {
        cmd.env("FAILPOINTS", fp);
    }
    let mut child = cmd.spawn().expect("spawn retention_runner");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(|l| l.ok()).as_deref(), Some("ready"));
    if let Some(after) = kill_after {
        std::thread::sleep(after);
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    if failpoint.is_none() && kill_after.is_none() {
        assert!(status.success(), "the pass failed: {status}");
    }
}

fn counts(db: &Db) -> Vec<i64> {
    ["metrics", "metric_rollups", "logs", "audit"]
        .iter()
        .map(|t| count(db, &format!("SELECT count(*) FROM {t}")))
        .collect()
}

#[test]
fn a_pass_killed_anywhere_loses_nothing_kept_and_brings_nothing_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, reference) = (root.path().join("store"), root.path().join("reference"));
    let clock = Arc::new(ManualClock::new(NOW));
    let plain = || {
        let mut o = test_options();
        o.store.clock = Arc::clone(&clock) as _;
        o
    };
    let db = Db::open_with(&dir, plain()).expect("open");
    fill(&db);
    db.flush().expect("flush");
    let hourly = view_rows(&db, "metrics_1h", NOW - 9 * DAY);
    let kept_logs = format!(
        "SELECT count(*) FROM logs WHERE ts >= {}",
        at(NOW - 2 * DAY)
    );
    let recent_logs = count(&db, &kept_logs);
    db.close().expect("close");
    copy_dir(&dir, &reference);
    let expected = {
        let db = Db::open_with(
            &reference,
            options(Arc::clone(&clock), false, Duration::ZERO),
        )
        .expect("open reference");
        db.enforce_retention().expect("reference pass");
        let c = counts(&db);
        db.close().expect("close");
        c
    };

    let rounds: Vec<(Option<&str>, Option<Duration>)> = vec![
        (Some("retention::before_drop=return"), None),
        (Some("retention::before_manifest=3*off->return"), None),
        (Some("retention::after_manifest=20*off->return"), None),
        (Some("segment::before_fsync=40*off->return"), None),
        // The steps of the manifest edit protocol every replacement follows.
        (Some("edit::after_reserve=2*off->return"), None),
        (Some("edit::before_commit=2*off->return"), None),
        (Some("edit::after_publish=4*off->return"), None),
        (
            Some("retention::after_manifest=sleep(20)"),
            Some(Duration::from_millis(700)),
        ),
        (
            Some("retention::after_manifest=sleep(20)"),
            Some(Duration::from_millis(1500)),
        ),
    ];
    let mut logs_before = i64::MAX;
    for (failpoint, kill_after) in rounds {
        run_child(&dir, failpoint, kill_after);
        let db = Db::open_with(&dir, plain()).expect("the store reopens after a crash");
        db.verify().expect("every segment matches the manifest");
        let live = db.stats().segment_bytes;
        assert_eq!(
            dir_bytes(&dir.join("segments")),
            live,
            "no orphan file after {failpoint:?}"
        );
        // Every sample the rules keep is there exactly once, raw or rolled up.
        assert_eq!(
            view_rows(&db, "metrics_1h", NOW - 9 * DAY),
            hourly,
            "after {failpoint:?}"
        );
        assert_eq!(count(&db, &kept_logs), recent_logs);
        // What a pass removed stays removed.
        let logs = count(&db, "SELECT count(*) FROM logs");
        assert!(logs <= logs_before, "logs came back after {failpoint:?}");
        logs_before = logs;
        db.close().expect("close");
    }
    run_child(&dir, None, None);
    let db = Db::open_with(&dir, plain()).expect("reopen");
    assert_eq!(counts(&db), expected);
    assert_eq!(view_rows(&db, "metrics_1h", NOW - 9 * DAY), hourly);
    db.close().expect("close");
}
