//! Input that used to be half-accepted, accepted wrongly or refused with a misleading
//! message: imported files with values that do not fit their columns or a damaged page,
//! OTLP/JSON points that took their whole metric down or could not say NaN, writes into
//! namespaces a token may not touch, NaN in JSON results, and HTTP/1.1 requests without one
//! `Host`.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::cli::{generate, import_ok, sql, stderr, stdout, vigil};
use crate::server::Server;
use crate::sql::{ADMIN, INGEST, SHOP, config};

/// `vigil import` of `file` as `kind` into `store`: (success, stderr).
fn import(store: &std::path::Path, kind: &str, file: &std::path::Path) -> (bool, String) {
    let o = crate::cli::import(store, kind, file);
    (o.status.success(), stderr(&o))
}

/// A store in `dir` holding the rows of one CSV file of `kind`.
fn store_of_csv(dir: &std::path::Path, kind: &str, csv: &str) -> std::path::PathBuf {
    let store = dir.join("store");
    let file = dir.join("rows.csv");
    std::fs::write(&file, csv).unwrap();
    import_ok(&store, kind, &file);
    store
}

#[test]
fn csv_values_that_do_not_fit_their_column_reject_the_file_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cases = [
        (
            "log",
            "ts,namespace,pod,body,severity_number",
            "hello,nine",
            "`nine` is not a 32-bit integer",
        ),
        (
            "log",
            "ts,namespace,pod,body,severity_number",
            "hello,99999999999",
            "`99999999999` is not a 32-bit integer",
        ),
        (
            "event",
            "ts,namespace,pod,reason,event_count",
            "Pulled,abc",
            "`abc` is not a 32-bit integer",
        ),
        (
            "event",
            "ts,namespace,pod,reason,event_count",
            "Pulled,1.5",
            "`1.5` is not a 32-bit integer",
        ),
    ];
    for (i, (kind, header, tail, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.csv"));
        std::fs::write(
            &file,
            format!(
                "{header}\n2024-05-01T10:00:00Z,shop,web,{}\n2024-05-01T10:00:01Z,shop,web,{tail}\n",
                header_default(header)
            ),
        )
        .unwrap();
        let (ok, err) = import(&store, kind, &file);
        assert!(!ok, "{kind} {tail}: imported");
        assert!(
            err.contains(expected) && err.contains("line 3"),
            "{kind} {tail}: {err}"
        );
    }
    // Nothing of the rejected files was stored; a well-formed file still imports.
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "ts,namespace,pod,body,severity_number\n2024-05-01T10:00:00Z,shop,web,hello,9\n",
    )
    .unwrap();
    import_ok(&store, "log", &good);
    assert_eq!(
        sql(
            &store,
            "SELECT count(*) AS n, max(severity_number) AS s FROM logs"
        ),
        "n,s\n1,9\n"
    );
    assert_eq!(sql(&store, "SELECT count(*) AS n FROM events"), "n\n0\n");
}

/// A well-formed value for the last column of `header`'s case.
fn header_default(header: &str) -> &'static str {
    if header.ends_with("event_count") {
        "Pulled,1"
    } else {
        "hello,9"
    }
}

#[test]
fn import_errors_name_the_files_line_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = r#"{"ts":"2024-05-01T10:00:00Z","namespace":"shop","body":"x"}"#;
    // A required value missing: the line of the file, not the row of a batch.
    let f = write(
        "no-ts.ndjson",
        &format!("{good}\n\n{{\"namespace\":\"shop\",\"body\":\"x\"}}\n"),
    );
    let (ok, err) = import(&store, "log", &f);
    assert!(!ok);
    assert!(err.contains("line 3") && err.contains("`ts`"), "{err}");
    let f = write(
        "no-ts.csv",
        "ts,namespace,pod,body\n2024-05-01T10:00:00Z,shop,web,a\n,shop,web,b\n",
    );
    let (ok, err) = import(&store, "log", &f);
    assert!(!ok);
    assert!(err.contains("line 3") && err.contains("`ts`"), "{err}");
    // A value of the wrong type in NDJSON: the line too.
    let f = write(
        "bad-value.ndjson",
        &format!(
            "{good}\n{good}\n{{\"ts\":\"2024-05-01T10:00:00Z\",\"body\":\"x\",\"severity_number\":\"nine\"}}\n"
        ),
    );
    let (ok, err) = import(&store, "log", &f);
    assert!(!ok);
    assert!(
        err.contains("line 3") && err.contains("severity_number"),
        "{err}"
    );
    // Year 3000 is RFC 3339; it is out of range.
    let f = write(
        "far.csv",
        "ts,namespace,pod,body\n3000-01-01T00:00:00Z,shop,web,a\n",
    );
    let (ok, err) = import(&store, "log", &f);
    assert!(!ok);
    assert!(
        err.contains("out of range") && !err.contains("not an RFC 3339"),
        "{err}"
    );
    // A byte-order mark is not part of the first column's name.
    let f = write(
        "bom.csv",
        "\u{feff}ts,namespace,pod,body\n2024-05-01T10:00:00Z,shop,web,a\n",
    );
    import_ok(&store, "log", &f);
    assert_eq!(sql(&store, "SELECT count(*) AS n FROM logs"), "n\n1\n");
}

