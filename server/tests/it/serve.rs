//! `vigil serve` end to end: real corpora through the real HTTP endpoints, SQL on what was
//! stored, bad input, back-pressure, metrics, SIGTERM and SIGKILL.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[allow(unused_imports)]
use crate::cli::{sql, stderr, vigil};
use crate::server::{Response, Server};

/// The shared test corpora (`../shared/corpora` beside the checkout): `VIGIL_CORPORA`, else
/// the first `shared/corpora` found walking up from the crate, else `/work/shared/corpora`.
fn corpora() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_CORPORA") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    root.ancestors()
        .map(|a| a.join("shared/corpora"))
        .chain([PathBuf::from("/work/shared/corpora")])
        .find(|c| c.join("otlp").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/corpora above {}; set VIGIL_CORPORA",
                root.display()
            )
        })
}

/// True when the request was refused as a whole or had records rejected.
fn refused(r: &Response) -> bool {
    if r.status != 200 {
        return true;
    }
    rejected_records(r)
}

fn rejected_records(r: &Response) -> bool {
    let v = r.json();
    v.get("partialSuccess")
        .and_then(|p| p.as_object())
        .map(|p| {
            p.values().any(|x| {
                x.as_i64().unwrap_or(0) > 0
                    || x.as_str()
                        .is_some_and(|s| s.parse::<i64>().unwrap_or(0) > 0)
            })
        })
        .unwrap_or(false)
        || v.get("rejected").and_then(Value::as_u64).unwrap_or(0) > 0
}

#[test]
fn fluent_bit_otlp_json_cases_are_accepted_or_rejected_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), None);
    let cases_dir = corpora().join("otlp/fluent-bit/tests/internal/data/opentelemetry");
    let mut mismatches = Vec::new();
    let mut total = 0;
    for (file, path) in [
        ("logs.json", "/v1/logs"),
        ("metrics.json", "/v1/metrics"),
        ("traces.json", "/v1/traces"),
    ] {
        let cases: serde_json::Map<String, Value> =
            serde_json::from_slice(&std::fs::read(cases_dir.join(file)).unwrap()).unwrap();
        for (name, case) in cases {
            total += 1;
            let expect_error = case.get("expected_error").is_some();
            let body = serde_json::to_vec(&case["input"]).unwrap();
            let r = server.post(path, "application/json", &body);
            assert!(r.status < 500, "{file} {name}: server error {}", r.text());
            if r.status != 200 {
                assert!(!r.text().is_empty(), "{file} {name}: an error must say why");
            }
            // An accepted request may still skip a record it cannot read (a partial success);
            // an invalid one must be refused or have its bad records rejected.
            let ok = if expect_error {
                refused(&r)
            } else {
                r.status == 200
            };
            if !ok {
                mismatches.push(format!("{file} {name}: status {} {}", r.status, r.text()));
            }
        }
    }
    assert_eq!(total, 139);
    assert!(
        mismatches.is_empty(),
        "{} of {total} cases differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        server.request("GET", "/healthz", &[], b"").status == 200,
        "still healthy"
    );
}

