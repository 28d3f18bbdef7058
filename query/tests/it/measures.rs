//! MATCH_RECOGNIZE measures against a naive reference: under ALL ROWS PER MATCH every output
//! row's measures are recomputed from scratch over its match's rows so far (SQL:2016 RUNNING
//! semantics), and ONE ROW PER MATCH must give the values of each match's last row (FINAL).
//! Random tables with long matches (an undefined filler under a greedy quantifier), split
//! into small batches so matches span many of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use rand::Rng;
use rand::rngs::StdRng;

use crate::support::{context, rng, rows};

/// One input row: key, class, time, id, value.
#[derive(Debug, Clone)]
struct Input {
    k: Option<i64>,
    c: &'static str,
    t: i64,
    id: i64,
    v: Option<i64>,
}

fn random_input(rng: &mut StdRng, n: usize) -> Vec<Input> {
    const CLASSES: [&str; 5] = ["a", "b", "b", "c", "n"];
    (0..n)
        .map(|i| Input {
            k: (!rng.random_bool(0.05)).then(|| rng.random_range(0..2)),
            c: CLASSES[rng.random_range(0..CLASSES.len())],
            t: rng.random_range(0..1_000),
            id: i as i64,
            v: (!rng.random_bool(0.2)).then(|| rng.random_range(-20..20)),
        })
        .collect()
}

fn table(input: &[Input], rng: &mut StdRng) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("c", DataType::Utf8, false),
        Field::new("t", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(input.iter().map(|r| r.k).collect::<Int64Array>()),
            Arc::new(input.iter().map(|r| Some(r.c)).collect::<StringArray>()),
            Arc::new(input.iter().map(|r| Some(r.t)).collect::<Int64Array>()),
            Arc::new(input.iter().map(|r| Some(r.id)).collect::<Int64Array>()),
            Arc::new(input.iter().map(|r| r.v).collect::<Int64Array>()),
        ],
    )
    .expect("valid batch");
    let mut parts = vec![vec![]; rng.random_range(1..3)];
    let count = parts.len();
    for (i, start) in (0..input.len()).step_by(11).enumerate() {
        parts[i % count].push(batch.slice(start, 11.min(input.len() - start)));
    }
    MemTable::try_new(schema, parts).expect("valid table")
}

/// An output row, every column an integer.
type Row = Vec<Option<i64>>;

/// The measures, all BIGINT so the rows compare as integers. `cls` numbers the classifier.
const MEASURES: &str = "MATCH_NUMBER() AS m, \
    CASE CLASSIFIER() WHEN 'A' THEN 0 WHEN 'B' THEN 1 WHEN 'C' THEN 2 ELSE 3 END AS cls, \
    COUNT(*) AS cnt, COUNT(b.*) AS cb, COUNT(b.v) AS cbv, SUM(v) AS sv, SUM(b.v) AS sbv, \
    CAST(AVG(v) * 1000000 AS BIGINT) AS av, MIN(v) AS mn, MAX(b.v) AS mxb, \
    FIRST(b.id) AS fb, LAST(b.id) AS lb, FIRST(id) AS f, LAST(v) AS lv, b.id AS bid";
/// The measure columns after `m` and `cls`, in order.
const VALUES: usize = 13;

const CASES: &[(&str, &str)] = &[
    ("a (b | n)*", "PAST LAST ROW"),
    ("a (b | n)*? c", "PAST LAST ROW"),
    ("(a | b)+ n* c?", "TO NEXT ROW"),
    ("b+ n? b*", "TO LAST b"),
];

fn query(pattern: &str, skip: &str, all_rows: bool) -> String {
    let (select, rows) = if all_rows {
        ("k, t, id, m, cls", "ALL ROWS PER MATCH")
    } else {
        ("k, m", "ONE ROW PER MATCH")
    };
    // Only the pattern's variables may be defined; `n` never is, so it takes any row.
    let defines: Vec<String> = ["a", "b", "c"]
        .into_iter()
        .filter(|v| pattern.contains(v))
        .map(|v| format!("{v} AS c = '{v}'"))
        .collect();
    format!(
        "SELECT {select}, cnt, cb, cbv, sv, sbv, av, mn, mxb, fb, lb, f, lv, bid FROM s \
         MATCH_RECOGNIZE (PARTITION BY k ORDER BY t, id MEASURES {MEASURES} {rows} \
         AFTER MATCH SKIP {skip} PATTERN ({pattern}) DEFINE {})",
        defines.join(", ")
    )
}

