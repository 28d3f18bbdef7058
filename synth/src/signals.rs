//! The generators: per kind, an iterator of batches in time order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_model::{BatchBuilder, SignalKind};

use crate::BATCH_ROWS;
use crate::cluster::Cluster;

/// Generators set only columns of their kind, and every required one.
pub(crate) const GENERATED: &str = "generated columns fit the kind's schema";

const MINUTE: i64 = 60_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A bounded random walk: with probability `p_move` it moves by 1 to 3 `unit`s up or
    /// down, else it stays; rounded to `decimals`.
    Walk {
        unit: f64,
        p_move: f64,
        min: f64,
        max: f64,
        decimals: i32,
    },
    /// A monotonic counter growing by `mean` per scrape, give or take `spread` of it.
    Counter {
        mean: f64,
        spread: f64,
        decimals: i32,
    },
    /// Constant, with a rare small jump.
    NearConstant { jump: f64 },
}

#[derive(Debug, Clone)]
struct Series {
    pod: Option<usize>,
    node: usize,
    name: &'static str,
    metric_type: &'static str,
    unit: &'static str,
    shape: Shape,
    value: f64,
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

impl Series {
    fn advance(&mut self, rng: &mut StdRng) -> f64 {
        self.value = match self.shape {
            Shape::Walk {
                unit,
                p_move,
                min,
                max,
                decimals,
            } => {
                if rng.random_bool(p_move) {
                    let units = f64::from(rng.random_range(1..=3u8))
                        * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    round((self.value + units * unit).clamp(min, max), decimals)
                } else {
                    self.value
                }
            }
            Shape::Counter {
                mean,
                spread,
                decimals,
            } => round(
                self.value + mean * (1.0 + rng.random_range(-spread..=spread)),
                decimals,
            ),
            Shape::NearConstant { jump } => {
                if rng.random_range(0..500) == 0 {
                    self.value - jump
                } else {
                    self.value
                }
            }
        };
        self.value
    }
}

/// Metric rows: every series once per scrape interval.
pub struct Metrics<'a> {
    cluster: &'a Cluster,
    series: Vec<Series>,
    step: usize,
    next_series: usize,
    rng: StdRng,
    cols: BatchBuilder,
}

impl Cluster {
    fn pod_series(&self, i: usize, rng: &mut StdRng) -> Vec<Series> {
        let p = &self.pods[i];
        let node = self.nodes.iter().position(|n| *n == p.node).unwrap_or(0);
        vec![
            Series {
                pod: Some(i),
                node,
                name: "container_cpu_usage_cores",
                metric_type: "gauge",
                unit: "{cores}",
                shape: Shape::Walk {
                    unit: 0.01 * p.cpu_limit,
                    p_move: 0.6,
                    min: 0.0,
                    max: p.cpu_limit,
                    decimals: 3,
                },
                value: round(rng.random_range(0.05..0.4) * p.cpu_limit, 3),
            },
            Series {
                pod: Some(i),
                node,
                name: "container_memory_working_set_bytes",
                metric_type: "gauge",
                unit: "By",
                shape: Shape::Walk {
                    unit: 65_536.0,
                    p_move: 0.4,
                    min: 16.0 * 1_048_576.0,
                    max: 2048.0 * 1_048_576.0,
                    decimals: 0,
                },
                value: rng.random_range(64i64..512) as f64 * 1_048_576.0,
            },
            Series {
                pod: Some(i),
                node,
                name: "container_network_receive_bytes_total",
                metric_type: "sum",
                unit: "By",
                shape: Shape::Counter {
                    mean: 50_000.0,
                    spread: 0.2,
                    decimals: 0,
                },
                value: rng.random_range(0i64..1_000_000_000) as f64,
            },
            Series {
                pod: Some(i),
                node,
                name: "container_network_transmit_bytes_total",
                metric_type: "sum",
                unit: "By",
                shape: Shape::Counter {
                    mean: 30_000.0,
                    spread: 0.2,
                    decimals: 0,
                },
                value: rng.random_range(0i64..1_000_000_000) as f64,
            },
        ]
    }

