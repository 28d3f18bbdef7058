//! How deep a statement's expressions may nest, and long operator chains made shallow.
//!
//! The parser reads `a OR b OR c ...` and `1 + 1 + ...` in a loop, so a statement of a few
//! kilobytes can hold an expression thousands of levels deep; every later step (planning,
//! optimizing, evaluating, even dropping the tree) recurses once per level and would exhaust
//! a thread's stack. Dashboards write such chains when a multi-value variable expands into
//! `pod = 'a' OR pod = 'b' OR ...`, so they must work. [`bound`] runs right after parsing:
//!
//! - A chain of more than [`BALANCE_FROM`] terms of one associative operator (`AND`, `OR`,
//!   `XOR`, `+`, `*`, `||`, `&`, `|`, `^`) is rebuilt as a balanced tree with its terms in the
//!   same order: 10,000 terms nest 14 levels deep instead of 10,000. `AND`, `OR` and `||` give
//!   exactly what the chain meant; integer `+` and `*` too (wrapping or not, the sum is the
//!   sum); floating-point sums of such chains may differ in their last bits, as any
//!   reassociation does.
//! - Anything still deeper than [`MAX_DEPTH`] levels (chains of `-`, `/`, comparisons or
//!   casts, nested parentheses) is refused with an error naming the limit, before anything
//!   recurses over it: the visitor stops descending at the limit and takes the rest of the
//!   tree apart without recursion.
//!
//! Subqueries, nested functions and parentheses are also bounded by the parser's recursion
//! limit (`datafusion.sql_parser.recursion_limit`).

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Value, VisitMut, VisitorMut};

use crate::error::{QueryError, Result};

/// Chains of one associative operator longer than this are balanced.
pub const BALANCE_FROM: usize = 64;

/// Expression levels a statement may nest, after balancing. Planning and evaluation take
/// stack in proportion: at this depth they fit the 2 MiB of a default worker thread.
pub const MAX_DEPTH: usize = 256;

/// Balances the long chains of `statement` and refuses it if it still nests deeper than
/// [`MAX_DEPTH`].
pub fn bound(statement: &mut DFStatement) -> Result<()> {
    let mut visitor = Bounder { depth: 0 };
    let flow = match statement {
        DFStatement::Statement(inner) => inner.visit(&mut visitor),
        DFStatement::Explain(explain) => return bound(&mut explain.statement),
        DFStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(query) => query.visit(&mut visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(TooDeep) => Err(QueryError::syntax(format!(
            "the statement nests expressions more than {MAX_DEPTH} levels deep, the limit; \
             long chains of AND, OR, +, * and || are fine, but each step of a chain of other \
             operators (-, /, comparisons, casts) and each pair of parentheses is one level"
        ))),
    }
}

/// Why the visit stopped.
struct TooDeep;

struct Bounder {
    /// Expressions between the statement and the one visited.
    depth: usize,
}

impl VisitorMut for Bounder {
    type Break = TooDeep;

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<TooDeep> {
        balance(expr);
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            // Dropping the rest the usual way would recurse as deep as it nests.
            dismantle(std::mem::replace(expr, placeholder()));
            return ControlFlow::Break(TooDeep);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<TooDeep> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

fn placeholder() -> Expr {
    Expr::value(Value::Null)
}

/// True for the operators whose chains may be regrouped.
fn is_associative(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::And
            | BinaryOperator::Or
            | BinaryOperator::Xor
            | BinaryOperator::Plus
            | BinaryOperator::Multiply
            | BinaryOperator::StringConcat
            | BinaryOperator::BitwiseAnd
            | BinaryOperator::BitwiseOr
            | BinaryOperator::BitwiseXor
    )
}

/// Rebuilds `expr` as a balanced tree if it heads a long chain of one associative operator.
fn balance(expr: &mut Expr) {
    let Expr::BinaryOp { op, .. } = &*expr else {
        return;
    };
    if !is_associative(op) || chain_length(expr, op) <= BALANCE_FROM {
        return;
    }
    let op = op.clone();
    let terms = take_chain(std::mem::replace(expr, placeholder()), &op);
    *expr = balanced(terms, &op);
}

/// Terms of the left-leaning chain of `op` that `expr` heads, counted without recursion.
fn chain_length(expr: &Expr, op: &BinaryOperator) -> usize {
    let mut terms = 1;
    let mut at = expr;
    while let Expr::BinaryOp { left, op: o, .. } = at
        && o == op
    {
        terms += 1;
        at = left;
    }
    terms
}

/// The terms of the chain, in order.
fn take_chain(expr: Expr, op: &BinaryOperator) -> Vec<Expr> {
    let mut rights = Vec::new();
    let mut at = expr;
    loop {
        match at {
            Expr::BinaryOp { left, op: o, right } if o == *op => {
                rights.push(*right);
                at = *left;
            }
            first => {
                rights.push(first);
                break;
            }
        }
    }
    rights.reverse();
    rights
}

/// `terms` joined by `op` into a tree of depth ⌈log2 n⌉, order kept: each round joins
/// neighbours pairwise.
fn balanced(mut terms: Vec<Expr>, op: &BinaryOperator) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(left) = it.next() {
            next.push(match it.next() {
                Some(right) => Expr::BinaryOp {
                    left: Box::new(left),
                    op: op.clone(),
                    right: Box::new(right),
                },
                None => left,
            });
        }
        terms = next;
    }
    terms.pop().unwrap_or_else(placeholder)
}

