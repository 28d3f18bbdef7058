//! Statements that used to take the server down or keep it busy past every limit: expression
//! chains thousands of terms long, and CPU-bound queries that never yield, ended by their
//! deadline, by their client going away and by SIGTERM, over both protocols.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::json;

use crate::server::Server;
use crate::sql::{ADMIN, ANALYST, SHOP, client, config, int, query, runtime, sql_request, store};

/// `count(*)` over a three-way cross join of the metrics: billions of rows for an aggregate
/// whose input never waits.
const CROSS_JOIN: &str = "SELECT count(*) FROM metrics a, metrics b, metrics c";

fn running_queries(server: &Server) -> String {
    let metrics = server
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {ADMIN}"))],
            b"",
        )
        .text();
    metrics
        .lines()
        .find(|l| l.starts_with("vigil_queries_running "))
        .unwrap_or("no vigil_queries_running")
        .to_string()
}

/// Waits up to `within` for `/metrics` to show no query running.
fn wait_idle(server: &Server, within: Duration) -> Duration {
    let started = Instant::now();
    while running_queries(server) != "vigil_queries_running 0" {
        assert!(
            started.elapsed() < within,
            "still {} after {:?}",
            running_queries(server),
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn long_chains_plan_deep_nesting_is_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&store(dir.path()), Some(&config("")));

    // 2,000 terms of `+` (8 KB): what aborted the server with a stack overflow.
    let sum = vec!["1"; 2_000].join(" + ");
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": format!("SELECT {sum} AS n")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"][0][0], 2_000, "{}", r.text());

    // 3,000 pods OR-ed together (50 KB), as a multi-value dashboard variable expands.
    let pods: Vec<String> = (0..3_000).map(|i| format!("pod = 'p{i}'")).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM metrics WHERE {}",
        pods.join(" OR ")
    );
    let r = sql_request(&server, Some(ANALYST), json!({ "sql": sql }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"][0][0], 0, "no pod is named p0..p2999");

    // 10,000 terms of `-` cannot be regrouped: refused, naming the limit.
    let difference = vec!["1"; 10_000].join(" - ");
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": format!("SELECT {difference}")}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_sql");
    assert!(r.text().contains("levels deep"), "{}", r.text());

    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) AS n FROM metrics"}),
    );
    assert_eq!(r.status, 200, "the server is still up: {}", r.text());
}

#[test]
fn a_cpu_bound_query_ends_at_its_deadline_over_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &store(dir.path()),
        Some(&config("[query]\ntimeout_seconds = 2\n")),
    );
    let started = Instant::now();
    let r = sql_request(&server, Some(ANALYST), json!({ "sql": CROSS_JOIN }));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "timeout");
    assert!(
        took < Duration::from_secs(5),
        "HTTP answered after {took:?}"
    );
    wait_idle(&server, Duration::from_secs(2));

    runtime().block_on(async {
        let mut c = client(&server, Some(ANALYST)).await;
        let started = Instant::now();
        let e = query(&mut c, CROSS_JOIN)
            .await
            .expect_err("past its deadline");
        let took = started.elapsed();
        assert!(e.contains("timeout_seconds"), "{e}");
        assert!(
            took < Duration::from_secs(5),
            "Flight SQL answered after {took:?}"
        );
    });
    wait_idle(&server, Duration::from_secs(2));
    assert_eq!(
        sql_request(&server, Some(ANALYST), json!({"sql": "SELECT 1"})).status,
        200
    );
}

