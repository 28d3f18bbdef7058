//! Turns the filters DataFusion offers a table scan into simple constraints a storage layer
//! can prune with: a closed time range on one timestamp column and `IN` lists on string
//! columns. Works on any table; the caller names its time column.
//!
//! The analysis is conservative: a filter it does not understand adds no constraint, so the
//! constraints always describe a superset of the rows the filters keep. The scan must still
//! apply the filters (DataFusion does, since providers report pushdown as inexact).

use std::collections::BTreeMap;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};

/// Constraints implied by a conjunction of filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Smallest time wanted, inclusive, nanoseconds since the epoch.
    pub min_ts: Option<i64>,
    /// Largest time wanted, inclusive.
    pub max_ts: Option<i64>,
    /// String column -> the only values it may take. An empty list means no row can match.
    pub values: BTreeMap<String, Vec<String>>,
    /// A filter is the constant `false` (or NULL): no row can match.
    pub contradiction: bool,
}

impl Constraints {
    /// True when no row can satisfy the constraints.
    pub fn is_unsatisfiable(&self) -> bool {
        self.contradiction
            || matches!((self.min_ts, self.max_ts), (Some(lo), Some(hi)) if lo > hi)
            || self.values.values().any(|v| v.is_empty())
    }

    fn and(&mut self, other: Constraints) {
        self.contradiction |= other.contradiction;
        if let Some(lo) = other.min_ts {
            self.min_ts = Some(self.min_ts.map_or(lo, |x| x.max(lo)));
        }
        if let Some(hi) = other.max_ts {
            self.max_ts = Some(self.max_ts.map_or(hi, |x| x.min(hi)));
        }
        for (column, values) in other.values {
            match self.values.get_mut(&column) {
                None => {
                    self.values.insert(column, values);
                }
                Some(existing) => existing.retain(|v| values.contains(v)),
            }
        }
    }
}

/// Which columns the analysis may constrain.
#[derive(Debug, Clone)]
pub struct ColumnRoles<'a> {
    /// The timestamp column, compared with timestamp literals.
    pub time: &'a str,
    /// String columns whose equality and `IN` filters are worth extracting.
    pub strings: &'a [&'a str],
}

/// Analyses a conjunction of filters.
pub fn analyze(filters: &[Expr], roles: &ColumnRoles<'_>) -> Constraints {
    let mut out = Constraints::default();
    for filter in filters {
        out.and(analyze_one(filter, roles));
    }
    out
}

fn analyze_one(expr: &Expr, roles: &ColumnRoles<'_>) -> Constraints {
    let mut c = Constraints::default();
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            c.and(analyze_one(left, roles));
            c.and(analyze_one(right, roles));
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            // Only `x = a OR x = b` (and IN lists) on the same column survive an OR.
            let (l, r) = (analyze_one(left, roles), analyze_one(right, roles));
            if l.min_ts.is_none()
                && l.max_ts.is_none()
                && r.min_ts.is_none()
                && r.max_ts.is_none()
                && l.values.len() == 1
                && r.values.len() == 1
            {
                let (lc, mut lv) = l.values.into_iter().next().unwrap_or_default();
                let (rc, rv) = r.values.into_iter().next().unwrap_or_default();
                if lc == rc {
                    for v in rv {
                        if !lv.contains(&v) {
                            lv.push(v);
                        }
                    }
                    c.values.insert(lc, lv);
                }
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, op, value) = match (column_name(left), column_name(right)) {
                (Some(col), None) => (col, *op, literal(right)),
                (None, Some(col)) => match op.swap() {
                    Some(swapped) => (col, swapped, literal(left)),
                    None => return c,
                },
                _ => return c,
            };
            let Some(value) = value else { return c };
            if column == roles.time {
                if let Some(t) = timestamp_ns(value) {
                    match op {
                        Operator::Eq => {
                            c.min_ts = Some(t);
                            c.max_ts = Some(t);
                        }
                        Operator::Gt => c.min_ts = Some(t.saturating_add(1)),
                        Operator::GtEq => c.min_ts = Some(t),
                        Operator::Lt => c.max_ts = Some(t.saturating_sub(1)),
                        Operator::LtEq => c.max_ts = Some(t),
                        _ => {}
                    }
                }
            } else if op == Operator::Eq
                && roles.strings.contains(&column)
                && let Some(s) = string(value)
            {
                c.values.insert(column.to_string(), vec![s]);
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if column_name(expr) == Some(roles.time) => {
            c.min_ts = literal(low).and_then(timestamp_ns);
            c.max_ts = literal(high).and_then(timestamp_ns);
        }
        Expr::Literal(ScalarValue::Boolean(None | Some(false)), _)
        | Expr::Literal(ScalarValue::Null, _) => {
            c.contradiction = true;
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            if let Some(column) = column_name(expr).filter(|c| roles.strings.contains(c)) {
                let values: Option<Vec<String>> =
                    list.iter().map(|e| literal(e).and_then(string)).collect();
                if let Some(mut values) = values {
                    values.sort();
                    values.dedup();
                    c.values.insert(column.to_string(), values);
                }
            }
        }
        _ => {}
    }
    c
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// A non-null timestamp literal in nanoseconds, whatever its unit.
fn timestamp_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

/// A non-null string literal, whatever its string type.
fn string(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => string(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
