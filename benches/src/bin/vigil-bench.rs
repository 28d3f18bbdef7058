//! `vigil-bench`: the workload runner behind `docs/benchmarks.md`. Each subcommand prints
//! one JSON object per measurement on stdout, so `benches/run.sh` can put vigil's numbers
//! next to DuckDB's and chDB's from `benches/compare.py`.
//!
//! ```sh
//! cargo run --release -p vigil-benches --bin vigil-bench -- build --dir /tmp/vb --pods 6000 --hours 6
//! cargo run --release -p vigil-benches --bin vigil-bench -- pod-hour --dir /tmp/vb
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use datafusion::physical_plan::{ExecutionPlan, collect};
use vigil::{Db, DbOptions, Durability, SignalKind, StoreOptions};
use vigil_benches::{
    TEMPORAL_QUERIES, dir_bytes, ingest_concurrently, median, metric_batches, segment_bytes,
};
use vigil_synth::{Cluster, ClusterSpec};

/// jemalloc: measured against glibc's malloc and mimalloc on the temporal benchmarks
/// (docs/benchmarks.md), the fastest ASOF joins at glibc's peak memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest metric rows in 8,192-row batches; export the same rows for the other engines.
    Ingest {
        #[arg(long, default_value_t = 256)]
        batches: usize,
        /// Where to write `ingest.parquet` (the same rows) for compare.py.
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Build the big store: a generated cluster, every kind, flushed and compacted.
    Build {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 6000)]
        pods: usize,
        #[arg(long, default_value_t = 6.0)]
        hours: f64,
        /// Rows per Parquet data page (default: the store's default).
        #[arg(long)]
        page_rows: Option<usize>,
        /// Rows per Parquet row group (default: the store's default).
        #[arg(long)]
        row_group_rows: Option<usize>,
    },
    /// All signals of one pod over one hour, for random pods.
    PodHour {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Print EXPLAIN ANALYZE of the last query to stderr.
        #[arg(long)]
        explain: bool,
    },
    /// avg(value) by namespace and minute over every metric row.
    Aggregate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// ASOF JOINs, the crypto-miner band join and the MATCH_RECOGNIZE sequence over a
    /// generated cluster with the seed scenarios; exports the same data for compare.py.
    Temporal {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        pods: usize,
        #[arg(long, default_value_t = 6.0)]
        hours: f64,
        /// Audit events per pod and hour (84 gives a million for 2,000 pods over 6 hours).
        #[arg(long, default_value_t = 84)]
        audit_per_pod_hour: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Run only the queries with these names (comma-separated), e.g. for profiling.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Where to write audit/metrics/events/signals Parquet files for compare.py.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Rows per Parquet row group when building (default: the store's default).
        #[arg(long)]
        row_group_rows: Option<usize>,
    },
    /// One SQL statement on an existing store, timed: planning and execution apart.
    Query {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        sql: String,
    },
    /// Bytes per sample of node-exporter-like series in vigil's segments.
    Compression {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
        /// Where to write the same rows as plain Parquet for compare.py.
        #[arg(long)]
        export: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Ingest {
            batches,
            export,
            runs,
        } => ingest(batches, export.as_deref(), runs),
        Command::Build {
            dir,
            pods,
            hours,
            page_rows,
            row_group_rows,
        } => build(&dir, pods, hours, page_rows, row_group_rows),
        Command::PodHour { dir, runs, explain } => rt.block_on(pod_hour(&dir, runs, explain)),
        Command::Aggregate { dir, runs } => rt.block_on(aggregate(&dir, runs)),
        Command::Query { dir, runs, sql } => rt.block_on(query(&dir, runs, &sql)),
        Command::Compression {
            dir,
            nodes,
            hours,
            export,
        } => compression(&dir, nodes, hours, export.as_deref()),
        Command::Temporal {
            dir,
            pods,
            hours,
            audit_per_pod_hour,
            runs,
            only,
            export,
            row_group_rows,
        } => {
            if !dir.exists() {
                build_temporal(&dir, pods, hours, audit_per_pod_hour, row_group_rows)?;
            }
            rt.block_on(temporal(&dir, runs, &only, export.as_deref()))
        }
    }
}

fn options(durability: Durability) -> DbOptions {
    DbOptions {
        store: StoreOptions {
            durability,
            ..StoreOptions::default()
        },
        ..DbOptions::default()
    }
}

