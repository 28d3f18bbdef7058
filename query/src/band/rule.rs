//! The physical optimizer rule that plans time-band hash joins as [`BandJoinExec`]s (sorted
//! joins).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{JoinSide, JoinType, NullEquality, Result};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::utils::split_conjunction;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

use crate::band::exec::{BandBounds, BandJoinExec};
use crate::sorted_join::JoinInputs;
use crate::time;

/// Replaces `HashJoinExec`s whose filter bounds one side's time within a constant band around
/// the other's (`b.ts BETWEEN a.ts - X AND a.ts + Y`, or the `>=`/`<=` pair) by a
/// [`BandJoinExec`] over inputs sorted by (keys, time).
#[derive(Debug, Default)]
pub struct BandJoinRule;

impl PhysicalOptimizerRule for BandJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            match band_join(join)? {
                Some(replacement) => Ok(Transformed::yes(replacement)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "vigil_band_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn band_join(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if *join.join_type() != JoinType::Inner
        || join.null_equality() != NullEquality::NullEqualsNothing
    {
        return Ok(None);
    }
    let Some(filter) = join.filter() else {
        return Ok(None);
    };
    let Some((left_time, right_time, bounds)) = find_band(join, filter)? else {
        return Ok(None);
    };
    let inputs = JoinInputs {
        left: Arc::clone(join.left()),
        right: Arc::clone(join.right()),
        on: join.on().to_vec(),
        left_time,
        right_time,
        dynamic_filter: None,
    };
    let band: Arc<dyn ExecutionPlan> = Arc::new(BandJoinExec::new(inputs, bounds, filter.clone()));
    let Some(projection) = &join.projection else {
        return Ok(Some(band));
    };
    let schema = band.schema();
    let exprs = projection
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            ProjectionExpr::new(Arc::new(Column::new(&name, i)) as PhysicalExprRef, name)
        })
        .collect::<Vec<_>>();
    Ok(Some(Arc::new(ProjectionExec::try_new(exprs, band)?)))
}

/// `column + offset` where the column is on one side of the join.
struct Term {
    side: JoinSide,
    /// Index in that side's schema.
    index: usize,
    offset: i64,
}

fn term(expr: &PhysicalExprRef, filter: &JoinFilter) -> Result<Option<Term>> {
    let column = |e: &PhysicalExprRef| -> Option<(JoinSide, usize)> {
        let c = e.downcast_ref::<Column>()?;
        let ci = filter.column_indices().get(c.index())?;
        Some((ci.side, ci.index))
    };
    if let Some((side, index)) = column(expr) {
        return Ok(Some(Term {
            side,
            index,
            offset: 0,
        }));
    }
    let Some(binary) = expr.downcast_ref::<BinaryExpr>() else {
        return Ok(None);
    };
    let sign = match binary.op() {
        Operator::Plus => 1,
        Operator::Minus => -1,
        _ => return Ok(None),
    };
    let Some((side, index)) = column(binary.left()) else {
        return Ok(None);
    };
    let Some(literal) = binary.right().downcast_ref::<Literal>() else {
        return Ok(None);
    };
    let Some(c) = binary.left().downcast_ref::<Column>() else {
        return Ok(None);
    };
    let column_type = filter.schema().field(c.index()).data_type().clone();
    if !time::is_time_type(&column_type) {
        return Ok(None);
    }
    let Some(offset) = signed_duration(literal.value(), &column_type) else {
        // A month-based offset: leave the join to DataFusion.
        return Ok(None);
    };
    Ok(Some(Term {
        side,
        index,
        offset: sign * offset,
    }))
}

/// A constant offset of either sign on the time scale of `column_type`.
fn signed_duration(
    value: &datafusion::common::ScalarValue,
    column_type: &arrow::datatypes::DataType,
) -> Option<i64> {
    if let Ok(v) = time::duration_value(value, column_type, "band") {
        return Some(v);
    }
    let negated = value.arithmetic_negate().ok()?;
    time::duration_value(&negated, column_type, "band")
        .ok()
        .map(|v| -v)
}

/// The band in the join filter: `right.time - left.time` within `[low, high]`.
fn find_band(
    join: &HashJoinExec,
    filter: &JoinFilter,
) -> Result<Option<(PhysicalExprRef, PhysicalExprRef, BandBounds)>> {
    let mut pair: Option<(usize, usize)> = None;
    let mut low: Option<(i64, bool)> = None;
    let mut high: Option<(i64, bool)> = None;
    for conjunct in split_conjunction(filter.expression()) {
        let Some(binary) = conjunct.downcast_ref::<BinaryExpr>() else {
            continue;
        };
        let op = *binary.op();
        if !matches!(
            op,
            Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq
        ) {
            continue;
        }
        let (Some(a), Some(b)) = (term(binary.left(), filter)?, term(binary.right(), filter)?)
        else {
            continue;
        };
        // Normalise to `right - left OP bound`.
        let (r, l, op) = match (a.side, b.side) {
            (JoinSide::Right, JoinSide::Left) => (a, b, op),
            (JoinSide::Left, JoinSide::Right) => (b, a, swap(op)),
            _ => continue,
        };
        let bound = l.offset - r.offset;
        if pair.is_some_and(|p| p != (l.index, r.index)) {
            continue;
        }
        pair = Some((l.index, r.index));
        match op {
            Operator::GtEq | Operator::Gt => {
                let strict = op == Operator::Gt;
                if low.is_none_or(|(v, s)| bound > v || (bound == v && strict && !s)) {
                    low = Some((bound, strict));
                }
            }
            _ => {
                let strict = op == Operator::Lt;
                if high.is_none_or(|(v, s)| bound < v || (bound == v && strict && !s)) {
                    high = Some((bound, strict));
                }
            }
        }
    }
    let (Some((li, ri)), Some(low), Some(high)) = (pair, low, high) else {
        return Ok(None);
    };
    let left_schema = join.left().schema();
    let right_schema = join.right().schema();
    let left_time: PhysicalExprRef = Arc::new(Column::new(left_schema.field(li).name(), li));
    let right_time: PhysicalExprRef = Arc::new(Column::new(right_schema.field(ri).name(), ri));
    let (lt, rt) = (
        left_schema.field(li).data_type(),
        right_schema.field(ri).data_type(),
    );
    if time::check_comparable(lt, rt).is_err() {
        return Ok(None);
    }
    Ok(Some((
        left_time,
        right_time,
        BandBounds {
            low: low.0,
            low_strict: low.1,
            high: high.0,
            high_strict: high.1,
        },
    )))
}

fn swap(op: Operator) -> Operator {
    match op {
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        other => other,
    }
}