#[test]
fn a_cpu_bound_query_ends_when_its_client_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &store(dir.path()),
        Some(&config("[query]\ntimeout_seconds = 600\n")),
    );
    runtime().block_on(async {
        let mut c = client(&server, Some(ANALYST)).await;
        let info = c.execute(CROSS_JOIN.to_string(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let waiting = tokio::spawn(async move {
            // Waits for the one row of the count, which does not come before the abort.
            let mut rows = c.do_get(ticket).await.unwrap();
            let _ = rows.try_next().await;
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(running_queries(&server), "vigil_queries_running 1");
        // The client goes away mid-query: its connection closes.
        waiting.abort();
        let _ = waiting.await;
    });
    let took = wait_idle(&server, Duration::from_secs(3));
    eprintln!("the query ended {took:?} after its client left");
    runtime().block_on(async {
        let mut c = client(&server, Some(ANALYST)).await;
        assert_eq!(int(&query(&mut c, "SELECT 5").await.unwrap()), 5);
    });
}

#[test]
fn sigterm_stops_the_server_within_seconds_while_a_cpu_bound_query_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &store(dir.path()),
        Some(&config("[query]\ntimeout_seconds = 600\n")),
    );
    let http = server.http.clone();
    let running = std::thread::spawn(move || {
        // The answer (503, or a closed connection) does not matter; the stop does.
        let _ = std::net::TcpStream::connect(&http).and_then(|mut s| {
            use std::io::{Read, Write};
            let body = json!({ "sql": CROSS_JOIN }).to_string();
            write!(
                s,
                "POST /api/v1/sql HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {ANALYST}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).map(|_| ())
        });
    });
    let started = Instant::now();
    while running_queries(&server) != "vigil_queries_running 1" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the query did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let status = server.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(3),
        "stopped {took:?} after SIGTERM"
    );
    running.join().unwrap();
}

#[test]
fn the_sql_api_reads_only_json_objects_and_media_types_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&store(dir.path()), Some(&config("")));
    let post = |content_type: &str, body: &str| {
        server.request(
            "POST",
            "/api/v1/sql",
            &[
                ("Authorization", &format!("Bearer {ANALYST}")),
                ("Content-Type", content_type),
            ],
            body.as_bytes(),
        )
    };
    // An array is not a request, though serde would read it by position.
    let r = post("application/json", r#"["SELECT 1"]"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("JSON object"), "{}", r.text());
    // Media types are case-insensitive.
    let r = post("APPLICATION/JSON; Charset=UTF-8", r#"{"sql": "SELECT 1"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post("application/jsonx", r#"{"sql": "SELECT 1"}"#);
    assert_eq!(r.status, 415, "{}", r.text());
}

#[test]
fn vigil_sql_on_a_directory_without_a_store_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no").join("such").join("dir");
    let o = crate::cli::vigil(&[
        "sql",
        "--data-dir",
        missing.to_str().unwrap(),
        "SELECT count(*) FROM metrics",
    ]);
    assert!(!o.status.success(), "exit {:?}", o.status);
    let err = crate::cli::stderr(&o);
    assert!(err.contains("no vigil store in"), "{err}");
    assert!(
        !missing.exists(),
        "nothing created at {}",
        missing.display()
    );
    // An empty existing directory is no store either, and stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = crate::cli::vigil(&["sql", "--data-dir", empty.to_str().unwrap(), "SELECT 1"]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn show_retention_shows_a_namespace_token_only_the_rules_for_its_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "[[retention.rules]]\nkind = \"logs\"\nkeep = \"3650d\"\n\n\
                 [[retention.rules]]\nkind = \"metrics\"\nnamespace = \"payments\"\nkeep = \"3650d\"\n\n\
                 [[retention.rules]]\nkind = \"metrics\"\nnamespace = \"shop\"\nkeep = \"3650d\"\n";
    let server = Server::start(&store(dir.path()), Some(&config(rules)));
    let shown = |secret: &str| {
        let r = sql_request(&server, Some(secret), json!({"sql": "SHOW RETENTION"}));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["rows"].clone()
    };
    let all = shown(ANALYST);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(all.to_string().contains("payments"), "{all}");
    let shop = shown(SHOP);
    assert_eq!(shop.as_array().unwrap().len(), 2, "{shop}");
    assert!(!shop.to_string().contains("payments"), "{shop}");
    // Rule numbers stay the policy's: the shop rule is rule 3 for everyone.
    assert_eq!(shop[1][0], 3, "{shop}");
    assert_eq!(shop[1][2], "shop", "{shop}");
}

/// The peak resident memory of a process, from `/proc`.
fn peak_resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[test]
fn functions_that_grow_their_output_are_held_to_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &store(dir.path()),
        Some(&config(
            "[query]\nmemory_limit_bytes = 67108864\ntimeout_seconds = 20\n",
        )),
    );
    for statement in [
        "SELECT lpad('a', 2147483647)",
        "SELECT length(lpad('a', 500000000))",
        "SELECT length(repeat('x', 10000000)) FROM (SELECT * FROM metrics LIMIT 100)",
        "SELECT cardinality(array_repeat(1, 100000000))",
        "SELECT cardinality(range(0, 1000000000))",
        "SELECT length(replace(repeat('a', 1000000), 'a', repeat('b', 1000)))",
    ] {
        let r = sql_request(&server, Some(ANALYST), json!({ "sql": statement }));
        assert_eq!(r.status, 422, "{statement}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "resources_exhausted",
            "{statement}: {}",
            r.text()
        );
        assert!(r.text().contains("memory_limit_bytes"), "{}", r.text());
    }
    // Within the limit they work as before.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT length(repeat('x', 1000)), length(lpad('a', 300)), cardinality(range(0, 1000))"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"][0], json!([1000, 300, 1000]));
    // None of the refused calls allocated its result.
    let peak = peak_resident_bytes(server.child.id());
    assert!(peak < 1 << 30, "peak resident {peak} bytes");
    // Over Flight SQL too.
    runtime().block_on(async {
        let mut client = client(&server, Some(ANALYST)).await;
        let e = query(&mut client, "SELECT lpad('a', 2147483647)")
            .await
            .unwrap_err();
        assert!(e.contains("memory_limit_bytes"), "{e}");
    });
}

