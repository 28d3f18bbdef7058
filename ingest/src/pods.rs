//! Observations of pods read from Kubernetes `Pod` objects. The store folds observations
//! ([`PodObservation`]) into the `pods` table's history (a new version whenever a known field
//! changes).

use serde_json::Value;
use vigil_model::PodObservation;

/// Reads what a Kubernetes `Pod` object (as JSON, from an audit `responseObject` or
/// `requestObject`) says: spec, status and metadata. Returns `None` if it is not a pod or
/// has no name.
pub fn from_pod_object(ts_ns: i64, object: &Value, source: &str) -> Option<PodObservation> {
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

fn str_at(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
