//! Retention benchmarks (results in `docs/benchmarks.md`):
//!
//! - `pass`: one retention pass over a store of ~50 million metric rows (1,100 pods x 4
//!   metrics every 15 s for 48 hours) where a third (the oldest 16 hours) has expired and is
//!   downsampled to 1-minute rollups: wall time, bytes read and written (logical, and what
//!   the kernel counted for the process), disk use before and after, peak RSS.
//! - `query`: a 30-day hourly dashboard query over 100 pods x 4 metrics every minute (17
//!   million rows), answered from raw rows (`metrics`, and `metrics_1h` before retention)
//!   and from rollups (`metrics_1h` after retention downsampled all but the last 2 days),
//!   medians of interleaved runs.
//!
//! Usage: retention-bench pass --dir DIR [--mode downsample|delete] | retention-bench query --dir DIR

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use clap::{Parser, Subcommand};
use vigil::retention::{RuleSpec, StepSpec};
use vigil::{
    Db, DbOptions, Durability, ManualClock, RetentionOptions, RetentionPolicy, SignalKind,
    StoreOptions,
};
use vigil_benches::{dir_bytes, median};

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;
/// 2024-05-01T00:00:00Z.
const START: i64 = 1_714_521_600 * SECOND;
const METRICS: [&str; 4] = [
    "container_cpu_usage_cores",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
];

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds the store once (`DIR/pristine`), then measures a pass on a fresh copy of it in
    /// a new process, so its peak memory is the pass's alone.
    Pass {
        #[arg(long)]
        dir: PathBuf,
        /// `downsample`: the expired third becomes 1-minute rollups; `delete`: it goes.
        #[arg(long, default_value = "downsample")]
        mode: String,
        /// Internal: run the pass on DIR/work (the parent copied it).
        #[arg(long, hide = true)]
        measure: bool,
        #[arg(long, default_value_t = 1100)]
        pods: usize,
        #[arg(long, default_value_t = 48)]
        hours: i64,
        #[arg(long, default_value_t = 15)]
        interval_s: i64,
    },
    Query {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        pods: usize,
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn rule(keep: &str, steps: &[(&str, &str)]) -> RuleSpec {
    RuleSpec {
        kind: "metrics".into(),
        keep: keep.into(),
        downsample: steps
            .iter()
            .map(|(step, keep)| StepSpec {
                step: (*step).into(),
                keep: (*keep).into(),
            })
            .collect(),
        ..RuleSpec::default()
    }
}

fn open(dir: &Path, now: i64, rules: &[RuleSpec]) -> Result<Db> {
    let options = DbOptions {
        store: StoreOptions {
            durability: Durability::Buffered,
            background: false,
            flush_rows: 4 << 20,
            stall_rows: 8 << 20,
            clock: Arc::new(ManualClock::new(now)),
            retention: RetentionOptions {
                policy: RetentionPolicy::from_specs(rules)?,
                change_grace: Duration::ZERO,
                ..RetentionOptions::default()
            },
            ..StoreOptions::default()
        },
        ..DbOptions::default()
    };
    Db::open_with(dir, options).with_context(|| format!("opening {}", dir.display()))
}

/// Samples of every pod and metric at `ts`, in rows of one batch per `step`.
fn fill(db: &Db, pods: usize, from: i64, to: i64, step: i64) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("pod", DataType::Utf8, true),
        Field::new("container", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let pod_names: Vec<String> = (0..pods).map(|p| format!("pod-{p:05}")).collect();
    let namespaces: Vec<String> = (0..pods).map(|p| format!("ns-{:02}", p % 40)).collect();
    let mut rows = 0u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut t = from;
    let mut hour_start = from;
    while t < to {
        let (mut ts, mut ns, mut pod, mut container, mut name, mut value) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        // A batch per hour (or per step, if longer).
        let end = (t + HOUR).min(to);
        while t < end {
            for p in 0..pods {
                for (m, metric) in METRICS.iter().enumerate() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ts.push(t);
                    ns.push(namespaces[p].as_str());
                    pod.push(pod_names[p].as_str());
                    container.push("app");
                    name.push(*metric);
                    value.push((m as f64 + 1.0) * ((state % 10_000) as f64) / 100.0);
                }
            }
            t += step;
        }
        rows += ts.len() as u64;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(StringArray::from(ns)),
                Arc::new(StringArray::from(pod)),
                Arc::new(StringArray::from(container)),
                Arc::new(StringArray::from(name)),
                Arc::new(Float64Array::from(value)),
            ],
        )?;
        db.write(SignalKind::Metric, &batch)?;
        if t - hour_start >= 4 * HOUR || t >= to {
            db.flush()?;
            hour_start = t;
        }
    }
    db.flush()?;
    Ok(rows)
}

