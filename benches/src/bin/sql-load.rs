//! Concurrent SQL over Flight SQL while ingest runs: starts `vigil serve` on an existing
//! store, starts `otlp-load` sending metrics at a fixed rate over gRPC, and runs many Flight
//! SQL clients, each looping over a mix of pod lookups and dashboard aggregates, for a fixed
//! time. Prints queries/s, latency percentiles per kind of query, errors, and what the
//! ingest achieved, as one JSON line.
//!
//! `cargo run --release -p vigil-benches --bin sql-load -- --data-dir STORE`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampNanosecondType};
use arrow_flight::sql::client::FlightSqlServiceClient;
use clap::Parser;
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};
use vigil_benches::process::{ServerProcess, peak_rss_kib, percentile};

#[derive(Debug, Parser)]
struct Cli {
    /// The store to serve (for example one built by `vigil-bench build`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Concurrent Flight SQL clients, one connection each.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Metric points per second sent over OTLP/gRPC meanwhile (1,000 per request); 0 for none.
    #[arg(long, default_value_t = 100_000)]
    ingest_rate: u64,
    /// Share of pod lookups in the mix (the rest are dashboard aggregates).
    #[arg(long, default_value_t = 0.8)]
    lookup_share: f64,
    /// The `vigil` binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
}

async fn connect(grpc: &str) -> Result<FlightSqlServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{grpc}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(FlightSqlServiceClient::new(channel))
}