    fn node_series(&self, node: usize, rng: &mut StdRng) -> Vec<Series> {
        let s = |name, metric_type, unit, shape, value| Series {
            pod: None,
            node,
            name,
            metric_type,
            unit,
            shape,
            value,
        };
        vec![
            s(
                "node_cpu_seconds_total",
                "sum",
                "s",
                Shape::Counter {
                    mean: 9.9,
                    spread: 0.01,
                    decimals: 2,
                },
                round(rng.random_range(1e5..1e7), 2),
            ),
            s(
                "node_memory_MemAvailable_bytes",
                "gauge",
                "By",
                Shape::Walk {
                    unit: 16.0 * 4096.0,
                    p_move: 0.4,
                    min: 1e9,
                    max: 6.4e10,
                    decimals: 0,
                },
                (rng.random_range(2_000_000i64..8_000_000) * 4096) as f64,
            ),
            s(
                "node_load1",
                "gauge",
                "1",
                Shape::Walk {
                    unit: 0.01,
                    p_move: 0.5,
                    min: 0.0,
                    max: 64.0,
                    decimals: 2,
                },
                round(rng.random_range(0.5..4.0), 2),
            ),
            s(
                "node_filesystem_avail_bytes",
                "gauge",
                "By",
                Shape::NearConstant {
                    jump: 4096.0 * 256.0,
                },
                (rng.random_range(10_000_000i64..20_000_000) * 4096) as f64,
            ),
            s(
                "node_network_receive_bytes_total",
                "sum",
                "By",
                Shape::Counter {
                    mean: 400_000.0,
                    spread: 0.1,
                    decimals: 0,
                },
                rng.random_range(1e9..1e11_f64).round(),
            ),
        ]
    }

    /// Container metrics of every pod and node-exporter metrics of every node.
    pub fn metrics(&self) -> Metrics<'_> {
        self.metric_generator(true, true)
    }

    /// Only the node-exporter-like series (counters, two-decimal random walks, near-constant
    /// gauges): the compression benchmark's data.
    pub fn node_metrics(&self) -> Metrics<'_> {
        self.metric_generator(false, true)
    }

    fn metric_generator(&self, pods: bool, nodes: bool) -> Metrics<'_> {
        let mut rng = StdRng::seed_from_u64(self.spec.seed ^ 0x6d65_7472);
        let mut series = Vec::new();
        if pods {
            for i in 0..self.pods.len() {
                series.extend(self.pod_series(i, &mut rng));
            }
        }
        if nodes {
            for n in 0..self.nodes.len() {
                series.extend(self.node_series(n, &mut rng));
            }
        }
        Metrics {
            cluster: self,
            series,
            step: 0,
            next_series: 0,
            rng,
            cols: BatchBuilder::new(SignalKind::Metric),
        }
    }

    /// Every kind's batches, by kind.
    pub fn batches(
        &self,
        kind: SignalKind,
    ) -> Box<dyn Iterator<Item = arrow::array::RecordBatch> + '_> {
        match kind {
            SignalKind::Metric => Box::new(self.metrics()),
            SignalKind::Log => Box::new(PerMinute::new(self, SignalKind::Log, fill_logs)),
            SignalKind::Span => Box::new(PerMinute::new(self, SignalKind::Span, fill_spans)),
            SignalKind::Audit => Box::new(PerMinute::new(self, SignalKind::Audit, fill_audit)),
            SignalKind::Event => Box::new(PerMinute::new(self, SignalKind::Event, fill_events)),
            // Rollups are derived by retention, never generated.
            SignalKind::Rollup => Box::new(std::iter::empty()),
        }
    }
}

impl std::fmt::Debug for Metrics<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("series", &self.series.len())
            .field("step", &self.step)
            .finish()
    }
}

impl Iterator for Metrics<'_> {
    type Item = arrow::array::RecordBatch;

    fn next(&mut self) -> Option<Self::Item> {
        let steps = self.cluster.steps();
        if self.series.is_empty() {
            return None;
        }
        while self.cols.len() < BATCH_ROWS && self.step < steps {
            let ts = self.cluster.spec.start_ns + self.step as i64 * self.cluster.interval_ns();
            let s = &mut self.series[self.next_series];
            let value = s.advance(&mut self.rng);
            let c = &mut self.cols;
            c.row(ts);
            c.str("cluster", Some(&self.cluster.spec.cluster));
            match s.pod {
                Some(p) => {
                    let pod = &self.cluster.pods[p];
                    c.str("namespace", Some(&pod.namespace));
                    c.str("pod", Some(&pod.name));
                    c.str("container", Some(&pod.container));
                }
                None => {
                    c.str("namespace", None);
                    c.str("pod", None);
                    c.str("container", None);
                }
            }
            c.str("node", Some(&self.cluster.nodes[s.node]));
            c.str("name", Some(s.name));
            c.f64("value", value);
            c.str("metric_type", Some(s.metric_type));
            c.str("unit", Some(s.unit));
            self.next_series += 1;
            if self.next_series == self.series.len() {
                self.next_series = 0;
                self.step += 1;
            }
        }
        (!self.cols.is_empty()).then(|| self.cols.finish().expect(GENERATED))
    }
}

