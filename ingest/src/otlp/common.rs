//! What every OTLP signal shares: attribute values, and the resource that names the pod.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Map, Value};

use crate::BatchBuilder;
use crate::PodObservation;

/// Resource attributes that become columns rather than map entries.
const CLUSTER: &str = "k8s.cluster.name";
const NAMESPACE: &str = "k8s.namespace.name";
const POD: &str = "k8s.pod.name";
const CONTAINER: &str = "k8s.container.name";
const NODE: &str = "k8s.node.name";
const IDENTITY_KEYS: [&str; 5] = [CLUSTER, NAMESPACE, POD, CONTAINER, NODE];

/// An attribute value as text: strings as they are, numbers and booleans printed, bytes as
/// hex, arrays and maps as JSON. `None` for an unset value.
pub fn any_value_text(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BytesValue(b) => hex::encode(b),
        other @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            any_value_json(Some(other)).to_string()
        }
        // An index into a profile's string table: meaningless outside profiles.
        any_value::Value::StringValueStrindex(_) => return None,
    })
}

/// An attribute value as JSON.
pub fn any_value_json(value: Option<&any_value::Value>) -> Value {
    match value {
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(
            a.values
                .iter()
                .map(|v| any_value_json(v.value.as_ref()))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes_json(&kv.values)),
    }
}

/// Key/values as a JSON object.
pub fn attributes_json(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                any_value_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect()
}

/// Key/values as text pairs; unset values are left out.
pub fn attribute_pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), any_value_text(kv.value.as_ref()?)?)))
        .collect()
}

/// The value of one attribute as text.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The most attribute text a resource may carry. Every row of the resource repeats it, so
/// without a bound a small request could expand to gigabytes of rows.
pub const MAX_RESOURCE_ATTRIBUTE_BYTES: usize = 64 * 1024;

/// The pod a resource (or a record's attributes) names, and the rest of its attributes.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
    /// Every other attribute, as text.
    pub attributes: Vec<(String, String)>,
}

impl Origin {
    pub fn from_resource(resource: Option<&Resource>) -> Origin {
        Origin::from_attributes(
            resource
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default(),
        )
    }

    /// A resource whose attributes every row may repeat: `Err` names the problem when they
    /// are over [`MAX_RESOURCE_ATTRIBUTE_BYTES`].
    pub fn check_size(&self) -> Result<(), String> {
        let bytes: usize = self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_RESOURCE_ATTRIBUTE_BYTES {
            return Err(format!(
                "resource attributes take {bytes} bytes, more than the {MAX_RESOURCE_ATTRIBUTE_BYTES} allowed"
            ));
        }
        Ok(())
    }

    /// A resource whose rows the sender may write: its size, and its namespace against the
    /// sender's.
    pub fn check(&self, namespaces: &crate::Namespaces) -> Result<(), String> {
        self.check_size()?;
        namespaces.check(self.namespace.as_deref())
    }

    pub fn from_attributes(attributes: &[KeyValue]) -> Origin {
        let text = |key| attribute(attributes, key).and_then(any_value_text);
        Origin {
            cluster: text(CLUSTER),
            namespace: text(NAMESPACE),
            pod: text(POD),
            container: text(CONTAINER),
            node: text(NODE),
            attributes: attribute_pairs(attributes)
                .into_iter()
                .filter(|(k, _)| !IDENTITY_KEYS.contains(&k.as_str()))
                .collect(),
        }
    }