#[test]
fn a_parquet_file_with_a_damaged_page_is_rejected_whole_and_the_import_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, "20", "0.1");
    let good = data.join("metrics.parquet");
    let bytes = std::fs::read(&good).unwrap();
    let rows: usize = {
        let store = dir.path().join("probe");
        import_ok(&store, "metric", &good);
        sql(&store, "SELECT count(*) AS n FROM metrics")
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    // 20 bytes flipped at several places in the data pages (the footer stays intact, so
    // the file opens and fails while its pages are decoded).
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap())
        as usize
        + 8;
    let pages = bytes.len() - footer;
    for (i, at) in [pages / 5, pages / 3, pages / 2, pages * 3 / 4]
        .into_iter()
        .enumerate()
    {
        let mut damaged = bytes.clone();
        for b in &mut damaged[at..at + 20] {
            *b ^= 0xA5;
        }
        let corrupt = dir.path().join(format!("corrupt{i}.parquet"));
        std::fs::write(&corrupt, &damaged).unwrap();
        let store = dir.path().join(format!("store{i}"));
        let o = vigil(&[
            "import",
            "--data-dir",
            store.to_str().unwrap(),
            "--kind",
            "metric",
            good.to_str().unwrap(),
            corrupt.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "at {at}: {err}");
        assert_ne!(o.status.code(), Some(101), "at {at}: {err}");
        let n: usize = sql(&store, "SELECT count(*) AS n FROM metrics")
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        if o.status.success() {
            // Damage the decoder cannot see (in a value's bytes): the file imports whole.
            assert_eq!(n, 2 * rows, "at {at}");
        } else {
            assert!(
                err.contains(&format!("corrupt{i}.parquet")),
                "at {at}: {err}"
            );
            assert_eq!(
                n, rows,
                "at {at}: the good file whole, none of the damaged one"
            );
        }
    }
}

#[test]
fn vigil_sql_reads_the_statement_from_a_file_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_csv(
        dir.path(),
        "log",
        "ts,namespace,pod,body\n2024-05-01T10:00:00Z,shop,web,a\n",
    );
    // 200 KB of statement: longer than a command line may be.
    let terms = vec!["1"; 100_000].join("+");
    let statement = format!("SELECT count(*) + 0*({terms}) AS n FROM logs");
    let path = dir.path().join("q.sql");
    std::fs::write(&path, &statement).unwrap();
    let o = vigil(&[
        "sql",
        "--data-dir",
        store.to_str().unwrap(),
        "--format",
        "csv",
        "--file",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n1\n");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "sql",
            "--data-dir",
            store.to_str().unwrap(),
            "--format",
            "csv",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT body FROM logs")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "body\na\n");
    let o = vigil(&[
        "sql",
        "--data-dir",
        store.to_str().unwrap(),
        "--file",
        "/no/such.sql",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/no/such.sql"), "{}", stderr(&o));
}

#[test]
fn nan_and_infinities_are_not_null_in_json_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_csv(
        dir.path(),
        "metric",
        "ts,namespace,pod,name,value\n2024-05-01T10:00:00Z,shop,web,cpu,1\n",
    );
    let statement = "SELECT CAST('NaN' AS DOUBLE) AS a, CAST('inf' AS DOUBLE) AS b, \
                     CAST('-inf' AS DOUBLE) AS c, CAST(NULL AS DOUBLE) AS d, 1.5 AS e";
    let o = vigil(&[
        "sql",
        "--data-dir",
        store.to_str().unwrap(),
        "--format",
        "json",
        statement,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        rows,
        json!([{"a": "NaN", "b": "Infinity", "c": "-Infinity", "e": 1.5}])
    );

    let server = Server::start(&store, Some(&config("")));
    let r = server.request(
        "POST",
        "/api/v1/sql",
        &[
            ("Authorization", &format!("Bearer {ADMIN}")),
            ("Content-Type", "application/json"),
        ],
        json!({ "sql": statement }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["rows"],
        json!([["NaN", "Infinity", "-Infinity", null, 1.5]])
    );
}

/// An OTLP/JSON gauge request of `points`, from a pod of `namespace`.
fn gauge(namespace: &str, points: &[Value]) -> Vec<u8> {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "k8s.namespace.name", "value": {"stringValue": namespace}},
            {"key": "k8s.pod.name", "value": {"stringValue": "web-1"}}]},
        "scopeMetrics": [{"metrics": [{"name": "probe", "gauge": {"dataPoints": points}}]}]
    }]})
    .to_string()
    .into_bytes()
}

