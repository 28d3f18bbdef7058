//! OTLP metrics to `metric` rows: one row per number, with the histogram, exponential
//! histogram and summary parts as separate, suffixed metric names (`docs/ingest.md`).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, exemplar, metric::Data, number_data_point,
};
use serde_json::{Value, json};

use super::common::{Origin, attributes_json, id_hex, nanos};
use crate::{BatchBuilder, Decoded, Namespaces, Result, SignalKind};

/// The most buckets a histogram point may have (each becomes a row; OpenTelemetry SDKs
/// default to 160 for exponential histograms).
const MAX_BUCKETS: usize = 4096;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks a series as stale; it has no value.
const NO_RECORDED_VALUE: u32 = 1;

/// One metric's fixed parts, shared by its points' rows.
struct Series<'a> {
    name: &'a str,
    unit: Option<&'a str>,
    metric_type: &'static str,
    temporality: Option<&'static str>,
}

struct Point<'a> {
    ts: i64,
    origin: Origin,
    exemplars: Option<String>,
    series: &'a Series<'a>,
}

impl Point<'_> {
    /// The `_count`, `_sum`, `_min` and `_max` rows of a histogram point (those it has).
    fn totals(
        &self,
        rows: &mut BatchBuilder,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    ) {
        self.row(rows, "_count", count as f64, &[]);
        for (suffix, value) in [("_sum", sum), ("_min", min), ("_max", max)] {
            if let Some(v) = value {
                self.row(rows, suffix, v, &[]);
            }
        }
    }

    /// One row: `suffix` is appended to the metric name, `extra` to the attributes.
    fn row(&self, rows: &mut BatchBuilder, suffix: &str, value: f64, extra: &[(&str, &str)]) {
        rows.row(self.ts);
        let mut attrs: Vec<(&str, &str)> = extra.to_vec();
        if let Some(t) = self.series.temporality {
            attrs.push(("otel.temporality", t));
        }
        self.origin.set_columns(rows, &attrs);
        if suffix.is_empty() {
            rows.str("name", Some(self.series.name));
        } else {
            rows.str("name", Some(&format!("{}{suffix}", self.series.name)));
        }
        rows.f64("value", value);
        rows.str("metric_type", Some(self.series.metric_type));
        rows.str("unit", self.series.unit);
        rows.str("exemplars", self.exemplars.as_deref());
    }
}

fn temporality(code: i32) -> Result<Option<&'static str>, String> {
    match code {
        0 => Ok(None),
        1 => Ok(Some("delta")),
        2 => Ok(Some("cumulative")),
        other => Err(format!("unknown aggregation temporality {other}")),
    }
}

fn exemplars_json(exemplars: &[Exemplar]) -> Option<String> {
    if exemplars.is_empty() {
        return None;
    }
    let list: Vec<Value> = exemplars
        .iter()
        .map(|e| {
            let value = match e.value {
                Some(exemplar::Value::AsDouble(d)) => json!(d),
                Some(exemplar::Value::AsInt(i)) => json!(i),
                None => Value::Null,
            };
            let mut obj = json!({
                "ts": nanos(e.time_unix_nano),
                "value": value,
                "attributes": attributes_json(&e.filtered_attributes),
            });
            if let Ok(Some(t)) = id_hex(&e.trace_id, 16, "trace_id") {
                obj["trace_id"] = json!(t);
            }
            if let Ok(Some(s)) = id_hex(&e.span_id, 8, "span_id") {
                obj["span_id"] = json!(s);
            }
            obj
        })
        .collect();
    Some(Value::Array(list).to_string())
}

/// Decodes an export request; `now_ns` stands in for points without a time.
pub fn decode(
    request: &ExportMetricsServiceRequest,
    now_ns: i64,
    namespaces: &Namespaces,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut rows = BatchBuilder::new(SignalKind::Metric);
    for resource_metrics in &request.resource_metrics {
        let origin = Origin::from_resource(resource_metrics.resource.as_ref());
        if let Err(e) = origin.check(namespaces) {
            for metric in resource_metrics
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
            {
                for _ in 0..metric.data.as_ref().map_or(1, points_of) {
                    out.reject(|| e.clone());
                }
            }
            continue;
        }
        let mut latest = None;
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                decode_metric(metric, &origin, now_ns, &mut rows, &mut out, &mut latest);
            }
        }
        if let Some(obs) = latest.and_then(|ts| origin.pod_observation(ts)) {
            out.pods.push(obs);
        }
    }
    out.push_rows(rows)?;
    Ok(out)
}

