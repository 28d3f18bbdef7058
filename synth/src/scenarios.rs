//! The brief's three seed attacks and their decoys, injected into the synthetic cluster.
//!
//! Every scenario happens after the first third of the telemetry (the baseline) and is
//! recorded with its ground truth, so a detection can be checked against it. Decoys look
//! like attacks in one respect only: a CPU spike without a pull, a pull from the trusted
//! registry followed by heavy CPU, an untrusted pull that never runs hot, a one-off call to
//! a new namespace, and a human administrator making the sensitive API calls.

use arrow::array::RecordBatch;
use vigil_model::{BatchBuilder, SignalKind};

use crate::cluster::Cluster;
use crate::signals::resource;

/// Which seed attack a scenario is (or imitates, for a decoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attack {
    /// An untrusted image pull followed by CPU pinned near the limit.
    CryptoMiner,
    /// New east-west traffic between namespaces, beaconing periodically.
    CommandAndControl,
    /// A service account calling sensitive APIs it never called before.
    LateralMovement,
}

impl std::fmt::Display for Attack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attack::CryptoMiner => "crypto-miner",
            Attack::CommandAndControl => "command and control",
            Attack::LateralMovement => "lateral movement",
        })
    }
}

/// One injected scenario and its ground truth.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub attack: Attack,
    /// True for a decoy: a detection must not report it.
    pub decoy: bool,
    pub namespace: String,
    pub pod: String,
    /// The service account (for lateral movement) or user (for a human decoy).
    pub user: String,
    /// When it starts, nanoseconds since the epoch.
    pub at_ns: i64,
    pub what: String,
}

/// The scenarios and the rows they add.
#[derive(Debug)]
pub struct Injected {
    pub scenarios: Vec<Scenario>,
    pub batches: Vec<(SignalKind, RecordBatch)>,
    /// End of the baseline: nothing unusual happens before it.
    pub baseline_end_ns: i64,
}

/// The untrusted image the miner pulls.
pub const MINER_IMAGE: &str = "docker.io/xmrig/xmrig:6.21.0";
/// The registry whose images are trusted.
pub const TRUSTED_REGISTRY: &str = "registry.corp.example/";

const MINUTE: i64 = 60_000_000_000;

