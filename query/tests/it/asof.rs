//! ASOF JOIN against nested loops.

use crate::support::{Row, context, random_rows, register, rng, rows};

#[derive(Debug, Clone, Copy)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
        }
    }

    fn holds(self, l: i64, r: i64) -> bool {
        match self {
            Op::Ge => l >= r,
            Op::Gt => l > r,
            Op::Le => l <= r,
            Op::Lt => l < r,
        }
    }
}

/// The matched right time of each left row (ids, right time), by nested loops.
fn reference(
    left: &[Row],
    right: &[Row],
    op: Op,
    nearest: bool,
    tolerance: Option<i64>,
    keep_unmatched: bool,
) -> Vec<Vec<Option<i64>>> {
    let mut out = vec![];
    for l in left {
        let candidates = right
            .iter()
            .filter(|r| l.key.is_some() && r.key == l.key && l.time.is_some() && r.time.is_some());
        let Some(lt) = l.time else {
            if keep_unmatched {
                out.push(vec![Some(l.id), None]);
            }
            continue;
        };
        let best = candidates
            .filter_map(|r| r.time)
            .filter(|&rt| nearest || op.holds(lt, rt))
            .min_by_key(|&rt| {
                if nearest {
                    // closest; ties to the earlier
                    ((lt - rt).abs(), rt)
                } else if matches!(op, Op::Ge | Op::Gt) {
                    (lt - rt, 0)
                } else {
                    (rt - lt, 0)
                }
            })
            .filter(|&rt| tolerance.is_none_or(|tol| (lt - rt).abs() <= tol));
        match best {
            Some(rt) => out.push(vec![Some(l.id), Some(rt)]),
            None if keep_unmatched => out.push(vec![Some(l.id), None]),
            None => {}
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn asof_matches_nested_loops_on_random_tables() {
    let mut rng = rng(7);
    for case in 0..60 {
        let (n40, nr) = (rng.random_range(0..40), rng.random_range(0..80));
        let left = random_rows(&mut rng, n40, 4, 30, 0);
        let right = random_rows(&mut rng, nr, 4, 30, 1000);
        let ctx = context();
        register(&ctx, "l", &left, &mut rng);
        register(&ctx, "r", &right, &mut rng);
        for op in [Op::Ge, Op::Gt, Op::Le, Op::Lt] {
            for (left_join, nearest, tolerance) in [
                (false, false, None),
                (true, false, None),
                (false, false, Some(3)),
                (true, true, None),
                (false, true, Some(2)),
            ] {
                if nearest && matches!(op, Op::Gt | Op::Lt) {
                    continue;
                }
                let options = format!(
                    "{}{}",
                    tolerance.map_or(String::new(), |t| format!(" TOLERANCE {t}")),
                    if nearest { " NEAREST" } else { "" }
                );
                let join = if left_join {
                    "ASOF LEFT JOIN"
                } else {
                    "ASOF JOIN"
                };
                let sql = format!(
                    "SELECT l.id, r.t FROM l {join} r ON l.k = r.k AND l.g = r.g AND l.t {} r.t{options}",
                    op.sql()
                );
                let got = rows(&ctx, &sql).await;
                let want = reference(&left, &right, op, nearest, tolerance, left_join);
                assert_eq!(got, want, "case {case}: {sql}");
                // Projections the join embeds: none of its columns, and right columns only.
                let count = format!(
                    "SELECT count(*) FROM l {join} r ON l.k = r.k AND l.g = r.g AND l.t {} r.t{options}",
                    op.sql()
                );
                let counted = rows(&ctx, &count).await;
                assert_eq!(
                    counted,
                    vec![vec![Some(want.len() as i64)]],
                    "case {case}: {count}"
                );
                let right_only = format!(
                    "SELECT r.t FROM l {join} r ON l.k = r.k AND l.g = r.g AND l.t {} r.t{options}",
                    op.sql()
                );
                let mut got = rows(&ctx, &right_only).await;
                got.sort();
                let mut times: Vec<Vec<Option<i64>>> =
                    want.iter().map(|row| vec![row[1]]).collect();
                times.sort();
                assert_eq!(got, times, "case {case}: {right_only}");
            }
        }
        // Snowflake's spelling keeps every left row.
        let sql = "SELECT l.id, r.t FROM l ASOF JOIN r MATCH_CONDITION (l.t >= r.t) ON l.k = r.k";
        let got = rows(&ctx, sql).await;
        assert_eq!(
            got,
            reference(&left, &right, Op::Ge, false, None, true),
            "case {case}: {sql}"
        );
    }
}

use rand::Rng;