fn decode_metric(
    metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
    origin: &Origin,
    now_ns: i64,
    rows: &mut BatchBuilder,
    out: &mut Decoded,
    latest: &mut Option<i64>,
) {
    let name = metric.name.as_str();
    let Some(data) = &metric.data else {
        out.reject(|| format!("metric {name:?} has no data (gauge, sum, histogram...)"));
        return;
    };
    if name.is_empty() {
        out.reject(|| "a metric has no name".to_string());
        return;
    }
    let unit = (!metric.unit.is_empty()).then_some(metric.unit.as_str());
    let (metric_type, temporality_code) = match data {
        Data::Gauge(_) => ("gauge", 0),
        Data::Sum(s) if s.is_monotonic => ("counter", s.aggregation_temporality),
        Data::Sum(s) => ("sum", s.aggregation_temporality),
        Data::Histogram(h) => ("histogram", h.aggregation_temporality),
        Data::ExponentialHistogram(h) => ("exponential_histogram", h.aggregation_temporality),
        Data::Summary(_) => ("summary", 0),
    };
    let temporality = match temporality(temporality_code) {
        Ok(t) => t,
        Err(e) => {
            for _ in 0..points_of(data) {
                out.reject(|| format!("metric {name:?}: {e}"));
            }
            return;
        }
    };
    let series = Series {
        name,
        unit,
        metric_type,
        temporality,
    };
    // Each point: its time, attributes, exemplars and flags.
    let mut point = |time: u64, attributes, exemplars: &[Exemplar], out: &mut Decoded| {
        let ts = if time == 0 {
            now_ns
        } else {
            match nanos(time) {
                Some(ts) => ts,
                None => {
                    out.reject(|| {
                        format!("metric {name:?}: time_unix_nano {time} is out of range")
                    });
                    return None;
                }
            }
        };
        *latest = Some(latest.map_or(ts, |l: i64| l.max(ts)));
        out.accepted += 1;
        Some(Point {
            ts,
            origin: origin.with_record(attributes),
            exemplars: exemplars_json(exemplars),
            series: &series,
        })
    };
    match data {
        Data::Gauge(g) => number_points(&g.data_points, rows, out, point),
        Data::Sum(s) => number_points(&s.data_points, rows, out, point),
        Data::Histogram(h) => {
            for p in &h.data_points {
                if p.flags & NO_RECORDED_VALUE != 0 {
                    continue;
                }
                if p.bucket_counts.len() > MAX_BUCKETS {
                    out.reject(|| {
                        format!(
                            "histogram {name:?}: {} buckets, more than {MAX_BUCKETS}",
                            p.bucket_counts.len()
                        )
                    });
                    continue;
                }
                if !p.bucket_counts.is_empty()
                    && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                {
                    out.reject(|| {
                        format!(
                            "histogram {name:?}: {} bucket counts for {} bounds (expected one more count than bounds)",
                            p.bucket_counts.len(),
                            p.explicit_bounds.len()
                        )
                    });
                    continue;
                }
                let Some(pt) = point(p.time_unix_nano, &p.attributes, &p.exemplars, out) else {
                    continue;
                };
                pt.totals(rows, p.count, p.sum, p.min, p.max);
                let mut cumulative = 0u64;
                for (i, count) in p.bucket_counts.iter().enumerate() {
                    cumulative = cumulative.saturating_add(*count);
                    let le = p
                        .explicit_bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                    pt.row(rows, "_bucket", cumulative as f64, &[("le", &le)]);
                }
            }
        }
        Data::ExponentialHistogram(h) => {
            for p in &h.data_points {
                if p.flags & NO_RECORDED_VALUE != 0 {
                    continue;
                }
                let buckets = p.positive.as_ref().map_or(0, |b| b.bucket_counts.len())
                    + p.negative.as_ref().map_or(0, |b| b.bucket_counts.len());
                if buckets > MAX_BUCKETS {
                    out.reject(|| format!("exponential histogram {name:?}: {buckets} buckets, more than {MAX_BUCKETS}"));
                    continue;
                }
                if !(-10..=20).contains(&p.scale) {
                    out.reject(|| {
                        format!(
                            "exponential histogram {name:?}: scale {} is outside -10..=20",
                            p.scale
                        )
                    });
                    continue;
                }
                let Some(pt) = point(p.time_unix_nano, &p.attributes, &p.exemplars, out) else {
                    continue;
                };
                pt.totals(rows, p.count, p.sum, p.min, p.max);
                let threshold = p.zero_threshold.to_string();
                pt.row(
                    rows,
                    "_zero_count",
                    p.zero_count as f64,
                    &[("zero_threshold", &threshold)],
                );
                // Bucket i covers (2^(i * 2^-scale), 2^((i + 1) * 2^-scale)].
                let step = 2f64.powi(-p.scale);
                let scale = p.scale.to_string();
                for (sign, buckets) in [(1.0, &p.positive), (-1.0, &p.negative)] {
                    let Some(buckets) = buckets else { continue };
                    for (i, count) in buckets.bucket_counts.iter().enumerate() {
                        if *count == 0 {
                            continue;
                        }
                        let index = i64::from(buckets.offset) + i as i64;
                        let (low, high) = (
                            (index as f64 * step).exp2(),
                            ((index as f64 + 1.0) * step).exp2(),
                        );
                        let (lower, upper) = if sign > 0.0 {
                            (low, high)
                        } else {
                            (-high, -low)
                        };
                        let (lower, upper, index) =
                            (lower.to_string(), upper.to_string(), index.to_string());
                        pt.row(
                            rows,
                            "_bucket",
                            *count as f64,
                            &[
                                ("scale", &scale),
                                ("bucket_index", &index),
                                ("lower", &lower),
                                ("upper", &upper),
                            ],
                        );
                    }
                }
            }
        }
        Data::Summary(s) => {
            for p in &s.data_points {
                if p.flags & NO_RECORDED_VALUE != 0 {
                    continue;
                }
                let Some(pt) = point(p.time_unix_nano, &p.attributes, &[], out) else {
                    continue;
                };
                pt.row(rows, "_count", p.count as f64, &[]);
                pt.row(rows, "_sum", p.sum, &[]);
                for q in &p.quantile_values {
                    let quantile = q.quantile.to_string();
                    pt.row(rows, "", q.value, &[("quantile", &quantile)]);
                }
            }
        }
    }
}