fn post_json(server: &Server, path: &str, secret: &str, body: &[u8]) -> crate::server::Response {
    server.request(
        "POST",
        path,
        &[
            ("Authorization", &format!("Bearer {secret}")),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

fn count(server: &Server, statement: &str) -> i64 {
    let r = post_json(
        server,
        "/api/v1/sql",
        ADMIN,
        json!({ "sql": statement }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["rows"][0][0].as_i64().unwrap()
}

#[test]
fn otlp_json_refuses_a_bad_point_alone_and_stores_non_finite_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), Some(&config("")));
    let good = |i: i64| json!({"asDouble": i, "timeUnixNano": format!("{}", 1_714_557_600_000_000_000i64 + i)});
    for (n, bad) in [
        json!({"asDouble": 9, "timeUnixNano": "-1"}),
        json!({"asDouble": 9, "timeUnixNano": "abc"}),
        json!({"asDouble": 9, "timeUnixNano": 1.5}),
        json!({"asDouble": 9, "timeUnixNano": "32503680000000000000"}),
        json!({"asDouble": 9, "timeUnixNano": "1714557600000000000",
               "attributes": [{"key": "k", "value": {"intValue": "notint"}}]}),
    ]
    .into_iter()
    .enumerate()
    {
        let r = post_json(
            &server,
            "/v1/metrics",
            INGEST,
            &gauge("shop", &[good(1), good(2), good(3), bad.clone()]),
        );
        assert_eq!(r.status, 200, "{bad}: {}", r.text());
        let partial = &r.json()["partialSuccess"];
        assert_eq!(partial["rejectedDataPoints"], json!(1), "{bad}: {partial}");
        let message = partial["errorMessage"].as_str().unwrap();
        assert!(message.contains("data point 3"), "{bad}: {message}");
        assert_eq!(
            count(&server, "SELECT count(*) FROM metrics WHERE name = 'probe'"),
            3 * (n as i64 + 1),
            "{bad}: the three good points stored"
        );
    }
    let r = post_json(
        &server,
        "/v1/metrics",
        INGEST,
        &gauge(
            "shop",
            &[
                json!({"asDouble": "NaN", "timeUnixNano": "1714557600000000001"}),
                json!({"asDouble": "Infinity", "timeUnixNano": "1714557600000000002"}),
                json!({"asDouble": "-Infinity", "timeUnixNano": "1714557600000000003"}),
            ],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()
            .get("partialSuccess")
            .is_none_or(|p| p.get("rejectedDataPoints").is_none()),
        "{}",
        r.text()
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM metrics WHERE name = 'probe' AND (isnan(value) OR value = 'Infinity'::double OR value = '-Infinity'::double)"
        ),
        3
    );
}

#[test]
fn a_token_restricted_to_namespaces_writes_only_rows_of_those() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), Some(&config("")));
    let point = json!({"asDouble": 1, "timeUnixNano": "1714557600000000000"});
    // Its own namespace: stored.
    let r = post_json(
        &server,
        "/v1/metrics",
        SHOP,
        &gauge("shop", std::slice::from_ref(&point)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Another's, or none: refused record by record, as partial success.
    let mut body: Value =
        serde_json::from_slice(&gauge("payments", &[point.clone(), point.clone()])).unwrap();
    let theirs = body["resourceMetrics"][0].clone();
    let mut unnamed = theirs.clone();
    unnamed["resource"]["attributes"] = json!([]);
    let mut mine = theirs.clone();
    mine["resource"]["attributes"][0]["value"]["stringValue"] = json!("shop");
    body["resourceMetrics"] = json!([theirs, unnamed, mine]);
    let r = post_json(&server, "/v1/metrics", SHOP, body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let partial = &r.json()["partialSuccess"];
    assert_eq!(partial["rejectedDataPoints"], json!(4), "{partial}");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("\"payments\"") && message.contains("no namespace"),
        "{message}"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM metrics WHERE namespace = 'shop'"
        ),
        3
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM metrics WHERE namespace <> 'shop' OR namespace IS NULL"
        ),
        0
    );

    // Logs and Kubernetes events sent as logs, and audit events, the same way.
    let logs = json!({"resourceLogs": [
        {"resource": {"attributes": [{"key": "k8s.namespace.name", "value": {"stringValue": "payments"}}]},
         "scopeLogs": [{"logRecords": [{"timeUnixNano": "1714557600000000000", "body": {"stringValue": "x"}}]}]},
        {"resource": {"attributes": [{"key": "k8s.namespace.name", "value": {"stringValue": "shop"}}]},
         "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1714557600000000000", "body": {"stringValue": "mine"}},
            {"timeUnixNano": "1714557600000000000",
             "attributes": [{"key": "k8s.event.reason", "value": {"stringValue": "Pulled"}},
                            {"key": "k8s.event.name", "value": {"stringValue": "web-1.17"}},
                            {"key": "k8s.namespace.name", "value": {"stringValue": "payments"}}],
             "body": {"stringValue": "Successfully pulled image"}}]}]}]});
    let r = post_json(&server, "/v1/logs", SHOP, logs.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["partialSuccess"]["rejectedLogRecords"],
        json!(2),
        "{}",
        r.text()
    );
    assert_eq!(count(&server, "SELECT count(*) FROM logs"), 1);
    assert_eq!(count(&server, "SELECT count(*) FROM events"), 0);

    let event = |namespace: &str, id: &str| {
        json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
               "auditID": id, "stage": "ResponseComplete", "verb": "get",
               "requestURI": format!("/api/v1/namespaces/{namespace}/pods/web-1"),
               "user": {"username": "alice"},
               "objectRef": {"resource": "pods", "namespace": namespace, "name": "web-1"},
               "stageTimestamp": "2024-05-01T10:00:00Z"})
    };
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                      "items": [event("shop", "a1"), event("payments", "a2")]});
    let r = post_json(&server, "/v1/audit", SHOP, list.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("payments"), "{}", r.text());
    assert_eq!(count(&server, "SELECT count(*) FROM audit"), 1);
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM audit WHERE object_namespace = 'shop'"
        ),
        1
    );

    // An unrestricted ingest token writes anywhere.
    let r = post_json(&server, "/v1/metrics", INGEST, &gauge("payments", &[point]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM metrics WHERE namespace = 'payments'"
        ),
        1
    );
}

