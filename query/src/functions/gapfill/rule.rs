//! The analyzer rule that turns `GROUP BY time_bucket_gapfill(..)` into a `date_bin`
//! aggregate under a [`GapFillNode`]: it reads the bucket width and origin from the call, the
//! time range from the `WHERE` conjuncts on the bucketed column, and the fill of each output
//! column from the `locf`/`interpolate` wrappers, which it then removes.

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, ExprSchemable, Extension, LogicalPlan, Operator, Projection,
};
use datafusion::optimizer::AnalyzerRule;

use super::node::{Fill, GapFillNode, GapFillSpec};
use super::{GAPFILL, INTERPOLATE, LOCF};
use crate::time;

/// Rewrites `GROUP BY time_bucket_gapfill(..)` aggregates (see the module docs).
#[derive(Debug, Default)]
pub struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|node| match &node {
            LogicalPlan::Projection(p) if matches!(p.input.as_ref(), LogicalPlan::Aggregate(a) if gapfill_key(a).is_some()) => {
                rewrite(p).map(Transformed::yes)
            }
            _ => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "vigil_gapfill"
    }
}

fn is_call(e: &Expr, name: &str) -> Option<Vec<Expr>> {
    match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == name => {
            Some(args.clone())
        }
        _ => None,
    }
}

