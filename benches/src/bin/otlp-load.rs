//! Load generator for `vigil serve`: starts the server on a fresh store, sends pre-built
//! OTLP requests (protobuf over gRPC or HTTP, 1,000 data points or log records each) or
//! audit `EventList`s from concurrent clients, and prints throughput, request latency
//! percentiles and the server's peak RSS as one JSON line.
//!
//! `cargo run --release -p vigil-benches --bin otlp-load -- --signal metrics --transport grpc`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Buf, BufMut};
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use vigil_benches::process::{ServerProcess, peak_rss_kib, percentile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Signal {
    Metrics,
    Logs,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Grpc,
    Http,
}

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long, value_enum, default_value_t = Signal::Metrics)]
    signal: Signal,
    #[arg(long, value_enum, default_value_t = Transport::Grpc)]
    transport: Transport,
    /// Requests in all.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Records per request (data points, log records; audit events per EventList).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Distinct pods the requests come from.
    #[arg(long, default_value_t = 500)]
    pods: usize,
    /// The `vigil` binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Store directory (default: a temporary one).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Send to a server already running at this gRPC address instead of starting one.
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Requests per second over all clients (gRPC only); unpaced when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// With --step-ns: the time of request 0's points, in ns since the epoch.
    #[arg(long, default_value_t = T0)]
    start_ns: u64,
    /// Put all points of request `i` at `start_ns + i * step_ns` (as a live stream does);
    /// without it, each request's points are one second apart, spreading over days.
    #[arg(long)]
    step_ns: Option<u64>,
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

const T0: u64 = 1_714_521_600_000_000_000;

fn resource(pod: usize) -> Resource {
    Resource {
        attributes: vec![
            kv("k8s.cluster.name", "prod"),
            kv("k8s.namespace.name", &format!("ns-{}", pod % 20)),
            kv("k8s.pod.name", &format!("web-{pod}")),
            kv("k8s.node.name", &format!("node-{}", pod % 50)),
            kv("service.name", &format!("svc-{}", pod % 40)),
        ],
        ..Default::default()
    }
}

/// Request `i`: one pod, `batch` points spread over five metrics.
fn metrics_request(i: usize, cli: &Cli) -> ExportMetricsServiceRequest {
    let per_metric = cli.batch / 5;
    let metrics = (0..5)
        .map(|m| Metric {
            name: format!("container_metric_{m}"),
            unit: "1".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: (0..per_metric)
                    .map(|p| NumberDataPoint {
                        time_unix_nano: match cli.step_ns {
                            Some(step) => cli.start_ns + i as u64 * step + p as u64,
                            None => T0 + ((i * per_metric + p) as u64) * 1_000_000_000,
                        },
                        value: Some(number_data_point::Value::AsDouble((i + p) as f64 * 0.01)),
                        attributes: vec![kv("cpu", &(p % 8).to_string())],
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(i % cli.pods)),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs_request(i: usize, cli: &Cli) -> ExportLogsServiceRequest {
    let records = (0..cli.batch)
        .map(|r| LogRecord {
            time_unix_nano: T0 + ((i * cli.batch + r) as u64) * 1_000_000,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "GET /api/v1/items/{r} 200 {}ms user=u{} trace ok",
                    r % 97,
                    r % 13
                ))),
            }),
            attributes: vec![kv("http.route", "/api/v1/items/:id")],
            trace_id: vec![7; 16],
            span_id: vec![3; 8],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(i % cli.pods)),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn audit_request(i: usize, cli: &Cli) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..cli.batch)
        .map(|e| {
            let pod = (i * cli.batch + e) % cli.pods;
            serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("{i}-{e}"), "stage": "ResponseComplete",
                "requestURI": format!("/api/v1/namespaces/ns-{}/secrets", pod % 20),
                "verb": "list",
                "user": {"username": format!("system:serviceaccount:ns-{}:sa-{pod}", pod % 20),
                         "groups": ["system:serviceaccounts", "system:authenticated"],
                         "extra": {"authentication.kubernetes.io/pod-name": [format!("web-{pod}")]}},
                "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl/v1.30",
                "objectRef": {"resource": "secrets", "namespace": format!("ns-{}", pod % 20), "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 200},
                "requestReceivedTimestamp": "2024-05-01T08:00:00.000000Z",
                "stageTimestamp": format!("2024-05-01T08:{:02}:{:02}.{:06}Z", (i / 60) % 60, i % 60, e),
                "annotations": {"authorization.k8s.io/decision": "allow"}
            })
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}),
    )
    .unwrap_or_default()
}

/// Sends bytes that are already an encoded request; reads the response as bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// One HTTP/1.1 keep-alive connection.
struct Http {
    stream: BufReader<TcpStream>,
    addr: String,
}