type Fill = fn(&Cluster, i64, &mut StdRng, &mut BatchBuilder);

/// Rows generated minute by minute for every pod.
struct PerMinute<'a> {
    cluster: &'a Cluster,
    minute: i64,
    fill: Fill,
    rng: StdRng,
    cols: BatchBuilder,
}

impl<'a> PerMinute<'a> {
    fn new(cluster: &'a Cluster, kind: SignalKind, fill: Fill) -> Self {
        PerMinute {
            cluster,
            minute: 0,
            fill,
            rng: StdRng::seed_from_u64(cluster.spec.seed ^ u64::from(kind.code()) << 32),
            cols: BatchBuilder::new(kind),
        }
    }
}

impl Iterator for PerMinute<'_> {
    type Item = arrow::array::RecordBatch;

    fn next(&mut self) -> Option<Self::Item> {
        let end = self.cluster.end_ns();
        while self.cols.len() < BATCH_ROWS {
            let start = self.cluster.spec.start_ns + self.minute * MINUTE;
            if start >= end {
                break;
            }
            (self.fill)(self.cluster, start, &mut self.rng, &mut self.cols);
            self.minute += 1;
        }
        (!self.cols.is_empty()).then(|| self.cols.finish().expect(GENERATED))
    }
}

pub(crate) fn resource(c: &mut BatchBuilder, cluster: &Cluster, pod: usize) {
    let p = &cluster.pods[pod];
    c.str("cluster", Some(&cluster.spec.cluster));
    c.str("namespace", Some(&p.namespace));
    c.str("pod", Some(&p.name));
    c.str("container", Some(&p.container));
    c.str("node", Some(&p.node));
}

