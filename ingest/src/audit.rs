//! Kubernetes audit events (`audit.k8s.io/v1`, also `v1beta1` and events without an
//! `apiVersion`) to `audit` rows.
//!
//! The pod of a row is the caller's when a pod's service account token made the call
//! (`user.extra["authentication.kubernetes.io/pod-name"]`), else the pod acted on when the
//! object is a pod. Pod objects in `requestObject`/`responseObject` (Request and
//! RequestResponse levels) and callers' service accounts feed the `pods` table.

use serde_json::Value;

use crate::PodObservation;
use crate::{BatchBuilder, Decoded, IngestError, Namespaces, Result, SignalKind};

const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
const DECISION: &str = "authorization.k8s.io/decision";

/// Decodes what the API server's webhook backend sends: an `EventList`, or one `Event`.
/// Azure's diagnostic-log envelope (`{"records": [{"properties": {"log": ...}}]}`) is
/// unwrapped too.
///
/// A body that is not JSON, or has no usable event, is an error; in a list, bad items are
/// rejected one by one and the good ones kept, as are events of namespaces outside
/// `namespaces` (an event's namespace is its row's, else its object's).
pub fn decode_webhook(body: &[u8], namespaces: &Namespaces) -> Result<Decoded> {
    let value: Value = serde_json::from_slice(strip_bom(body)).map_err(|e| IngestError::Audit {
        at: String::new(),
        detail: format!("body is not JSON: {e}"),
    })?;
    let mut out = Decoded::default();
    let mut rows = BatchBuilder::new(SignalKind::Audit);
    for (at, event) in events_of(value, String::new()) {
        add(event, namespaces, &mut rows, &mut out, &at);
    }
    if out.accepted == 0 {
        return Err(IngestError::Audit {
            at: String::new(),
            detail: if out.rejected == 0 {
                "no audit events in the body".into()
            } else {
                out.error_message()
            },
        });
    }
    out.push_rows(rows)?;
    Ok(out)
}

/// Decodes an audit log file as the log backend writes it: one JSON event per line (an
/// `EventList` or an Azure record on a line is accepted too). Bad lines are rejected one by
/// one, naming the line.
pub fn decode_lines(text: &[u8]) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut rows = BatchBuilder::new(SignalKind::Audit);
    for (i, line) in strip_bom(text).split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let at = format!("line {}", i + 1);
        match serde_json::from_slice::<Value>(line) {
            Err(e) => out.reject(|| format!("{at}: not JSON: {e}")),
            Ok(value) => {
                for (at, event) in events_of(value, at) {
                    add(event, &Namespaces::Any, &mut rows, &mut out, &at);
                }
            }
        }
    }
    out.push_rows(rows)?;
    Ok(out)
}

/// The events a JSON value holds, each with where it was: an `EventList`'s items, an Azure
/// envelope's records (whose `properties.log` may be a JSON string), or the value itself.
fn events_of(value: Value, at: String) -> Vec<(String, std::result::Result<Value, String>)> {
    let prefix = |s: String| {
        if at.is_empty() {
            s
        } else {
            format!("{at} {s}")
        }
    };
    if value.get("kind").and_then(Value::as_str) == Some("EventList") {
        return match value.get("items").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (prefix(format!("items[{i}]")), Ok(item.clone())))
                .collect(),
            None => vec![(at, Err("an EventList needs an `items` array".into()))],
        };
    }
    if let Some(records) = value.get("records").and_then(Value::as_array) {
        return records
            .iter()
            .enumerate()
            .map(|(i, r)| (prefix(format!("records[{i}]")), azure_record(r)))
            .collect();
    }
    if value.get("properties").is_some() && value.get("kind").is_none() {
        return vec![(at, azure_record(&value))];
    }
    if value.get("protoPayload").is_some() {
        return vec![(
            at,
            Err("a GKE Cloud Audit Logs record (protoPayload) is not a Kubernetes audit.k8s.io Event".into()),
        )];
    }
    vec![(at, Ok(value))]
}

/// The audit event inside one Azure diagnostic-log record.
fn azure_record(record: &Value) -> std::result::Result<Value, String> {
    match record.get("properties").and_then(|p| p.get("log")) {
        Some(Value::String(text)) => serde_json::from_str(text)
            .map_err(|e| format!("properties.log is not a JSON audit event: {e}")),
        Some(object @ Value::Object(_)) => Ok(object.clone()),
        _ => Err("an Azure record needs properties.log holding the audit event".into()),
    }
}

fn add(
    event: std::result::Result<Value, String>,
    namespaces: &Namespaces,
    rows: &mut BatchBuilder,
    out: &mut Decoded,
    at: &str,
) {
    let at = if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    };
    match event.and_then(|e| event_row(&e, namespaces, rows, &mut out.pods)) {
        Ok(()) => out.accepted += 1,
        Err(e) => out.reject(|| format!("{at}{e}")),
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The first string of `user.extra[key]`.
fn extra<'a>(user: Option<&'a Value>, key: &str) -> Option<&'a str> {
    user?
        .get("extra")?
        .get(key)?
        .as_array()?
        .first()?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Checks one event and adds its row; on error adds nothing.
