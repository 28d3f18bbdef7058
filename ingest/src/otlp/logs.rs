//! OTLP logs to `log` rows, and Kubernetes events sent as logs to `event` rows.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::common::{Origin, any_value_json, any_value_text, attribute, id_hex, nanos};
use crate::k8s_event::{K8sEvent, container_of, parse_time};
use crate::{BatchBuilder, Decoded, Namespaces, Result, SignalKind};

/// Decodes an export request; `now_ns` stands in for records with neither time.
pub fn decode(
    request: &ExportLogsServiceRequest,
    now_ns: i64,
    namespaces: &Namespaces,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut logs = BatchBuilder::new(SignalKind::Log);
    let mut events = BatchBuilder::new(SignalKind::Event);
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.as_ref();
        let origin = Origin::from_resource(resource);
        if let Err(e) = origin.check_size() {
            for _ in resource_logs.scope_logs.iter().flat_map(|s| &s.log_records) {
                out.reject(|| e.clone());
            }
            continue;
        }
        let mut latest = None;
        for scope in &resource_logs.scope_logs {
            for record in &scope.log_records {
                let ts = match record_time(record, now_ns) {
                    Ok(ts) => ts,
                    Err(e) => {
                        out.reject(|| e);
                        continue;
                    }
                };
                let resource_attrs = resource
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                if let Some(event) = k8s_event(record, resource_attrs) {
                    let ts = event
                        .ts_ns
                        .filter(|_| record.time_unix_nano == 0)
                        .unwrap_or(ts);
                    let mut row_origin = origin.with_record(&record.attributes);
                    row_origin.namespace = event.object_namespace.clone().or(row_origin.namespace);
                    if let Err(e) = namespaces.check(row_origin.namespace.as_deref()) {
                        out.reject(|| format!("Kubernetes event: {e}"));
                        continue;
                    }
                    row_origin.pod = event.pod().map(str::to_string);
                    row_origin.container = event.container.clone();
                    row_origin.node = event.source_host.clone().or(row_origin.node);
                    events.row(ts);
                    row_origin.set_columns(&mut events, &[]);
                    event.set_columns(&mut events);
                    if let Some(mut obs) = event.pod_observation(ts) {
                        obs.cluster.clone_from(&row_origin.cluster);
                        out.pods.push(obs);
                    }
                    out.accepted += 1;
                    continue;
                }
                if let Err(e) = namespaces.check(origin.namespace.as_deref()) {
                    out.reject(|| e);
                    continue;
                }
                match log_row(record, &origin, ts, &mut logs) {
                    Ok(()) => {
                        out.accepted += 1;
                        latest = Some(latest.map_or(ts, |l: i64| l.max(ts)));
                    }
                    Err(e) => out.reject(|| e),
                }
            }
        }
        if let Some(obs) = latest.and_then(|ts| origin.pod_observation(ts)) {
            out.pods.push(obs);
        }
    }
    out.push_rows(logs)?;
    out.push_rows(events)?;
    Ok(out)
}

fn record_time(record: &LogRecord, now_ns: i64) -> Result<i64, String> {
    for t in [record.time_unix_nano, record.observed_time_unix_nano] {
        if t != 0 {
            return nanos(t).ok_or_else(|| format!("log record time {t} is out of range"));
        }
    }
    Ok(now_ns)
}

/// Validates first, so a bad record adds no partial row.
fn log_row(
    record: &LogRecord,
    origin: &Origin,
    ts: i64,
    rows: &mut BatchBuilder,
) -> Result<(), String> {
    let trace_id = id_hex(&record.trace_id, 16, "log record trace_id")?;
    let span_id = id_hex(&record.span_id, 8, "log record span_id")?;
    let severity_number = record.severity_number;
    if !(0..=24).contains(&severity_number) {
        return Err(format!(
            "log record severity_number {severity_number} is not 0..=24"
        ));
    }
    let severity = if record.severity_text.is_empty() {
        severity_name(severity_number).map(str::to_string)
    } else {
        Some(record.severity_text.clone())
    };
    let record_origin = origin.with_record(&record.attributes);
    rows.row(ts);
    let event_name = record.event_name.as_str();
    let extra: &[(&str, &str)] = if event_name.is_empty() {
        &[]
    } else {
        &[("event.name", event_name)]
    };
    record_origin.set_columns(rows, extra);
    rows.str("severity", severity.as_deref());
    rows.i32(
        "severity_number",
        (severity_number != 0).then_some(severity_number),
    );
    rows.str(
        "body",
        record.body.as_ref().and_then(any_value_text).as_deref(),
    );
    rows.str("trace_id", trace_id.as_deref());
    rows.str("span_id", span_id.as_deref());
    Ok(())
}

/// The short name of an OpenTelemetry severity number.
fn severity_name(number: i32) -> Option<&'static str> {
    Some(match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => return None,
    })
}

/// A Kubernetes event carried by a log record, in either receiver's form.
fn k8s_event(
    record: &LogRecord,
    resource: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Option<K8sEvent> {
    // k8sobjects: the object is the body.
    if let Some(body @ any_value::Value::KvlistValue(_)) =
        record.body.as_ref().and_then(|b| b.value.as_ref())
    {
        return K8sEvent::from_object(&any_value_json(Some(body)));
    }
    if let Some(any_value::Value::StringValue(s)) =
        record.body.as_ref().and_then(|b| b.value.as_ref())
        && s.starts_with('{')
        // Most JSON log lines are not events: only parse those that could be.
        && s.contains("\"Event\"")
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(s)
        && let Some(event) = K8sEvent::from_object(&json)
    {
        return Some(event);
    }
    // k8s_events: attributes name the reason, the resource the involved object.
    let attrs = &record.attributes;
    let text = |set: &[opentelemetry_proto::tonic::common::v1::KeyValue], key| {
        attribute(set, key).and_then(any_value_text)
    };
    let reason = text(attrs, "k8s.event.reason")?;
    Some(K8sEvent {
        ts_ns: text(attrs, "k8s.event.start_time").and_then(|t| parse_time(&t)),
        reason,
        event_type: (!record.severity_text.is_empty()).then(|| record.severity_text.clone()),
        message: record.body.as_ref().and_then(any_value_text),
        object_kind: text(resource, "k8s.object.kind"),
        object_name: text(resource, "k8s.object.name"),
        object_namespace: text(attrs, "k8s.namespace.name")
            .or_else(|| text(resource, "k8s.namespace.name")),
        container: text(resource, "k8s.object.fieldpath").and_then(|p| container_of(&p)),
        count: text(attrs, "k8s.event.count").and_then(|c| c.parse().ok()),
        source_component: None,
        source_host: None,
    })
}
