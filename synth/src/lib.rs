//! `vigil-synth`: a seeded synthetic Kubernetes cluster and its telemetry, as Arrow batches
//! in vigil's schemas. The same seed always gives the same rows.
//!
//! The cluster has nodes, namespaces and pods (deployments with replicas); its telemetry is
//! what a platform team collects: container and node-exporter-like metrics every scrape
//! interval (random-walk gauges with two decimals, monotonic counters, near-constant
//! gauges), log lines, server and client spans, audit events of service accounts and
//! humans, and the Kubernetes events of every pod's start (including `Pulled` with the
//! image). [`Cluster::scenarios`] adds the brief's seed attacks and their decoys, with the
//! ground truth. Batches come in time order, at most [`BATCH_ROWS`] rows each.

mod cluster;
mod scenarios;
mod signals;

pub use cluster::{Cluster, ClusterSpec, PodInfo};
pub use scenarios::{Attack, Injected, MINER_IMAGE, Scenario, TRUSTED_REGISTRY};

/// Rows per generated batch.
pub const BATCH_ROWS: usize = 8192;
