//! `signals`: the union of every kind in one wide table, with a `kind` column.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column as LogicalColumn, DFSchema};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::lit;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::split_conjunction_owned;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use vigil_model::schema::{KIND_COLUMN, kind_schema, signals_schema};
use vigil_storage::{ScanFilter, SignalKind, Store};

use crate::table::scan::{scan_kind, string_columns};
use crate::table::{ScanSummary, VigilScanExec, Visibility, inexact, scan_filter};

/// `signals`: every kind in one wide table, with a `kind` column.
#[derive(Debug)]
pub struct SignalsTable {
    store: Arc<Store>,
    visibility: Visibility,
}

impl SignalsTable {
    pub fn new(store: Arc<Store>) -> Self {
        SignalsTable {
            store,
            visibility: Visibility::all(),
        }
    }

    /// The same table showing only the rows `visibility` allows.
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

#[async_trait]
impl TableProvider for SignalsTable {
    fn schema(&self) -> SchemaRef {
        signals_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(inexact(filters))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut summary = ScanSummary {
            table: "signals".to_string(),
            ..Default::default()
        };
        let plan = self.visibility.scan(
            &signals_schema(),
            projection,
            filters,
            |filters, projection| self.scan_kinds(state, projection, filters, &mut summary),
        )?;
        Ok(Arc::new(VigilScanExec::new(
            summary,
            Arc::clone(&self.store),
            plan,
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan_err!(
            "signals is the read-only union of all kinds; insert into metrics, logs, spans, audit or events"
        )
    }
}

/// `filters` as they read for the rows of `kind`: `kind` replaced by its value and the
/// result simplified, conjunctions split, so `(kind = 'metric' AND value > 0.9) OR
/// (kind = 'audit' AND verb = 'create')` is `value > 0.9` for metrics and can prune their
/// scan. `None` when a filter is false for every row of the kind. A filter that cannot be
/// simplified is kept as it was.
fn filters_for_kind(filters: &[Expr], kind: SignalKind) -> Option<Vec<Expr>> {
    let schema = match DFSchema::try_from(signals_schema()) {
        Ok(s) => Arc::new(s),
        Err(_) => return Some(filters.to_vec()),
    };
    let simplifier = ExprSimplifier::new(SimplifyContext::builder().with_schema(schema).build());
    let mut out = Vec::with_capacity(filters.len());
    for filter in filters {
        if !filter.column_refs().iter().any(|c| c.name == KIND_COLUMN) {
            out.push(filter.clone());
            continue;
        }
        let specialized = filter.clone().transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.name == KIND_COLUMN => Transformed::yes(lit(kind.as_str())),
                Expr::Column(c) => {
                    Transformed::yes(Expr::Column(LogicalColumn::new_unqualified(c.name)))
                }
                other => Transformed::no(other),
            })
        });
        let Ok(simplified) = specialized.and_then(|e| simplifier.simplify(e.data)) else {
            out.push(filter.clone());
            continue;
        };
        for conjunct in split_conjunction_owned(simplified) {
            match conjunct {
                Expr::Literal(ScalarValue::Boolean(Some(true)), _) => {}
                Expr::Literal(
                    ScalarValue::Boolean(Some(false)) | ScalarValue::Boolean(None),
                    _,
                ) => {
                    return None;
                }
                other => out.push(other),
            }
        }
    }
    Some(out)
}

impl SignalsTable {
    /// The union of every kind's scan, each projected to the wide schema.
    fn scan_kinds(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        summary: &mut ScanSummary,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wide = signals_schema();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..wide.fields().len()).collect(),
        };
        let output = Arc::new(wide.project(&wanted)?);
        let version = self.store.version();
        let mut inputs = Vec::new();
        for kind in SignalKind::ALL {
            let kind_fields = kind_schema(kind);
            let Some(filters) = filters_for_kind(filters, kind) else {
                continue;
            };
            let filters = filters.as_slice();
            // Filters on columns this kind lacks compare NULLs; leave them to DataFusion.
            let own: Vec<Expr> = filters
                .iter()
                .filter(|f| {
                    f.column_refs()
                        .iter()
                        .all(|c| kind_fields.index_of(&c.name).is_ok())
                })
                .cloned()
                .collect();
            let mut strings = string_columns(kind);
            strings.push(KIND_COLUMN);
            let mut filter = scan_filter(filters, &strings);
            if let Some(kinds) = filter.values.remove(KIND_COLUMN)
                && !kinds.iter().any(|k| k == kind.as_str())
            {
                continue;
            }
            // An equality on a column this kind lacks compares NULL: no row of it can match.
            if filter
                .values
                .keys()
                .any(|c| kind_fields.index_of(c).is_err())
            {
                continue;
            }
            // Columns of the kind the projection needs, in kind-schema order.
            let mut needed: Vec<usize> = wanted
                .iter()
                .filter_map(|&i| kind_fields.index_of(wide.field(i).name()).ok())
                .collect();
            needed.sort_unstable();
            needed.dedup();
            let filter_for_kind = ScanFilter {
                values: filter
                    .values
                    .into_iter()
                    .filter(|(c, _)| kind_fields.index_of(c).is_ok())
                    .collect(),
                ..filter
            };
            let scan = scan_kind(
                state,
                &self.store,
                &version,
                kind,
                &filter_for_kind,
                &own,
                Some(&needed),
            )?;
            summary.add(&scan);
            let scanned = scan.plan.schema();
            let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(wanted.len());
            for &i in &wanted {
                let field = wide.field(i);
                let expr: Arc<dyn PhysicalExpr> = if field.name() == KIND_COLUMN {
                    Arc::new(Literal::new(ScalarValue::Utf8(Some(
                        kind.as_str().to_string(),
                    ))))
                } else if let Ok(j) = scanned.index_of(field.name()) {
                    Arc::new(Column::new(field.name(), j))
                } else {
                    Arc::new(Literal::new(ScalarValue::try_from(field.data_type())?))
                };
                exprs.push((expr, field.name().clone()));
            }
            inputs.push(
                Arc::new(ProjectionExec::try_new(exprs, scan.plan)?) as Arc<dyn ExecutionPlan>
            );
        }
        Ok(match inputs.len() {
            0 => Arc::new(EmptyExec::new(output)),
            _ => UnionExec::try_new(inputs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn filters_read_per_kind() {
        let either = col("kind")
            .eq(lit("metric"))
            .and(col("name").eq(lit("cpu")))
            .or(col("kind").eq(lit("audit")).and(col("verb").eq(lit("get"))));
        let other = col("pod").eq(lit("p"));
        let filters = [either, other.clone()];
        assert_eq!(
            filters_for_kind(&filters, SignalKind::Metric),
            Some(vec![col("name").eq(lit("cpu")), other.clone()])
        );
        assert_eq!(
            filters_for_kind(&filters, SignalKind::Audit),
            Some(vec![col("verb").eq(lit("get")), other.clone()])
        );
        assert_eq!(filters_for_kind(&filters, SignalKind::Log), None);
        let only_metrics = [col("kind").eq(lit("metric"))];
        assert_eq!(
            filters_for_kind(&only_metrics, SignalKind::Metric),
            Some(vec![])
        );
        assert_eq!(filters_for_kind(&only_metrics, SignalKind::Span), None);
    }
}
