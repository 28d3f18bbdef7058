//! Observations of pods: what one record said about a pod at one moment. The store folds
//! them into the `pods` table's history (a new version whenever a known field changes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub fn new(ts_ns: i64, namespace: Option<&str>, pod: &str, source: &str) -> Self {
        PodObservation {
            ts_ns,
            namespace: namespace.map(str::to_string),
            pod: pod.to_string(),
            source: source.to_string(),
            ..Default::default()
        }
    }

    /// Reads what a Kubernetes `Pod` object (as JSON, from an audit `responseObject` or
    /// `requestObject`) says: spec, status and metadata. Returns `None` if it is not a pod or
    /// has no name.
    pub fn from_pod_object(ts_ns: i64, object: &Value, source: &str) -> Option<Self> {
        if object.get("kind").and_then(Value::as_str) != Some("Pod") {
            return None;
        }
        let meta = object.get("metadata")?;
        let name = meta.get("name").and_then(Value::as_str)?;
        let namespace = meta.get("namespace").and_then(Value::as_str);
        let mut obs = PodObservation::new(ts_ns, namespace, name, source);
        obs.uid = str_at(meta, "uid");
        if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
            obs.labels = Some(
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect(),
            );
        }
        if let Some(owner) = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|owners| {
                owners
                    .iter()
                    .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
                    .or_else(|| owners.first())
            })
        {
            obs.owner_kind = str_at(owner, "kind");
            obs.owner_name = str_at(owner, "name");
        }
        if let Some(spec) = object.get("spec") {
            obs.node = str_at(spec, "nodeName");
            obs.service_account =
                str_at(spec, "serviceAccountName").or_else(|| str_at(spec, "serviceAccount"));
            let images: Vec<String> = ["initContainers", "containers"]
                .iter()
                .filter_map(|k| spec.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(|c| str_at(c, "image"))
                .collect();
            if !images.is_empty() {
                obs.images = Some(images);
            }
        }
        if let Some(status) = object.get("status") {
            let mut ips: Vec<String> = status
                .get("podIPs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|ip| str_at(ip, "ip")).collect())
                .unwrap_or_default();
            if ips.is_empty()
                && let Some(ip) = str_at(status, "podIP")
            {
                ips.push(ip);
            }
            if !ips.is_empty() {
                obs.pod_ips = Some(ips);
            }
            let ids: Vec<String> = ["initContainerStatuses", "containerStatuses"]
                .iter()
                .filter_map(|k| status.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(|c| str_at(c, "imageID"))
                .filter(|id| !id.is_empty())
                .collect();
            if !ids.is_empty() {
                obs.image_ids = Some(ids);
            }
        }
        Some(obs)
    }
}

fn str_at(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
