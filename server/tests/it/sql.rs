//! Serving SQL over the network: Flight SQL (the Rust `arrow-flight` client here, ADBC's
//! Python driver in `tests/python/flight_sql_adbc.py`), the HTTP SQL API, bearer tokens with
//! scopes and namespaces, TLS, and query limits, all against a running `vigil serve` over a
//! generated cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, CommandGetXdbcTypeInfo, SqlInfo};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use crate::cli::{generate, import_ok, stderr, vigil};
use crate::server::Server;

/// Secrets of the tokens in [`config`]; the file holds their SHA-256.
pub(crate) const ADMIN: &str = "admin-secret";
pub(crate) const ANALYST: &str = "analyst-secret";
pub(crate) const SHOP: &str = "shop-only-secret";
pub(crate) const INGEST: &str = "ingest-only-secret";
const EXPIRED: &str = "expired-secret";

fn sha256(secret: &str) -> String {
    // The server's own hashing is checked against `vigil token` below; here, the same
    // digest from an independent implementation (Python's hashlib).
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            secret,
        ])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub(crate) fn config(extra: &str) -> String {
    let token = |name: &str, secret: &str, rest: &str| {
        format!(
            "[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\n{rest}\n",
            sha256(secret)
        )
    };
    let mut text = String::new();
    text.push_str(&token("admin", ADMIN, "scopes = [\"admin\"]"));
    text.push_str(&token("analyst", ANALYST, "scopes = [\"query\"]"));
    text.push_str(&token(
        "shop",
        SHOP,
        "scopes = [\"query\", \"ingest\"]\nnamespaces = [\"shop\"]",
    ));
    text.push_str(&token("collector", INGEST, "scopes = [\"ingest\"]"));
    text.push_str(&token(
        "old",
        EXPIRED,
        "scopes = [\"query\"]\nexpires = \"2020-01-01T00:00:00Z\"",
    ));
    text.push_str(extra);
    text
}

/// A store with a generated cluster (several namespaces, every kind).
pub(crate) fn store(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let store = dir.join("store");
    generate(&data, "40", "0.25");
    for table in ["metrics", "logs", "spans", "audit", "events"] {
        import_ok(&store, table, &data.join(format!("{table}.parquet")));
    }
    store
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) async fn client(
    server: &Server,
    secret: Option<&str>,
) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(secret) = secret {
        client.set_token(secret.to_string());
    }
    client
}

pub(crate) async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await?;
        out.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(out)
}

/// Runs a metadata call and fetches its result.
macro_rules! meta {
    ($c:ident . $call:ident ( $($arg:expr),* )) => {{
        let info = $c.$call($($arg),*).await.unwrap();
        fetch(&mut $c, info).await.unwrap()
    }};
}

pub(crate) async fn query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, String> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    fetch(client, info).await.map_err(|e| e.to_string())
}

pub(crate) fn int(batches: &[RecordBatch]) -> i64 {
    let b = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    let c = arrow::compute::cast(b.column(0), &DataType::Int64).unwrap();
    c.as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

fn column_strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column_by_name(name).expect(name), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend((0..c.len()).map(|i| c.value(i).to_string()));
    }
    out
}

pub(crate) fn sql_request(
    server: &Server,
    secret: Option<&str>,
    body: Value,
) -> crate::server::Response {
    let auth = secret.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    server.request("POST", "/api/v1/sql", &headers, body.to_string().as_bytes())
}

