//! MATCH_RECOGNIZE's input reductions (partitions without a required row, rows only a filler
//! can take) never change an answer: each query runs as written, where the reductions apply,
//! and spelled so that they cannot (`IN` instead of `=`, so no two conditions are provably
//! exclusive, and a PREV in every condition, so none is row-local), on random tables.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use rand::Rng;
use rand::rngs::StdRng;

use crate::support::{context, rng, rows};

const CLASSES: [&str; 6] = ["a", "b", "c", "n", "n", "n"];

/// A table `s(k, c, t, id)`: partition key, class, time, id; a few NULL keys.
fn table(rng: &mut StdRng, n: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("c", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
    ]));
    let k: Int64Array = (0..n)
        .map(|_| (!rng.random_bool(0.05)).then(|| rng.random_range(0..4)))
        .collect();
    let c: StringArray = (0..n)
        .map(|_| Some(CLASSES[rng.random_range(0..CLASSES.len())]))
        .collect();
    let t: Int64Array = (0..n).map(|_| Some(rng.random_range(0..60))).collect();
    let id: Int64Array = (0..n as i64).map(Some).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(k), Arc::new(c), Arc::new(t), Arc::new(id)],
    )
    .expect("valid batch");
    let mut parts = vec![vec![]; rng.random_range(1..4)];
    for (i, start) in (0..n).step_by(9).enumerate() {
        let len = 9.min(n - start);
        let count = parts.len();
        parts[i % count].push(batch.slice(start, len));
    }
    MemTable::try_new(schema, parts).expect("valid table")
}

/// (pattern, measures, skip): the reducible shapes, and some that must not be reduced.
const CASES: &[(&str, &str, &str)] = &[
    (
        "a x*? b+ x*? c",
        "a.id AS a, FIRST(b.id) AS b, c.id AS c",
        "PAST LAST ROW",
    ),
    (
        "a x* b x*? c",
        "a.id AS a, b.id AS b, c.id AS c, MATCH_NUMBER() AS m",
        "PAST LAST ROW",
    ),
    (
        "a y*? b+? x* c",
        "FIRST(id) AS f, LAST(id) AS l, FIRST(b.id) AS b",
        "TO NEXT ROW",
    ),
    ("a x*? c", "a.id AS a, c.id AS c", "TO NEXT ROW"),
    // Not reducible by fillers (a repeated variable's last row, a count, no filler between
    // two defined variables, a filler's rows); partitions are still reduced.
    (
        "a x*? b+ x*? c",
        "LAST(b.id) AS b, COUNT(*) AS n",
        "PAST LAST ROW",
    ),
    ("a b+ x*? c", "a.id AS a, c.id AS c", "PAST LAST ROW"),
    ("a x+ c", "a.id AS a, LAST(x.id) AS x", "PAST LAST ROW"),
    ("(a | b) x*? c", "FIRST(id) AS f, c.id AS c", "TO LAST c"),
];

fn query(pattern: &str, measures: &str, skip: &str, reducible: bool) -> String {
    let define = |var: &str| {
        if reducible {
            format!("{var} AS c = '{var}'")
        } else {
            format!("{var} AS c IN ('{var}') AND (PREV(t) IS NULL OR PREV(t) IS NOT NULL)")
        }
    };
    let vars: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|v| pattern.contains(v))
        .collect();
    let defines: Vec<String> = vars.iter().map(|v| define(v)).collect();
    format!(
        "SELECT * FROM s MATCH_RECOGNIZE (PARTITION BY k ORDER BY t, id MEASURES {measures} \
         ONE ROW PER MATCH AFTER MATCH SKIP {skip} PATTERN ({pattern}) DEFINE {})",
        defines.join(", ")
    )
}

#[tokio::test]
async fn reductions_keep_every_match() {
    let mut rng = rng(23);
    let mut matched = 0;
    for case in 0..80 {
        let n = rng.random_range(0..120);
        let ctx = context();
        ctx.register_table("s", Arc::new(table(&mut rng, n)))
            .expect("registered");
        let (pattern, measures, skip) = CASES[case % CASES.len()];
        let reduced = rows(&ctx, &query(pattern, measures, skip, true)).await;
        let plain = rows(&ctx, &query(pattern, measures, skip, false)).await;
        assert_eq!(
            reduced, plain,
            "case {case}: {pattern} / {measures} over {n} rows"
        );
        matched += reduced.len();
    }
    assert!(
        matched > 100,
        "the random tables must produce matches, got {matched}"
    );
}

#[tokio::test]
async fn reductions_show_in_the_plan() {
    let mut rng = rng(5);
    let ctx = context();
    ctx.register_table("s", Arc::new(table(&mut rng, 50)))
        .expect("registered");
    let explain = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let frame = vigil_query::sql::sql(&ctx, &format!("EXPLAIN {sql}"))
                .await
                .expect("explain");
            let batches = frame.collect().await.expect("plan");
            arrow::util::pretty::pretty_format_batches(&batches)
                .expect("printable")
                .to_string()
        }
    };
    let (pattern, measures, skip) = CASES[0];
    let reduced = explain(query(pattern, measures, skip, true)).await;
    assert!(reduced.contains("KeyFilterExec"), "{reduced}");
    assert!(
        reduced.contains("c@1 = a OR c@1 = b OR c@1 = c"),
        "fillers' rows are filtered out: {reduced}"
    );
    let plain = explain(query(pattern, measures, skip, false)).await;
    assert!(!plain.contains("KeyFilterExec"), "{plain}");
    // Not reducible by fillers: partitions only.
    let (pattern, measures, skip) = CASES[4];
    let partitions_only = explain(query(pattern, measures, skip, true)).await;
    assert!(
        partitions_only.contains("KeyFilterExec"),
        "{partitions_only}"
    );
    assert!(!partitions_only.contains("c@1 = b"), "{partitions_only}");
}
