//! OTLP/JSON as senders really write it, checked and brought to the form the protobuf JSON
//! mapping reads: the top-level arrays must be there, numbers sent as strings (`"asDouble":
//! "1.5"`) become numbers, enum names (`"SPAN_KIND_CLIENT"`, `"OK"`) become their numbers.
//! A value that cannot be a number is dropped, so its data point is rejected on its own.
//!
//! Metric data points are checked one by one: a point that does not decode (a time of `"-1"`,
//! an attribute `intValue` of `"notint"`) is refused with its reason and the metric's other
//! points stay. The doubles the mapping writes as `"NaN"`, `"Infinity"` and `"-Infinity"`
//! have no JSON number; they are set aside and put back into the decoded request.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint, metric,
    number_data_point,
};
use serde_json::{Map, Value};

use super::Signal;
use crate::Decoded;

/// What normalising set aside: data points refused on their own, and the non-finite doubles
/// to put back once the request is decoded.
#[derive(Debug, Default)]
pub struct Normalized {
    rejected: Vec<String>,
    non_finite: Vec<NonFinite>,
}

/// A non-finite double of one metric data point, written as 0 for decoding.
#[derive(Debug)]
struct NonFinite {
    resource: usize,
    scope: usize,
    metric: usize,
    point: usize,
    field: DoubleField,
    value: f64,
}

#[derive(Debug, Clone, Copy)]
enum DoubleField {
    AsDouble,
    Sum,
    Min,
    Max,
    ZeroThreshold,
    Quantile(usize),
    QuantileValue(usize),
}

