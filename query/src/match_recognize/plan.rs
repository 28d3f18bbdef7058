//! From the parsed `MATCH_RECOGNIZE (...)` to a [`MatchRecognizeNode`].

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, Result, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{Expr, ExprSchemable, Extension, LogicalPlan, SortExpr};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion::sql::sqlparser::ast::{
    self as sql, AfterMatchSkip, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    MatchRecognizePattern, MatchRecognizeSymbol, Measure, OrderByExpr, RepetitionQuantifier,
    RowsPerMatch, SymbolDefinition, TableAlias, TableFactor, VisitMut, VisitorMut,
};

use crate::match_recognize::node::{
    MatchRecognizeNode, MatchSpec, Nav, Primitive, PrimitiveKind, nav_column, primitive_column,
};
use crate::match_recognize::pattern::{Pattern, Program, Skip};
use crate::match_recognize::reduce::reduce_input;
use crate::sql::tokens::WITHIN_MARKER;
use crate::time;

/// The parts of a `TableFactor::MatchRecognize`.
#[derive(Debug)]
pub struct MatchRecognizeAst {
    pub table: TableFactor,
    pub partition_by: Vec<sql::Expr>,
    pub order_by: Vec<OrderByExpr>,
    pub measures: Vec<Measure>,
    pub rows_per_match: Option<RowsPerMatch>,
    pub after_match_skip: Option<AfterMatchSkip>,
    pub pattern: MatchRecognizePattern,
    pub symbols: Vec<SymbolDefinition>,
    pub alias: Option<TableAlias>,
}