#[test]
fn an_http_11_request_without_one_host_header_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), None);
    let r = server.raw(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("Host"), "{}", r.text());
    let r = server.request(
        "GET",
        "/healthz",
        &[("Host", "127.0.0.1"), ("Host", "localhost")],
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = server.request("GET", "/healthz", &[("Host", "127.0.0.1")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // HTTP/1.0 has no Host requirement.
    let r = server.raw(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn command_line_errors_say_what_is_wrong_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_csv(
        dir.path(),
        "log",
        "ts,namespace,pod,body\n2024-05-01T10:00:00Z,shop,web,a\n",
    );

    // A store that a running server holds.
    let server = Server::start(&store, None);
    let o = vigil(&["sql", "--data-dir", store.to_str().unwrap(), "SELECT 1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.matches("open in another process").count(), 1, "{err}");
    assert!(!err.contains("LOCK"), "{err}");
    drop(server);

    // A file where a store directory should be.
    let file = dir.path().join("rows.csv");
    let (ok, err) = import(&file, "log", &file);
    assert!(!ok);
    assert!(
        err.contains("is a file") && !err.contains("File exists"),
        "{err}"
    );

    // An explicit retention run applies changed rules at once and says so, not that it
    // waits for the grace.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[retention.rules]]\nkind = \"logs\"\nkeep = \"3650d\"\n",
    )
    .unwrap();
    let o = vigil(&[
        "retention",
        "--config",
        rules.to_str().unwrap(),
        "--data-dir",
        store.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("applies them now") && !err.contains("until the grace ends"),
        "{err}"
    );
}
