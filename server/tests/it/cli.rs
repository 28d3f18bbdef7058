use std::path::Path;
use std::process::{Command, Output};

pub fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .expect("run vigil")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `vigil import` of `file` as rows of `kind` into `store`.
pub fn import(store: &Path, kind: &str, file: &Path) -> Output {
    vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        kind,
        file.to_str().unwrap(),
    ])
}

/// Imports `file` as rows of `kind`, which must succeed.
pub fn import_ok(store: &Path, kind: &str, file: &Path) {
    let o = import(store, kind, file);
    assert!(o.status.success(), "{kind}: {}", stderr(&o));
}

/// `vigil generate` of a small cluster's telemetry as Parquet files into `out`.
pub fn generate(out: &Path, pods: &str, hours: &str) {
    let o = vigil(&[
        "generate",
        "--out",
        out.to_str().unwrap(),
        "--pods",
        pods,
        "--hours",
        hours,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

pub fn sql(store: &Path, query: &str) -> String {
    let o = vigil(&[
        "sql",
        "--data-dir",
        &store.to_string_lossy(),
        "--format",
        "csv",
        query,
    ]);
    assert!(o.status.success(), "{query}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn csv_import_is_all_or_nothing_per_file_and_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let good = dir.path().join("good.csv");
    let bad = dir.path().join("bad.csv");
    let mut text = String::from("ts,namespace,pod,name,value,attributes\n");
    for i in 0..5000 {
        text.push_str(&format!(
            "2024-05-01T10:{:02}:{:02}Z,shop,web-{},cpu,{}.5,\"{{\"\"mode\"\":\"\"user\"\"}}\"\n",
            i / 60 % 60,
            i % 60,
            i % 3,
            i
        ));
    }
    std::fs::write(&good, &text).unwrap();
    let mut broken = text.clone();
    broken.push_str("2024-05-01T11:00:00Z,shop,web-1,cpu,not-a-number,\n");
    std::fs::write(&bad, broken).unwrap();

    let o = vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        "metric",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "a rejected file makes the import fail");
    let err = stderr(&o);
    assert!(err.contains("bad.csv") && err.contains("value"), "{err}");
    assert!(err.contains("1 file(s) rejected"), "{err}");

    // The good file is in, none of the bad one.
    assert_eq!(
        sql(&store, "SELECT count(*) AS n FROM metrics"),
        "n\n5000\n"
    );
    assert_eq!(
        sql(
            &store,
            "SELECT attributes['mode'] AS m FROM metrics LIMIT 1"
        ),
        "m\nuser\n"
    );
}

#[test]
fn ndjson_and_parquet_imports_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let audit = dir.path().join("audit.ndjson");
    std::fs::write(
        &audit,
        concat!(
            r#"{"ts":"2024-05-01T10:00:00Z","namespace":"shop","pod":"miner-7","verb":"list","resource":"secrets","user":"system:serviceaccount:shop:default","groups":["system:serviceaccounts"],"response_code":200}"#,
            "\n",
            r#"{"ts":1714557600000000000,"verb":"get","resource":"pods","user":"alice","source_ips":["192.0.2.1"]}"#,
            "\n"
        ),
    )
    .unwrap();
    let o = vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        "audit",
        audit.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        sql(
            &store,
            "SELECT user, groups[1] AS g, source_ips[1] AS ip FROM audit ORDER BY ts"
        ),
        "user,g,ip\nsystem:serviceaccount:shop:default,system:serviceaccounts,\nalice,,192.0.2.1\n"
    );

    let unknown = dir.path().join("unknown.ndjson");
    std::fs::write(
        &unknown,
        r#"{"ts":"2024-05-01T10:00:00Z","verb":"get","verbb":"typo"}"#,
    )
    .unwrap();
    let o = vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        "audit",
        unknown.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("verbb"), "{}", stderr(&o));

    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"PAR1 this is not really parquet").unwrap();
    let o = vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        "audit",
        garbage.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("garbage.parquet") && stderr(&o).contains("Parquet"),
        "{}",
        stderr(&o)
    );

    let o = vigil(&[
        "import",
        "--data-dir",
        store.to_str().unwrap(),
        "--kind",
        "metrix",
        audit.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown signal kind `metrix`"),
        "{}",
        stderr(&o)
    );

    // Nothing of the rejected files got in.
    assert_eq!(sql(&store, "SELECT count(*) AS n FROM audit"), "n\n2\n");
}