fn gapfill_key(agg: &Aggregate) -> Option<usize> {
    agg.group_expr
        .iter()
        .position(|e| is_call(unalias(e), GAPFILL).is_some())
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

fn constant(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => constant(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => constant(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

/// A constant timestamp on the normalised scale of `time_type`.
fn instant(value: &ScalarValue, time_type: &DataType) -> Result<i64> {
    let array = value.cast_to(time_type)?.to_array()?;
    let v = time::time_values(&array)?;
    if v.is_null(0) {
        return plan_err!("time_bucket_gapfill: the time range bound is NULL");
    }
    Ok(v.value(0))
}

fn time_range(
    plan: &LogicalPlan,
    ts: &Expr,
    time_type: &DataType,
) -> Result<(Option<i64>, Option<i64>)> {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut visit = |pred: &Expr| -> Result<()> {
        for c in split_conjunction(pred) {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else {
                continue;
            };
            let (op, value) = if unalias(left) == unalias(ts) {
                (*op, constant(right))
            } else if unalias(right) == unalias(ts) {
                (op.swap().unwrap_or(*op), constant(left))
            } else {
                continue;
            };
            let Some(value) = value else { continue };
            let t = instant(&value, time_type)?;
            match op {
                Operator::GtEq => lo = Some(lo.map_or(t, |l| l.max(t))),
                Operator::Gt => lo = Some(lo.map_or(t + 1, |l| l.max(t + 1))),
                Operator::Lt => hi = Some(hi.map_or(t, |h| h.min(t))),
                Operator::LtEq => hi = Some(hi.map_or(t + 1, |h| h.min(t + 1))),
                _ => {}
            }
        }
        Ok(())
    };
    plan.apply(|p| {
        match p {
            LogicalPlan::Filter(f) => visit(&f.predicate)?,
            LogicalPlan::TableScan(s) => {
                for f in &s.filters {
                    visit(f)?;
                }
            }
            _ => {}
        }
        Ok(match p {
            LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Projection(_) => TreeNodeRecursion::Continue,
            _ => TreeNodeRecursion::Jump,
        })
    })?;
    Ok((lo, hi))
}

fn rewrite(projection: &Projection) -> Result<LogicalPlan> {
    let LogicalPlan::Aggregate(agg) = projection.input.as_ref() else {
        return internal_err!("gap fill expects an aggregate");
    };
    let Some(g) = gapfill_key(agg) else {
        return internal_err!("gap fill expects a time_bucket_gapfill key");
    };
    let original = agg.group_expr[g].clone();
    let Some(args) = is_call(unalias(&original), GAPFILL) else {
        return internal_err!("gap fill key lost");
    };
    if args.len() < 2 || args.len() > 3 {
        return plan_err!("time_bucket_gapfill takes (interval, ts [, origin])");
    }
    let input_schema = agg.input.schema();
    let time_type = args[1].get_type(input_schema)?;
    if !matches!(time_type, DataType::Timestamp(_, _)) {
        return plan_err!("time_bucket_gapfill needs a timestamp, got {time_type}");
    }
    let Some(stride_value) = constant(&args[0]) else {
        return plan_err!("time_bucket_gapfill: the interval must be a constant");
    };
    let stride = time::duration_value(&stride_value, &time_type, "time_bucket_gapfill interval")?;
    if stride == 0 {
        return plan_err!("time_bucket_gapfill: the interval must be positive");
    }
    let origin = match args.get(2) {
        Some(e) => match constant(e) {
            Some(v) => instant(&v, &time_type)?,
            None => {
                return plan_err!("time_bucket_gapfill: the origin must be a constant timestamp");
            }
        },
        None => 0,
    };
    let (Some(lo), Some(hi)) = time_range(&agg.input, &args[1], &time_type)? else {
        return plan_err!(
            "time_bucket_gapfill needs the time range in WHERE, e.g. {} >= TIMESTAMP '...' AND {} < TIMESTAMP '...'",
            args[1],
            args[1]
        );
    };
    if hi <= lo {
        return plan_err!("time_bucket_gapfill: the time range is empty");
    }
    let bucket = |t: i64| origin + (t - origin).div_euclid(stride) * stride;
    let (first, last) = (bucket(lo), bucket(hi - 1));
    if (last - first) / stride > 10_000_000 {
        return plan_err!("time_bucket_gapfill: more than 10 million buckets per series");
    }

    // The aggregate groups by date_bin under the same output name.
    let name = original.schema_name().to_string();
    let mut date_bin_args = vec![args[0].clone(), args[1].clone()];
    if let Some(o) = args.get(2) {
        date_bin_args.push(o.clone());
    }
    let bin = datafusion::functions::datetime::date_bin()
        .call(date_bin_args)
        .alias(name);
    let mut group_expr = agg.group_expr.clone();
    group_expr[g] = bin;
    let new_agg = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::clone(&agg.input),
        group_expr,
        agg.aggr_expr.clone(),
    )?);
    let agg_schema = new_agg.schema().clone();
    let mut fills = vec![Fill::Null; agg_schema.fields().len()];
    // Aggregate columns the projection reads outside locf()/interpolate().
    let mut bare = vec![false; agg_schema.fields().len()];
    let mut exprs = vec![];
    for e in &projection.expr {
        let (inner, alias) = match e {
            Expr::Alias(a) => (a.expr.as_ref(), Some(a.name.clone())),
            other => (other, None),
        };
        let fill = if let Some(a) = is_call(inner, LOCF) {
            Some((Fill::Locf, a))
        } else {
            is_call(inner, INTERPOLATE).map(|a| (Fill::Interpolate, a))
        };
        match fill {
            Some((fill, a)) => {
                let [Expr::Column(c)] = a.as_slice() else {
                    return plan_err!(
                        "locf() and interpolate() take one aggregate, e.g. locf(avg(value))"
                    );
                };
                let Some(i) = agg_schema.maybe_index_of_column(c) else {
                    return plan_err!(
                        "locf() and interpolate() take one aggregate of the query, got {c}"
                    );
                };
                if i < agg.group_expr.len() {
                    return plan_err!(
                        "locf() and interpolate() take an aggregate, not a GROUP BY key"
                    );
                }
                // A fill belongs to the aggregate's one column, so the same aggregate cannot be
                // filled two ways (DataFusion computes identical aggregates once).
                if fills[i] != Fill::Null && fills[i] != fill {
                    return plan_err!(
                        "{c} is both locf() and interpolate(); wrap two different aggregates, e.g. locf(avg(value)) and interpolate(max(value))"
                    );
                }
                fills[i] = fill;
                let name = alias.unwrap_or_else(|| inner.schema_name().to_string());
                exprs.push(Expr::Column(c.clone()).alias(name));
            }
            None => {
                for c in e.column_refs() {
                    if let Some(i) = agg_schema.maybe_index_of_column(c) {
                        bare[i] = true;
                    }
                }
                exprs.push(e.clone());
            }
        }
    }
    if let Some(i) = (0..fills.len()).find(|&i| bare[i] && fills[i] != Fill::Null) {
        return plan_err!(
            "{} is used both inside and outside locf()/interpolate(); the fill would apply to both (use another aggregate for the unfilled value)",
            agg_schema.field(i).name()
        );
    }
    let spec = GapFillSpec {
        time: g,
        series: (0..agg.group_expr.len()).filter(|&i| i != g).collect(),
        stride,
        origin,
        first,
        last,
        fills,
    };
    let fill = LogicalPlan::Extension(Extension {
        node: Arc::new(GapFillNode {
            input: Arc::new(new_agg),
            spec,
        }),
    });
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(fill),
    )?))
}
