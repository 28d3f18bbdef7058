//! What one record said about one pod at one moment: the decoders produce these, the store
//! folds them into the history of the `pods` table (a new version whenever a field changes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one source said about one pod at `ts_ns`. `None` means "not said", not "empty".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodObservation {
    pub ts_ns: i64,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub pod: String,
    pub uid: Option<String>,
    pub node: Option<String>,
    pub pod_ips: Option<Vec<String>>,
    pub images: Option<Vec<String>>,
    pub image_ids: Option<Vec<String>>,
    pub service_account: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Where it came from: `otlp`, `audit` or `event`.
    pub source: String,
}

impl PodObservation {
    /// An observation that names a pod and says nothing else about it yet.
    pub fn new(ts_ns: i64, namespace: Option<&str>, pod: &str, source: &str) -> Self {
        PodObservation {
            ts_ns,
            namespace: namespace.map(str::to_string),
            pod: pod.to_string(),
            source: source.to_string(),
            ..Default::default()
        }
    }
}
