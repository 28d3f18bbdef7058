//! Reading less for MATCH_RECOGNIZE, without changing its answer.
//!
//! Two rewrites of the input, each applied only when it provably keeps every match:
//!
//! 1. **Partitions that cannot match.** When every match must contain a row of some defined
//!    variable whose condition reads only the row itself, a partition without such a row has
//!    no match. The input becomes the rows of the partitions that have one: a
//!    [`KeyFilterNode`] whose build side is the input filtered by that condition, so the
//!    scan of the input reads only those partitions (a dynamic filter on the partition keys).
//! 2. **Rows only a filler can take.** A row that meets no DEFINE of the pattern can only be
//!    classified as an undefined variable (which matches any row). When the pattern is a
//!    sequence of variables that starts and ends with a single-row defined variable, puts an
//!    undefined `x*` (or `x*?`) between every two defined ones, uses each defined variable
//!    once with at least one row, and the DEFINEs are row-local and mutually exclusive (an
//!    equality on one column with different values, like `kind = 'event'` and
//!    `kind = 'metric'`), then removing such rows keeps the same matches with the same
//!    single-row variables, the same first row of each repeated one, the same first and last
//!    row (so `WITHIN` and the skip are unchanged). The measures must read only those
//!    (no aggregate over a repeated variable or the whole match, nothing of a filler) and the
//!    output must be ONE ROW PER MATCH, skipping PAST LAST ROW or TO NEXT ROW. Then the input
//!    is filtered by the OR of the DEFINEs, which scans can prune with.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::utils::{disjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, Operator};

use crate::key_filter::KeyFilterNode;
use crate::match_recognize::node::{MatchSpec, PrimitiveKind};
use crate::match_recognize::pattern::{Pattern, Skip};

/// The input of a MATCH_RECOGNIZE with `spec`, reduced as the module says.
pub fn reduce_input(input: LogicalPlan, spec: &MatchSpec) -> Result<LogicalPlan> {
    let probe = match filler_free_filter(spec) {
        Some(any_define) => LogicalPlanBuilder::from(input.clone())
            .filter(any_define)?
            .build()?,
        None => input.clone(),
    };
    let Some(var) = required_var(spec) else {
        return Ok(probe);
    };
    let (Some(define), false) = (&spec.defines[var], spec.partition_by.is_empty()) else {
        return Ok(probe);
    };
    let build = LogicalPlanBuilder::from(input)
        .filter(define.clone())?
        .project(spec.partition_by.clone())?
        .build()?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(KeyFilterNode {
            probe,
            build,
            keys: spec.partition_by.clone(),
        }),
    }))
}

/// A DEFINE that reads only the row itself (no PREV or NEXT).
fn row_local(spec: &MatchSpec, var: usize) -> Option<&Expr> {
    let define = spec.defines.get(var)?.as_ref()?;
    let navs: HashSet<String> = (0..spec.navs.len())
        .map(crate::match_recognize::node::nav_column)
        .collect();
    define
        .column_refs()
        .iter()
        .all(|c| !navs.contains(&c.name))
        .then_some(define)
}

/// The first variable, in pattern order, that every match contains and whose DEFINE is
/// row-local.
fn required_var(spec: &MatchSpec) -> Option<usize> {
    let mut order = Vec::new();
    mandatory(&spec.pattern, &mut order);
    let all = mandatory_set(&spec.pattern);
    order
        .into_iter()
        .find(|v| all.contains(v) && row_local(spec, *v).is_some())
}

/// Variables in pattern order (with repeats) for [`required_var`].
fn mandatory(p: &Pattern, out: &mut Vec<usize>) {
    match p {
        Pattern::Var(v) => out.push(*v),
        Pattern::Concat(ps) | Pattern::Alt(ps) => ps.iter().for_each(|p| mandatory(p, out)),
        Pattern::Repeat { inner, .. } => mandatory(inner, out),
    }
}

/// The variables every match of `p` contains.
fn mandatory_set(p: &Pattern) -> HashSet<usize> {
    match p {
        Pattern::Var(v) => HashSet::from([*v]),
        Pattern::Concat(ps) => ps.iter().flat_map(mandatory_set).collect(),
        Pattern::Alt(ps) => {
            let mut sets = ps.iter().map(mandatory_set);
            let first = sets.next().unwrap_or_default();
            sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
        }
        Pattern::Repeat { inner, min, .. } if *min > 0 => mandatory_set(inner),
        Pattern::Repeat { .. } => HashSet::new(),
    }
}