    /// This origin with a record's own identity attributes (if any) taking precedence, and
    /// the record's other attributes added (a record's value wins over the resource's).
    pub fn with_record(&self, record: &[KeyValue]) -> Origin {
        let own = Origin::from_attributes(record);
        let mut attributes = self.attributes.clone();
        for (k, v) in own.attributes {
            match attributes.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => attributes.push((k, v)),
            }
        }
        Origin {
            cluster: own.cluster.or_else(|| self.cluster.clone()),
            namespace: own.namespace.or_else(|| self.namespace.clone()),
            pod: own.pod.or_else(|| self.pod.clone()),
            container: own.container.or_else(|| self.container.clone()),
            node: own.node.or_else(|| self.node.clone()),
            attributes,
        }
    }

    /// Sets the common columns (`cluster` .. `node`) and `attributes` of the current row,
    /// with `extra` attributes appended.
    pub fn set_columns(&self, rows: &mut BatchBuilder, extra: &[(&str, &str)]) {
        rows.str("cluster", self.cluster.as_deref());
        rows.str("namespace", self.namespace.as_deref());
        rows.str("pod", self.pod.as_deref());
        rows.str("container", self.container.as_deref());
        rows.str("node", self.node.as_deref());
        rows.map(
            "attributes",
            self.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(extra.iter().copied()),
        );
    }

    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// What the resource says about its pod, if it names one.
    pub fn pod_observation(&self, ts_ns: i64) -> Option<PodObservation> {
        let pod = self.pod.as_deref()?;
        let mut obs = PodObservation::new(ts_ns, self.namespace.as_deref(), pod, "otlp");
        obs.cluster = self.cluster.clone();
        obs.node = self.node.clone();
        obs.uid = self.attr("k8s.pod.uid").map(str::to_string);
        if let Some(ip) = self.attr("k8s.pod.ip") {
            obs.pod_ips = Some(vec![ip.to_string()]);
        }
        if let Some(image) = self.attr("container.image.name") {
            let tag = self
                .attr("container.image.tag")
                .map(str::to_string)
                .or_else(|| {
                    // `container.image.tags` is an array; the first tag names the image.
                    let tags: Vec<String> =
                        serde_json::from_str(self.attr("container.image.tags")?).ok()?;
                    tags.into_iter().next()
                });
            let full = match tag {
                Some(tag) if !image.contains('@') => format!("{image}:{tag}"),
                _ => image.to_string(),
            };
            obs.images = Some(vec![full]);
        }
        if let Some(id) = self.attr("container.image.repo_digests").and_then(|d| {
            serde_json::from_str::<Vec<String>>(d)
                .ok()?
                .into_iter()
                .next()
        }) {
            obs.image_ids = Some(vec![id]);
        }
        obs.service_account = self
            .attr("k8s.pod.service_account.name")
            .or_else(|| self.attr("k8s.serviceaccount.name"))
            .map(str::to_string);
        for (key, kind) in [
            ("k8s.replicaset.name", "ReplicaSet"),
            ("k8s.statefulset.name", "StatefulSet"),
            ("k8s.daemonset.name", "DaemonSet"),
            ("k8s.job.name", "Job"),
        ] {
            if let Some(name) = self.attr(key) {
                obs.owner_kind = Some(kind.to_string());
                obs.owner_name = Some(name.to_string());
                break;
            }
        }
        let labels: std::collections::BTreeMap<String, String> = self
            .attributes
            .iter()
            .filter_map(|(k, v)| {
                let key = k
                    .strip_prefix("k8s.pod.label.")
                    .or_else(|| k.strip_prefix("k8s.pod.labels."))?;
                Some((key.to_string(), v.clone()))
            })
            .collect();
        if !labels.is_empty() {
            obs.labels = Some(labels);
        }
        Some(obs)
    }
}

/// OTLP's unsigned nanoseconds as the store's signed ones; `None` when zero (unset) or beyond
/// the year 2262.
pub fn nanos(value: u64) -> Option<i64> {
    if value == 0 {
        None
    } else {
        i64::try_from(value).ok()
    }
}

/// A trace id (16 bytes) or span id (8 bytes) as lowercase hex; `Ok(None)` when empty,
/// `Err` when the length is wrong or the id is all zeros.
pub fn id_hex(bytes: &[u8], len: usize, what: &str) -> Result<Option<String>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(format!("{what} has {} bytes, expected {len}", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("{what} is all zeros"));
    }
    Ok(Some(hex::encode(bytes)))
}