#[test]
fn flight_sql_queries_prepared_statements_and_catalog_calls_with_the_rust_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let server = Server::start(&store, Some(&config("")));
    let rt = runtime();
    rt.block_on(async {
        // Basic auth handshake: user anything, password the token; the server answers with
        // the bearer token the client uses from then on.
        let mut c = client(&server, None).await;
        c.handshake("grafana", ANALYST).await.unwrap();
        assert_eq!(c.token().map(String::as_str), Some(ANALYST));
        let total = int(&query(&mut c, "SELECT count(*) FROM metrics").await.unwrap());
        assert!(total > 1000, "{total}");

        // The brief's temporal SQL runs over Flight too.
        // (Snowflake's spelling keeps every left row.)
        let asof = query(
            &mut c,
            "SELECT count(*) AS n, count(m.value) AS matched FROM audit a ASOF JOIN metrics m \
             MATCH_CONDITION (a.ts >= m.ts) ON a.pod = m.pod",
        )
        .await
        .unwrap();
        let audit = int(&query(&mut c, "SELECT count(*) FROM audit").await.unwrap());
        assert_eq!(int(&asof), audit);
        assert!(audit > 0);

        // Prepared statement with a parameter, executed twice with different values.
        let mut prepared = c
            .prepare(
                "SELECT count(*) AS n FROM metrics WHERE namespace = $1".to_string(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(prepared.dataset_schema().unwrap().field(0).name(), "n");
        assert_eq!(prepared.parameter_schema().unwrap().fields().len(), 1);
        let mut by_namespace = 0;
        for ns in ["shop", "monitoring"] {
            let params = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, false)])),
                vec![Arc::new(StringArray::from(vec![ns]))],
            )
            .unwrap();
            prepared.set_parameters(params).unwrap();
            let info = prepared.execute().await.unwrap();
            let n = int(&fetch(&mut c, info).await.unwrap());
            let direct = int(&query(
                &mut c,
                &format!("SELECT count(*) FROM metrics WHERE namespace = '{ns}'"),
            )
            .await
            .unwrap());
            assert_eq!(n, direct, "{ns}");
            assert!(n > 0, "{ns}");
            by_namespace += n;
        }
        assert!(by_namespace < total);
        prepared.close().await.unwrap();

        // Catalog calls.
        let catalogs = meta!(c.get_catalogs());
        assert_eq!(
            column_strings(&catalogs, "catalog_name"),
            vec!["datafusion"]
        );
        let schemas = meta!(c.get_db_schemas(CommandGetDbSchemas::default()));
        let schemas = column_strings(&schemas, "db_schema_name");
        assert!(schemas.contains(&"public".to_string()), "{schemas:?}");
        let tables = meta!(c.get_tables(CommandGetTables {
            db_schema_filter_pattern: Some("public".into()),
            include_schema: true,
            ..Default::default()
        }));
        let mut names = column_strings(&tables, "table_name");
        names.sort();
        assert_eq!(
            names,
            vec![
                "audit",
                "events",
                "logs",
                "metric_rollups",
                "metrics",
                "metrics_1h",
                "metrics_1m",
                "pods",
                "retention_holds",
                "retention_rules",
                "signals",
                "spans"
            ]
        );
        assert!(tables[0].column_by_name("table_schema").is_some());
        let types = meta!(c.get_table_types());
        assert!(column_strings(&types, "table_type").contains(&"TABLE".to_string()));
        let info = meta!(c.get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly
        ]));
        assert_eq!(info.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        let xdbc = meta!(c.get_xdbc_type_info(CommandGetXdbcTypeInfo::default()));
        assert!(column_strings(&xdbc, "type_name").contains(&"VARCHAR".to_string()));

        // Updates: refused to a query token, done for an admin token.
        let refused = c
            .execute_update("FLUSH".to_string(), None)
            .await
            .unwrap_err();
        let arrow_flight::error::FlightError::Tonic(refused) = refused else {
            panic!("not a gRPC status: {refused}");
        };
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        assert!(
            refused.message().contains("FLUSH changes the store"),
            "{refused}"
        );
        let mut admin = client(&server, Some(ADMIN)).await;
        admin
            .execute_update("FLUSH".to_string(), None)
            .await
            .unwrap();
        let created = admin
            .execute_update(
                "CREATE VIEW shop_cpu AS SELECT * FROM metrics WHERE namespace = 'shop'"
                    .to_string(),
                None,
            )
            .await;
        assert!(created.is_ok(), "{created:?}");

        // Bad SQL: INVALID_ARGUMENT with the parser's position.
        let e = refusal(&mut c, "SELECT count(* FROM metrics").await;
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains("(at line 1, column 16)"), "{e}");
        // A planning error names the position too.
        let e = query(&mut c, "SELECT pod,\n  no_such_column FROM metrics")
            .await
            .unwrap_err();
        assert!(
            e.contains("no_such_column") && e.contains("line 2, column 3"),
            "{e}"
        );
    });
}

/// A server over the generated store, with the tokens of [`config`].
fn secured(dir: &Path) -> Server {
    let store = store(dir);
    Server::start(&store, Some(&config("")))
}