impl Cluster {
    /// Injects the seed scenarios and decoys; needs at least 12 pods and 90 minutes.
    pub fn scenarios(&self) -> Injected {
        let start = self.spec.start_ns;
        let end = self.end_ns();
        let baseline_end = start + (end - start) / 3;
        let t0 = baseline_end + (end - start) / 12;
        let hot_until = (t0 + 40 * MINUTE).min(end);
        let mut out = Builder {
            cluster: self,
            events: BatchBuilder::new(SignalKind::Event),
            metrics: BatchBuilder::new(SignalKind::Metric),
            audit: BatchBuilder::new(SignalKind::Audit),
            spans: BatchBuilder::new(SignalKind::Span),
            scenarios: vec![],
        };
        let mut used = vec![];
        let big = |p: &crate::PodInfo| p.cpu_limit >= 1.0;
        let small = |p: &crate::PodInfo| p.cpu_limit < 1.0;

        // 1. Crypto-miner: untrusted pull, CPU pinned for 40 minutes, then it reads secrets.
        let miner = self.pick(&mut used, big);
        out.pull(miner, t0, MINER_IMAGE);
        out.hot(miner, t0 + MINUTE, hot_until);
        out.call(miner, t0 + 20 * MINUTE, "list", "secrets", None);
        out.record(
            Attack::CryptoMiner,
            false,
            miner,
            t0,
            format!("pulled {MINER_IMAGE}, CPU pinned for 40 minutes, listed secrets"),
        );
        // Its service account never read secrets before: lateral movement too.
        out.record(
            Attack::LateralMovement,
            false,
            miner,
            t0 + 20 * MINUTE,
            "the miner's service account lists secrets".into(),
        );
        // Decoys: a spike without a pull; a trusted pull then heavy CPU; an untrusted pull
        // that stays cool.
        let spike = self.pick(&mut used, big);
        out.hot(spike, t0 + MINUTE, hot_until);
        out.record(
            Attack::CryptoMiner,
            true,
            spike,
            t0,
            "CPU spike without an image pull".into(),
        );
        let trusted = self.pick(&mut used, big);
        let trusted_image = format!("{TRUSTED_REGISTRY}data/batch-job:2.0.0");
        out.pull(trusted, t0, &trusted_image);
        out.hot(trusted, t0 + MINUTE, hot_until);
        out.record(
            Attack::CryptoMiner,
            true,
            trusted,
            t0,
            format!("pulled {trusted_image} (trusted), then heavy CPU"),
        );
        let cool = self.pick(&mut used, small);
        out.pull(cool, t0, "docker.io/library/busybox:1.36");
        out.record(
            Attack::CryptoMiner,
            true,
            cool,
            t0,
            "pulled docker.io/library/busybox:1.36, CPU stays low".into(),
        );

        // 2. Command and control: a shop pod beacons to a payments service every minute.
        let beacon = self.pick(&mut used, |p| p.namespace == "shop");
        let mut t = t0;
        while t < end {
            out.client_span(beacon, t, "POST /sync", "ledger.payments.svc:8080");
            t += MINUTE;
        }
        out.record(
            Attack::CommandAndControl,
            false,
            beacon,
            t0,
            "new traffic shop -> payments, beaconing every 60 s".into(),
        );
        // Decoy: three irregular calls from monitoring to data (a new pair, no beaconing).
        let oneoff = self.pick(&mut used, |p| p.namespace == "monitoring");
        for offset in [0, 7, 31] {
            out.client_span(
                oneoff,
                t0 + offset * MINUTE + 13_000_000_000,
                "GET /metrics",
                "kafka.data.svc:9308",
            );
        }
        out.record(
            Attack::CommandAndControl,
            true,
            oneoff,
            t0,
            "three irregular calls monitoring -> data".into(),
        );

        // 3. Lateral movement: a service account reads secrets, execs into a pod and binds a
        // cluster role; a human administrator doing the same is a decoy.
        let mover = self.pick(&mut used, |p| p.namespace == "shop");
        for (k, (verb, resource)) in [
            ("list", "secrets"),
            ("create", "pods/exec"),
            ("create", "clusterrolebindings"),
        ]
        .into_iter()
        .enumerate()
        {
            out.call(mover, t0 + (5 + k as i64) * MINUTE, verb, resource, None);
        }
        out.record(
            Attack::LateralMovement,
            false,
            mover,
            t0 + 5 * MINUTE,
            "service account lists secrets, execs into a pod, binds a cluster role".into(),
        );
        for (k, (verb, resource)) in [("list", "secrets"), ("create", "clusterrolebindings")]
            .into_iter()
            .enumerate()
        {
            out.call(
                mover,
                t0 + (9 + k as i64) * MINUTE,
                verb,
                resource,
                Some("alice@corp.example"),
            );
        }
        let mut admin = out.scenario(
            Attack::LateralMovement,
            true,
            mover,
            t0 + 9 * MINUTE,
            "a human administrator makes the same calls".into(),
        );
        admin.user = "alice@corp.example".into();
        admin.pod = String::new();
        admin.namespace = String::new();
        out.scenarios.push(admin);

        out.finish(baseline_end)
    }

    /// A pod matching `want` that no other scenario uses (any unused pod if none matches),
    /// starting a third into the cluster so scenarios spread over it.
    fn pick(&self, used: &mut Vec<usize>, want: impl Fn(&crate::PodInfo) -> bool) -> usize {
        let n = self.pods.len();
        let order = (0..n).map(|i| (i + n / 3 + used.len() * 7) % n);
        let chosen = order
            .clone()
            .find(|&i| !used.contains(&i) && want(&self.pods[i]))
            .or_else(|| order.clone().find(|i| !used.contains(i)))
            .unwrap_or(0);
        used.push(chosen);
        chosen
    }
}

struct Builder<'a> {
    cluster: &'a Cluster,
    events: BatchBuilder,
    metrics: BatchBuilder,
    audit: BatchBuilder,
    spans: BatchBuilder,
    scenarios: Vec<Scenario>,
}