/// Plans MATCH_RECOGNIZE over its input.
pub fn plan_match_recognize(
    ast: MatchRecognizeAst,
    context: &mut dyn RelationPlannerContext,
) -> Result<LogicalPlan> {
    let input = context.plan(ast.table)?;
    let schema = input.schema().as_ref().clone();
    let err = |msg: String| plan_datafusion_err!("MATCH_RECOGNIZE: {msg}");

    // Variables: those in the pattern, numbered in order of first appearance.
    let mut vars: Vec<String> = vec![];
    let pattern = convert_pattern(&ast.pattern, context, &mut vars)?;
    if vars.len() > 64 {
        return Err(err("at most 64 pattern variables".into()));
    }
    let var_index: HashMap<String, usize> = vars
        .iter()
        .enumerate()
        .map(|(i, v)| (v.clone(), i))
        .collect();

    let mut within = None;
    let mut define_sql: Vec<Option<sql::Expr>> = vec![None; vars.len()];
    for def in ast.symbols {
        let name = context.normalize_ident(def.symbol.clone());
        if name == WITHIN_MARKER {
            within = Some(def.definition);
            continue;
        }
        let Some(&i) = var_index.get(&name) else {
            return Err(err(format!(
                "DEFINE names `{name}`, which is not in the PATTERN"
            )));
        };
        if define_sql[i].replace(def.definition).is_some() {
            return Err(err(format!("`{name}` is defined twice")));
        }
    }

    let partition_by = ast
        .partition_by
        .into_iter()
        .map(|e| context.sql_to_expr(e, &schema))
        .collect::<Result<Vec<_>>>()?;
    let order_by = ast
        .order_by
        .into_iter()
        .map(|o| {
            let expr = context.sql_to_expr(o.expr, &schema)?;
            Ok(SortExpr::new(
                expr,
                o.options.asc.is_none_or(|asc| asc),
                o.options.nulls_first.unwrap_or(false),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(first_order) = order_by.first() else {
        return Err(err(
            "ORDER BY is required (rows are matched in that order)".into()
        ));
    };

    let within = match within {
        None => None,
        Some(e) => {
            let time_type = first_order.expr.get_type(&schema)?;
            if !first_order.asc {
                return Err(err("WITHIN needs ORDER BY <time> ascending".into()));
            }
            let value = constant(context.sql_to_expr(e, &DFSchema::empty())?)?;
            time::duration_value(&value, &time_type, "WITHIN").map_err(|e| {
                err(format!(
                    "{e} (it bounds the first ORDER BY column, of type {time_type})"
                ))
            })?;
            Some(value)
        }
    };

    // DEFINE: each variable's condition on the current row, with PREV/NEXT as extra columns.
    let mut navs: Vec<Nav> = vec![];
    let mut nav_sql: Vec<(sql::Expr, i64)> = vec![];
    let mut defines_rewritten = vec![];
    for (i, def) in define_sql.into_iter().enumerate() {
        let Some(mut def) = def else {
            defines_rewritten.push(None);
            continue;
        };
        let mut rewriter = DefineRewriter {
            own: vars[i].clone(),
            vars: &var_index,
            navs: &mut nav_sql,
            error: None,
        };
        let _ = def.visit(&mut rewriter);
        if let Some(e) = rewriter.error {
            return Err(err(e));
        }
        defines_rewritten.push(Some(def));
    }
    for (e, offset) in nav_sql {
        navs.push(Nav {
            expr: context.sql_to_expr(e, &schema)?,
            offset,
        });
    }
    let mut define_fields: Vec<_> = schema
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    for (i, nav) in navs.iter().enumerate() {
        let (_, f) = nav.expr.to_field(&schema)?;
        define_fields.push((
            None,
            Arc::new(
                f.as_ref()
                    .clone()
                    .with_name(nav_column(i))
                    .with_nullable(true),
            ),
        ));
    }
    let define_schema = DFSchema::new_with_metadata(define_fields, Default::default())?;
    let mut defines = vec![];
    for def in defines_rewritten {
        defines.push(match def {
            None => None,
            Some(d) => Some(coerce(
                context.sql_to_expr(d, &define_schema)?,
                &define_schema,
            )?),
        });
    }

    // MEASURES: navigation and aggregates over the match become columns.
    let partition_names: Vec<String> = partition_by
        .iter()
        .filter_map(|e| match e {
            Expr::Column(c) => Some(c.name.clone()),
            _ => None,
        })
        .collect();
    let mut prim_sql: Vec<(PrimitiveKind, Option<usize>, Option<sql::Expr>)> = vec![];
    let mut measure_sql = vec![];
    for m in ast.measures {
        let mut expr = m.expr;
        let mut rewriter = MeasureRewriter {
            vars: &var_index,
            partition: &partition_names,
            primitives: &mut prim_sql,
            error: None,
        };
        let _ = expr.visit(&mut rewriter);
        if let Some(e) = rewriter.error {
            return Err(err(e));
        }
        measure_sql.push((context.normalize_ident(m.alias), expr));
    }
    let mut primitives = vec![];
    for (kind, var, e) in prim_sql {
        let expr = e.map(|e| context.sql_to_expr(e, &schema)).transpose()?;
        primitives.push(Primitive { kind, var, expr });
    }
    let mut spec = MatchSpec {
        partition_by,
        order_by,
        vars,
        defines,
        navs,
        pattern,
        within,
        primitives,
        measures: vec![],
        all_rows: matches!(ast.rows_per_match, Some(RowsPerMatch::AllRows(_))),
        skip: Skip::PastLastRow,
    };
    if let Some(RowsPerMatch::AllRows(Some(mode))) = &ast.rows_per_match {
        return Err(err(format!("ALL ROWS PER MATCH {mode} is not supported")));
    }
    spec.skip = match ast.after_match_skip {
        None | Some(AfterMatchSkip::PastLastRow) => Skip::PastLastRow,
        Some(AfterMatchSkip::ToNextRow) => Skip::ToNextRow,
        Some(AfterMatchSkip::ToFirst(v)) => Skip::ToFirst(lookup(&var_index, &v)?),
        Some(AfterMatchSkip::ToLast(v)) => Skip::ToLast(lookup(&var_index, &v)?),
    };
    // Plan measures against the measure schema of a node without measures.
    let bare = MatchRecognizeNode::try_new(Arc::new(input.clone()), spec.clone())?;
    let measure_schema = bare.measure_schema()?;
    for (name, e) in measure_sql {
        let planned = coerce(context.sql_to_expr(e, &measure_schema)?, &measure_schema)?;
        spec.measures.push((name, planned));
    }
    Program::compile(&spec.pattern).map_err(err)?;
    let input = reduce_input(input, &spec)?;
    let node = MatchRecognizeNode::try_new(Arc::new(input), spec)?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

fn lookup(vars: &HashMap<String, usize>, v: &Ident) -> Result<usize> {
    let name = v.value.to_lowercase();
    vars.get(&name).copied().ok_or_else(|| {
        plan_datafusion_err!(
            "MATCH_RECOGNIZE: AFTER MATCH SKIP names `{name}`, which is not in the PATTERN"
        )
    })
}

fn coerce(expr: Expr, schema: &DFSchema) -> Result<Expr> {
    let mut rewriter = TypeCoercionRewriter::new(schema);
    Ok(expr.rewrite(&mut rewriter)?.data)
}

fn constant(expr: Expr) -> Result<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Ok(value),
        Expr::Cast(cast) => constant(*cast.expr)?.cast_to(cast.field.data_type()),
        other => plan_err!("MATCH_RECOGNIZE: WITHIN must be a constant interval, got {other}"),
    }
}

fn convert_pattern(
    p: &MatchRecognizePattern,
    context: &mut dyn RelationPlannerContext,
    vars: &mut Vec<String>,
) -> Result<Pattern> {
    Ok(match p {
        MatchRecognizePattern::Symbol(MatchRecognizeSymbol::Named(id)) => {
            let name = context.normalize_ident(id.clone());
            let i = match vars.iter().position(|v| *v == name) {
                Some(i) => i,
                None => {
                    vars.push(name);
                    vars.len() - 1
                }
            };
            Pattern::Var(i)
        }
        MatchRecognizePattern::Symbol(s) => {
            return plan_err!("MATCH_RECOGNIZE: the anchor `{s}` is not supported");
        }
        MatchRecognizePattern::Exclude(_) | MatchRecognizePattern::Permute(_) => {
            return plan_err!("MATCH_RECOGNIZE: `{p}` is not supported (no exclusion or PERMUTE)");
        }
        MatchRecognizePattern::Concat(ps) => Pattern::Concat(
            ps.iter()
                .map(|p| convert_pattern(p, context, vars))
                .collect::<Result<_>>()?,
        ),
        MatchRecognizePattern::Alternation(ps) => Pattern::Alt(
            ps.iter()
                .map(|p| convert_pattern(p, context, vars))
                .collect::<Result<_>>()?,
        ),
        MatchRecognizePattern::Group(p) => convert_pattern(p, context, vars)?,
        MatchRecognizePattern::Repetition(inner, q) => {
            // `p*?` parses as `(p*)?`: a `?` right after another quantifier makes it reluctant.
            let (inner, q, greedy) = match (inner.as_ref(), q) {
                (
                    MatchRecognizePattern::Repetition(inner2, q2),
                    RepetitionQuantifier::AtMostOne,
                ) => (inner2.as_ref(), q2, false),
                _ => (inner.as_ref(), q, true),
            };
            let inner = convert_pattern(inner, context, vars)?;
            if inner.nullable() {
                return plan_err!(
                    "MATCH_RECOGNIZE: a quantified part of the PATTERN must match at least one row"
                );
            }
            let (min, max) = match q {
                RepetitionQuantifier::ZeroOrMore => (0, None),
                RepetitionQuantifier::OneOrMore => (1, None),
                RepetitionQuantifier::AtMostOne => (0, Some(1)),
                RepetitionQuantifier::Exactly(n) => (*n, Some(*n)),
                RepetitionQuantifier::AtLeast(n) => (*n, None),
                RepetitionQuantifier::AtMost(n) => (0, Some(*n)),
                RepetitionQuantifier::Range(a, b) => (*a, Some(*b)),
            };
            Pattern::Repeat {
                inner: Box::new(inner),
                min,
                max,
                greedy,
            }
        }
    })
}

fn function_name(f: &sql::Function) -> String {
    f.name.to_string().to_lowercase()
}

fn function_args(f: &sql::Function) -> Vec<FunctionArgExpr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(e) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// Strips `var.` qualifiers of pattern variables from an expression; reports which.
struct Qualifiers<'a> {
    vars: &'a HashMap<String, usize>,
    found: Vec<usize>,
}

impl VisitorMut for Qualifiers<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut sql::Expr) -> ControlFlow<()> {
        if let sql::Expr::CompoundIdentifier(parts) = expr
            && parts.len() == 2
            && let Some(&v) = self.vars.get(&parts[0].value.to_lowercase())
        {
            self.found.push(v);
            *expr = sql::Expr::Identifier(parts[1].clone());
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites a DEFINE condition: own-variable qualifiers go, PREV/NEXT become columns.
struct DefineRewriter<'a> {
    own: String,
    vars: &'a HashMap<String, usize>,
    navs: &'a mut Vec<(sql::Expr, i64)>,
    error: Option<String>,
}

impl VisitorMut for DefineRewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut sql::Expr) -> ControlFlow<()> {
        match expr {
            sql::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let q = parts[0].value.to_lowercase();
                if q == self.own {
                    *expr = sql::Expr::Identifier(parts[1].clone());
                } else if self.vars.contains_key(&q) {
                    self.error = Some(format!(
                        "the DEFINE of `{}` refers to `{q}.{}`: a condition may use the row's own columns, PREV and NEXT",
                        self.own, parts[1].value
                    ));
                    return ControlFlow::Break(());
                }
            }
            sql::Expr::Function(f) if matches!(function_name(f).as_str(), "prev" | "next") => {
                let sign = if function_name(f) == "prev" { -1 } else { 1 };
                let args = function_args(f);
                let (inner, n) = match args.as_slice() {
                    [FunctionArgExpr::Expr(e)] => (e.clone(), 1),
                    [
                        FunctionArgExpr::Expr(e),
                        FunctionArgExpr::Expr(sql::Expr::Value(v)),
                    ] => match v.value.to_string().parse::<i64>() {
                        Ok(n) if n >= 0 => (e.clone(), n),
                        _ => {
                            self.error = Some(format!(
                                "{} takes a non-negative integer offset",
                                function_name(f).to_uppercase()
                            ));
                            return ControlFlow::Break(());
                        }
                    },
                    _ => {
                        self.error = Some(format!(
                            "{} takes an expression and an optional offset",
                            function_name(f).to_uppercase()
                        ));
                        return ControlFlow::Break(());
                    }
                };
                let mut inner = inner;
                let mut strip = Qualifiers {
                    vars: self.vars,
                    found: vec![],
                };
                let _ = inner.visit(&mut strip);
                let i = self.navs.len();
                self.navs.push((inner, sign * n));
                *expr = sql::Expr::Identifier(Ident::new(nav_column(i)));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites a measure: FIRST/LAST/aggregates/CLASSIFIER/MATCH_NUMBER and `var.col` become
/// primitive columns.
struct MeasureRewriter<'a> {
    vars: &'a HashMap<String, usize>,
    partition: &'a [String],
    primitives: &'a mut Vec<(PrimitiveKind, Option<usize>, Option<sql::Expr>)>,
    error: Option<String>,
}

impl MeasureRewriter<'_> {
    fn replace(
        &mut self,
        expr: &mut sql::Expr,
        kind: PrimitiveKind,
        var: Option<usize>,
        inner: Option<sql::Expr>,
    ) {
        let i = self.primitives.len();
        self.primitives.push((kind, var, inner));
        *expr = sql::Expr::Identifier(Ident::new(primitive_column(i)));
    }
}

impl VisitorMut for MeasureRewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut sql::Expr) -> ControlFlow<()> {
        match expr {
            sql::Expr::Function(f) => {
                let name = function_name(f);
                let kind = match name.as_str() {
                    "first" => PrimitiveKind::First,
                    "last" => PrimitiveKind::Last,
                    "count" => PrimitiveKind::Count,
                    "sum" => PrimitiveKind::Sum,
                    "avg" => PrimitiveKind::Avg,
                    "min" => PrimitiveKind::Min,
                    "max" => PrimitiveKind::Max,
                    "classifier" => PrimitiveKind::Classifier,
                    "match_number" => PrimitiveKind::MatchNumber,
                    _ => return ControlFlow::Continue(()),
                };
                let args = function_args(f);
                if matches!(kind, PrimitiveKind::Classifier | PrimitiveKind::MatchNumber) {
                    self.replace(expr, kind, None, None);
                    return ControlFlow::Continue(());
                }
                let (var, inner) = match args.as_slice() {
                    [FunctionArgExpr::Wildcard] if kind == PrimitiveKind::Count => (None, None),
                    [FunctionArgExpr::QualifiedWildcard(q)] if kind == PrimitiveKind::Count => {
                        match self.vars.get(&q.to_string().to_lowercase()) {
                            Some(&v) => (Some(v), None),
                            None => {
                                self.error =
                                    Some(format!("`{q}.*` does not name a pattern variable"));
                                return ControlFlow::Break(());
                            }
                        }
                    }
                    [FunctionArgExpr::Expr(e)] => {
                        let mut e = e.clone();
                        let mut strip = Qualifiers {
                            vars: self.vars,
                            found: vec![],
                        };
                        let _ = e.visit(&mut strip);
                        strip.found.dedup();
                        if strip.found.len() > 1 {
                            self.error = Some(format!(
                                "{}(...) mixes pattern variables; use one per call",
                                name.to_uppercase()
                            ));
                            return ControlFlow::Break(());
                        }
                        (strip.found.first().copied(), Some(e))
                    }
                    _ => {
                        self.error = Some(format!(
                            "{}(...) takes one argument here",
                            name.to_uppercase()
                        ));
                        return ControlFlow::Break(());
                    }
                };
                self.replace(expr, kind, var, inner);
            }
            sql::Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                if let Some(&v) = self.vars.get(&parts[0].value.to_lowercase()) {
                    let col = sql::Expr::Identifier(parts[1].clone());
                    self.replace(expr, PrimitiveKind::Last, Some(v), Some(col));
                }
            }
            sql::Expr::Identifier(id) => {
                let name = id.value.to_lowercase();
                if !self.partition.contains(&name) && !name.starts_with("__vigil_") {
                    let col = sql::Expr::Identifier(id.clone());
                    self.replace(expr, PrimitiveKind::Last, None, Some(col));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
