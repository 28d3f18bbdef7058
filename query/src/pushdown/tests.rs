//! Each case plans `SELECT * FROM t WHERE <clause>` on an in-memory table, so the filters are
//! the ones DataFusion really hands a scan after type coercion and simplification.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{LogicalPlan, utils::split_conjunction};

use super::{ColumnRoles, Constraints, analyze};
use crate::session::{SessionOptions, new_context};

const T0: i64 = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z

async fn check(clause: &str) -> Constraints {
    let ctx = new_context(&SessionOptions::default()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("pod", DataType::Utf8, true),
        Field::new("verb", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]));
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap()),
    )
    .unwrap();
    let plan = ctx
        .sql(&format!("SELECT * FROM t WHERE {clause}"))
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    let mut filters = Vec::new();
    plan.apply(|node| {
        if let LogicalPlan::Filter(f) = node {
            filters.extend(split_conjunction(&f.predicate).into_iter().cloned());
        }
        if let LogicalPlan::TableScan(scan) = node {
            filters.extend(scan.filters.iter().cloned());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .unwrap();
    analyze(
        &filters,
        &ColumnRoles {
            time: "ts",
            strings: &["pod", "verb"],
        },
    )
}

use datafusion::common::tree_node::TreeNode;

#[tokio::test]
async fn time_ranges_from_comparisons_and_between() {
    let c = check("ts >= '2023-11-14T22:13:20Z' AND ts < '2023-11-14T23:13:20Z'").await;
    assert_eq!(c.min_ts, Some(T0));
    assert_eq!(c.max_ts, Some(T0 + 3_600_000_000_000 - 1));

    let c = check("ts BETWEEN '2023-11-14T22:13:20Z' AND '2023-11-14T22:13:21Z'").await;
    assert_eq!((c.min_ts, c.max_ts), (Some(T0), Some(T0 + 1_000_000_000)));

    let c = check("ts > '2023-11-14T22:13:20Z'").await;
    assert_eq!((c.min_ts, c.max_ts), (Some(T0 + 1), None));

    let c = check("'2023-11-14T22:13:20Z' >= ts").await;
    assert_eq!((c.min_ts, c.max_ts), (None, Some(T0)));
}

#[tokio::test]
async fn interval_arithmetic_on_literals_is_folded() {
    let c = check("ts >= TIMESTAMP '2023-11-14T22:13:20Z' - INTERVAL '1 hour'").await;
    assert_eq!(c.min_ts, Some(T0 - 3_600_000_000_000));
}

#[tokio::test]
async fn equalities_in_lists_and_ors_on_one_column() {
    let c = check("pod = 'a' AND verb IN ('get', 'list', 'get')").await;
    assert_eq!(c.values["pod"], vec!["a".to_string()]);
    assert_eq!(
        c.values["verb"],
        vec!["get".to_string(), "list".to_string()]
    );

    let c = check("pod = 'a' OR pod = 'b'").await;
    assert_eq!(c.values["pod"], vec!["a".to_string(), "b".to_string()]);
}

#[tokio::test]
async fn what_is_not_understood_adds_no_constraint() {
    for clause in [
        "pod = 'a' OR verb = 'get'",
        "pod LIKE 'a%'",
        "pod <> 'a'",
        "verb NOT IN ('get')",
        "value > 0.5",
        "ts - INTERVAL '1 hour' > '2023-11-14T22:13:20Z'",
    ] {
        let c = check(clause).await;
        assert_eq!(c, Constraints::default(), "{clause}");
    }
}

#[tokio::test]
async fn negations_simplified_by_datafusion_still_constrain() {
    let c = check("NOT (ts > '2023-11-14T22:13:20Z')").await;
    assert_eq!((c.min_ts, c.max_ts), (None, Some(T0)));
}

#[test]
fn contradictions_are_unsatisfiable() {
    use datafusion::prelude::{col, lit};
    let roles = ColumnRoles {
        time: "ts",
        strings: &["pod", "verb"],
    };
    // DataFusion folds most of these away before a scan sees them; the analysis must still
    // be right when a scan does.
    assert!(
        analyze(&[col("pod").eq(lit("a")), col("pod").eq(lit("b"))], &roles).is_unsatisfiable()
    );
    assert!(analyze(&[lit(false)], &roles).is_unsatisfiable());
    assert!(
        analyze(
            &[
                col("pod").in_list(vec![lit("a"), lit("b")], false),
                col("pod").eq(lit("b"))
            ],
            &roles
        )
        .values["pod"]
            == vec!["b".to_string()]
    );
}