/// Drops `expr` without recursing along the operator chains that make trees deep.
fn dismantle(expr: Expr) {
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::BinaryOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::AtTimeZone {
                timestamp: left,
                time_zone: right,
            }
            | Expr::Like {
                expr: left,
                pattern: right,
                ..
            }
            | Expr::ILike {
                expr: left,
                pattern: right,
                ..
            } => {
                stack.push(*left);
                stack.push(*right);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                stack.push(*expr);
                stack.push(*low);
                stack.push(*high);
            }
            Expr::InList { expr, list, .. } => {
                stack.push(*expr);
                stack.extend(list);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. }
            | Expr::Nested(expr)
            | Expr::IsFalse(expr)
            | Expr::IsNotFalse(expr)
            | Expr::IsTrue(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsUnknown(expr)
            | Expr::IsNotUnknown(expr)
            | Expr::JsonAccess { value: expr, .. }
            | Expr::CompoundFieldAccess { root: expr, .. } => stack.push(*expr),
            other => drop(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::*;

    fn parsed(sql: &str) -> DFStatement {
        DFParserBuilder::new(sql)
            .build()
            .expect("parser")
            .parse_statement()
            .expect("parse")
    }

    /// Depth of the deepest expression, counted by a visitor (the trees here are shallow).
    fn depth(statement: &mut DFStatement) -> usize {
        struct Deepest(usize, usize);
        impl VisitorMut for Deepest {
            type Break = ();
            fn pre_visit_expr(&mut self, _: &mut Expr) -> ControlFlow<()> {
                self.0 += 1;
                self.1 = self.1.max(self.0);
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, _: &mut Expr) -> ControlFlow<()> {
                self.0 -= 1;
                ControlFlow::Continue(())
            }
        }
        let mut d = Deepest(0, 0);
        if let DFStatement::Statement(s) = statement {
            let _ = s.visit(&mut d);
        }
        d.1
    }

    fn chain(op: &str, terms: usize) -> String {
        let terms: Vec<String> = (0..terms).map(|i| format!("x = {i}")).collect();
        format!("SELECT * FROM t WHERE {}", terms.join(&format!(" {op} ")))
    }

    #[test]
    fn a_long_or_chain_becomes_shallow_with_its_terms_in_order() {
        let sql = chain("OR", 1_000);
        let mut statement = parsed(&sql);
        bound(&mut statement).expect("balanced");
        // 1,000 terms: 10 levels of OR, then `x = i` and its two sides.
        assert_eq!(depth(&mut statement), 12);
        // Printed without parentheses, the balanced tree reads as the chain did.
        assert_eq!(statement.to_string(), parsed(&sql).to_string());
    }

    #[test]
    fn a_chain_of_another_operator_inside_is_balanced_by_its_own_operator() {
        let sum = vec!["x"; 5_000].join(" + ");
        let mut statement = parsed(&format!("SELECT * FROM t WHERE {sum} > 3 AND y = 1"));
        bound(&mut statement).expect("balanced");
        // AND, >, then 13 levels of + and the column.
        assert_eq!(depth(&mut statement), 2 + 13 + 1);
    }

    #[test]
    fn short_chains_are_left_as_written() {
        let sql = "SELECT * FROM t WHERE a = 1 OR b = 2 OR c = 3";
        let mut statement = parsed(sql);
        bound(&mut statement).expect("fine");
        assert_eq!(statement.to_string(), parsed(sql).to_string());
    }

    #[test]
    fn a_deep_chain_of_a_non_associative_operator_is_refused_naming_the_limit() {
        let terms = vec!["1"; 10_000].join(" - ");
        let mut statement = parsed(&format!("SELECT {terms}"));
        let err = bound(&mut statement).expect_err("too deep").to_string();
        assert!(
            err.contains(&format!("more than {MAX_DEPTH} levels")),
            "{err}"
        );
    }

    #[test]
    fn a_chain_at_the_limit_is_accepted() {
        // MAX_DEPTH - 1 subtractions: the chain's root, MAX_DEPTH - 2 more levels, a literal.
        let terms = vec!["1"; MAX_DEPTH].join(" - ");
        let mut statement = parsed(&format!("SELECT {terms}"));
        bound(&mut statement).expect("at the limit");
        let terms = vec!["1"; MAX_DEPTH + 1].join(" - ");
        let mut statement = parsed(&format!("SELECT {terms}"));
        bound(&mut statement).expect_err("one past the limit");
    }
}
