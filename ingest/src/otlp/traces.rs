//! OTLP traces to `span` rows: parent, kind, status, duration, events and links (as JSON),
//! and the peer of client and producer spans.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};

use super::common::{Origin, any_value_text, attribute, attributes_json, id_hex, nanos};
use crate::{BatchBuilder, Decoded, Namespaces, Result, SignalKind};

/// Decodes an export request; `now_ns` stands in for spans without a start time.
pub fn decode(
    request: &ExportTraceServiceRequest,
    now_ns: i64,
    namespaces: &Namespaces,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut rows = BatchBuilder::new(SignalKind::Span);
    for resource_spans in &request.resource_spans {
        let origin = Origin::from_resource(resource_spans.resource.as_ref());
        if let Err(e) = origin.check(namespaces) {
            for _ in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                out.reject(|| e.clone());
            }
            continue;
        }
        let mut latest = None;
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                match span_row(span, &origin, now_ns, &mut rows) {
                    Ok(ts) => {
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
    out.push_rows(rows)?;
    Ok(out)
}

fn span_kind(code: i32) -> Result<Option<&'static str>, String> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        other => return Err(format!("unknown span kind {other}")),
    }))
}

fn status_code(code: i32) -> Result<&'static str, String> {
    match code {
        0 => Ok("unset"),
        1 => Ok("ok"),
        2 => Ok("error"),
        other => Err(format!("unknown status code {other}")),
    }
}

/// Validates the whole span before adding its row; returns its start.
fn span_row(
    span: &Span,
    origin: &Origin,
    now_ns: i64,
    rows: &mut BatchBuilder,
) -> Result<i64, String> {
    let name = &span.name;
    let at = |e: String| format!("span {name:?}: {e}");
    let trace_id = id_hex(&span.trace_id, 16, "trace_id")
        .map_err(at)?
        .ok_or_else(|| at("trace_id is missing".into()))?;
    let span_id = id_hex(&span.span_id, 8, "span_id")
        .map_err(at)?
        .ok_or_else(|| at("span_id is missing".into()))?;
    let parent = id_hex(&span.parent_span_id, 8, "parent_span_id").map_err(at)?;
    if name.is_empty() {
        return Err(format!("span {span_id}: name is missing"));
    }
    let kind = span_kind(span.kind).map_err(at)?;
    let start = match span.start_time_unix_nano {
        0 => now_ns,
        t => nanos(t).ok_or_else(|| at(format!("start_time_unix_nano {t} is out of range")))?,
    };
    let end = nanos(span.end_time_unix_nano);
    let duration = end.filter(|e| *e >= start).map(|e| e - start);
    let (status, status_message) = match &span.status {
        Some(s) => (
            status_code(s.code).map_err(at)?,
            (!s.message.is_empty()).then_some(s.message.as_str()),
        ),
        None => ("unset", None),
    };
    let mut events = Vec::with_capacity(span.events.len());
    for event in &span.events {
        if event.name.is_empty() {
            return Err(at("an event has no name".into()));
        }
        events.push(json!({
            "ts": nanos(event.time_unix_nano),
            "name": event.name,
            "attributes": attributes_json(&event.attributes),
        }));
    }
    let mut links = Vec::with_capacity(span.links.len());
    for link in &span.links {
        let trace = id_hex(&link.trace_id, 16, "link trace_id")
            .map_err(at)?
            .ok_or_else(|| at("a link has no trace_id".into()))?;
        let linked = id_hex(&link.span_id, 8, "link span_id")
            .map_err(at)?
            .ok_or_else(|| at("a link has no span_id".into()))?;
        let mut obj = json!({
            "trace_id": trace,
            "span_id": linked,
            "attributes": attributes_json(&link.attributes),
        });
        if !link.trace_state.is_empty() {
            obj["trace_state"] = json!(link.trace_state);
        }
        links.push(obj);
    }
    let peer = match kind {
        Some("client" | "producer") => peer_of(span),
        _ => None,
    };

    rows.row(start);
    origin.with_record(&span.attributes).set_columns(rows, &[]);
    rows.str("trace_id", Some(&trace_id));
    rows.str("span_id", Some(&span_id));
    rows.str("parent_span_id", parent.as_deref());
    rows.str("name", Some(name));
    rows.str("span_kind", kind);
    rows.i64("duration_ns", duration);
    rows.str("status_code", Some(status));
    rows.str("status_message", status_message);
    rows.str("peer", peer.as_deref());
    let json_or_null = |v: Vec<Value>| (!v.is_empty()).then(|| Value::Array(v).to_string());
    rows.str("span_events", json_or_null(events).as_deref());
    rows.str("span_links", json_or_null(links).as_deref());
    Ok(start)
}

/// The remote end of a client span, from the semantic-convention attributes, most specific
/// first: `peer.service`, then `server.address` (or the older `net.peer.name`,
/// `network.peer.address`, `net.peer.ip`) with its port.
fn peer_of(span: &Span) -> Option<String> {
    let text = |key| attribute(&span.attributes, key).and_then(any_value_text);
    if let Some(service) = text("peer.service") {
        return Some(service);
    }
    for (host, port) in [
        ("server.address", "server.port"),
        ("net.peer.name", "net.peer.port"),
        ("network.peer.address", "network.peer.port"),
        ("net.peer.ip", "net.peer.port"),
    ] {
        if let Some(host) = text(host) {
            return Some(match text(port) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            });
        }
    }
    None
}