#[test]
fn past_the_memory_ceiling_the_largest_query_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    // A ceiling the process is always over: the first running query it sees is cancelled.
    let server = Server::start(
        &store(dir.path()),
        Some(&config(
            "[query]\nmax_resident_bytes = 1048576\ntimeout_seconds = 60\n",
        )),
    );
    let started = Instant::now();
    let r = sql_request(&server, Some(ANALYST), json!({ "sql": CROSS_JOIN }));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "memory_ceiling", "{}", r.text());
    assert!(r.text().contains("max_resident_bytes"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    wait_idle(&server, Duration::from_secs(5));
}

#[test]
fn a_query_over_a_damaged_segment_fails_alone_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut segments: Vec<std::path::PathBuf> = walk(&store)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    segments.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    assert!(!segments.is_empty(), "the store has segments");
    // 20 bytes flipped in the pages of each of the largest segments, as a disk would.
    for segment in segments.iter().take(5) {
        let mut bytes = std::fs::read(segment).unwrap();
        let at = bytes.len() / 3;
        for b in &mut bytes[at..at + 20] {
            *b ^= 0x5A;
        }
        std::fs::write(segment, &bytes).unwrap();
    }
    let server = Server::start(&store, Some(&config("")));
    for table in ["metrics", "logs", "spans", "audit", "events"] {
        let r = sql_request(
            &server,
            Some(ANALYST),
            json!({"sql": format!("SELECT * FROM {table} ORDER BY ts DESC LIMIT 5")}),
        );
        assert!(
            r.status == 200 || r.status >= 400,
            "{table}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = server.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "the server is still up");
    let r = sql_request(&server, Some(ANALYST), json!({"sql": "SELECT 1"}));
    assert_eq!(r.status, 200, "{}", r.text());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_query_that_panics_fails_alone_with_an_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    // The first batch any query reads panics, as a bug in vigil or a dependency would.
    let server = Server::start_with_env(
        &store(dir.path()),
        Some(&config("")),
        &[("FAILPOINTS", "query::batch=1*panic(an injected bug)")],
    );
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) FROM metrics"}),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "internal", "{}", r.text());
    assert!(r.text().contains("an injected bug"), "{}", r.text());
    // The server and its other queries go on.
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": "SELECT count(*) FROM metrics"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["rows"][0][0].as_i64().unwrap() > 0);
    wait_idle(&server, Duration::from_secs(5));
}

#[test]
fn statements_with_several_problems_or_unreadable_files_are_the_callers_errors() {
    // Found by the SQL fuzzing campaign: the planner reports several problems of one
    // statement together, and an admin may point a table at a file that is no CSV; both
    // were answered as internal errors (500).
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&store(dir.path()), Some(&config("")));
    let r = sql_request(&server, Some(ANALYST), json!({"sql": "SELECT a.pod, cou"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_sql", "{}", r.text());
    assert_eq!(r.json()["error"]["column"], 8, "{}", r.text());
    let bad_csv = dir.path().join("not.csv");
    std::fs::write(&bad_csv, "a\nb,c,d\n").unwrap();
    let r = sql_request(
        &server,
        Some(ADMIN),
        json!({"sql": format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}'", bad_csv.display())}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn a_json_answer_holds_at_most_the_query_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &store(dir.path()),
        Some(&config("[query]\nmemory_limit_bytes = 4194304\n")),
    );
    // 100,000 rows of about 110 bytes: every batch fits in 4 MiB, all of them do not.
    let wide = "SELECT a.ts, repeat('x', 100) AS pad FROM metrics a, \
                (SELECT * FROM generate_series(1, 100)) b";
    let r = sql_request(
        &server,
        Some(ANALYST),
        json!({"sql": wide, "limit": 100000}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("JSON answer"), "{}", r.text());
    // Fewer rows fit.
    let r = sql_request(&server, Some(ANALYST), json!({"sql": wide, "limit": 1000}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 1000);
}