/// `read_bytes` and `write_bytes` of this process from `/proc/self/io` (storage I/O the
/// kernel counted; reads served from the page cache are not in it).
fn process_io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

fn peak_rss_kib() -> u64 {
    vigil_benches::process::peak_rss_kib(std::process::id())
}

struct PassArgs {
    dir: PathBuf,
    mode: String,
    measure: bool,
    pods: usize,
    hours: i64,
    interval_s: i64,
}

fn pass(args: &PassArgs) -> Result<()> {
    let now = START + args.hours * HOUR;
    // Raw samples are kept for two thirds of the span; older ones become 1-minute rollups
    // (or are deleted).
    let keep = format!("{}h", args.hours * 2 / 3);
    let rules = match args.mode.as_str() {
        "downsample" => [rule(&keep, &[("1m", "30d")])],
        "delete" => [rule(&keep, &[])],
        other => anyhow::bail!("--mode {other}: expected downsample or delete"),
    };
    let (pristine, work) = (args.dir.join("pristine"), args.dir.join("work"));
    if !args.measure {
        if !pristine.exists() {
            let db = open(&pristine, now, &[])?;
            let t = Instant::now();
            let rows = fill(&db, args.pods, START, now, args.interval_s * SECOND)?;
            eprintln!("built {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
            db.close()?;
        }
        if work.exists() {
            std::fs::remove_dir_all(&work)?;
        }
        copy_dir(&pristine, &work)?;
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["pass", "--measure", "--mode", &args.mode, "--dir"])
            .arg(&args.dir)
            .arg("--hours")
            .arg(args.hours.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "the measured pass failed: {status}");
        return Ok(());
    }
    let dir = work.as_path();
    let db = open(dir, now, &rules)?;
    let rows_before = db.stats().segment_rows;
    let segments = dir.join("segments");
    let bytes_before = dir_bytes(&segments)?;
    let dry = db.retention_dry_run()?;
    let (r0, w0) = process_io();
    let t = Instant::now();
    let report = db.enforce_retention()?;
    let secs = t.elapsed().as_secs_f64();
    let (r1, w1) = process_io();
    let bytes_after = dir_bytes(&segments)?;
    println!(
        "{}",
        serde_json::json!({
            "bench": "retention_pass",
            "mode": args.mode,
            "rows_in_store": rows_before,
            "rows_expired": report.rows_rolled_up + report.total_deleted(),
            "expired_fraction": (report.rows_rolled_up + report.total_deleted()) as f64 / rows_before as f64,
            "dry_run_agrees": dry.rows_rolled_up == report.rows_rolled_up,
            "rollup_rows_written": report.rollup_rows_written,
            "segments_rewritten": report.segments_rewritten,
            "segments_dropped": report.segments_dropped,
            "seconds": secs,
            "rows_per_second": rows_before as f64 / secs,
            "segment_bytes_read": report.bytes_read,
            "segment_bytes_written": report.bytes_written,
            "disk_read_bytes": r1 - r0,
            "disk_write_bytes": w1 - w0,
            "segments_bytes_before": bytes_before,
            "segments_bytes_after": bytes_after,
            "peak_rss_mib": peak_rss_kib() / 1024,
        })
    );
    db.close()?;
    Ok(())
}

