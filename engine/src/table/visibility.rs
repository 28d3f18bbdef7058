//! Which rows a session may see. A session restricted to some namespaces gets every table
//! scan wrapped in a filter on `namespace`, below anything its SQL can express: no union,
//! subquery, join or projection reaches rows of other namespaces, because the rows never
//! leave the scan.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Expr, Operator, col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{self, in_list};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExecBuilder;

/// The column every table restricts on.
pub const NAMESPACE_COLUMN: &str = "namespace";
/// The namespace of the object an audit event acted on; restricted too where a table has it,
/// so that a caller in an allowed namespace acting on objects elsewhere does not show them.
pub const OBJECT_NAMESPACE_COLUMN: &str = "object_namespace";

/// Rows a session may see: all, or only those of some namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    namespaces: Option<Arc<BTreeSet<String>>>,
}

impl Visibility {
    /// Every row.
    pub fn all() -> Self {
        Visibility { namespaces: None }
    }

    /// Only rows whose `namespace` is one of `namespaces` (rows without a namespace, such as
    /// cluster-scoped audit events, are hidden too).
    pub fn namespaces(namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Visibility {
            namespaces: Some(Arc::new(namespaces.into_iter().map(Into::into).collect())),
        }
    }

    /// The namespaces visible, or `None` for all.
    pub fn allowed(&self) -> Option<&BTreeSet<String>> {
        self.namespaces.as_deref()
    }

    /// True when a row of `namespace` may be seen.
    pub fn sees(&self, namespace: Option<&str>) -> bool {
        match (&self.namespaces, namespace) {
            (None, _) => true,
            (Some(set), Some(ns)) => set.contains(ns),
            (Some(_), None) => false,
        }
    }

    /// Plans a scan that yields only visible rows.
    ///
    /// `scan` plans the table's own scan for some filters and projection (indices into
    /// `schema`); when restricted, it is called with `namespace IN (..)` added to the
    /// filters (so segments of other namespaces are pruned) and with `namespace` (and
    /// `object_namespace`, where the table has it) in the projection, and its output is
    /// filtered to rows whose namespace is allowed and whose object namespace is absent or
    /// allowed, then projected back to what was asked.
    pub fn scan(
        &self,
        schema: &SchemaRef,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        scan: impl FnOnce(&[Expr], Option<&Vec<usize>>) -> Result<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(allowed) = &self.namespaces else {
            return scan(filters, projection);
        };
        let mut needed = vec![schema.index_of(NAMESPACE_COLUMN)?];
        if let Ok(object) = schema.index_of(OBJECT_NAMESPACE_COLUMN) {
            needed.push(object);
        }
        let mut with_namespace = filters.to_vec();
        with_namespace.push(if allowed.is_empty() {
            lit(false)
        } else {
            col(NAMESPACE_COLUMN).in_list(allowed.iter().map(|n| lit(n.as_str())).collect(), false)
        });
        let (widened, back) = match projection {
            None => (None, None),
            Some(p) if needed.iter().all(|c| p.contains(c)) => (Some(p.clone()), None),
            Some(p) => {
                let mut w = p.clone();
                w.extend(needed.iter().filter(|c| !p.contains(c)));
                (Some(w), Some((0..p.len()).collect::<Vec<_>>()))
            }
        };
        let input = scan(&with_namespace, widened.as_ref())?;
        let predicate = namespace_predicate(allowed, &input.schema())?;
        Ok(Arc::new(
            FilterExecBuilder::new(predicate, input)
                .apply_projection(back)?
                .build()?,
        ))
    }
}

fn namespace_predicate(
    allowed: &BTreeSet<String>,
    schema: &SchemaRef,
) -> Result<Arc<dyn PhysicalExpr>> {
    if allowed.is_empty() {
        return Ok(expressions::lit(false));
    }
    let allowed_in = |column: &str| -> Result<Arc<dyn PhysicalExpr>> {
        let values = allowed
            .iter()
            .map(|n| expressions::lit(ScalarValue::Utf8(Some(n.clone()))))
            .collect();
        in_list(expressions::col(column, schema)?, values, &false, schema)
    };
    let namespace = allowed_in(NAMESPACE_COLUMN)?;
    if schema.index_of(OBJECT_NAMESPACE_COLUMN).is_err() {
        return Ok(namespace);
    }
    // namespace IN (..) AND (object_namespace IS NULL OR object_namespace IN (..))
    let object = expressions::col(OBJECT_NAMESPACE_COLUMN, schema)?;
    let object_ok = Arc::new(expressions::BinaryExpr::new(
        Arc::new(expressions::IsNullExpr::new(object)),
        Operator::Or,
        allowed_in(OBJECT_NAMESPACE_COLUMN)?,
    ));
    Ok(Arc::new(expressions::BinaryExpr::new(
        namespace,
        Operator::And,
        object_ok,
    )))
}