fn hex(rng: &mut StdRng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

fn fill_logs(cluster: &Cluster, minute: i64, rng: &mut StdRng, c: &mut BatchBuilder) {
    const LINES: &[(&str, i32, &str)] = &[
        ("INFO", 9, "request completed status=200 duration_ms=12"),
        ("INFO", 9, "GET /healthz 200"),
        ("DEBUG", 5, "cache hit ratio=0.93"),
        ("WARN", 13, "slow upstream response duration_ms=950"),
        (
            "ERROR",
            17,
            "upstream connect error or disconnect/reset before headers",
        ),
    ];
    for pod in 0..cluster.pods.len() {
        for _ in 0..cluster.spec.logs_per_pod_minute {
            let pick = if rng.random_range(0..20) == 0 {
                rng.random_range(3..5)
            } else {
                rng.random_range(0..3)
            };
            let (severity, number, body) = LINES[pick];
            c.row(minute + rng.random_range(0..MINUTE));
            resource(c, cluster, pod);
            c.str("severity", Some(severity));
            c.i32("severity_number", number);
            c.str("body", Some(body));
            c.str("trace_id", Some(&hex(rng, 32)));
            c.str("span_id", Some(&hex(rng, 16)));
        }
    }
}

fn fill_spans(cluster: &Cluster, minute: i64, rng: &mut StdRng, c: &mut BatchBuilder) {
    let n = cluster.pods.len();
    for pod in 0..n {
        for _ in 0..cluster.spec.requests_per_pod_minute {
            let trace = hex(rng, 32);
            let server = hex(rng, 16);
            let ts = minute + rng.random_range(0..MINUTE);
            let duration = rng.random_range(1_000_000..80_000_000);
            c.row(ts);
            resource(c, cluster, pod);
            c.str("trace_id", Some(&trace));
            c.str("span_id", Some(&server));
            c.str("name", Some("GET /api"));
            c.str("span_kind", Some("server"));
            c.i64("duration_ns", duration);
            c.str("status_code", Some("ok"));
            // The server calls a service of its own namespace (east-west traffic).
            let ns = &cluster.pods[pod].namespace;
            let peer = (0..8)
                .map(|_| rng.random_range(0..n))
                .find(|&q| q != pod && cluster.pods[q].namespace == *ns);
            if let Some(q) = peer {
                c.row(ts + 100_000);
                resource(c, cluster, pod);
                c.str("trace_id", Some(&trace));
                c.str("span_id", Some(&hex(rng, 16)));
                c.str("parent_span_id", Some(&server));
                c.str("name", Some("GET /internal"));
                c.str("span_kind", Some("client"));
                c.i64("duration_ns", duration / 2);
                c.str("status_code", Some("ok"));
                c.str(
                    "peer",
                    Some(&format!(
                        "{}.{}.svc:8080",
                        cluster.pods[q].deployment, cluster.pods[q].namespace
                    )),
                );
            }
        }
    }
}

fn fill_audit(cluster: &Cluster, minute: i64, rng: &mut StdRng, c: &mut BatchBuilder) {
    // `audit_per_pod_hour` calls an hour: every minute, `rate / 60` calls for sure and one
    // more with probability `(rate % 60) / 60` (one draw per pod and minute, as below 60).
    let (whole, part) = (
        cluster.spec.audit_per_pod_hour / 60,
        cluster.spec.audit_per_pod_hour % 60,
    );
    for pod in 0..cluster.pods.len() {
        let calls = whole + usize::from(rng.random_range(0..60) < part);
        for _ in 0..calls {
            audit_call(cluster, pod, minute, rng, c);
        }
    }
    // A human administrator, now and then, without a pod.
    if rng.random_range(0..10) == 0 {
        c.row(minute + rng.random_range(0..MINUTE));
        c.str("cluster", Some(&cluster.spec.cluster));
        c.str("audit_id", Some(&hex(rng, 32)));
        c.str("stage", Some("ResponseComplete"));
        c.str("level", Some("Metadata"));
        c.str("verb", Some("get"));
        c.str("resource", Some("pods"));
        c.str("user", Some("alice@corp.example"));
        c.list("groups", &["platform-admins", "system:authenticated"]);
        c.list("source_ips", &["192.0.2.10"]);
        c.str("user_agent", Some("kubectl/v1.30.2"));
        c.i32("response_code", 200);
        c.str("decision", Some("allow"));
    }
}

/// One API call of a pod's service account within `minute`.
fn audit_call(cluster: &Cluster, pod: usize, minute: i64, rng: &mut StdRng, c: &mut BatchBuilder) {
    const CALLS: &[(&str, &str)] = &[
        ("get", "configmaps"),
        ("list", "pods"),
        ("watch", "endpoints"),
        ("get", "leases"),
        ("update", "leases"),
    ];
    let p = &cluster.pods[pod];
    let (verb, resource_name) = CALLS[rng.random_range(0..CALLS.len())];
    c.row(minute + rng.random_range(0..MINUTE));
    resource(c, cluster, pod);
    c.str("audit_id", Some(&hex(rng, 32)));
    c.str("stage", Some("ResponseComplete"));
    c.str("level", Some("Metadata"));
    c.str("verb", Some(verb));
    c.str("resource", Some(resource_name));
    c.str("object_namespace", Some(&p.namespace));
    c.str("user", Some(&p.service_account));
    c.list(
        "groups",
        &["system:serviceaccounts", "system:authenticated"],
    );
    c.list("source_ips", &["10.0.0.1"]);
    c.str("user_agent", Some("Go-http-client/2.0"));
    c.i32("response_code", 200);
    c.str("decision", Some("allow"));
}

fn fill_events(cluster: &Cluster, minute: i64, rng: &mut StdRng, c: &mut BatchBuilder) {
    // Every pod starts during the first minutes; later, an occasional probe failure.
    let first = minute == cluster.spec.start_ns;
    for pod in 0..cluster.pods.len() {
        let p = &cluster.pods[pod];
        if first {
            let t = minute + rng.random_range(0..MINUTE / 2);
            let steps: [(&str, &str, Option<&str>); 5] = [
                ("Scheduled", "Successfully assigned pod", None),
                ("Pulling", "Pulling image", None),
                (
                    "Pulled",
                    "Successfully pulled image",
                    Some(p.image.as_str()),
                ),
                ("Created", "Created container", None),
                ("Started", "Started container", None),
            ];
            for (k, (reason, message, image)) in steps.iter().enumerate() {
                c.row(t + k as i64 * 1_000_000_000);
                resource(c, cluster, pod);
                c.str("reason", Some(reason));
                c.str("event_type", Some("Normal"));
                c.str("message", Some(message));
                c.str("object_kind", Some("Pod"));
                c.str("object_name", Some(&p.name));
                c.str("image", *image);
                c.i32("event_count", 1);
                c.str(
                    "source_component",
                    Some(if k == 0 {
                        "default-scheduler"
                    } else {
                        "kubelet"
                    }),
                );
            }
        } else if rng.random_range(0..2_000) == 0 {
            c.row(minute + rng.random_range(0..MINUTE));
            resource(c, cluster, pod);
            c.str("reason", Some("Unhealthy"));
            c.str("event_type", Some("Warning"));
            c.str(
                "message",
                Some("Readiness probe failed: HTTP probe failed with statuscode: 503"),
            );
            c.str("object_kind", Some("Pod"));
            c.str("object_name", Some(&p.name));
            c.str("image", None);
            c.i32("event_count", 1);
            c.str("source_component", Some("kubelet"));
        }
    }
}