fn time_query(db: &Db, rt: &tokio::runtime::Runtime, sql: &str) -> Result<(f64, Vec<RecordBatch>)> {
    let t = Instant::now();
    let batches = rt.block_on(db.query(sql))?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, batches))
}

/// The hourly averages as (hour, value) pairs, to check both sources agree.
fn hourly(batches: &[RecordBatch]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for b in batches {
        let ts = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .expect("hour");
        let v = b
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("avg");
        for i in 0..b.num_rows() {
            out.push((ts.value(i), v.value(i)));
        }
    }
    out
}

fn query(dir: &Path, pods: usize, days: i64, runs: usize) -> Result<()> {
    let now = START + days * DAY;
    let raw_dir = dir.join("raw");
    let rolled_dir = dir.join("rolled");
    if !raw_dir.exists() {
        let db = open(&raw_dir, now, &[])?;
        let t = Instant::now();
        let rows = fill(&db, pods, START, now, 60 * SECOND)?;
        eprintln!("built {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
        db.close()?;
    }
    let rules = [rule("2d", &[("1m", "7d"), ("1h", "365d")])];
    if !rolled_dir.exists() {
        copy_dir(&raw_dir, &rolled_dir)?;
        let db = open(&rolled_dir, now, &rules)?;
        let report = db.enforce_retention()?;
        eprintln!("{report}");
        db.close()?;
    }
    let raw = open(&raw_dir, now, &[])?;
    let rolled = open(&rolled_dir, now, &rules)?;
    let rt = tokio::runtime::Runtime::new()?;
    let range = format!("ts >= to_timestamp_nanos({})", now - days * DAY);
    let from_raw = format!(
        "SELECT date_bin(INTERVAL '1 hour', ts) AS hour, avg(value) AS cpu FROM metrics \
         WHERE name = 'container_cpu_usage_cores' AND {range} GROUP BY 1 ORDER BY 1"
    );
    let from_view = format!(
        "SELECT ts AS hour, sum(sum) / sum(count) AS cpu FROM metrics_1h \
         WHERE name = 'container_cpu_usage_cores' AND {range} GROUP BY 1 ORDER BY 1"
    );
    let cases: [(&str, &Db, &str); 3] = [
        ("raw_metrics", &raw, &from_raw),
        ("metrics_1h_over_raw", &raw, &from_view),
        ("metrics_1h_over_rollups", &rolled, &from_view),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut answers: Vec<Vec<(i64, f64)>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, db, sql)) in cases.iter().enumerate() {
            let (ms, batches) = time_query(db, &rt, sql)?;
            times[i].push(ms);
            answers[i] = hourly(&batches);
        }
    }
    let agree = answers.iter().all(|a| {
        a.len() == answers[0].len()
            && a.iter()
                .zip(&answers[0])
                .all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= 1e-9 * y.1.abs().max(1.0))
    });
    let rows_raw = raw.stats().segment_rows;
    let rows_rolled = rolled.stats().segment_rows;
    let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    for (i, (name, _, _)) in cases.iter().enumerate() {
        println!(
            "{}",
            serde_json::json!({
                "bench": "retention_query_30d",
                "case": name,
                "median_ms": medians[i],
                "runs": runs,
                "hours_returned": answers[i].len(),
                "rows_in_store": if i == 2 { rows_rolled } else { rows_raw },
                "answers_agree": agree,
                "speedup_vs_raw_metrics": medians[0] / medians[i],
            })
        );
    }
    raw.close()?;
    rolled.close()?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Pass {
            dir,
            mode,
            measure,
            pods,
            hours,
            interval_s,
        } => pass(&PassArgs {
            dir,
            mode,
            measure,
            pods,
            hours,
            interval_s,
        }),
        Command::Query {
            dir,
            pods,
            days,
            runs,
        } => query(&dir, pods, days, runs),
    }
}