fn number_points<'a>(
    points: &'a [opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
    rows: &mut BatchBuilder,
    out: &mut Decoded,
    mut point: impl FnMut(
        u64,
        &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
        &'a [Exemplar],
        &mut Decoded,
    ) -> Option<Point<'a>>,
) {
    for p in points {
        if p.flags & NO_RECORDED_VALUE != 0 {
            continue;
        }
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => {
                out.reject(|| "a number data point has neither asDouble nor asInt".to_string());
                continue;
            }
        };
        if let Some(pt) = point(p.time_unix_nano, &p.attributes, &p.exemplars, out) {
            pt.row(rows, "", value, &[]);
        }
    }
}

fn points_of(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, MapArray};
    use arrow::datatypes::Float64Type;

    use super::*;
    use crate::otlp::{Encoding, Signal};

    /// (name, value, attribute `key`) of every row.
    fn rows_of(decoded: &Decoded, key: &str) -> Vec<(String, f64, Option<String>)> {
        let (_, batch) = &decoded.batches[0];
        let names = batch.column_by_name("name").unwrap().as_string::<i32>();
        let values = batch
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>();
        let attrs = batch.column_by_name("attributes").unwrap();
        let attrs = attrs.as_any().downcast_ref::<MapArray>().unwrap();
        (0..batch.num_rows())
            .map(|i| {
                let entries = attrs.value(i);
                let keys = entries.column(0).as_string::<i32>();
                let vals = entries.column(1).as_string::<i32>();
                let attr = (0..keys.len())
                    .find(|&j| keys.value(j) == key)
                    .map(|j| vals.value(j).to_string());
                (names.value(i).to_string(), values.value(i), attr)
            })
            .collect()
    }

    fn decode_json(json: &str) -> Decoded {
        crate::otlp::decode(
            Signal::Metrics,
            Encoding::Json,
            json.as_bytes(),
            42,
            &Namespaces::Any,
        )
        .unwrap()
    }

    #[test]
    fn a_huge_resource_is_rejected_with_its_records_instead_of_copied_into_every_row() {
        let big = "x".repeat(70_000);
        let d = decode_json(&format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"{big}"}}}}]}},
            "scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{{"asDouble":1}},{{"asDouble":2}}]}}}}]}}]}},
            {{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{{"asDouble":3}}]}}}}]}}]}}]}}"#
        ));
        assert_eq!((d.accepted, d.rejected), (1, 2));
        assert!(
            d.error_message().contains("resource attributes take"),
            "{}",
            d.error_message()
        );
    }

    #[test]
    fn histogram_buckets_become_cumulative_le_rows() {
        let d = decode_json(
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"lat","histogram":{"aggregationTemporality":2,
            "dataPoints":[{"timeUnixNano":"5","count":"6","sum":18.5,"bucketCounts":["1","2","3"],"explicitBounds":[1.0,3.0]}]}}]}]}]}"#,
        );
        assert_eq!(d.accepted, 1);
        let rows = rows_of(&d, "le");
        let buckets: Vec<_> = rows
            .iter()
            .filter(|r| r.0 == "lat_bucket")
            .map(|r| (r.1, r.2.clone().unwrap()))
            .collect();
        assert_eq!(
            buckets,
            vec![(1.0, "1".into()), (3.0, "3".into()), (6.0, "+Inf".into())]
        );
        assert!(rows.contains(&("lat_count".into(), 6.0, None)));
        assert!(rows.contains(&("lat_sum".into(), 18.5, None)));
    }

    #[test]
    fn exponential_histogram_buckets_carry_their_bounds() {
        let d = decode_json(
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"e","exponentialHistogram":{"aggregationTemporality":1,
            "dataPoints":[{"timeUnixNano":"5","count":"8","scale":0,"zeroCount":"2","positive":{"offset":0,"bucketCounts":["3","1"]},
            "negative":{"offset":-1,"bucketCounts":["1","1"]}}]}}]}]}]}"#,
        );
        let lower = rows_of(&d, "lower");
        let upper = rows_of(&d, "upper");
        let buckets: Vec<(f64, f64, f64)> = lower
            .iter()
            .zip(&upper)
            .filter(|(l, _)| l.0 == "e_bucket")
            .map(|(l, u)| {
                (
                    l.1,
                    l.2.as_ref().unwrap().parse().unwrap(),
                    u.2.as_ref().unwrap().parse().unwrap(),
                )
            })
            .collect();
        // Scale 0: base 2. Positive index 0 = (1, 2], 1 = (2, 4]; negative -1 = [-1, -0.5), 0 = [-2, -1).
        assert_eq!(
            buckets,
            vec![
                (3.0, 1.0, 2.0),
                (1.0, 2.0, 4.0),
                (1.0, -1.0, -0.5),
                (1.0, -2.0, -1.0)
            ]
        );
        assert!(lower.contains(&("e_zero_count".into(), 2.0, None)));
    }

    #[test]
    fn a_point_that_does_not_decode_is_refused_alone_and_the_metric_keeps_the_others() {
        let good = r#"{"asDouble":1,"timeUnixNano":"1"},{"asDouble":2,"timeUnixNano":"2"},{"asDouble":3,"timeUnixNano":"3"}"#;
        for bad in [
            r#"{"asDouble":4,"timeUnixNano":"-1"}"#,
            r#"{"asDouble":4,"timeUnixNano":"abc"}"#,
            r#"{"asDouble":4,"timeUnixNano":1.5}"#,
            r#"{"asDouble":4,"timeUnixNano":"32503680000000000000"}"#,
            r#"{"asDouble":4,"timeUnixNano":"4","attributes":[{"key":"k","value":{"intValue":"notint"}}]}"#,
        ] {
            let d = decode_json(&format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{good},{bad}]}}}}]}}]}}]}}"#
            ));
            assert_eq!((d.accepted, d.rejected), (3, 1), "{bad}");
            let values: Vec<f64> = rows_of(&d, "k").iter().map(|r| r.1).collect();
            assert_eq!(values, vec![1.0, 2.0, 3.0], "{bad}");
            let message = d.error_message();
            assert!(
                message.contains("metric \"g\": gauge data point 3")
                    && (message.contains("timeUnixNano") || message.contains("attributes[0]")),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn non_finite_doubles_written_as_the_json_mapping_writes_them_are_stored() {
        let d = decode_json(
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[
            {"asDouble":"NaN","timeUnixNano":"1"},{"asDouble":"Infinity","timeUnixNano":"2"},{"asDouble":"-Infinity","timeUnixNano":"3"}]}},
            {"name":"s","summary":{"dataPoints":[{"timeUnixNano":"4","count":"1","sum":"Infinity",
            "quantileValues":[{"quantile":0.5,"value":"NaN"}]}]}}]}]}]}"#,
        );
        assert_eq!((d.accepted, d.rejected), (4, 0), "{}", d.error_message());
        let rows = rows_of(&d, "quantile");
        let g: Vec<f64> = rows.iter().filter(|r| r.0 == "g").map(|r| r.1).collect();
        assert!(
            g[0].is_nan() && g[1] == f64::INFINITY && g[2] == f64::NEG_INFINITY,
            "{g:?}"
        );
        assert!(
            rows.contains(&("s_sum".into(), f64::INFINITY, None)),
            "{rows:?}"
        );
        let q = rows.iter().find(|r| r.0 == "s").expect("a quantile row");
        assert!(q.1.is_nan() && q.2.as_deref() == Some("0.5"), "{q:?}");
    }

    #[test]
    fn points_without_a_time_get_the_receipt_time_and_bad_values_are_rejected_alone() {
        let d = decode_json(
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[
            {"asDouble":"1.5"},{"asDouble":"oops","timeUnixNano":"7"},{"asInt":"3","timeUnixNano":"9"}]}}]}]}]}"#,
        );
        assert_eq!((d.accepted, d.rejected), (2, 1));
        let (_, batch) = &d.batches[0];
        let ts = batch
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        assert_eq!(ts.values().to_vec(), vec![42, 9]);
        assert!(
            d.error_message().contains("neither asDouble nor asInt"),
            "{}",
            d.error_message()
        );
    }
}
