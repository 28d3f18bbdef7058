//! Kubernetes `Event` objects to `event` rows.
//!
//! They arrive as OTLP log records from the OpenTelemetry Collector: the `k8s_events`
//! receiver puts the reason, count and involved object in attributes and the message in the
//! body; the `k8sobjects` receiver sends the object itself as the body (wrapped in a watch
//! event `{"type": "ADDED", "object": {...}}` in watch mode). Both `v1` and
//! `events.k8s.io/v1` objects are understood.

use serde_json::Value;

use crate::BatchBuilder;
use crate::PodObservation;

/// The fields of one Kubernetes event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K8sEvent {
    /// When it last happened, if the event says (nanoseconds).
    pub ts_ns: Option<i64>,
    pub reason: String,
    pub event_type: Option<String>,
    pub message: Option<String>,
    pub object_kind: Option<String>,
    pub object_name: Option<String>,
    pub object_namespace: Option<String>,
    /// The container, from the involved object's `fieldPath` (`spec.containers{app}`).
    pub container: Option<String>,
    pub count: Option<i32>,
    pub source_component: Option<String>,
    pub source_host: Option<String>,
}

impl K8sEvent {
    /// Reads an `Event` object, or a watch event wrapping one; `None` if it is not an event.
    pub fn from_object(value: &Value) -> Option<K8sEvent> {
        let object = match value.get("object") {
            Some(inner) if value.get("type").is_some() => inner,
            _ => value,
        };
        if object.get("kind").and_then(Value::as_str) != Some("Event") {
            return None;
        }
        let reason = text(object, "reason")?;
        let involved = object
            .get("involvedObject")
            .or_else(|| object.get("regarding"));
        let field_path = involved.and_then(|o| text(o, "fieldPath"));
        let source = object.get("source");
        let ts = ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .filter_map(|k| text(object, k))
            .find_map(|t| parse_time(&t))
            .or_else(|| {
                object
                    .get("series")
                    .and_then(|s| text(s, "lastObservedTime"))
                    .and_then(|t| parse_time(&t))
            });
        let count = object
            .get("count")
            .and_then(Value::as_i64)
            .or_else(|| {
                object
                    .get("series")
                    .and_then(|s| s.get("count"))
                    .and_then(Value::as_i64)
            })
            .and_then(|c| i32::try_from(c).ok());
        Some(K8sEvent {
            ts_ns: ts,
            reason,
            event_type: text(object, "type"),
            message: text(object, "message").or_else(|| text(object, "note")),
            object_kind: involved.and_then(|o| text(o, "kind")),
            object_name: involved.and_then(|o| text(o, "name")),
            object_namespace: involved
                .and_then(|o| text(o, "namespace"))
                .or_else(|| object.get("metadata").and_then(|m| text(m, "namespace"))),
            container: field_path.as_deref().and_then(container_of),
            count,
            source_component: source
                .and_then(|s| text(s, "component"))
                .or_else(|| text(object, "reportingController"))
                .or_else(|| text(object, "reportingComponent")),
            source_host: source.and_then(|s| text(s, "host")),
        })
    }

    /// The image an image event (`Pulling`, `Pulled`, ...) names in its message.
    pub fn image(&self) -> Option<&str> {
        let message = self.message.as_deref()?;
        let start = message.find("image \"")? + "image \"".len();
        let len = message[start..].find('"')?;
        Some(&message[start..start + len])
    }

    /// The pod the event is about, if it is about a pod.
    pub fn pod(&self) -> Option<&str> {
        match self.object_kind.as_deref() {
            Some("Pod") => self.object_name.as_deref(),
            _ => None,
        }
    }

    /// Appends the event's columns to the current row (the caller has set the common ones).
    pub fn set_columns(&self, rows: &mut BatchBuilder) {
        rows.str("reason", Some(&self.reason));
        rows.str("event_type", self.event_type.as_deref());
        rows.str("message", self.message.as_deref());
        rows.str("object_kind", self.object_kind.as_deref());
        rows.str("object_name", self.object_name.as_deref());
        rows.str("image", self.image());
        rows.i32("event_count", self.count);
        rows.str("source_component", self.source_component.as_deref());
    }

    /// What the event says about its pod: `Scheduled` names the node.
    pub fn pod_observation(&self, ts_ns: i64) -> Option<PodObservation> {
        let pod = self.pod()?;
        if self.reason != "Scheduled" {
            return None;
        }
        // "Successfully assigned shop/web-1 to node-3"
        let node = self.message.as_deref()?.rsplit_once(" to ")?.1.trim();
        let mut obs = PodObservation::new(ts_ns, self.object_namespace.as_deref(), pod, "event");
        obs.node = Some(node.to_string());
        Some(obs)
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `spec.containers{app}` -> `app`.
pub(crate) fn container_of(field_path: &str) -> Option<String> {
    let start = field_path.find('{')? + 1;
    let end = field_path[start..].find('}')? + start;
    Some(field_path[start..end].to_string())
}

/// An RFC 3339 time as nanoseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    vigil_model::time::parse_rfc3339(text).ok()
}