impl Builder<'_> {
    fn scenario(
        &self,
        attack: Attack,
        decoy: bool,
        pod: usize,
        at_ns: i64,
        what: String,
    ) -> Scenario {
        let p = &self.cluster.pods[pod];
        Scenario {
            attack,
            decoy,
            namespace: p.namespace.clone(),
            pod: p.name.clone(),
            user: p.service_account.clone(),
            at_ns,
            what,
        }
    }

    fn record(&mut self, attack: Attack, decoy: bool, pod: usize, at_ns: i64, what: String) {
        let s = self.scenario(attack, decoy, pod, at_ns, what);
        self.scenarios.push(s);
    }

    fn pull(&mut self, pod: usize, at: i64, image: &str) {
        let c = &mut self.events;
        for (k, (reason, message, image)) in [
            ("Pulling", format!("Pulling image \"{image}\""), None),
            (
                "Pulled",
                format!("Successfully pulled image \"{image}\""),
                Some(image),
            ),
            ("Created", "Created container".to_string(), None),
            ("Started", "Started container".to_string(), None),
        ]
        .into_iter()
        .enumerate()
        {
            c.row(at + k as i64 * 1_000_000_000);
            resource(c, self.cluster, pod);
            c.str("reason", Some(reason));
            c.str("event_type", Some("Normal"));
            c.str("message", Some(&message));
            c.str("object_kind", Some("Pod"));
            c.str("object_name", Some(&self.cluster.pods[pod].name));
            c.str("image", image);
            c.i32("event_count", 1);
            c.str("source_component", Some("kubelet"));
        }
    }

    /// CPU samples near the pod's limit (and above 0.95 cores) every scrape interval.
    fn hot(&mut self, pod: usize, from: i64, until: i64) {
        let limit = self.cluster.pods[pod].cpu_limit;
        let step = self.cluster.interval_ns();
        let mut t = from;
        let mut k = 0u32;
        while t < until {
            let value = (limit * (0.97 + 0.01 * f64::from(k % 3))).max(0.96);
            let c = &mut self.metrics;
            c.row(t);
            resource(c, self.cluster, pod);
            c.str("name", Some("container_cpu_usage_cores"));
            c.f64("value", (value * 1000.0).round() / 1000.0);
            c.str("metric_type", Some("gauge"));
            c.str("unit", Some("{cpu}"));
            t += step;
            k += 1;
        }
    }

    fn call(&mut self, pod: usize, at: i64, verb: &str, resource_name: &str, human: Option<&str>) {
        let p = &self.cluster.pods[pod];
        let c = &mut self.audit;
        c.row(at);
        match human {
            // A human's request carries no pod.
            Some(_) => c.str("cluster", Some(&self.cluster.spec.cluster)),
            None => resource(c, self.cluster, pod),
        }
        c.str("audit_id", Some(&format!("{at:x}{pod:08x}")));
        c.str("stage", Some("ResponseComplete"));
        c.str("level", Some("Metadata"));
        c.str("verb", Some(verb));
        c.str("resource", Some(resource_name));
        c.str("object_namespace", Some(&p.namespace));
        match human {
            Some(user) => {
                c.str("user", Some(user));
                c.list("groups", &["platform-admins", "system:authenticated"]);
                c.list("source_ips", &["192.0.2.10"]);
                c.str("user_agent", Some("kubectl/v1.30.2"));
            }
            None => {
                c.str("user", Some(&p.service_account));
                c.list(
                    "groups",
                    &["system:serviceaccounts", "system:authenticated"],
                );
                c.list("source_ips", &["10.0.0.1"]);
                c.str("user_agent", Some("kubectl/v1.30.2"));
            }
        }
        c.i32("response_code", 200);
        c.str("decision", Some("allow"));
    }

    fn client_span(&mut self, pod: usize, at: i64, name: &str, peer: &str) {
        let c = &mut self.spans;
        c.row(at);
        resource(c, self.cluster, pod);
        c.str("trace_id", Some(&format!("{at:032x}")));
        c.str("span_id", Some(&format!("{:016x}", at ^ pod as i64)));
        c.str("name", Some(name));
        c.str("span_kind", Some("client"));
        c.i64("duration_ns", 3_000_000);
        c.str("status_code", Some("ok"));
        c.str("peer", Some(peer));
    }

    fn finish(mut self, baseline_end_ns: i64) -> Injected {
        let mut batches = vec![];
        for (kind, cols) in [
            (SignalKind::Event, &mut self.events),
            (SignalKind::Metric, &mut self.metrics),
            (SignalKind::Audit, &mut self.audit),
            (SignalKind::Span, &mut self.spans),
        ] {
            if !cols.is_empty() {
                batches.push((kind, cols.finish().expect(crate::signals::GENERATED)));
            }
        }
        Injected {
            scenarios: self.scenarios,
            batches,
            baseline_end_ns,
        }
    }
}