fn ingest(n: usize, export: Option<&Path>, runs: usize) -> Result<()> {
    let batches = metric_batches(n);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if let Some(path) = export {
        vigil_benches::write_parquet(path, &batches)?;
    }
    for (name, durability, writers) in [
        ("buffered-1", Durability::Buffered, 1),
        ("sync-1", Durability::Sync, 1),
        ("sync-4", Durability::Sync, 4),
    ] {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir()?;
            let db = Db::open_with(dir.path(), options(durability))?;
            let elapsed = ingest_concurrently(&db, &batches, writers);
            rates.push(rows as f64 / elapsed.as_secs_f64());
        }
        println!(
            r#"{{"bench":"ingest","mode":"{name}","rows":{rows},"rows_per_s_median":{:.0},"runs":{runs}}}"#,
            median(&mut rates)
        );
    }
    Ok(())
}

fn build(
    dir: &Path,
    pods: usize,
    hours: f64,
    page_rows: Option<usize>,
    row_group_rows: Option<usize>,
) -> Result<()> {
    let spec = ClusterSpec {
        pods,
        duration: Duration::from_secs_f64(hours * 3600.0),
        audit_per_pod_hour: 28,
        ..ClusterSpec::default()
    };
    let cluster = Cluster::new(spec);
    let mut opts = options(Durability::Buffered);
    if let Some(p) = page_rows {
        opts.store.layout.page_rows = p;
    }
    if let Some(r) = row_group_rows {
        opts.store.layout.row_group_rows = r;
    }
    let db = Db::open_with(dir, opts)?;
    let start = Instant::now();
    let mut rows = 0usize;
    for kind in SignalKind::ALL {
        for batch in cluster.batches(kind) {
            rows += batch.num_rows();
            db.write(kind, &batch)?;
        }
        eprintln!(
            "{kind}: {rows} rows so far, {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    let ingest = start.elapsed();
    db.flush()?;
    while db.compact()?.outputs > 0 {}
    let total = start.elapsed();
    let segments = db.stats().segments;
    println!(
        r#"{{"bench":"build","rows":{rows},"ingest_s":{:.1},"ingest_flush_compact_s":{:.1},"segments":{segments},"segment_bytes":{},"store_bytes":{}}}"#,
        ingest.as_secs_f64(),
        total.as_secs_f64(),
        segment_bytes(dir)?,
        dir_bytes(dir)?
    );
    db.close()?;
    Ok(())
}

/// Runs a query; returns its rows, elapsed time and the Parquet bytes it read.
async fn run(db: &Db, sql: &str) -> Result<(usize, Duration, usize)> {
    let start = Instant::now();
    let frame = db.frame(sql).await?;
    let task = Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await?;
    let batches = collect(Arc::clone(&plan), task).await?;
    let elapsed = start.elapsed();
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    Ok((rows, elapsed, bytes_scanned(&plan)))
}

async fn query(dir: &Path, runs: usize, sql: &str) -> Result<()> {
    let db = open_existing(dir)?;
    // Statements before the last (`SET ...;`) run once, to try settings.
    let statements: Vec<&str> = sql.split(';').filter(|s| !s.trim().is_empty()).collect();
    let Some((sql, setup)) = statements.split_last() else {
        anyhow::bail!("no SQL statement given");
    };
    for statement in setup {
        db.query(statement).await?;
    }
    let (mut plan_ms, mut exec_ms) = (vec![], vec![]);
    let mut last = vec![];
    for _ in 0..runs {
        let start = Instant::now();
        let frame = db.frame(sql).await?;
        let task = Arc::new(frame.task_ctx());
        let plan = frame.create_physical_plan().await?;
        let planned = start.elapsed();
        let batches = collect(plan, task).await?;
        exec_ms.push((start.elapsed() - planned).as_secs_f64() * 1e3);
        plan_ms.push(planned.as_secs_f64() * 1e3);
        last = batches;
    }
    let rows: usize = last.iter().map(|b| b.num_rows()).sum();
    eprintln!("{}", arrow::util::pretty::pretty_format_batches(&last)?);
    println!(
        r#"{{"bench":"query","runs":{runs},"rows":{rows},"plan_median_ms":{:.2},"execute_median_ms":{:.2},"execute_min_ms":{:.2}}}"#,
        median(&mut plan_ms),
        median(&mut exec_ms.clone()),
        exec_ms.iter().copied().fold(f64::INFINITY, f64::min),
    );
    Ok(())
}

fn bytes_scanned(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let own = plan
        .metrics()
        .and_then(|m| m.sum_by_name("bytes_scanned"))
        .map_or(0, |v| v.as_usize());
    own + plan
        .children()
        .into_iter()
        .map(bytes_scanned)
        .sum::<usize>()
}

fn open_existing(dir: &Path) -> Result<Db> {
    let db = Db::open_with(dir, options(Durability::Sync))
        .with_context(|| format!("opening {}", dir.display()))?;
    Ok(db)
}

async fn pod_hour(dir: &Path, runs: usize, explain: bool) -> Result<()> {
    let db = open_existing(dir)?;
    let pods = db
        .query("SELECT DISTINCT pod FROM events WHERE pod IS NOT NULL ORDER BY pod")
        .await?;
    let pods: Vec<String> = pods
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .cloned();
            a.into_iter()
                .flat_map(|a| a.iter().flatten().map(str::to_string).collect::<Vec<_>>())
        })
        .collect();
    anyhow::ensure!(!pods.is_empty(), "the store has no pods; run `build` first");
    let store_bytes = segment_bytes(dir)?;
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    let mut rows = Vec::new();
    // Warm-up: the first query pays for opening the session.
    for i in 0..=runs {
        let pod = &pods[(i * 7919) % pods.len()];
        let hour = i % 5 + 1;
        let sql = format!(
            "SELECT * FROM signals WHERE pod = '{pod}' AND ts >= TIMESTAMP '2024-05-01T0{hour}:00:00Z' \
             AND ts < TIMESTAMP '2024-05-01T0{hour}:00:00Z' + INTERVAL '1 hour' ORDER BY ts"
        );
        let (n, t, b) = run(&db, &sql).await?;
        if explain && i == runs {
            let plan = db.query(&format!("EXPLAIN ANALYZE {sql}")).await?;
            eprintln!("{}", arrow::util::pretty::pretty_format_batches(&plan)?);
        }
        if i > 0 {
            times.push(t.as_secs_f64() * 1e3);
            bytes.push(b as f64);
            rows.push(n as f64);
        }
    }
    let read = median(&mut bytes);
    println!(
        r#"{{"bench":"pod-hour","runs":{runs},"median_ms":{:.2},"p90_ms":{:.2},"median_rows":{:.0},"median_bytes_read":{read:.0},"store_segment_bytes":{store_bytes},"fraction_read_pct":{:.4}}}"#,
        median(&mut times.clone()),
        percentile(&mut times, 0.9),
        median(&mut rows),
        100.0 * read / store_bytes as f64
    );
    Ok(())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

async fn aggregate(dir: &Path, runs: usize) -> Result<()> {
    let db = open_existing(dir)?;
    let sql = "SELECT namespace, date_trunc('minute', ts) AS minute, avg(value) AS avg_value \
               FROM metrics GROUP BY namespace, date_trunc('minute', ts)";
    let mut times = Vec::new();
    let mut groups = 0;
    for _ in 0..runs {
        let (n, t, _) = run(&db, sql).await?;
        groups = n;
        times.push(t.as_secs_f64() * 1e3);
    }
    let metric_rows = db.query("SELECT count(*) FROM metrics").await?;
    let n = arrow::compute::cast(metric_rows[0].column(0), &arrow::datatypes::DataType::Int64)?;
    let n = n
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .map_or(0, |a| a.value(0));
    println!(
        r#"{{"bench":"aggregate","runs":{runs},"metric_rows":{n},"groups":{groups},"median_ms":{:.1}}}"#,
        median(&mut times)
    );
    Ok(())
}

fn compression(dir: &Path, nodes: usize, hours: f64, export: Option<&Path>) -> Result<()> {
    let cluster = Cluster::new(ClusterSpec {
        pods: 0,
        nodes,
        duration: Duration::from_secs_f64(hours * 3600.0),
        ..ClusterSpec::default()
    });
    let batches: Vec<_> = cluster.node_metrics().collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if let Some(path) = export {
        vigil_benches::write_parquet(path, &batches)?;
    }
    let db = Db::open_with(dir, options(Durability::Buffered))?;
    for batch in &batches {
        db.write(SignalKind::Metric, batch)?;
    }
    db.flush()?;
    while db.compact()?.outputs > 0 {}
    let bytes = segment_bytes(dir)?;
    println!(
        r#"{{"bench":"compression","samples":{rows},"series":{},"segment_bytes":{bytes},"bytes_per_sample":{:.3}}}"#,
        nodes * 5,
        bytes as f64 / rows as f64
    );
    db.close()?;
    Ok(())
}

fn build_temporal(
    dir: &Path,
    pods: usize,
    hours: f64,
    audit_per_pod_hour: usize,
    row_group_rows: Option<usize>,
) -> Result<()> {
    let cluster = Cluster::new(ClusterSpec {
        pods,
        duration: Duration::from_secs_f64(hours * 3600.0),
        audit_per_pod_hour,
        ..ClusterSpec::default()
    });
    let mut opts = options(Durability::Buffered);
    if let Some(r) = row_group_rows {
        opts.store.layout.row_group_rows = r;
    }
    let db = Db::open_with(dir, opts)?;
    let start = Instant::now();
    let mut rows = 0usize;
    for kind in SignalKind::ALL {
        for batch in cluster.batches(kind) {
            rows += batch.num_rows();
            db.write(kind, &batch)?;
        }
    }
    for (kind, batch) in cluster.scenarios().batches {
        rows += batch.num_rows();
        db.write(kind, &batch)?;
    }
    db.flush()?;
    while db.compact()?.outputs > 0 {}
    println!(
        r#"{{"bench":"temporal-build","rows":{rows},"build_s":{:.1},"segments":{},"segment_bytes":{}}}"#,
        start.elapsed().as_secs_f64(),
        db.stats().segments,
        segment_bytes(dir)?
    );
    db.close()?;
    Ok(())
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`: peak resident set
/// since the last reset; `VmRSS`: resident now), in bytes; 0 where unavailable.
fn status_bytes(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak resident memory to the current one (Linux: clear_refs 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn temporal(dir: &Path, runs: usize, only: &[String], export: Option<&Path>) -> Result<()> {
    let db = open_existing(dir)?;
    if only.is_empty() {
        // Not when profiling one query: this reads every row.
        let counts = db
            .query("SELECT kind, count(*) AS n FROM signals GROUP BY kind ORDER BY kind")
            .await?;
        eprintln!("{}", arrow::util::pretty::pretty_format_batches(&counts)?);
    }
    for (name, sql) in TEMPORAL_QUERIES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut times = vec![];
        let mut rows = 0;
        let mut peak = 0usize;
        for _ in 0..runs {
            let before = status_bytes("VmRSS");
            reset_peak_rss();
            let (n, t, _) = run(&db, sql).await?;
            peak = peak.max(status_bytes("VmHWM").saturating_sub(before));
            rows = n;
            times.push(t.as_secs_f64() * 1e3);
        }
        let result = db.query(sql).await?;
        let first_row = arrow::util::pretty::pretty_format_batches(&result)?
            .to_string()
            .lines()
            .nth(3)
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            r#"{{"bench":"temporal","engine":"vigil","query":"{name}","runs":{runs},"median_ms":{:.1},"min_ms":{:.1},"rows":{rows},"peak_rss_growth_mb":{:.1},"first_row":{:?}}}"#,
            median(&mut times.clone()),
            times.iter().copied().fold(f64::INFINITY, f64::min),
            peak as f64 / 1e6,
            first_row
        );
    }
    if let Some(out) = export {
        std::fs::create_dir_all(out)?;
        let exports = [
            ("audit", "SELECT pod, ts, verb, resource FROM audit"),
            (
                "metrics",
                "SELECT pod, ts, namespace, name, value FROM metrics",
            ),
            (
                "events",
                "SELECT pod, ts, namespace, reason, image FROM events",
            ),
            (
                "signals",
                "SELECT pod, ts, kind, reason, image, name, value, verb, resource FROM signals",
            ),
        ];
        for (name, sql) in exports {
            let path = out.join(format!("{name}.parquet"));
            db.query(&format!(
                "COPY ({sql}) TO '{}' STORED AS PARQUET",
                path.display()
            ))
            .await?;
        }
    }
    Ok(())
}