/// One element of a flat pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Element {
    /// A defined variable with at least one row and at most `max`.
    Defined { var: usize, max: Option<u32> },
    /// An undefined variable, any number of rows.
    Filler,
}

/// The OR of the pattern's DEFINEs, when removing the rows that meet none keeps the answer.
pub fn filler_free_filter(spec: &MatchSpec) -> Option<Expr> {
    if spec.all_rows || !matches!(spec.skip, Skip::PastLastRow | Skip::ToNextRow) {
        return None;
    }
    let elements = flatten(&spec.pattern, spec)?;
    let defined: Vec<(usize, Option<u32>)> = elements
        .iter()
        .filter_map(|e| match e {
            Element::Defined { var, max } => Some((*var, *max)),
            Element::Filler => None,
        })
        .collect();
    let single = |e: Option<&Element>| matches!(e, Some(Element::Defined { max: Some(1), .. }));
    if !single(elements.first()) || !single(elements.last()) {
        return None;
    }
    // A filler between every two defined variables.
    let mut last_defined = false;
    for e in &elements {
        let is_defined = matches!(e, Element::Defined { .. });
        if is_defined && last_defined {
            return None;
        }
        last_defined = is_defined;
    }
    // Each defined variable once.
    let max_of: HashMap<usize, Option<u32>> = defined.iter().copied().collect();
    if max_of.len() != defined.len() {
        return None;
    }
    // Measures read only single-row variables, the first row of repeated ones, or the
    // match's first and last rows.
    for p in &spec.primitives {
        let ok = match p.var {
            Some(v) => match max_of.get(&v) {
                Some(Some(1)) => true,
                Some(_) => p.kind == PrimitiveKind::First,
                None => false,
            },
            None => matches!(
                p.kind,
                PrimitiveKind::First
                    | PrimitiveKind::Last
                    | PrimitiveKind::Classifier
                    | PrimitiveKind::MatchNumber
            ),
        };
        if !ok {
            return None;
        }
    }
    let defines: Vec<&Expr> = defined
        .iter()
        .map(|(v, _)| row_local(spec, *v))
        .collect::<Option<_>>()?;
    for (i, a) in defines.iter().enumerate() {
        for b in &defines[i + 1..] {
            if !exclusive(a, b) {
                return None;
            }
        }
    }
    disjunction(defines.into_iter().cloned())
}

fn flatten(p: &Pattern, spec: &MatchSpec) -> Option<Vec<Element>> {
    let defined = |v: usize| spec.defines.get(v).is_some_and(Option::is_some);
    match p {
        Pattern::Concat(ps) => {
            let mut out = Vec::new();
            for p in ps {
                out.extend(flatten(p, spec)?);
            }
            Some(out)
        }
        Pattern::Var(v) if defined(*v) => Some(vec![Element::Defined {
            var: *v,
            max: Some(1),
        }]),
        Pattern::Repeat {
            inner, min, max, ..
        } => match inner.as_ref() {
            Pattern::Var(v) if defined(*v) && *min == 1 => {
                Some(vec![Element::Defined { var: *v, max: *max }])
            }
            Pattern::Var(v) if !defined(*v) && *min == 0 && max.is_none() => {
                Some(vec![Element::Filler])
            }
            _ => None,
        },
        _ => None,
    }
}

/// True when no row can meet both conditions: each has a conjunct `column = value` on the
/// same column with different non-null values.
fn exclusive(a: &Expr, b: &Expr) -> bool {
    let a = equalities(a);
    let b = equalities(b);
    a.iter()
        .any(|(col, va)| b.iter().any(|(c, vb)| c == col && va != vb))
}

fn equalities(e: &Expr) -> Vec<(String, ScalarValue)> {
    split_conjunction(e)
        .into_iter()
        .filter_map(|c| match c {
            Expr::BinaryExpr(b) if b.op == Operator::Eq => {
                match (b.left.as_ref(), b.right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _))
                    | (Expr::Literal(v, _), Expr::Column(c))
                        if !v.is_null() =>
                    {
                        Some((c.flat_name(), v.clone()))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}
