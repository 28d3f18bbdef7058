//! From the parsed `a ASOF JOIN b ...` to an [`AsofJoinNode`].

use std::sync::Arc;

use datafusion::common::{DFSchema, Result, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::split_conjunction_owned;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Extension, JoinType, LogicalPlan, Operator,
};
use datafusion::sql::sqlparser::ast::{
    self as sql, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, JoinConstraint,
    JoinOperator, TableFactor, TableWithJoins, Value,
};

use crate::asof::node::{AsofJoinNode, AsofOp, AsofOptions};
use crate::sql::tokens::ASOF_MARKER;
use crate::sql::{is_asof, nest_asof_joins};
use crate::time;

/// Which SQL dialect's ASOF semantics a join was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// `MATCH_CONDITION (..)`: every left row is kept.
    Snowflake,
    /// The inequality in `ON`: inner unless `ASOF LEFT JOIN`.
    DuckDb,
}

#[derive(Debug)]
struct Marker {
    spelling: Spelling,
    left: bool,
    nearest: bool,
    tolerance: Option<sql::Expr>,
}

/// Plans a nested join whose last join is ASOF.
pub fn plan_asof_nested_join(
    mut from: TableWithJoins,
    context: &mut dyn RelationPlannerContext,
) -> Result<LogicalPlan> {
    let Some(join) = from.joins.pop() else {
        return plan_err!("ASOF JOIN without a left side");
    };
    let JoinOperator::AsOf {
        match_condition,
        constraint,
    } = join.join_operator
    else {
        return plan_err!("expected an ASOF join");
    };

    // Plan the left side: the relation with the joins before this one.
    let left = if from.joins.is_empty() {
        context.plan(from.relation)?
    } else {
        let joins = &from.joins;
        if joins
            .iter()
            .rposition(is_asof)
            .is_some_and(|i| i + 1 < joins.len())
        {
            nest_asof_joins(&mut from);
        }
        context.plan(TableFactor::NestedJoin {
            table_with_joins: Box::new(from),
            alias: None,
        })?
    };
    let right = context.plan(join.relation)?;
    let schema = left.schema().as_ref().clone().join(right.schema())?;

    let (marker, match_sql) = take_marker(match_condition)?;
    let mut conditions = vec![];
    let mut match_exprs = vec![];
    if let Some(expr) = match_sql {
        for e in split_conjunction_owned(context.sql_to_expr(expr, &schema)?) {
            match_exprs.push(e);
        }
    }
    match constraint {
        JoinConstraint::On(expr) => {
            conditions.extend(split_conjunction_owned(context.sql_to_expr(expr, &schema)?));
        }
        JoinConstraint::None => {}
        JoinConstraint::Using(_) | JoinConstraint::Natural => {
            return plan_err!(
                "ASOF JOIN supports ON and MATCH_CONDITION, not USING or NATURAL: write the keys as `ON a.k = b.k`"
            );
        }
    }

    let left_schema = left.schema().clone();
    let right_schema = right.schema().clone();
    let side = |e: &Expr| side_of(e, &left_schema, &right_schema);
    let mut on = vec![];
    let mut inequality: Option<(Expr, AsofOp, Expr)> = None;
    let mut set_inequality = |found: (Expr, AsofOp, Expr)| -> Result<()> {
        if inequality.replace(found).is_some() {
            return plan_err!(
                "ASOF JOIN takes exactly one inequality between the two time columns, found more than one"
            );
        }
        Ok(())
    };
    for e in match_exprs {
        match classify(e, &side)? {
            Condition::Inequality(l, op, r) => set_inequality((l, op, r))?,
            Condition::Equal(l, r) if marker.spelling == Spelling::DuckDb => on.push((l, r)),
            Condition::Equal(..) => {
                return plan_err!(
                    "MATCH_CONDITION takes one inequality (e.g. a.ts >= b.ts); put equality keys in ON"
                );
            }
        }
    }
    for e in conditions {
        match classify(e, &side)? {
            Condition::Equal(l, r) => on.push((l, r)),
            Condition::Inequality(l, op, r) if marker.spelling == Spelling::DuckDb => {
                set_inequality((l, op, r))?
            }
            Condition::Inequality(..) => {
                return plan_err!(
                    "with MATCH_CONDITION, ON takes only equality keys; move the inequality into MATCH_CONDITION"
                );
            }
        }
    }
    let Some((left_time, op, right_time)) = inequality else {
        return plan_err!(
            "ASOF JOIN needs one inequality between the two time columns, e.g. MATCH_CONDITION (a.ts >= b.ts) or ON ... AND a.ts >= b.ts"
        );
    };

    let left_type = left_time.get_type(&left_schema)?;
    let right_type = right_time.get_type(&right_schema)?;
    time::check_comparable(&left_type, &right_type)
        .map_err(|e| plan_datafusion_err!("ASOF JOIN match condition: {e}"))?;

    // Give each key pair one type so the operator can compare encoded rows.
    let mut keys = Vec::with_capacity(on.len());
    for (l, r) in on {
        let lt = l.get_type(&left_schema)?;
        let rt = r.get_type(&right_schema)?;
        if lt == rt {
            keys.push((l, r));
            continue;
        }
        let Some(common) = comparison_coercion(&lt, &rt) else {
            return plan_err!("ASOF JOIN cannot compare key {l} ({lt}) with {r} ({rt})");
        };
        keys.push((
            l.cast_to(&common, &left_schema)?,
            r.cast_to(&common, &right_schema)?,
        ));
    }

    let tolerance = match marker.tolerance {
        None => None,
        Some(expr) => {
            let value = constant(context.sql_to_expr(expr, &DFSchema::empty())?)?;
            // Validate now, so a bad tolerance fails at planning.
            time::duration_value(&value, &left_type, "ASOF TOLERANCE")?;
            Some(value)
        }
    };
    let join_type = match (marker.spelling, marker.left) {
        (Spelling::Snowflake, _) | (Spelling::DuckDb, true) => JoinType::Left,
        (Spelling::DuckDb, false) => JoinType::Inner,
    };
    let node = AsofJoinNode::try_new(
        Arc::new(left),
        Arc::new(right),
        keys,
        left_time,
        right_time,
        AsofOptions {
            op,
            nearest: marker.nearest,
            tolerance,
            join_type,
        },
    )?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

fn constant(expr: Expr) -> Result<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Ok(value),
        Expr::Negative(inner) => match *inner {
            Expr::Literal(value, _) => value.arithmetic_negate(),
            other => plan_err!("ASOF TOLERANCE must be a constant, got {other}"),
        },
        Expr::Cast(cast) => constant(*cast.expr)?.cast_to(cast.field.data_type()),
        other => plan_err!("ASOF TOLERANCE must be a constant, got {other}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Both,
    Neither,
}

fn side_of(expr: &Expr, left: &DFSchema, right: &DFSchema) -> Side {
    let mut in_left = false;
    let mut in_right = false;
    for c in expr.column_refs() {
        if left.has_column(c) {
            in_left = true;
        } else if right.has_column(c) {
            in_right = true;
        }
    }
    match (in_left, in_right) {
        (true, true) => Side::Both,
        (true, false) => Side::Left,
        (false, true) => Side::Right,
        (false, false) => Side::Neither,
    }
}

enum Condition {
    Equal(Expr, Expr),
    Inequality(Expr, AsofOp, Expr),
}

fn classify(expr: Expr, side: &dyn Fn(&Expr) -> Side) -> Result<Condition> {
    let shown = expr.to_string();
    let bad = || {
        plan_err!(
            "ASOF JOIN conditions must be equalities between the two sides plus one inequality between their time columns; `{shown}` is neither"
        )
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return bad();
    };
    let (l, r) = (*left, *right);
    let swapped = match (side(&l), side(&r)) {
        (Side::Left, Side::Right) => false,
        (Side::Right, Side::Left) => true,
        _ => return bad(),
    };
    let (l, r) = if swapped { (r, l) } else { (l, r) };
    let op = match op {
        Operator::Eq => return Ok(Condition::Equal(l, r)),
        Operator::GtEq => AsofOp::Ge,
        Operator::Gt => AsofOp::Gt,
        Operator::LtEq => AsofOp::Le,
        Operator::Lt => AsofOp::Lt,
        _ => return bad(),
    };
    Ok(Condition::Inequality(
        l,
        if swapped { op.flip() } else { op },
        r,
    ))
}

/// Splits the `__vigil_asof(..)` marker out of a MATCH_CONDITION; the rest is the user's
/// condition, if any.
fn take_marker(condition: sql::Expr) -> Result<(Marker, Option<sql::Expr>)> {
    let mut marker = None;
    let rest = strip_marker(condition, &mut marker)?;
    let marker = match marker {
        Some(m) => m,
        // Parsed without vigil's rewrite: Snowflake's spelling, no options.
        None => Marker {
            spelling: Spelling::Snowflake,
            left: false,
            nearest: false,
            tolerance: None,
        },
    };
    Ok((marker, rest))
}

fn strip_marker(expr: sql::Expr, marker: &mut Option<Marker>) -> Result<Option<sql::Expr>> {
    match expr {
        sql::Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let l = strip_marker(*left, marker)?;
            let r = strip_marker(*right, marker)?;
            Ok(match (l, r) {
                (Some(l), Some(r)) => Some(sql::Expr::BinaryOp {
                    left: Box::new(l),
                    op: BinaryOperator::And,
                    right: Box::new(r),
                }),
                (l, r) => l.or(r),
            })
        }
        sql::Expr::Nested(inner) => {
            Ok(strip_marker(*inner, marker)?.map(|e| sql::Expr::Nested(Box::new(e))))
        }
        sql::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(ASOF_MARKER) => {
            let FunctionArguments::List(list) = f.args else {
                return plan_err!("malformed ASOF options");
            };
            let args: Vec<sql::Expr> = list
                .args
                .into_iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect();
            let [spelling, left, nearest, tolerance]: [sql::Expr; 4] = args
                .try_into()
                .map_err(|_| plan_datafusion_err!("malformed ASOF options"))?;
            let text = |e: &sql::Expr| match e {
                sql::Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            let tolerance = match &tolerance {
                sql::Expr::Value(v) if matches!(v.value, Value::Null) => None,
                _ => Some(tolerance),
            };
            *marker = Some(Marker {
                spelling: if text(&spelling) == "duckdb" {
                    Spelling::DuckDb
                } else {
                    Spelling::Snowflake
                },
                left: text(&left) == "true",
                nearest: text(&nearest) == "true",
                tolerance,
            });
            Ok(None)
        }
        other => Ok(Some(other)),
    }
}