/// The gRPC status of a Flight SQL statement the server refuses.
async fn refusal(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> tonic::Status {
    let error = match client.execute(sql.to_string(), None).await {
        Ok(info) => fetch(client, info)
            .await
            .expect_err("the server refuses it"),
        Err(e) => e,
    };
    match error {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => panic!("{sql}: not a gRPC status: {other}"),
    }
}

#[test]
fn the_sql_api_refuses_missing_wrong_expired_and_ingest_only_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    let count = json!({"sql": "SELECT count(*) AS n FROM metrics"});
    let r = sql_request(&server, None, count.clone());
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some());
    let r = sql_request(&server, Some("wrong"), count.clone());
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("unknown token"), "{}", r.text());
    let r = sql_request(&server, Some(EXPIRED), count.clone());
    assert_eq!(r.status, 401);
    assert!(r.text().contains("expired"), "{}", r.text());
    let r = sql_request(&server, Some(INGEST), count.clone());
    assert_eq!(r.status, 403);
    assert!(r.text().contains("lacks the query scope"), "{}", r.text());
    let r = sql_request(&server, Some(ANALYST), count);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn ingest_metrics_and_health_endpoints_need_their_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    let otlp = |secret: Option<&str>| {
        let auth = secret.map(|s| format!("Bearer {s}")).unwrap_or_default();
        let mut headers = vec![("Content-Type", "application/json")];
        if secret.is_some() {
            headers.push(("Authorization", auth.as_str()));
        }
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.namespace.name","value":{"stringValue":"shop"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","body":{"stringValue":"hello"}}]}]}]}"#;
        server.request("POST", "/v1/logs", &headers, body).status
    };
    assert_eq!(otlp(None), 401);
    assert_eq!(otlp(Some(ANALYST)), 403);
    assert_eq!(otlp(Some(INGEST)), 200);
    assert_eq!(otlp(Some(ADMIN)), 200);
    let get = |path: &str, secret: &str| {
        let auth = format!("Bearer {secret}");
        server
            .request("GET", path, &[("Authorization", auth.as_str())], b"")
            .status
    };
    assert_eq!(get("/metrics", ANALYST), 403);
    assert_eq!(get("/metrics", ADMIN), 200);
    assert_eq!(get("/readyz", INGEST), 200);
    assert_eq!(server.request("GET", "/readyz", &[], b"").status, 401);
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    // OTLP over gRPC without a token is refused too.
    runtime().block_on(async {
        let channel = Endpoint::from_shared(format!("http://{}", server.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut logs = opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient::new(channel);
        let e = logs
            .export(opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    });
}

/// Counts with the admin token: rows of the `shop` namespace and of all.
fn shop_and_all_rows(server: &Server) -> (i64, i64) {
    let admin_n = |sql: &str| {
        let r = sql_request(server, Some(ADMIN), json!({"sql": sql}));
        assert_eq!(r.status, 200, "{sql}: {}", r.text());
        r.json()["rows"][0][0].as_i64().unwrap()
    };
    let shop = admin_n("SELECT count(*) FROM signals WHERE namespace = 'shop'");
    let all = admin_n("SELECT count(*) FROM signals");
    assert!(shop > 0 && shop < all, "{shop} of {all}");
    (shop, all)
}

#[test]
fn a_namespace_token_sees_only_its_namespace_whatever_the_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    let (shop_rows, _) = shop_and_all_rows(&server);
    let scoped = |sql: &str| {
        let r = sql_request(&server, Some(SHOP), json!({"sql": sql, "limit": 100000}));
        assert_eq!(r.status, 200, "{sql}: {}", r.text());
        r.json()
    };
    assert_eq!(
        scoped("SELECT count(*) FROM signals")["rows"][0][0],
        json!(shop_rows)
    );
    for sql in [
        "SELECT DISTINCT namespace FROM signals",
        "SELECT DISTINCT namespace FROM metrics WHERE namespace <> 'shop' UNION SELECT DISTINCT namespace FROM logs",
        "SELECT DISTINCT namespace FROM (SELECT * FROM audit WHERE namespace IS NULL OR namespace <> 'shop') t UNION ALL SELECT 'shop'",
        "SELECT DISTINCT namespace FROM spans WHERE pod IN (SELECT pod FROM spans WHERE namespace = 'monitoring') UNION SELECT 'shop'",
    ] {
        let rows = scoped(sql)["rows"].clone();
        assert_eq!(rows, json!([["shop"]]), "{sql}");
    }
    // Joins see only the namespace on both sides (the pods table is empty here: imported
    // files carry no pod observations, so only the absence of other namespaces is checked).
    for sql in [
        "SELECT DISTINCT m.namespace FROM metrics m JOIN pods p ON m.pod = p.pod",
        "SELECT DISTINCT l.namespace FROM logs l JOIN metrics m ON l.pod = m.pod AND m.namespace <> 'shop'",
        "SELECT DISTINCT namespace FROM pods",
        "SELECT DISTINCT namespace FROM metrics_1m",
        "SELECT DISTINCT namespace FROM metric_rollups UNION SELECT 'shop'",
    ] {
        let rows = scoped(sql)["rows"].clone();
        let others: Vec<&Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| *r != &json!(["shop"]))
            .collect();
        assert_eq!(others, Vec::<&Value>::new(), "{sql}");
    }
    // information_schema lists tables, not rows; nothing of other namespaces leaks through it.
    let tables = scoped(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    assert_eq!(tables["rows"].as_array().unwrap().len(), 12);
}

#[test]
fn files_writes_and_store_commands_need_the_admin_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    for (sql, what) in [
        (
            "COPY (SELECT * FROM metrics) TO '/tmp/vigil-stolen.csv' STORED AS CSV",
            "COPY is not allowed",
        ),
        (
            "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE is not allowed",
        ),
        (
            "INSERT INTO metrics SELECT * FROM metrics",
            "INSERT INTO is not allowed",
        ),
        ("FLUSH", "FLUSH changes the store"),
    ] {
        let r = sql_request(&server, Some(SHOP), json!({"sql": sql}));
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
        let error = &r.json()["error"];
        assert_eq!(error["code"], "not_allowed", "{sql}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(what) && message.contains("admin scope"),
            "{sql}: {message}"
        );
    }
    assert!(!Path::new("/tmp/vigil-stolen.csv").exists());
    runtime().block_on(async {
        let mut c = client(&server, Some(SHOP)).await;
        let status = refusal(&mut c, "COPY (SELECT 1) TO '/tmp/vigil-x.csv'").await;
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
        assert!(status.message().contains("COPY is not allowed"), "{status}");
    });
    assert!(!Path::new("/tmp/vigil-x.csv").exists());
}

