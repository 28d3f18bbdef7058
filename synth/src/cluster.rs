//! The shape of the synthetic cluster: nodes, namespaces, deployments and pods.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub cluster: String,
    pub pods: usize,
    /// Nodes; 0 means one per 30 pods.
    pub nodes: usize,
    /// Start of the telemetry, nanoseconds since the epoch.
    pub start_ns: i64,
    pub duration: Duration,
    pub scrape_interval: Duration,
    /// Audit events per pod per hour (service-account API calls).
    pub audit_per_pod_hour: usize,
    /// Log lines per pod per minute.
    pub logs_per_pod_minute: usize,
    /// Requests (a server span and a client span) per pod per minute.
    pub requests_per_pod_minute: usize,
    pub seed: u64,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            cluster: "prod-eu1".into(),
            pods: 200,
            nodes: 0,
            // 2024-05-01T00:00:00Z
            start_ns: 1_714_521_600_000_000_000,
            duration: Duration::from_secs(3600),
            scrape_interval: Duration::from_secs(10),
            audit_per_pod_hour: 12,
            logs_per_pod_minute: 2,
            requests_per_pod_minute: 1,
            seed: 42,
        }
    }
}

/// One pod of the cluster.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub deployment: String,
    pub container: String,
    pub node: String,
    pub image: String,
    pub service_account: String,
    /// CPU limit in cores.
    pub cpu_limit: f64,
}

/// The generated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub spec: ClusterSpec,
    pub nodes: Vec<String>,
    pub pods: Vec<PodInfo>,
}

const NAMESPACES: &[(&str, &[&str])] = &[
    (
        "shop",
        &["frontend", "cart", "checkout", "catalog", "search"],
    ),
    ("payments", &["ledger", "gateway", "fraud-check"]),
    ("data", &["kafka", "postgres", "etl-worker"]),
    ("monitoring", &["prometheus", "grafana", "otel-collector"]),
    ("kube-system", &["coredns", "kube-proxy", "metrics-server"]),
    ("platform", &["ingress-nginx", "cert-manager", "argocd"]),
];

impl Cluster {
    pub fn new(spec: ClusterSpec) -> Cluster {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let node_count = if spec.nodes == 0 {
            spec.pods.div_ceil(30).max(1)
        } else {
            spec.nodes
        };
        let nodes: Vec<String> = (0..node_count)
            .map(|i| format!("ip-10-0-{}-{}.internal", i / 250, i % 250))
            .collect();
        let deployments: Vec<(&str, &str)> = NAMESPACES
            .iter()
            .flat_map(|(ns, deps)| deps.iter().map(move |d| (*ns, *d)))
            .collect();
        let mut pods = Vec::with_capacity(spec.pods);
        for i in 0..spec.pods {
            let (ns, dep) = deployments[i % deployments.len()];
            let replica_set: u32 = rng.random_range(0x10000..0xfffff);
            let suffix: String = (0..5)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect();
            pods.push(PodInfo {
                namespace: ns.to_string(),
                name: format!("{dep}-{replica_set:x}-{suffix}"),
                deployment: dep.to_string(),
                container: dep.to_string(),
                node: nodes[rng.random_range(0..nodes.len())].clone(),
                image: format!(
                    "registry.corp.example/{ns}/{dep}:1.{}.{}",
                    rng.random_range(0..20),
                    rng.random_range(0..10)
                ),
                service_account: format!("system:serviceaccount:{ns}:{dep}"),
                cpu_limit: [0.5, 1.0, 2.0][rng.random_range(0..3)],
            });
        }
        Cluster { spec, nodes, pods }
    }

    pub(crate) fn end_ns(&self) -> i64 {
        self.spec
            .start_ns
            .saturating_add(vigil_model::time::nanos(self.spec.duration))
    }

    pub(crate) fn interval_ns(&self) -> i64 {
        vigil_model::time::nanos(self.spec.scrape_interval).max(1)
    }

    pub(crate) fn steps(&self) -> usize {
        ((self.end_ns() - self.spec.start_ns) / self.interval_ns()).max(0) as usize
    }
}