impl Http {
    fn connect(addr: &str) -> Result<Http> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream: BufReader::new(stream),
            addr: addr.to_string(),
        })
    }

    fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> Result<u16> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .context("status line")?
            .parse()?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body)?;
        Ok(status)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let vigil = match &cli.vigil {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("vigil"),
    };
    if !vigil.exists() {
        bail!(
            "{} not found; build it (cargo build --release -p vigil-server) or pass --vigil",
            vigil.display()
        );
    }
    let tmp = tempfile::tempdir()?;
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("store"));
    let (server, grpc, http) = match &cli.grpc_addr {
        Some(grpc) => (None, grpc.clone(), String::new()),
        None => {
            let server = ServerProcess::start(&vigil, &data_dir, None)?;
            let (grpc, http) = (server.grpc.clone(), server.http.clone());
            (Some(server), grpc, http)
        }
    };
    let pid = server.as_ref().map(ServerProcess::pid);

    // Build every body first: the generator's own cost is not measured.
    let bodies: Vec<Vec<u8>> = (0..cli.requests)
        .map(|i| match cli.signal {
            Signal::Metrics => metrics_request(i, &cli).encode_to_vec(),
            Signal::Logs => logs_request(i, &cli).encode_to_vec(),
            Signal::Audit => audit_request(i, &cli),
        })
        .collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    let bodies = Arc::new(bodies);
    let rss_before = pid.map(peak_rss_kib).unwrap_or(0);

    let started = Instant::now();
    let mut latencies: Vec<Duration> = match (cli.transport, cli.signal) {
        (Transport::Http, _) | (_, Signal::Audit) => {
            let (path, ct) = match cli.signal {
                Signal::Metrics => ("/v1/metrics", "application/x-protobuf"),
                Signal::Logs => ("/v1/logs", "application/x-protobuf"),
                Signal::Audit => ("/v1/audit", "application/json"),
            };
            let workers: Vec<_> = (0..cli.concurrency)
                .map(|w| {
                    let bodies = Arc::clone(&bodies);
                    let http = http.clone();
                    let n = cli.concurrency;
                    std::thread::spawn(move || -> Result<Vec<Duration>> {
                        let mut conn = Http::connect(&http)?;
                        let mut lat = Vec::new();
                        for body in bodies.iter().skip(w).step_by(n) {
                            let t = Instant::now();
                            let status = conn.post(path, ct, body)?;
                            if status != 200 {
                                bail!("HTTP {status}");
                            }
                            lat.push(t.elapsed());
                        }
                        Ok(lat)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
            }
            all
        }
        (Transport::Grpc, signal) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))?
                    .tcp_nodelay(true)
                    .initial_connection_window_size(16 << 20)
                    .initial_stream_window_size(2 << 20)
                    .connect()
                    .await?;
                let mut tasks = Vec::new();
                let path = match signal {
                    Signal::Metrics => {
                        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
                    }
                    _ => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                };
                for w in 0..cli.concurrency {
                    let bodies = Arc::clone(&bodies);
                    let channel = channel.clone();
                    let n = cli.concurrency;
                    // Each client sends every `interval`, so that all of them together
                    // keep the requested rate.
                    let interval = cli.rate.map(|r| Duration::from_secs_f64(n as f64 / r));
                    tasks.push(tokio::spawn(async move {
                        // The pre-encoded body goes as it is, as over HTTP: the client's
                        // own protobuf encoding is not what is measured.
                        let mut grpc = tonic::client::Grpc::new(channel);
                        let mut lat = Vec::new();
                        let mut next = tokio::time::Instant::now();
                        for body in bodies.iter().skip(w).step_by(n) {
                            if let Some(interval) = interval {
                                tokio::time::sleep_until(next).await;
                                next += interval;
                            }
                            let t = Instant::now();
                            grpc.ready().await?;
                            grpc.unary(
                                tonic::Request::new(body.clone()),
                                http::uri::PathAndQuery::from_static(path),
                                RawCodec,
                            )
                            .await?;
                            lat.push(t.elapsed());
                        }
                        anyhow::Ok(lat)
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await??);
                }
                anyhow::Ok(all)
            })?
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let records = cli.requests * cli.batch;
    let result = serde_json::json!({
        "signal": format!("{:?}", cli.signal).to_lowercase(),
        "transport": format!("{:?}", cli.transport).to_lowercase(),
        "requests": cli.requests,
        "records_per_request": cli.batch,
        "concurrency": cli.concurrency,
        "seconds": elapsed,
        "records_per_s": records as f64 / elapsed,
        "mb_per_s": body_bytes as f64 / elapsed / 1e6,
        "p50_ms": percentile(&latencies, 0.5),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
        "server_peak_rss_mb": pid.map(peak_rss_kib).unwrap_or(0) as f64 / 1024.0,
        "server_rss_before_mb": rss_before as f64 / 1024.0,
    });
    println!("{result}");
    drop(server);
    Ok(())
}