#[test]
fn flight_sql_refuses_tokens_that_may_not_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    runtime().block_on(async {
        for (secret, why) in [
            (None, "no credentials"),
            (Some("wrong"), "unknown token"),
            (Some(EXPIRED), "has expired"),
        ] {
            let mut c = client(&server, secret).await;
            let status = refusal(&mut c, "SELECT 1").await;
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{secret:?}: {status}"
            );
            assert!(status.message().contains(why), "{secret:?}: {status}");
        }
        let mut c = client(&server, Some(INGEST)).await;
        let status = refusal(&mut c, "SELECT 1").await;
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
        assert!(
            status.message().contains("lacks the query scope"),
            "{status}"
        );
    });
}

#[test]
fn flight_sql_shows_a_namespace_token_only_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path());
    let (shop_rows, _) = shop_and_all_rows(&server);
    runtime().block_on(async {
        let mut c = client(&server, Some(SHOP)).await;
        let n = int(&query(&mut c, "SELECT count(*) FROM signals").await.unwrap());
        assert_eq!(n, shop_rows);
        let namespaces = query(
            &mut c,
            "SELECT DISTINCT namespace FROM signals WHERE namespace <> 'shop'",
        )
        .await
        .unwrap();
        assert_eq!(
            namespaces.iter().map(RecordBatch::num_rows).sum::<usize>(),
            0
        );
    });
}