/// Runs SQL on a stopped server's store, rows as JSON objects.
fn rows(store: &Path, query: &str) -> Vec<Value> {
    let o = vigil(&[
        "sql",
        "--data-dir",
        &store.to_string_lossy(),
        "--format",
        "json",
        query,
    ]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| {
            match serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")) {
                Value::Array(a) => a,
                v => vec![v],
            }
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn nanos_text(v: &Value) -> i64 {
    v.as_str()
        .map_or_else(|| v.as_i64().unwrap(), |s| s.parse().unwrap())
}

#[test]
fn otlp_examples_and_protobuf_binaries_are_stored_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Server::start(&store, None);
    let otlp = corpora().join("otlp");
    let examples = otlp.join("opentelemetry-proto/examples");
    for (file, path) in [
        ("trace.json", "/v1/traces"),
        ("logs.json", "/v1/logs"),
        ("events.json", "/v1/logs"),
        ("metrics.json", "/v1/metrics"),
    ] {
        let body = std::fs::read(examples.join(file)).unwrap();
        // The metrics example goes gzipped, as collectors send it by default.
        let r = if file == "metrics.json" {
            server.request(
                "POST",
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "gzip"),
                ],
                &gzip(&body),
            )
        } else {
            server.post(path, "application/json", &body)
        };
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        assert!(!refused(&r), "{file}: {}", r.text());
    }
    // Real protobuf binaries, decoded with the official protos.
    let testdata = otlp.join("otlp2parquet/testdata");
    let mut binaries: Vec<(PathBuf, &str)> = std::fs::read_dir(&testdata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let path = if name.starts_with("log") {
                "/v1/logs"
            } else if name.starts_with("metric") {
                "/v1/metrics"
            } else {
                "/v1/traces"
            };
            (p, path)
        })
        .collect();
    binaries.push((
        otlp.join("fluent-bit/lib/cmetrics/tests/opentelemetry_payload.bin"),
        "/v1/metrics",
    ));
    binaries.push((
        otlp.join("fluent-bit/lib/cmetrics/tests/data/otlp_null_label_histogram.bin"),
        "/v1/metrics",
    ));
    binaries.push((
        otlp.join("fluent-bit/lib/ctraces/examples/sample_trace.bin"),
        "/v1/traces",
    ));
    assert!(binaries.len() >= 12);
    for (file, path) in &binaries {
        let r = server.post(
            path,
            "application/x-protobuf",
            &std::fs::read(file).unwrap(),
        );
        assert_eq!(r.status, 200, "{}: {}", file.display(), r.text());
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    }
    // The negative cases of otlp2parquet are refused, each with a reason.
    for entry in std::fs::read_dir(testdata.join("invalid")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let path = match &name[..3] {
            "log" => "/v1/logs",
            "met" => "/v1/metrics",
            _ => "/v1/traces",
        };
        let r = server.post(path, "application/json", &std::fs::read(&file).unwrap());
        assert!(refused(&r), "{name} was accepted: {}", r.text());
    }
    // Bad input: each refused with a reason, nothing lost.
    let cases: [(&str, &str, &[u8], u16); 6] = [
        (
            "/v1/traces",
            "application/x-protobuf",
            b"\xff\xff\xff\xff not protobuf",
            400,
        ),
        ("/v1/logs", "application/json", b"{\"resourceLogs\": [", 400),
        ("/v1/logs", "text/plain", b"hello", 415),
        ("/v1/metrics", "application/json", b"\xff\xfe\x00{}", 400),
        (
            "/v1/metrics",
            "application/x-protobuf",
            b"\x0a\x05\x0a\x03",
            400,
        ),
        ("/v1/audit", "application/json", b"{\"kind\": 0}", 400),
    ];
    for (path, ct, body, status) in cases {
        let r = server.post(path, ct, body);
        assert_eq!(r.status, status, "{path} {ct}: {}", r.text());
        assert!(
            r.text().len() > 10,
            "{path}: the error names the problem: {}",
            r.text()
        );
    }
    let metrics = server.request("GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("vigil_ingested_rows_total{kind=\"span\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_rejected_requests_total{signal=\"traces\",reason=\"invalid\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_write_latency_seconds_bucket"),
        "{metrics}"
    );
    assert!(server.terminate().success(), "SIGTERM is a clean exit");

    // Field by field: the official trace example.
    let trace: Value =
        serde_json::from_slice(&std::fs::read(examples.join("trace.json")).unwrap()).unwrap();
    let span = &trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let got = rows(
        &store,
        &format!(
            "SELECT trace_id, span_id, parent_span_id, name, span_kind, duration_ns, status_code, \
             CAST(ts AS BIGINT) AS ts, attributes['service.name'] AS service, attributes['my.span.attr'] AS attr \
             FROM spans WHERE span_id = '{}'",
            span["spanId"].as_str().unwrap().to_lowercase()
        ),
    );
    assert_eq!(got.len(), 1, "{got:?}");
    let g = &got[0];
    assert_eq!(
        g["trace_id"],
        span["traceId"].as_str().unwrap().to_lowercase()
    );
    assert_eq!(
        g["parent_span_id"],
        span["parentSpanId"].as_str().unwrap().to_lowercase()
    );
    assert_eq!(g["name"], span["name"]);
    assert_eq!(g["span_kind"], "server");
    assert_eq!(g["status_code"], "unset");
    let start = nanos_text(&span["startTimeUnixNano"]);
    assert_eq!(g["ts"].as_i64().unwrap(), start);
    assert_eq!(
        g["duration_ns"].as_i64().unwrap(),
        nanos_text(&span["endTimeUnixNano"]) - start
    );
    assert_eq!(g["service"], "my.service");
    assert_eq!(g["attr"], "some value");

    // The official log example: body, severity, ids and every attribute type.
    let got = rows(
        &store,
        "SELECT body, severity, severity_number, trace_id, span_id, attributes['int.attribute'] AS i, \
         attributes['boolean.attribute'] AS b, attributes['array.attribute'] AS a, \
         attributes['map.attribute'] AS m FROM logs WHERE body = 'Example log record'",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    let g = &got[0];
    assert_eq!(g["severity"], "Information");
    assert_eq!(g["severity_number"], 10);
    assert_eq!(g["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(g["span_id"], "eee19b7ec3c1b174");
    assert_eq!(
        (g["i"].as_str(), g["b"].as_str()),
        (Some("10"), Some("true"))
    );
    assert_eq!(g["a"], "[\"many\",\"values\"]");
    assert_eq!(g["m"], "{\"some.map.key\":\"some value\"}");
    let got = rows(
        &store,
        "SELECT severity_number FROM logs WHERE attributes['event.name'] = 'browser.page_view'",
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["severity_number"], 9);

    // The logs binary has the 81 records of its JSON-lines twin.
    let twin = std::fs::read_to_string(testdata.join("logs.jsonl")).unwrap();
    let expected: usize = twin
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["resourceLogs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["scopeLogs"].as_array().unwrap().iter())
                .map(|s| s["logRecords"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum();
    assert_eq!(expected, 81);
    // Plus one record each in the official logs and events examples.
    let stored = rows(&store, "SELECT count(*) AS n FROM logs");
    assert_eq!(
        stored[0]["n"].as_u64().unwrap() as usize,
        expected + 2,
        "{stored:?}"
    );

    // The metrics example: every type, with histogram buckets as cumulative `le` rows.
    let got = rows(
        &store,
        "SELECT DISTINCT metric_type FROM metrics ORDER BY metric_type",
    );
    let types: Vec<&str> = got
        .iter()
        .map(|r| r["metric_type"].as_str().unwrap())
        .collect();
    for t in [
        "counter",
        "exponential_histogram",
        "gauge",
        "histogram",
        "summary",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

fn event_list(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": items,
    }))
    .unwrap()
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn real_audit_logs_go_through_the_webhook_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Server::start(&store, None);
    let samples = corpora().join("k8s-audit-samples");

    // The upstream maintainer's demo log, batched as the webhook backend sends it.
    let demo = json_lines(&samples.join("audit2rbac/testdata/demo.log"));
    assert_eq!(demo.len(), 37);
    let r = server.post("/v1/audit", "application/json", &event_list(demo.clone()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 37);

    // Falco's recorded events: every file, one list each; the malformed one is refused.
    let falco = corpora().join("falco-k8saudit/falco-0.34.1/test/trace_files/k8s_audit");
    let mut falco_events = 0;
    for entry in std::fs::read_dir(&falco).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let events = json_lines(&path);
        let r = server.post("/v1/audit", "application/json", &event_list(events.clone()));
        if name == "fal_01_003.json" {
            assert_eq!(r.status, 400, "{name}: {}", r.text());
            assert!(r.text().contains("kind"), "{}", r.text());
        } else {
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert_eq!(r.json()["rejected"], 0, "{name}: {}", r.text());
            falco_events += events.len();
        }
    }
    assert!(falco_events >= 46);

    // Azure's envelopes (with a byte-order mark on the samples) and a pretty-printed Event.
    for (file, expected) in [
        ("sysdiglabs-aks-audit-log/samples/event.json", 22),
        (
            "sysdiglabs-aks-audit-log/samples/sample_KubeAuditLog_event.json",
            1,
        ),
        (
            "sysdiglabs-aks-audit-log/samples/sample_EventHubs_event.json",
            1,
        ),
    ] {
        let r = server.post(
            "/v1/audit",
            "application/json",
            &std::fs::read(samples.join(file)).unwrap(),
        );
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        assert_eq!(r.json()["accepted"], expected, "{file}");
    }
    // Elastic's pipeline inputs, a record per request: Azure records pass, GKE's Cloud
    // Audit record is not a Kubernetes event and is refused by name.
    let elastic = samples
        .join("elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline");
    let (mut ok, mut refused_gke) = (0, 0);
    for file in ["test-audit.log", "test-kube-audit.log"] {
        for line in json_lines(&elastic.join(file)) {
            let r = server.post(
                "/v1/audit",
                "application/json",
                &serde_json::to_vec(&line).unwrap(),
            );
            if line.get("protoPayload").is_some() {
                assert_eq!(r.status, 400, "{}", r.text());
                assert!(r.text().contains("protoPayload"), "{}", r.text());
                refused_gke += 1;
            } else {
                assert_eq!(r.status, 200, "{file}: {}", r.text());
                ok += 1;
            }
        }
    }
    assert!(ok >= 3 && refused_gke >= 1, "{ok} {refused_gke}");
    // The flattened CSV is not an audit payload.
    let csv =
        std::fs::read(samples.join("perfspec-kubernetes-event-dataset/audit-logs.csv")).unwrap();
    let r = server.post("/v1/audit", "text/csv", &csv[..4096]);
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(server.terminate().success());

    // Field by field against the demo log.
    for event in &demo {
        let id = event["auditID"].as_str().unwrap();
        let got = rows(
            &store,
            &format!(
                "SELECT verb, user, resource, object_namespace, response_code, stage, level, \
                 attributes['impersonated_user'] AS imp, attributes['request_uri'] AS uri, \
                 CAST(ts AS BIGINT) AS ts FROM audit WHERE audit_id = '{id}'"
            ),
        );
        assert_eq!(got.len(), 1, "{id}");
        let g = &got[0];
        assert_eq!(g["verb"], event["verb"]);
        assert_eq!(g["user"], event["user"]["username"]);
        assert_eq!(g["stage"], event["stage"]);
        assert_eq!(g["level"], event["level"]);
        assert_eq!(g["imp"], event["impersonatedUser"]["username"]);
        assert_eq!(g["uri"], event["requestURI"]);
        assert_eq!(g["response_code"], event["responseStatus"]["code"]);
        let resource =
            event["objectRef"]["resource"].as_str().map(
                |r| match event["objectRef"]["subresource"].as_str() {
                    Some(s) => format!("{r}/{s}"),
                    None => r.to_string(),
                },
            );
        assert_eq!(g["resource"].as_str(), resource.as_deref(), "{id}");
        assert_eq!(
            g["object_namespace"].as_str(),
            event["objectRef"]["namespace"].as_str()
        );
        let ts = event["stageTimestamp"]
            .as_str()
            .or(event["timestamp"].as_str())
            .unwrap();
        let expected = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        assert_eq!(g["ts"].as_i64().unwrap(), expected);
    }
    let total = rows(&store, "SELECT count(*) AS n FROM audit")[0]["n"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(total, 37 + falco_events + 24 + ok);

    // Pods created at RequestResponse level are in the pods table with their images.
    let pods = rows(
        &store,
        "SELECT namespace, pod, images, sources FROM pods WHERE array_has(images, 'nginx') ORDER BY pod",
    );
    assert!(!pods.is_empty(), "no pod with image nginx");
    for p in &pods {
        assert!(p["sources"].to_string().contains("audit"), "{p}");
    }
}

/// A metrics export of `points` gauge points of one pod, one second apart from `start_s`.
fn metrics_request(
    pod: &str,
    start_s: u64,
    points: usize,
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let data_points = (0..points)
        .map(|i| NumberDataPoint {
            time_unix_nano: (1_714_521_600 + start_s + i as u64) * 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(i as f64 / 100.0)),
            attributes: vec![kv("cpu", &(i % 4).to_string())],
            ..Default::default()
        })
        .collect();
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("k8s.namespace.name", "shop"),
                    kv("k8s.pod.name", pod),
                    kv("k8s.node.name", "node-1"),
                    kv("k8s.pod.ip", "10.1.2.3"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "container_cpu_usage_cores".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn grpc_export_back_pressure_and_kill_9_lose_nothing_acknowledged() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = "[ingest]\nmax_request_bytes = 1048576\nmax_inflight_bytes = 1048576\nretry_after_seconds = 2\n";
    let server = Server::start(&store, Some(config));

    // OTLP/gRPC with the generated client, gzip on.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let grpc_points = rt.block_on(async {
        let mut client = MetricsServiceClient::connect(format!("http://{}", server.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let mut n = 0;
        for i in 0..10 {
            let response = client
                .export(metrics_request("grpc-pod", i * 1000, 1000))
                .await
                .unwrap();
            assert!(response.into_inner().partial_success.is_none());
            n += 1000;
        }
        // A request over the size limit is refused alone.
        let err = client
            .export(metrics_request("huge-pod", 0, 40_000))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.code(),
                tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
            ),
            "{err:?}"
        );
        n
    });

    // Over the size limit over HTTP: as sent, and once decompressed (a gzip bomb).
    let big = vec![b' '; 1_100_000];
    let r = server.post("/v1/metrics", "application/json", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = server.request(
        "POST",
        "/v1/metrics",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&vec![b' '; 5_000_000]),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("max_request_bytes"), "{}", r.text());

    // Back-pressure: concurrent requests over the in-flight bound get 429 + Retry-After.
    let body = metrics_request("http-pod", 0, 12_000).encode_to_vec();
    assert!(
        body.len() > 300_000 && body.len() < 1_048_576,
        "{}",
        body.len()
    );
    let (mut ok_points, mut busy) = (0, 0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let body = metrics_request(&format!("http-pod-{i}"), 0, 12_000).encode_to_vec();
                let server = &server;
                s.spawn(move || server.post("/v1/metrics", "application/x-protobuf", &body))
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            match r.status {
                200 => ok_points += 12_000,
                429 => {
                    assert_eq!(r.header("retry-after"), Some("2"));
                    busy += 1;
                }
                other => panic!("unexpected {other}: {}", r.text()),
            }
        }
    });
    assert!(
        busy > 0,
        "12 concurrent 400 KB requests against a 1 MiB bound must meet back-pressure"
    );
    assert!(ok_points > 0);
    let metrics = server.request("GET", "/metrics", &[], b"").text();
    assert!(metrics.contains("reason=\"busy\""), "{metrics}");

    // kill -9 right after the acknowledgements: everything acknowledged is there.
    drop(server);
    let n = rows(&store, "SELECT count(*) AS n FROM metrics")[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(n, grpc_points + ok_points);
    let pods = rows(
        &store,
        "SELECT pod, node, pod_ips, sources FROM pods WHERE pod = 'grpc-pod'",
    );
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["node"], "node-1");
    assert_eq!(pods[0]["pod_ips"], serde_json::json!(["10.1.2.3"]));
    // And the server starts again on the same store.
    let again = Server::start(&store, None);
    assert_eq!(again.request("GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn the_opentelemetry_python_sdk_exports_over_grpc_and_http_and_sql_finds_it_by_pod() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Server::start(&store, None);
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("tests/python/otel_sdk_export.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([&server.grpc, &server.http])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(sent["malformed"], "INVALID_ARGUMENT", "{sent}");
    assert!(server.terminate().success());

    for transport in ["grpc", "http"] {
        let pod = format!("checkout-{transport}");
        let trace = sent[format!("{transport}_trace")].as_str().unwrap();
        let spans = rows(
            &store,
            &format!(
                "SELECT name, span_kind, status_code, status_message, peer, span_events, parent_span_id, cluster, namespace, container, node \
                 FROM spans WHERE pod = '{pod}' AND trace_id = '{trace}' ORDER BY name"
            ),
        );
        assert_eq!(spans.len(), 2, "{transport}: {spans:?}");
        let (server_span, client_span) = (&spans[0], &spans[1]);
        assert_eq!(server_span["name"], "GET /cart");
        assert_eq!(server_span["span_kind"], "server");
        assert_eq!(server_span["status_code"], "error");
        assert_eq!(server_span["status_message"], "cart not found");
        assert_eq!(client_span["span_kind"], "client");
        assert_eq!(client_span["peer"], "db.shop.svc:5432");
        assert!(
            client_span["span_events"]
                .as_str()
                .unwrap()
                .contains("query sent")
        );
        assert!(client_span["parent_span_id"].is_string());
        assert_eq!(
            (
                client_span["cluster"].as_str(),
                client_span["namespace"].as_str()
            ),
            (Some("prod"), Some("shop"))
        );
        assert_eq!(
            (
                client_span["container"].as_str(),
                client_span["node"].as_str()
            ),
            (Some("app"), Some("node-7"))
        );

        let logs = rows(
            &store,
            &format!("SELECT body, severity, trace_id FROM logs WHERE pod = '{pod}'"),
        );
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(
            logs[0]["body"],
            format!("payment declined for cart {transport}")
        );
        assert_eq!(logs[0]["severity"], "WARN");

        let metrics = rows(
            &store,
            &format!(
                "SELECT name, value, metric_type, attributes['route'] AS route FROM metrics WHERE pod = '{pod}' ORDER BY name, value"
            ),
        );
        let value = |name: &str| {
            metrics
                .iter()
                .find(|m| m["name"] == name)
                .map(|m| m["value"].as_f64().unwrap())
        };
        assert_eq!(value("http.server.requests"), Some(5.0), "{metrics:?}");
        assert_eq!(value("http.server.duration_count"), Some(5.0));
        assert_eq!(value("http.server.duration_sum"), Some(150.0));
        assert!(
            metrics
                .iter()
                .any(|m| m["name"] == "http.server.duration_bucket")
        );
        assert!(metrics.iter().all(|m| m["route"] == "/cart"));
    }
    let pods = rows(
        &store,
        "SELECT pod, uid, node, pod_ips FROM pods WHERE namespace = 'shop' ORDER BY pod",
    );
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert_eq!(pods[0]["uid"], "uid-checkout-grpc");
    assert_eq!(pods[0]["pod_ips"], serde_json::json!(["10.4.0.17"]));
}

#[test]
fn kubernetes_events_from_both_collector_receivers_become_event_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Server::start(&store, None);
    let s = |v: &str| serde_json::json!({"stringValue": v});
    let kv = |k: &str, v: Value| serde_json::json!({"key": k, "value": v});
    // The k8s_events receiver: reason and count in attributes, the object in the resource.
    let k8s_events = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [
            kv("k8s.object.kind", s("Pod")), kv("k8s.object.name", s("miner-7")),
            kv("k8s.object.fieldpath", s("spec.containers{xmrig}")), kv("k8s.cluster.name", s("prod")),
        ]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1714550400000000000", "severityText": "Normal",
             "body": s("Successfully pulled image \"docker.io/evil/xmrig:latest\" in 2.1s"),
             "attributes": [kv("k8s.event.reason", s("Pulled")), kv("k8s.event.count", serde_json::json!({"intValue": "1"})),
                            kv("k8s.namespace.name", s("shop"))]},
        ]}]
    }]});
    // The k8sobjects receiver in watch mode: the watch event is the body.
    let object = |fields: Vec<Value>| serde_json::json!({"kvlistValue": {"values": fields}});
    let k8sobjects = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [kv("k8s.cluster.name", s("prod"))]},
        "scopeLogs": [{"logRecords": [
            {"observedTimeUnixNano": "1714550399000000000", "body": object(vec![
                kv("type", s("ADDED")),
                kv("object", object(vec![
                    kv("kind", s("Event")), kv("apiVersion", s("v1")), kv("reason", s("Scheduled")), kv("type", s("Normal")),
                    kv("message", s("Successfully assigned shop/miner-7 to node-9")),
                    kv("involvedObject", object(vec![kv("kind", s("Pod")), kv("name", s("miner-7")), kv("namespace", s("shop"))])),
                    kv("source", object(vec![kv("component", s("default-scheduler"))])),
                    kv("lastTimestamp", s("2024-05-01T07:59:59Z")),
                ])),
            ])},
            {"timeUnixNano": "1714550401000000000", "body": s("an ordinary log line")},
        ]}]
    }]});
    for body in [k8s_events, k8sobjects] {
        let r = server.post(
            "/v1/logs",
            "application/json",
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!refused(&r), "{}", r.text());
    }
    assert!(server.terminate().success());
    let events = rows(
        &store,
        "SELECT reason, event_type, object_kind, object_name, namespace, pod, container, image, event_count, source_component, cluster \
         FROM events ORDER BY ts",
    );
    assert_eq!(events.len(), 2, "{events:?}");
    let (scheduled, pulled) = (&events[0], &events[1]);
    assert_eq!(scheduled["reason"], "Scheduled");
    assert_eq!(scheduled["source_component"], "default-scheduler");
    assert_eq!(scheduled["pod"], "miner-7");
    assert_eq!(pulled["reason"], "Pulled");
    assert_eq!(pulled["image"], "docker.io/evil/xmrig:latest");
    assert_eq!(
        (pulled["namespace"].as_str(), pulled["pod"].as_str()),
        (Some("shop"), Some("miner-7"))
    );
    assert_eq!(
        (pulled["container"].as_str(), pulled["cluster"].as_str()),
        (Some("xmrig"), Some("prod"))
    );
    assert_eq!(pulled["event_count"], 1);
    assert_eq!(pulled["event_type"], "Normal");
    let logs = rows(&store, "SELECT body FROM logs");
    assert_eq!(logs.len(), 1, "only the ordinary line is a log: {logs:?}");
    let pods = rows(&store, "SELECT namespace, pod, node FROM pods");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["node"], "node-9");
}