/// The measures over `rows` (a match's first rows), each (input row, classifier number).
fn naive(rows: &[(&Input, i64)]) -> Vec<Option<i64>> {
    let b: Vec<&Input> = rows.iter().filter(|r| r.1 == 1).map(|r| r.0).collect();
    let all: Vec<&Input> = rows.iter().map(|r| r.0).collect();
    let sum = |xs: &[&Input]| {
        xs.iter()
            .filter_map(|r| r.v)
            .fold(None, |s: Option<i64>, v| {
                Some(s.unwrap_or(0).wrapping_add(v))
            })
    };
    let values: Vec<i64> = all.iter().filter_map(|r| r.v).collect();
    let avg = (!values.is_empty()).then(|| {
        let total: f64 = values.iter().map(|&v| v as f64).sum();
        (total / values.len() as f64 * 1_000_000.0) as i64
    });
    let last = all.last().expect("a match has rows");
    vec![
        Some(all.len() as i64),
        Some(b.len() as i64),
        Some(b.iter().filter(|r| r.v.is_some()).count() as i64),
        sum(&all),
        sum(&b),
        avg,
        values.iter().min().copied(),
        b.iter().filter_map(|r| r.v).max(),
        b.first().map(|r| r.id),
        b.last().map(|r| r.id),
        all.first().map(|r| r.id),
        last.v,
        b.last().map(|r| r.id),
    ]
}

#[tokio::test]
async fn running_and_final_measures_match_a_naive_recomputation() {
    let mut rng = rng(41);
    let mut checked = 0;
    let mut longest = 0;
    for case in 0..24 {
        let n = rng.random_range(50..400);
        let input = random_input(&mut rng, n);
        let ctx = context();
        ctx.register_table("s", Arc::new(table(&input, &mut rng)))
            .expect("registered");
        let (pattern, skip) = CASES[case % CASES.len()];
        let all = rows(&ctx, &query(pattern, skip, true)).await;
        let one = rows(&ctx, &query(pattern, skip, false)).await;
        // Group the ALL ROWS output by match: (key, match number), rows in (t, id) order.
        let mut matches: BTreeMap<(Option<i64>, Option<i64>), Vec<&Row>> = BTreeMap::new();
        for row in &all {
            matches.entry((row[0], row[3])).or_default().push(row);
        }
        let mut finals = vec![];
        for ((key, m), mut rows) in matches {
            rows.sort_by_key(|r| (r[1], r[2]));
            let mut prefix: Vec<(&Input, i64)> = vec![];
            for row in &rows {
                let id = row[2].expect("id") as usize;
                let cls = row[4].expect("classifier");
                prefix.push((&input[id], cls));
                let want = naive(&prefix);
                assert_eq!(
                    &row[5..],
                    &want[..],
                    "case {case} ({pattern}, {skip}): key {key:?}, match {m:?}, row {} of the match",
                    prefix.len()
                );
                checked += 1;
            }
            longest = longest.max(rows.len());
            let last = rows.last().expect("a match has rows");
            let mut final_row = vec![key, m];
            final_row.extend_from_slice(&last[5..]);
            assert_eq!(final_row.len(), 2 + VALUES);
            finals.push(final_row);
        }
        finals.sort();
        assert_eq!(
            one, finals,
            "case {case} ({pattern}, {skip}): ONE ROW PER MATCH is the last running row"
        );
    }
    assert!(
        checked > 2_000,
        "the cases must produce match rows, got {checked}"
    );
    assert!(
        longest > 100,
        "some matches must be long, the longest had {longest} rows"
    );
}