impl Normalized {
    /// Puts the non-finite doubles back into the decoded metrics request.
    pub fn restore(&self, request: &mut ExportMetricsServiceRequest) {
        for nf in &self.non_finite {
            let Some(data) = request
                .resource_metrics
                .get_mut(nf.resource)
                .and_then(|r| r.scope_metrics.get_mut(nf.scope))
                .and_then(|s| s.metrics.get_mut(nf.metric))
                .and_then(|m| m.data.as_mut())
            else {
                continue;
            };
            let v = nf.value;
            match (data, nf.field) {
                (metric::Data::Gauge(g), DoubleField::AsDouble) => {
                    set_number(g.data_points.get_mut(nf.point), v)
                }
                (metric::Data::Sum(s), DoubleField::AsDouble) => {
                    set_number(s.data_points.get_mut(nf.point), v)
                }
                (metric::Data::Histogram(h), field) => {
                    if let Some(p) = h.data_points.get_mut(nf.point) {
                        match field {
                            DoubleField::Sum => p.sum = Some(v),
                            DoubleField::Min => p.min = Some(v),
                            DoubleField::Max => p.max = Some(v),
                            _ => {}
                        }
                    }
                }
                (metric::Data::ExponentialHistogram(h), field) => {
                    if let Some(p) = h.data_points.get_mut(nf.point) {
                        match field {
                            DoubleField::Sum => p.sum = Some(v),
                            DoubleField::Min => p.min = Some(v),
                            DoubleField::Max => p.max = Some(v),
                            DoubleField::ZeroThreshold => p.zero_threshold = v,
                            _ => {}
                        }
                    }
                }
                (metric::Data::Summary(s), field) => {
                    if let Some(p) = s.data_points.get_mut(nf.point) {
                        match field {
                            DoubleField::Sum => p.sum = v,
                            DoubleField::Quantile(q) => {
                                if let Some(qv) = p.quantile_values.get_mut(q) {
                                    qv.quantile = v;
                                }
                            }
                            DoubleField::QuantileValue(q) => {
                                if let Some(qv) = p.quantile_values.get_mut(q) {
                                    qv.value = v;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Counts the points refused here among the request's rejections.
    pub fn count_into(self, decoded: &mut Decoded) {
        for reason in self.rejected {
            decoded.reject(|| reason);
        }
    }
}

fn set_number(point: Option<&mut NumberDataPoint>, v: f64) {
    if let Some(p) = point {
        p.value = Some(number_data_point::Value::AsDouble(v));
    }
}

/// The kinds of metric data, as OTLP/JSON names them.
const DATA_KINDS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Fields holding a double that senders may write as a string.
const DOUBLES: [&str; 7] = [
    "asDouble",
    "sum",
    "min",
    "max",
    "value",
    "quantile",
    "zeroThreshold",
];
/// Fields holding a 64-bit integer that the mapping writes as a string.
const INTEGERS: [&str; 2] = ["asInt", "count"];

/// Checks the shape of a request and normalises it in place; the error names the problem.
pub fn normalize(signal: Signal, value: &mut Value) -> Result<Normalized, String> {
    let mut normalized = Normalized::default();
    camel_case_keys(value);
    let (resources, scopes, records) = match signal {
        Signal::Metrics => ("resourceMetrics", "scopeMetrics", "metrics"),
        Signal::Logs => ("resourceLogs", "scopeLogs", "logRecords"),
        Signal::Traces => ("resourceSpans", "scopeSpans", "spans"),
    };
    let root = value
        .as_object_mut()
        .ok_or_else(|| format!("the body must be a JSON object with `{resources}`"))?;
    let list = array(root, resources, "the request")?;
    for (i, resource) in list.iter_mut().enumerate() {
        let at = format!("{resources}[{i}]");
        let resource = object(resource, &at)?;
        let scope_list = array(resource, scopes, &at)?;
        for (j, scope) in scope_list.iter_mut().enumerate() {
            let at = format!("{at}.{scopes}[{j}]");
            let scope = object(scope, &at)?;
            // Logs may come with an empty scope; metrics and spans must list theirs.
            let items = match (signal, scope.get_mut(records)) {
                (Signal::Logs, None) => continue,
                _ => array(scope, records, &at)?,
            };
            for (k, item) in items.iter_mut().enumerate() {
                if signal == Signal::Metrics {
                    check_metric(item, &at, [i, j, k], &mut normalized)?;
                }
                normalize_values(item);
            }
        }
    }
    Ok(normalized)
}

/// Protobuf's JSON mapping accepts a message's original field names (`resource_logs`) as
/// well as the lowerCamelCase ones; every object key in OTLP/JSON is a field name.
fn camel_case_keys(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(camel_case_keys),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('_')) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(camel_case(&k), v);
                }
            }
            map.values_mut().for_each(camel_case_keys);
        }
        _ => {}
    }
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn array<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'a mut Vec<Value>, String> {
    match object.get_mut(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!(
            "{at}: `{key}` must be an array, not {}",
            kind(other)
        )),
        None => Err(format!("{at}: `{key}` is missing")),
    }
}

fn object<'a>(value: &'a mut Value, at: &str) -> Result<&'a mut Map<String, Value>, String> {
    let k = kind(value);
    value
        .as_object_mut()
        .ok_or_else(|| format!("{at} must be an object, not {k}"))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A metric's data must be an object with a `dataPoints` array. Each point that does not
/// decode is taken out and counted as rejected; non-finite doubles are set aside.
fn check_metric(
    metric: &mut Value,
    at: &str,
    [resource, scope, index]: [usize; 3],
    normalized: &mut Normalized,
) -> Result<(), String> {
    let name = metric
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(metric) = metric.as_object_mut() else {
        return Err(format!("{at}: a metric must be an object"));
    };
    for data in DATA_KINDS {
        let Some(v) = metric.get_mut(data) else {
            continue;
        };
        let inner = object(v, &format!("{at}: metric {name:?} {data}"))?;
        let points = array(
            inner,
            "dataPoints",
            &format!("{at}: metric {name:?} {data}"),
        )?;
        for (p, mut point) in std::mem::take(points).into_iter().enumerate() {
            normalize_values(&mut point);
            let mut found = Vec::new();
            set_aside_non_finite(&mut point, &mut found);
            match check_point(data, &point) {
                Ok(()) => {
                    let kept = points.len();
                    normalized
                        .non_finite
                        .extend(found.into_iter().map(|(field, value)| NonFinite {
                            resource,
                            scope,
                            metric: index,
                            point: kept,
                            field,
                            value,
                        }));
                    points.push(point);
                }
                Err(e) => normalized
                    .rejected
                    .push(format!("metric {name:?}: {data} data point {p}: {e}")),
            }
        }
    }
    Ok(())
}

/// Decodes one data point alone, to refuse it alone.
fn check_point(data: &str, point: &Value) -> Result<(), String> {
    fn decodes<T: serde::de::DeserializeOwned>(point: &Value) -> Result<(), String> {
        serde_path_to_error::deserialize::<_, T>(point)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    match data {
        "gauge" | "sum" => decodes::<NumberDataPoint>(point),
        "histogram" => decodes::<HistogramDataPoint>(point),
        "exponentialHistogram" => decodes::<ExponentialHistogramDataPoint>(point),
        _ => decodes::<SummaryDataPoint>(point),
    }
}

/// `"NaN"`, `"Infinity"`, `"-Infinity"` in a point's double fields become 0 here and are
/// listed, to be restored after decoding.
fn set_aside_non_finite(point: &mut Value, found: &mut Vec<(DoubleField, f64)>) {
    let Some(point) = point.as_object_mut() else {
        return;
    };
    let mut take = |value: &mut Value, field: DoubleField| {
        if let Some(d) = value.as_str().and_then(non_finite) {
            *value = Value::from(0.0);
            found.push((field, d));
        }
    };
    for (key, field) in [
        ("asDouble", DoubleField::AsDouble),
        ("sum", DoubleField::Sum),
        ("min", DoubleField::Min),
        ("max", DoubleField::Max),
        ("zeroThreshold", DoubleField::ZeroThreshold),
    ] {
        if let Some(v) = point.get_mut(key) {
            take(v, field);
        }
    }
    if let Some(Value::Array(quantiles)) = point.get_mut("quantileValues") {
        for (q, item) in quantiles.iter_mut().enumerate() {
            if let Some(v) = item.get_mut("quantile") {
                take(v, DoubleField::Quantile(q));
            }
            if let Some(v) = item.get_mut("value") {
                take(v, DoubleField::QuantileValue(q));
            }
        }
    }
}

/// The protobuf JSON mapping's names of the non-finite doubles.
fn non_finite(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn enum_number(key: &str, name: &str) -> Option<i64> {
    let name = name.to_ascii_uppercase();
    let strip = |prefix: &str| name.strip_prefix(prefix).unwrap_or(&name).to_string();
    Some(match key {
        "kind" => match strip("SPAN_KIND_").as_str() {
            "UNSPECIFIED" => 0,
            "INTERNAL" => 1,
            "SERVER" => 2,
            "CLIENT" => 3,
            "PRODUCER" => 4,
            "CONSUMER" => 5,
            _ => return None,
        },
        "code" => match strip("STATUS_CODE_").as_str() {
            "UNSET" => 0,
            "OK" => 1,
            "ERROR" => 2,
            _ => return None,
        },
        "aggregationTemporality" => match strip("AGGREGATION_TEMPORALITY_").as_str() {
            "UNSPECIFIED" => 0,
            "DELTA" => 1,
            "CUMULATIVE" => 2,
            _ => return None,
        },
        "severityNumber" => {
            let s = strip("SEVERITY_NUMBER_");
            let (base, rest) = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
                .iter()
                .enumerate()
                .find_map(|(i, b)| s.strip_prefix(b).map(|r| (i as i64 * 4 + 1, r)))?;
            match rest {
                "" => base,
                "2" => base + 1,
                "3" => base + 2,
                "4" => base + 3,
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Numbers in strings to numbers, enum names to numbers, everywhere below `value`.
fn normalize_values(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(normalize_values),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let Some(v) = map.get_mut(&key) else { continue };
                // Attribute values keep their strings, whatever their key is called.
                if key == "stringValue" {
                    continue;
                }
                match v {
                    Value::String(s) if DOUBLES.contains(&key.as_str()) => {
                        match s.trim().parse::<f64>() {
                            Ok(d) if d.is_finite() => *v = Value::from(d),
                            // NaN and infinities are written as strings by the mapping.
                            Ok(_) => {}
                            Err(_) => {
                                map.remove(&key);
                            }
                        }
                    }
                    Value::String(s) if INTEGERS.contains(&key.as_str()) => {
                        if s.trim().parse::<i64>().is_err() && s.trim().parse::<u64>().is_err() {
                            map.remove(&key);
                        }
                    }
                    Value::Array(items) if key == "explicitBounds" => {
                        for item in items.iter_mut() {
                            if let Value::String(s) = item
                                && let Ok(d) = s.trim().parse::<f64>()
                            {
                                *item = Value::from(d);
                            }
                        }
                    }
                    Value::String(s) => {
                        if let Some(n) = enum_number(&key, s) {
                            *v = Value::from(n);
                        }
                    }
                    other => normalize_values(other),
                }
            }
        }
        _ => {}
    }
}