#[test]
fn the_http_sql_api_returns_rows_columns_or_arrow_with_time_range_limit_and_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let server = Server::start(
        &store,
        Some(&config(
            "[query]\nhttp_default_limit = 5\nhttp_max_rows = 1000\n",
        )),
    );
    // Rows, with types.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT pod, namespace, value, ts FROM metrics ORDER BY ts, pod"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["columns"][0],
        json!({"name": "pod", "type": "Utf8", "nullable": true})
    );
    assert_eq!(body["columns"][2]["type"], "Float64");
    assert!(
        body["columns"][3]["type"]
            .as_str()
            .unwrap()
            .starts_with("Timestamp")
    );
    assert_eq!(
        body["rows"].as_array().unwrap().len(),
        5,
        "the default limit"
    );
    assert_eq!(body["truncated"], true);
    assert!(body["rows"][0][2].is_number() && body["rows"][0][0].is_string());
    let first_ts = body["rows"][0][3].as_str().unwrap().to_string();

    // Columns, the time range as $start/$end, and an explicit limit.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({
            "sql": "SELECT count(*) AS n, min(ts) AS first FROM metrics WHERE ts >= $start AND ts < $end",
            "start": first_ts.clone() + "",
            "end": "2100-01-01T00:00:00Z",
            "format": "columns",
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["columns"][0]["name"], "n");
    let n_all = body["columns"][0]["values"][0].as_i64().unwrap();
    let total = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) FROM metrics"}),
    )
    .json()["rows"][0][0]
        .as_i64()
        .unwrap();
    assert_eq!(n_all, total);
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) FROM metrics WHERE ts > $start", "start": first_ts}),
    );
    assert!(r.json()["rows"][0][0].as_i64().unwrap() < total);
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT pod FROM metrics WHERE namespace = $1 LIMIT 3", "params": ["shop"]}),
    );
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 3);
    assert_eq!(r.json()["truncated"], false);

    // Arrow IPC stream.
    let r = server.request(
        "POST",
        "/api/v1/sql",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/vnd.apache.arrow.stream"),
            ("Authorization", &format!("Bearer {ANALYST}")),
        ],
        json!({"sql": "SELECT pod, value FROM metrics", "limit": 700})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None).unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        700
    );
    assert_eq!(batches[0].schema().field(1).data_type(), &DataType::Float64);

    // Errors: JSON with a code, and the line and column of the problem.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT pod FROM metrics\nWHERE pod = = 'x'"}),
    );
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "invalid_sql");
    assert_eq!(e["line"].as_u64(), Some(2), "{e}");
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT pod,\n  no_such_column FROM metrics"}),
    );
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert!(
        e["message"].as_str().unwrap().contains("no_such_column"),
        "{e}"
    );
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(3)),
        "{e}"
    );
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT 1", "limit": 5000}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "limit_too_large");
    let r = sql_request(&server, Some(ANALYST), json!({"query": "SELECT 1"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("sql"), "{}", r.text());
    let r = server.request(
        "POST",
        "/api/v1/sql",
        &[
            ("Authorization", &format!("Bearer {ANALYST}")),
            ("Content-Type", "application/json"),
        ],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    // Only JSON: a browser sends text/plain across origins without a preflight.
    let r = server.request(
        "POST",
        "/api/v1/sql",
        &[
            ("Authorization", &format!("Bearer {ANALYST}")),
            ("Content-Type", "text/plain"),
        ],
        br#"{"sql": "SELECT 1"}"#,
    );
    assert_eq!(r.status, 415);
    // Runtime errors caused by the data are the client's: 400, not 500.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT CAST(pod AS INT) FROM metrics"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn limits_fail_one_query_and_the_server_goes_on_and_dropped_streams_free_their_slot() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let server = Server::start(
        &store,
        Some(&config(
            "[query]\nmax_concurrent = 1\nmax_queued = 1\ntimeout_seconds = 3\nmemory_limit_bytes = 1048576\n",
        )),
    );
    // Over the memory limit: a clear error; the next query works.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT a.value, b.value FROM metrics a JOIN metrics b ON a.pod <> b.pod ORDER BY a.value + b.value DESC"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "resources_exhausted");
    assert!(r.text().contains("memory_limit_bytes"), "{}", r.text());
    let ok = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) FROM metrics"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Over the time limit: a cross join counted row by row does not finish in 3 s.
    let slow =
        "SELECT count(*) FROM metrics a, metrics b, (SELECT * FROM generate_series(1, 1000)) c";
    let started = Instant::now();
    let r = sql_request(&server, Some(ANALYST), json!({"sql": slow}));
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        sql_request(&server, Some(ANALYST), json!({"sql": "SELECT 1"})).status,
        200
    );
    // The server counts what happened, per outcome, on /metrics.
    let metrics = server
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {ADMIN}"))],
            b"",
        )
        .text();
    for line in [
        "vigil_queries_total{outcome=\"resources_exhausted\"} 1",
        "vigil_queries_total{outcome=\"timeout\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert!(
        metrics.contains("vigil_queries_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_queries_running 0"), "{metrics}");

    let rt = runtime();
    rt.block_on(async {
        // A client that reads one batch of a long result and goes away frees its slot: with
        // one slot, the next query runs instead of waiting out the timeout.
        let mut c = client(&server, Some(ANALYST)).await;
        let info = c
            .execute(
                // Narrow rows: each batch handed out counts against the 1 MiB limit too.
                "SELECT a.ts, b.ts FROM metrics a, metrics b".to_string(),
                None,
            )
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut stream = c.do_get(ticket).await.unwrap();
        let first = stream.try_next().await.unwrap().unwrap();
        assert!(first.num_rows() > 0);

        // While it holds the only slot, one query may wait and the next is refused as busy.
        let mut other = client(&server, Some(ANALYST)).await;
        let waiting = tokio::spawn(async move { query(&mut other, "SELECT 42").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut third = client(&server, Some(ANALYST)).await;
        let busy = refusal(&mut third, "SELECT 43").await;
        assert_eq!(busy.code(), tonic::Code::Unavailable, "{busy}");
        assert!(busy.message().contains("too many queries"), "{busy}");

        drop(stream);
        drop(c);
        let started = Instant::now();
        let answer = waiting.await.unwrap().unwrap();
        assert_eq!(int(&answer), 42);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        // A client that stops reading but stays connected loses its slot at its deadline
        // (3 s): the next query runs then, while the stalled stream is still open.
        let mut c = client(&server, Some(ANALYST)).await;
        let info = c
            .execute(
                // Narrow rows: each batch handed out counts against the 1 MiB limit too.
                "SELECT a.ts, b.ts FROM metrics a, metrics b".to_string(),
                None,
            )
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut stalled = c.do_get(ticket).await.unwrap();
        assert!(stalled.try_next().await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let mut other = client(&server, Some(ANALYST)).await;
        let answer = query(&mut other, "SELECT 7").await.unwrap();
        assert_eq!(int(&answer), 7);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        drop(stalled);
    });
}

#[test]
fn tls_on_both_ports_with_optional_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let ca =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ca.cert.pem()).unwrap();
    std::fs::write(&key_path, ca.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &store,
        Some(&config(&format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ))),
    );
    let rt = runtime();
    rt.block_on(async {
        // Flight SQL over TLS, trusting the server's certificate.
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.cert.pem()))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://{}", server.grpc))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = FlightSqlServiceClient::new(channel);
        c.set_token(ANALYST.into());
        let n = int(&query(&mut c, "SELECT count(*) FROM metrics").await.unwrap());
        assert!(n > 0);
        // Plain-text gRPC to the TLS port fails.
        let mut plain = client(&server, Some(ANALYST)).await;
        assert!(query(&mut plain, "SELECT 1").await.is_err());

        // HTTPS with rustls.
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(&server.http).await.unwrap();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = json!({"sql": "SELECT count(*) AS n FROM metrics"}).to_string();
        let request = format!(
            "POST /api/v1/sql HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ANALYST}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains(&format!("[[{n}]]")), "{text}");
    });
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.request("GET", "/healthz", &[], b"").status
    }));
    assert!(!matches!(plain, Ok(200)));
}