fn event_row(
    event: &Value,
    namespaces: &Namespaces,
    rows: &mut BatchBuilder,
    pods: &mut Vec<PodObservation>,
) -> std::result::Result<(), String> {
    if !event.is_object() {
        return Err("an audit event must be a JSON object".into());
    }
    match event.get("kind") {
        None => {}
        Some(Value::String(k)) if k == "Event" => {}
        Some(other) => return Err(format!("kind is {other}, expected \"Event\"")),
    }
    if let Some(api) = event.get("apiVersion")
        && !matches!(
            api.as_str(),
            Some("audit.k8s.io/v1" | "audit.k8s.io/v1beta1" | "audit.k8s.io/v1alpha1")
        )
    {
        return Err(format!(
            "apiVersion {api} is not audit.k8s.io/v1 (or v1beta1)"
        ));
    }
    let verb = text(event, "verb").ok_or("verb is missing")?;
    let ts = ["stageTimestamp", "requestReceivedTimestamp", "timestamp"]
        .iter()
        .find_map(|k| text(event, k))
        .ok_or("no stageTimestamp or requestReceivedTimestamp")?;
    let ts = vigil_model::time::parse_rfc3339(ts).map_err(|e| format!("timestamp {e}"))?;
    let user = event.get("user");
    let username = user.and_then(|u| text(u, "username"));
    let object = event.get("objectRef");
    let obj = |k| object.and_then(|o| text(o, k));
    let resource = obj("resource");
    let subresource = obj("subresource");
    let full_resource = match (resource, subresource) {
        (Some(r), Some(s)) => Some(format!("{r}/{s}")),
        (r, _) => r.map(str::to_string),
    };
    let request_object = event.get("requestObject").filter(|v| !v.is_null());
    let response_object = event.get("responseObject").filter(|v| !v.is_null());

    // Who the row is about: the calling pod, else the pod acted on.
    let caller_pod = extra(user, POD_NAME);
    let sa_namespace = username
        .and_then(|u| u.strip_prefix("system:serviceaccount:"))
        .and_then(|rest| rest.split_once(':'));
    let (namespace, pod) = match caller_pod {
        Some(pod) => (sa_namespace.map(|(ns, _)| ns), Some(pod.to_string())),
        None if resource == Some("pods") => {
            let name = obj("name").map(str::to_string).or_else(|| {
                [response_object, request_object]
                    .into_iter()
                    .flatten()
                    .find_map(|o| {
                        o.get("metadata")
                            .and_then(|m| text(m, "name"))
                            .map(str::to_string)
                    })
            });
            (obj("namespace"), name)
        }
        None => (None, None),
    };
    namespaces.check(namespace.or(obj("namespace")))?;

    rows.row(ts);
    rows.str("namespace", namespace);
    rows.str("pod", pod.as_deref());
    rows.str("node", extra(user, NODE_NAME));
    let mut attrs: Vec<(&str, String)> = Vec::new();
    if let Some(uri) = text(event, "requestURI") {
        attrs.push(("request_uri", uri.to_string()));
    }
    if let Some(imp) = event
        .get("impersonatedUser")
        .and_then(|u| text(u, "username"))
    {
        attrs.push(("impersonated_user", imp.to_string()));
    }
    if let Some(annotations) = event.get("annotations").and_then(Value::as_object) {
        for (k, v) in annotations {
            if let Some(v) = v.as_str() {
                attrs.push((k.as_str(), v.to_string()));
            }
        }
    }
    rows.map("attributes", attrs.iter().map(|(k, v)| (*k, v.as_str())));
    rows.str("audit_id", text(event, "auditID"));
    rows.str("stage", text(event, "stage"));
    rows.str("level", text(event, "level"));
    rows.str("verb", Some(verb));
    rows.str("resource", full_resource.as_deref());
    rows.str("subresource", subresource);
    rows.str(
        "api_group",
        object
            .and_then(|o| o.get("apiGroup"))
            .and_then(Value::as_str),
    );
    rows.str("object_namespace", obj("namespace"));
    rows.str("object_name", obj("name"));
    rows.str("user", username);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let groups = strings(user.and_then(|u| u.get("groups")));
    rows.list("groups", groups.iter().map(String::as_str));
    let ips = strings(event.get("sourceIPs"));
    rows.list("source_ips", ips.iter().map(String::as_str));
    rows.str("user_agent", text(event, "userAgent"));
    rows.i32(
        "response_code",
        event
            .get("responseStatus")
            .and_then(|s| s.get("code"))
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok()),
    );
    rows.str(
        "decision",
        event.get("annotations").and_then(|a| text(a, DECISION)),
    );
    rows.str(
        "request_object",
        request_object.map(|v| v.to_string()).as_deref(),
    );
    rows.str(
        "response_object",
        response_object.map(|v| v.to_string()).as_deref(),
    );

    // What the event tells about pods.
    if let Some(pod) = caller_pod {
        let mut obs = PodObservation::new(ts, sa_namespace.map(|(ns, _)| ns), pod, "audit");
        obs.service_account = sa_namespace.map(|(_, sa)| sa.to_string());
        obs.node = extra(user, NODE_NAME).map(str::to_string);
        obs.uid = extra(user, "authentication.kubernetes.io/pod-uid").map(str::to_string);
        pods.push(obs);
    }
    let succeeded = event
        .get("responseStatus")
        .and_then(|s| s.get("code"))
        .and_then(Value::as_i64)
        .is_none_or(|c| (200..300).contains(&c));
    if resource == Some("pods")
        && subresource.is_none()
        && succeeded
        && let Some(obs) = [response_object, request_object]
            .into_iter()
            .flatten()
            .find_map(|o| crate::pods::from_pod_object(ts, o, "audit"))
    {
        pods.push(obs);
    }
    Ok(())
}
