//! OTLP/JSON as senders really write it, checked and brought to the form the protobuf JSON
//! mapping reads: the top-level arrays must be there, numbers sent as strings (`"asDouble":
//! "1.5"`) become numbers, enum names (`"SPAN_KIND_CLIENT"`, `"OK"`) become their numbers.
//! A value that cannot be a number is dropped, so its data point is rejected on its own.

use serde_json::{Map, Value};

use super::Signal;

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
pub fn normalize(signal: Signal, value: &mut Value) -> Result<(), String> {
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
            for item in items.iter_mut() {
                if signal == Signal::Metrics {
                    check_metric(item, &at)?;
                }
                normalize_values(item);
            }
        }
    }
    Ok(())
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

/// A metric's data must be an object with a `dataPoints` array.
fn check_metric(metric: &mut Value, at: &str) -> Result<(), String> {
    let name = metric
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(metric) = metric.as_object_mut() else {
        return Err(format!("{at}: a metric must be an object"));
    };
    for data in [
        "gauge",
        "sum",
        "histogram",
        "exponentialHistogram",
        "summary",
    ] {
        if let Some(v) = metric.get_mut(data) {
            let inner = object(v, &format!("{at}: metric {name:?} {data}"))?;
            array(
                inner,
                "dataPoints",
                &format!("{at}: metric {name:?} {data}"),
            )?;
        }
    }
    Ok(())
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