#[test]
fn vigil_token_prints_a_secret_and_an_entry_the_server_accepts() {
    let o = vigil(&[
        "token",
        "--name",
        "grafana",
        "--scope",
        "query",
        "--namespace",
        "shop,payments",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let secret = out
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("# "))
        .expect("the secret line")
        .to_string();
    assert!(
        out.contains(&format!("sha256 = \"{}\"", sha256(&secret))),
        "{out}"
    );
    assert!(
        out.contains("namespaces = [\"shop\", \"payments\"]"),
        "{out}"
    );
    let o = vigil(&["token", "--name", "x", "--scope", "root"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("root"), "{}", stderr(&o));
}

#[test]
fn adbc_flight_sql_driver_queries_prepares_and_lists_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let server = Server::start(&store, Some(&config("")));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/flight_sql_adbc.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([&server.grpc, ANALYST, SHOP])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(out.stdout.trim_ascii())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let admin = |sql: &str| {
        let r = sql_request(&server, Some(ADMIN), json!({"sql": sql}));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["rows"][0][0].clone()
    };
    assert_eq!(
        seen["metrics"],
        admin("SELECT count(*) FROM metrics"),
        "{seen}"
    );
    let by_namespace = seen["by_namespace"].as_object().unwrap();
    assert!(by_namespace.len() >= 3, "{seen}");
    for (ns, n) in by_namespace {
        if ns == "null" {
            continue; // rows without a namespace (cluster-scoped)
        }
        assert_eq!(
            n,
            &admin(&format!(
                "SELECT count(*) FROM metrics WHERE namespace = '{ns}'"
            )),
            "{ns}"
        );
    }
    assert_eq!(seen["by_namespace_types"], json!(["string", "int64"]));
    for ns in ["shop", "monitoring"] {
        assert_eq!(seen["prepared"][ns], by_namespace[ns], "{ns}");
    }
    assert_eq!(seen["asof_rows"], seen["audit"]);
    assert!(
        seen["copy"].as_str().unwrap().contains("only read"),
        "{seen}"
    );
    assert!(
        seen["bad_sql"].as_str().unwrap().contains("SELEC"),
        "{seen}"
    );
    let tables: Vec<&str> = seen["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        tables,
        [
            "audit",
            "events",
            "logs",
            "metric_rollups",
            "metrics",
            "metrics_1h",
            "metrics_1m",
            "pods",
            "retention_holds",
            "retention_rules",
            "signals",
            "spans"
        ]
    );
    let metrics_table = &seen["tables"][4];
    assert_eq!(metrics_table["type"], "TABLE");
    assert!(
        metrics_table["columns"]
            .as_array()
            .unwrap()
            .contains(&json!("value"))
    );
    assert!(
        seen["metrics_schema"]
            .as_array()
            .unwrap()
            .contains(&json!("namespace"))
    );
    assert!(
        seen["table_types"]
            .as_array()
            .unwrap()
            .contains(&json!("TABLE"))
    );
    assert_eq!(seen["vendor"], "vigil");
    assert_eq!(seen["scoped_namespaces"], json!(["shop"]));
    assert_eq!(seen["scoped_metrics"], by_namespace["shop"]);
    assert!(
        seen["wrong_password"]
            .as_str()
            .unwrap()
            .contains("nauthenticated")
            || seen["wrong_password"]
                .as_str()
                .unwrap()
                .contains("unknown token"),
        "{seen}"
    );
}

#[test]
fn required_client_certificates_are_checked_on_both_ports() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // A CA, a server certificate and a client certificate it signs.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("server.pem", server_cert.pem());
    let key = write("server.key", server_key.serialize_pem());
    let ca_file = write("ca.pem", ca.pem());
    let server = Server::start(
        &store,
        Some(&config(&format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nrequire_client_cert = true\n",
            cert.display(),
            key.display(),
            ca_file.display()
        ))),
    );
    let rt = runtime();
    rt.block_on(async {
        let connect = |identity: Option<tonic::transport::Identity>| {
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
                .domain_name("localhost");
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            let endpoint = Endpoint::from_shared(format!("https://{}", server.grpc))
                .unwrap()
                .tls_config(tls)
                .unwrap();
            async move {
                let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
                let mut c = FlightSqlServiceClient::new(channel);
                c.set_token(ANALYST.into());
                query(&mut c, "SELECT count(*) FROM metrics").await
            }
        };
        let with = connect(Some(tonic::transport::Identity::from_pem(
            client_cert.pem(),
            client_key.serialize_pem(),
        )))
        .await;
        assert!(int(&with.unwrap()) > 0);
        assert!(connect(None).await.is_err(), "no client certificate");

        // HTTPS: the handshake fails without a client certificate.
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(&server.http).await.unwrap();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let refused = match connector.connect(name, tcp).await {
            Err(_) => true,
            // TLS 1.3 reports a missing client certificate after the handshake, on first use.
            Ok(mut tls) => {
                let _ = tls
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await;
                let mut raw = Vec::new();
                tls.read_to_end(&mut raw).await.is_err() || !raw.starts_with(b"HTTP/1.1 200")
            }
        };
        assert!(refused, "HTTPS without a client certificate was served");
    });
}