async fn run(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<Vec<RecordBatch>> {
    let info = client.execute(sql.to_string(), None).await?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.context("no ticket")?;
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

/// What the clients query: pods that have CPU samples, and the time range of the data.
struct Workload {
    pods: Vec<String>,
    start_ns: i64,
    end_ns: i64,
}

impl Workload {
    async fn discover(client: &mut FlightSqlServiceClient<Channel>) -> Result<Workload> {
        let pods = run(
            client,
            "SELECT DISTINCT pod FROM metrics WHERE name = 'container_cpu_usage_cores' AND pod IS NOT NULL LIMIT 5000",
        )
        .await?;
        let mut names = Vec::new();
        for b in &pods {
            let c = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
            let c = c.as_string::<i32>();
            names.extend((0..c.len()).map(|i| c.value(i).to_string()));
        }
        let range = run(client, "SELECT min(ts), max(ts) FROM metrics").await?;
        let b = range
            .iter()
            .find(|b| b.num_rows() > 0)
            .context("empty store")?;
        let first = b
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .value(0);
        let last = b
            .column(1)
            .as_primitive::<TimestampNanosecondType>()
            .value(0);
        if names.is_empty() {
            bail!("the store has no container_cpu_usage_cores samples");
        }
        Ok(Workload {
            pods: names,
            start_ns: first,
            end_ns: last,
        })
    }

    /// The `i`-th query of a client: a 15-minute CPU series of one pod, or a dashboard
    /// panel (per-namespace CPU by minute over one hour).
    fn query(&self, i: u64, lookup_share: f64) -> (&'static str, String) {
        let h = splitmix(i);
        let span = (self.end_ns - self.start_ns).max(1);
        let at = self.start_ns + (h % span as u64) as i64;
        let ts = |ns: i64| format!("to_timestamp_nanos({ns})");
        if (h >> 11) as f64 / (1u64 << 53) as f64 <= lookup_share {
            let pod = &self.pods[(h >> 7) as usize % self.pods.len()];
            let from = at.min(self.end_ns - 900_000_000_000);
            (
                "pod_lookup",
                format!(
                    "SELECT ts, value FROM metrics WHERE pod = '{pod}' \
                     AND name = 'container_cpu_usage_cores' \
                     AND ts >= {} AND ts < {} ORDER BY ts",
                    ts(from),
                    ts(from + 900_000_000_000)
                ),
            )
        } else {
            let from = at.min(self.end_ns - 3_600_000_000_000);
            (
                "dashboard",
                format!(
                    "SELECT namespace, date_bin(INTERVAL '1 minute', ts) AS minute, \
                     avg(value) AS avg_cpu, max(value) AS max_cpu \
                     FROM metrics WHERE name = 'container_cpu_usage_cores' \
                     AND ts >= {} AND ts < {} GROUP BY 1, 2 ORDER BY 1, 2",
                    ts(from),
                    ts(from + 3_600_000_000_000)
                ),
            )
        }
    }
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default)]
struct Outcome {
    lookups: Vec<Duration>,
    dashboards: Vec<Duration>,
    errors: Vec<String>,
    rows: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let here = std::env::current_exe()?;
    let vigil = cli
        .vigil
        .clone()
        .unwrap_or_else(|| here.with_file_name("vigil"));
    let server = ServerProcess::start(&vigil, &cli.data_dir, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let workload = Arc::new(rt.block_on(async {
        let mut c = connect(&server.grpc).await?;
        Workload::discover(&mut c).await
    })?);

    // Ingest at a fixed rate for the whole run, from another process.
    let ingest = (cli.ingest_rate > 0)
        .then(|| {
            let requests_per_s = cli.ingest_rate as f64 / 1000.0;
            let requests = (requests_per_s * (cli.seconds as f64 + 2.0)).ceil() as u64;
            // A live stream: points from the end of the stored data on, in step with the
            // wall clock.
            let step_ns = (1e9 / requests_per_s) as u64;
            let start_ns = (workload.end_ns + 1_000_000_000).to_string();
            Command::new(here.with_file_name("otlp-load"))
                .args([
                    "--signal",
                    "metrics",
                    "--transport",
                    "grpc",
                    "--concurrency",
                    "8",
                ])
                .args(["--grpc-addr", &server.grpc])
                .args(["--rate", &requests_per_s.to_string()])
                .args(["--requests", &requests.to_string()])
                .args(["--start-ns", &start_ns])
                .args(["--step-ns", &step_ns.to_string()])
                .stdout(Stdio::piped())
                .spawn()
        })
        .transpose()?;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.seconds);
    let outcomes = rt.block_on(async {
        let mut tasks = Vec::new();
        for client in 0..cli.clients {
            let workload = Arc::clone(&workload);
            let grpc = server.grpc.clone();
            let share = cli.lookup_share;
            tasks.push(tokio::spawn(async move {
                let mut out = Outcome::default();
                let mut c = match connect(&grpc).await {
                    Ok(c) => c,
                    Err(e) => {
                        out.errors.push(e.to_string());
                        return out;
                    }
                };
                let mut i = client as u64 * 1_000_003;
                while Instant::now() < deadline {
                    let (kind, sql) = workload.query(i, share);
                    i += 1;
                    let t = Instant::now();
                    match run(&mut c, &sql).await {
                        Ok(batches) => {
                            out.rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
                            let took = t.elapsed();
                            match kind {
                                "pod_lookup" => out.lookups.push(took),
                                _ => out.dashboards.push(took),
                            }
                        }
                        Err(e) => out.errors.push(format!("{kind}: {e}")),
                    }
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await?);
        }
        anyhow::Ok(all)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let ingest_report = match ingest {
        Some(child) => {
            let out = child.wait_with_output()?;
            serde_json::from_slice::<serde_json::Value>(out.stdout.trim_ascii()).unwrap_or_else(
                |_| serde_json::json!({"failed": String::from_utf8_lossy(&out.stdout)}),
            )
        }
        None => serde_json::Value::Null,
    };
    let mut lookups: Vec<Duration> = outcomes.iter().flat_map(|o| o.lookups.clone()).collect();
    let mut dashboards: Vec<Duration> =
        outcomes.iter().flat_map(|o| o.dashboards.clone()).collect();
    let mut all: Vec<Duration> = lookups.iter().chain(&dashboards).copied().collect();
    lookups.sort();
    dashboards.sort();
    all.sort();
    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    let result = serde_json::json!({
        "bench": "sql-load",
        "clients": cli.clients,
        "seconds": elapsed,
        "queries": all.len(),
        "queries_per_s": all.len() as f64 / elapsed,
        "p50_ms": percentile(&all, 0.5),
        "p99_ms": percentile(&all, 0.99),
        "pod_lookups": lookups.len(),
        "pod_lookup_p50_ms": percentile(&lookups, 0.5),
        "pod_lookup_p99_ms": percentile(&lookups, 0.99),
        "dashboards": dashboards.len(),
        "dashboard_p50_ms": percentile(&dashboards, 0.5),
        "dashboard_p99_ms": percentile(&dashboards, 0.99),
        "rows_returned": outcomes.iter().map(|o| o.rows).sum::<usize>(),
        "errors": errors.len(),
        "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
        "ingest": ingest_report,
        "server_peak_rss_mb": peak_rss_kib(server.pid()) as f64 / 1024.0,
    });
    println!("{result}");
    Ok(())
}
