//! Time-band joins against nested loops, and the plan they get.

use crate::support::{Row, context, random_rows, register, rng, rows};

fn reference(
    left: &[Row],
    right: &[Row],
    low: i64,
    high: i64,
    strict: (bool, bool),
) -> Vec<Vec<Option<i64>>> {
    let mut out = vec![];
    for l in left {
        for r in right {
            let (Some(lk), Some(rk), Some(lt), Some(rt)) = (l.key, r.key, l.time, r.time) else {
                continue;
            };
            let d = rt - lt;
            let above_low = if strict.0 { d > low } else { d >= low };
            let below_high = if strict.1 { d < high } else { d <= high };
            if lk == rk && above_low && below_high {
                out.push(vec![Some(l.id), Some(r.id)]);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn band_join_matches_nested_loops_on_random_tables() {
    let mut rng = rng(11);
    for case in 0..60 {
        let (n40, nr) = (rng.random_range(0..40), rng.random_range(0..80));
        let left = random_rows(&mut rng, n40, 3, 40, 0);
        let right = random_rows(&mut rng, nr, 3, 40, 1000);
        let ctx = context();
        register(&ctx, "l", &left, &mut rng);
        register(&ctx, "r", &right, &mut rng);
        let low = rng.random_range(-5..3);
        let high = low + rng.random_range(0..6);
        let strict = (rng.random_bool(0.5), rng.random_bool(0.5));
        let sql = format!(
            "SELECT l.id, r.id FROM l JOIN r ON l.k = r.k AND r.t {} l.t + ({low}) AND r.t {} l.t + ({high})",
            if strict.0 { ">" } else { ">=" },
            if strict.1 { "<" } else { "<=" },
        );
        let got = rows(&ctx, &sql).await;
        assert_eq!(
            got,
            reference(&left, &right, low, high, strict),
            "case {case}: {sql}"
        );
    }
}

#[tokio::test]
async fn band_join_is_planned_as_a_merge() {
    let mut rng = rng(3);
    let ctx = context();
    register(&ctx, "l", &random_rows(&mut rng, 10, 3, 10, 0), &mut rng);
    register(&ctx, "r", &random_rows(&mut rng, 10, 3, 10, 100), &mut rng);
    let frame = vigil_query::sql::sql(
        &ctx,
        "SELECT l.id, r.id FROM l JOIN r ON l.k = r.k AND r.t BETWEEN l.t - 2 AND l.t + 5",
    )
    .await
    .expect("planned");
    let plan = frame.create_physical_plan().await.expect("physical plan");
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("BandJoinExec"), "{shown}");
    assert!(!shown.contains("HashJoinExec"), "{shown}");
}

use rand::Rng;