#[test]
fn audit_log_files_import_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let demo = corpora().join("k8s-audit-samples/audit2rbac/testdata/demo.log");
    let args = |file: &Path| {
        vigil(&[
            "import",
            "--data-dir",
            &store.to_string_lossy(),
            "--kind",
            "audit",
            "--format",
            "k8s-audit",
            &file.to_string_lossy(),
        ])
    };
    let o = args(&demo);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("imported 37 rows"), "{}", stderr(&o));
    let bad = dir.path().join("bad.log");
    let mut text = std::fs::read_to_string(&demo).unwrap();
    text.push_str("{\"kind\": \"Event\", \"verb\": \"get\"}\n");
    std::fs::write(&bad, text).unwrap();
    let o = args(&bad);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 38"), "{}", stderr(&o));
    assert_eq!(rows(&store, "SELECT count(*) AS n FROM audit")[0]["n"], 37);
}

#[test]
fn otlp_json_as_other_senders_write_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), None);
    let otlp = corpora().join("otlp");
    let testdata = otlp.join("otlp2parquet/testdata");
    // Fluent Bit's integration inputs (snake_case field names, a post-2038 time) are
    // accepted; its empty expected-output file is not a request.
    let data_files =
        otlp.join("fluent-bit/tests/integration/scenarios/in_opentelemetry/tests/data_files");
    for entry in std::fs::read_dir(&data_files).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let path = if name.contains("logs") {
            "/v1/logs"
        } else if name.contains("metrics") {
            "/v1/metrics"
        } else {
            "/v1/traces"
        };
        let r = server.post(path, "application/json", &std::fs::read(&file).unwrap());
        if name.ends_with(".out.json") {
            assert_eq!(r.status, 400, "{name}: {}", r.text());
        } else {
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            assert!(!refused(&r), "{name}: {}", r.text());
        }
    }
    // otlp2parquet's JSON twins are protobuf's canonical JSON: enum names are accepted,
    // but base64 trace and span ids are not OTLP/JSON (hex) and are refused by name.
    for entry in std::fs::read_dir(&testdata).unwrap() {
        let file = entry.unwrap().path();
        let ext = file
            .extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if ext != "json" && ext != "jsonl" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let requests: Vec<String> = match ext.as_str() {
            "json" => vec![text],
            _ => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        };
        let path = if name.starts_with("log") {
            "/v1/logs"
        } else if name.starts_with("metric") {
            "/v1/metrics"
        } else {
            "/v1/traces"
        };
        for request in requests {
            let ids = ["\"traceId\"", "\"spanId\""]
                .iter()
                .any(|k| request.contains(k));
            let r = server.post(path, "application/json", request.as_bytes());
            if ids {
                assert!(refused(&r), "{name}: base64 ids accepted: {}", r.text());
                assert!(
                    r.text().contains("hex") || r.text().contains("Id"),
                    "{name}: {}",
                    r.text()
                );
            } else {
                assert_eq!(r.status, 200, "{name}: {}", r.text());
                assert!(!refused(&r), "{name}: {}", r.text());
            }
        }
    }
    assert!(server.terminate().success());
}