#[test]
fn generated_telemetry_imports_and_queries_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = dir.path().join("store");
    let o = vigil(&[
        "generate",
        "--out",
        data.to_str().unwrap(),
        "--pods",
        "12",
        "--hours",
        "0.25",
        "--format",
        "ndjson",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for table in ["metrics", "logs", "spans", "audit", "events"] {
        let file = data.join(format!("{table}.ndjson"));
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        let o = vigil(&[
            "import",
            "--data-dir",
            store.to_str().unwrap(),
            "--kind",
            table,
            file.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{table}: {}", stderr(&o));
        assert_eq!(
            sql(&store, &format!("SELECT count(*) AS n FROM {table}")),
            format!("n\n{lines}\n"),
            "{table}"
        );
    }
    let json = vigil(&[
        "sql",
        "--data-dir",
        store.to_str().unwrap(),
        "--format",
        "json",
        "SELECT kind, count(*) AS n FROM signals WHERE kind = 'event' GROUP BY kind",
    ]);
    assert!(json.status.success());
    assert_eq!(stdout(&json).trim(), r#"[{"kind":"event","n":60}]"#);
    let table = vigil(&[
        "sql",
        "--data-dir",
        store.to_str().unwrap(),
        "SELECT count(DISTINCT pod) AS pods FROM metrics",
    ]);
    assert!(
        stdout(&table).contains("| 12   |") && stdout(&table).contains("(1 row)"),
        "{}",
        stdout(&table)
    );
}

#[test]
fn bad_sql_exits_non_zero_with_the_problem_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, "2", "0.05");
    let store = tmp.path().join("store");
    import_ok(&store, "metrics", &data.join("metrics.parquet"));
    let dir = &store;
    let o = vigil(&[
        "sql",
        "--data-dir",
        dir.to_str().unwrap(),
        "SELECT * FROM nowhere",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
    let o = vigil(&["sql", "--data-dir", dir.to_str().unwrap(), "SELEC 1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("SELEC"), "{}", stderr(&o));
}

#[test]
fn demo_finds_every_seed_attack_and_no_decoy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let args = [
        "demo",
        "--data-dir",
        &dir.to_string_lossy(),
        "--pods",
        "60",
        "--hours",
        "2",
    ];
    let o = vigil(&args);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("every attack found, no decoy reported"),
        "{out}"
    );
    for attack in ["crypto-miner", "command and control", "lateral movement"] {
        assert!(out.contains(attack), "{attack} missing from:\n{out}");
    }
    assert_eq!(out.matches("matches the ground truth").count(), 4, "{out}");
    assert!(!out.contains("REPORTED (decoy)"), "{out}");
    // Running it again replaces the earlier demo store.
    let again = vigil(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    // A directory that is not a demo store is left alone.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("precious.txt"), "keep me").expect("write");
    let refused = vigil(&[
        "demo",
        "--data-dir",
        &other.to_string_lossy(),
        "--pods",
        "60",
        "--hours",
        "2",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a demo store"),
        "{}",
        stderr(&refused)
    );
    assert!(other.join("precious.txt").exists());
}

#[test]
fn a_relative_data_dir_works_for_segments_too() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    run(&["generate", "--out", "data", "--pods", "5", "--hours", "0.1"]);
    run(&[
        "import",
        "--data-dir",
        "rel/store",
        "--kind",
        "metrics",
        "data/metrics.parquet",
    ]);
    // The import flushed segments; reading them goes through the relative path.
    let out = run(&[
        "sql",
        "--data-dir",
        "rel/store",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM metrics",
    ]);
    let n: u64 = out.lines().nth(1).unwrap().parse().unwrap();
    assert!(n > 0, "{out}");
}

#[test]
fn retention_runs_from_the_command_line_dry_or_not_and_bad_rules_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (metrics, logs) = (dir.path().join("m.csv"), dir.path().join("l.csv"));
    let mut m = String::from("ts,namespace,pod,name,value\n");
    let mut l = String::from("ts,namespace,pod,body\n");
    for i in 0..600 {
        let ts = format!("2024-05-01T10:{:02}:{:02}Z", i / 10, (i % 10) * 6);
        m.push_str(&format!("{ts},shop,web-{},cpu,{}\n", i % 3, i % 50));
        l.push_str(&format!("{ts},shop,web-{},line {i}\n", i % 3));
    }
    std::fs::write(&metrics, m).unwrap();
    std::fs::write(&logs, l).unwrap();
    import_ok(&store, "metric", &metrics);
    import_ok(&store, "log", &logs);
    let count = |table: &str| -> i64 {
        sql(&store, &format!("SELECT count(*) AS n FROM {table}"))
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[retention.rules]]\nkind = \"metrics\"\nkeep = \"7d\"\n\n[[retention.rules]]\nkind = \"logz\"\nkeep = \"1d\"\n").unwrap();
    let o = vigil(&[
        "retention",
        "--data-dir",
        store.to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("rule 2") && stderr(&o).contains("logz"),
        "{}",
        stderr(&o)
    );

    // The data is from 2024: every log row is past 7 days, every metric row past 30 days.
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "[[retention.rules]]\nkind = \"metrics\"\nkeep = \"30d\"\ndownsample = [{ step = \"1m\", keep = \"36500d\" }]\n\n\
         [[retention.rules]]\nkind = \"logs\"\nkeep = \"7d\"\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "retention",
            "--data-dir",
            store.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = vigil(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let dry = run(&["--dry-run"]);
    assert!(
        dry.contains("would delete 600 logs rows") && dry.contains("would downsample 600 rows"),
        "{dry}"
    );
    assert_eq!(
        (count("logs"), count("metrics")),
        (600, 600),
        "a dry run deletes nothing"
    );

    let done = run(&[]);
    assert!(done.contains("did delete 600 logs rows"), "{done}");
    assert_eq!((count("logs"), count("metrics")), (0, 0));
    // 3 pods x 60 minutes of rollups, holding every sample once.
    assert_eq!(count("metric_rollups"), 180);
    let counted = sql(
        &store,
        "SELECT sum(count) AS n, sum(sum) AS s FROM metrics_1m",
    );
    assert!(counted.contains("600,14700"), "{counted}");

    let o = vigil(&[
        "hold",
        "place",
        "--data-dir",
        store.to_str().unwrap(),
        "--pod",
        "web-1",
        "--from",
        "2024-05-01T10:00:00Z",
        "--to",
        "2024-05-01T11:00:00Z",
        "--reason",
        "case 7",
    ]);
    assert!(
        o.status.success() && stdout(&o).contains("hold 1 placed"),
        "{}",
        stderr(&o)
    );
    assert!(sql(&store, "SHOW HOLDS").contains("case 7"));
    let o = vigil(&[
        "hold",
        "release",
        "--data-dir",
        store.to_str().unwrap(),
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigil(&[
        "hold",
        "release",
        "--data-dir",
        store.to_str().unwrap(),
        "1",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("no hold has id 1"));
}
