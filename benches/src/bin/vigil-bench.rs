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
use vigil_benches::{dir_bytes, ingest_concurrently, median, metric_batches, segment_bytes};
use vigil_synth::{Cluster, ClusterSpec};

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
        Command::Compression {
            dir,
            nodes,
            hours,
            export,
        } => compression(&dir, nodes, hours, export.as_deref()),
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
    let segments = db.store().version().segments.len();
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