#[test]
fn without_tokens_sql_only_reads_and_only_loopback_host_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let server = Server::start(&store, None);
    let out = dir.path().join("written.csv");
    let sql = |body: Value, host: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(h) = host {
            headers.push(("Host", h));
        }
        server.request("POST", "/api/v1/sql", &headers, body.to_string().as_bytes())
    };
    let r = sql(json!({"sql": "SELECT count(*) FROM metrics"}), None);
    assert_eq!(r.status, 200, "{}", r.text());
    for statement in [
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", out.display()),
        "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        "FLUSH".to_string(),
    ] {
        let r = sql(json!({ "sql": statement }), None);
        assert_eq!(r.status, 403, "{statement}: {}", r.text());
    }
    assert!(!out.exists());
    // A web page reaching 127.0.0.1 through its own DNS name is refused.
    let r = sql(json!({"sql": "SELECT 1"}), Some("attacker.example:4318"));
    assert_eq!(r.status, 403);
    for host in ["localhost:1", "127.0.0.1", "[::1]:4318"] {
        assert_eq!(
            sql(json!({"sql": "SELECT 1"}), Some(host)).status,
            200,
            "{host}"
        );
    }
}

#[test]
fn retention_rules_and_legal_holds_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let rules = "[retention]\nchange_grace = \"0\"\n\n[[retention.rules]]\nkind = \"logs\"\nkeep = \"3650d\"\n\n\
                 [[retention.rules]]\nkind = \"metrics\"\nnamespace = \"shop\"\nkeep = \"3650d\"\n\
                 downsample = [{ step = \"5m\", keep = \"7300d\" }]\n";
    let server = Server::start(&store, Some(&config(rules)));
    let r = sql_request(&server, Some(ANALYST), json!({"sql": "SHOW RETENTION"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let shown = r.text();
    assert!(
        shown.contains("\"logs\"") && shown.contains("5m for 7300d"),
        "{shown}"
    );
    // The configured step has its view.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT sum(count) AS n FROM metrics_5m"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Running a pass changes the store: admin only.
    let enforce = json!({"sql": "ENFORCE RETENTION"});
    assert_eq!(
        sql_request(&server, Some(ANALYST), enforce.clone()).status,
        403
    );
    let r = sql_request(&server, Some(ADMIN), enforce);
    assert_eq!(r.status, 200, "{}", r.text());

    let holds = |method: &str, path: &str, secret: &str, body: &str| {
        let auth = format!("Bearer {secret}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ];
        server.request(method, path, &headers, body.as_bytes())
    };
    let hold = r#"{"pod": "web-1", "namespace": "shop", "from": "2024-05-01T00:00:00Z",
                   "to": "2024-05-01T01:00:00Z", "reason": "alert 4711"}"#;
    assert_eq!(holds("POST", "/api/v1/holds", ANALYST, hold).status, 403);
    let r = holds("POST", "/api/v1/holds", ADMIN, hold);
    assert_eq!(r.status, 201, "{}", r.text());
    let placed: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(placed["pod"], "web-1");
    assert_eq!(placed["from"], "2024-05-01T00:00:00Z");
    let id = placed["id"].as_u64().unwrap();
    let r = holds(
        "POST",
        "/api/v1/holds",
        ADMIN,
        r#"{"pod": "x", "from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("is after"), "{}", r.text());
    let r = holds(
        "POST",
        "/api/v1/holds",
        ADMIN,
        r#"{"pod": "x", "from": "yesterday", "to": "now"}"#,
    );
    assert!(r.status == 400 && r.text().contains("from"), "{}", r.text());
    let r = holds("GET", "/api/v1/holds", ADMIN, "");
    assert!(
        r.status == 200 && r.text().contains("alert 4711"),
        "{}",
        r.text()
    );
    let r = sql_request(&server, Some(ANALYST), json!({"sql": "SHOW HOLDS"}));
    assert!(r.text().contains("alert 4711"), "{}", r.text());
    assert_eq!(
        holds("DELETE", &format!("/api/v1/holds/{id}"), ADMIN, "").status,
        204
    );
    assert_eq!(
        holds("DELETE", &format!("/api/v1/holds/{id}"), ADMIN, "").status,
        404
    );
}
