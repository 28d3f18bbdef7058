//! Scans narrowed by a join's pods: when a join above a scan learns which pods its other side
//! holds (a complete dynamic filter `pod IN (...)`, published before this side is read), the
//! scan reads through the pod index only those pods' rows of the segments it had planned.
//!
//! The narrowed plan has the same partitions as the planned one (a segment with none of the
//! pods reads no row group), so the operators above it see no difference but fewer rows.
//! Filters that are not complete when the scan starts, or that say something other than a
//! set of pods, are ignored: the join above still applies its own condition.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;
use vigil_storage::prune::pod_ids;
use vigil_storage::{SegmentScan, Store};

use crate::table::access::access_plan;

const POD: &str = "pod";

/// True for a dynamic filter that may come to name pods (one of its keys is `pod`).
pub fn is_pod_filter(filter: &Arc<dyn PhysicalExpr>) -> bool {
    filter
        .downcast_ref::<DynamicFilterPhysicalExpr>()
        .is_some_and(|d| {
            d.children()
                .iter()
                .any(|c| c.downcast_ref::<Column>().is_some_and(|c| c.name() == POD))
        })
}

/// The pods a complete dynamic filter allows, when it says (`pod IN (...)`, `pod = '...'`,
/// either within a conjunction, `false` for none); `None` when it is not yet complete or
/// says something else.
pub fn allowed_pods(filter: &Arc<dyn PhysicalExpr>) -> Option<BTreeSet<String>> {
    let dynamic = filter.downcast_ref::<DynamicFilterPhysicalExpr>()?;
    dynamic.wait_complete().now_or_never()?;
    pods_of(&dynamic.current().ok()?)
}

fn pods_of(expr: &Arc<dyn PhysicalExpr>) -> Option<BTreeSet<String>> {
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return matches!(literal.value(), ScalarValue::Boolean(Some(false))).then(BTreeSet::new);
    }
    if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
        if in_list.negated() || !is_pod(in_list.expr()) {
            return None;
        }
        let mut pods = BTreeSet::new();
        for item in in_list.list() {
            match item.downcast_ref::<Literal>()?.value() {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    pods.extend(v.clone());
                }
                _ => return None,
            }
        }
        return Some(pods);
    }
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    match binary.op() {
        Operator::And => match (pods_of(binary.left()), pods_of(binary.right())) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (a, b) => a.or(b),
        },
        Operator::Eq => {
            let (l, r) = (binary.left(), binary.right());
            let literal = if is_pod(l) {
                r.downcast_ref::<Literal>()?
            } else if is_pod(r) {
                l.downcast_ref::<Literal>()?
            } else {
                return None;
            };
            match literal.value() {
                ScalarValue::Utf8(Some(v)) => Some(BTreeSet::from([v.clone()])),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_pod(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Column>()
        .is_some_and(|c| c.name() == POD)
}

/// The segments a scan planned, by the location of their file, and how to find pods' rows.
#[derive(Debug, Clone)]
pub struct PlannedSegments {
    store: Arc<Store>,
    by_location: Arc<HashMap<String, SegmentScan>>,
}

impl PlannedSegments {
    pub fn new(store: Arc<Store>, segments: Vec<(String, SegmentScan)>) -> Self {
        PlannedSegments {
            store,
            by_location: Arc::new(segments.into_iter().collect()),
        }
    }

    /// `plan` (a scan planned over these segments) reading only `pods`' rows, and how many
    /// segment rows that leaves.
    pub fn narrow(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        pods: &BTreeSet<String>,
    ) -> Result<(Arc<dyn ExecutionPlan>, u64)> {
        let ids = pod_ids(self.store.pods(), pods.iter().map(String::as_str));
        let mut rows = 0u64;
        let narrowed = Arc::clone(plan).transform_up(|node| {
            let Some(config) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|d| d.data_source().downcast_ref::<FileScanConfig>())
            else {
                return Ok(Transformed::no(node));
            };
            let mut config = config.clone();
            let mut groups = Vec::with_capacity(config.file_groups.len());
            for group in &config.file_groups {
                let mut files = Vec::with_capacity(group.len());
                for file in group.iter() {
                    let mut file = file.clone();
                    if let Some(scan) = self.by_location.get(file.object_meta.location.as_ref()) {
                        let narrowed = scan.restrict_to_pods(&ids);
                        rows += narrowed.rows_selected();
                        if let Some(plan) = access_plan(&narrowed) {
                            file = file.with_extension(plan);
                        }
                    }
                    files.push(file);
                }
                groups.push(FileGroup::new(files));
            }
            config.file_groups = groups;
            Ok(Transformed::yes(
                DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
            ))
        })?;
        Ok((narrowed.data, rows))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_expr::expressions::{in_list, lit};

    use super::*;

    fn pod() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(POD, 0))
    }

    fn schema() -> datafusion::arrow::datatypes::Schema {
        datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
            POD,
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        )])
    }

    fn set(pods: &[&str]) -> Option<BTreeSet<String>> {
        Some(pods.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn a_complete_filter_names_its_pods() {
        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![pod()], lit(true)));
        let as_expr: Arc<dyn PhysicalExpr> = Arc::clone(&filter) as Arc<dyn PhysicalExpr>;
        assert!(is_pod_filter(&as_expr));
        // Not complete: not used, whatever it says.
        assert_eq!(allowed_pods(&as_expr), None);
        let list = in_list(pod(), vec![lit("a"), lit("b")], &false, &schema()).expect("in list");
        let bounds: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(pod(), Operator::GtEq, lit("a"))),
            Operator::And,
            list,
        ));
        filter.update(bounds).expect("update");
        filter.mark_complete();
        assert_eq!(allowed_pods(&as_expr), set(&["a", "b"]));
    }

    #[test]
    fn only_pod_sets_are_understood() {
        let eq: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(lit("c"), Operator::Eq, pod()));
        assert_eq!(pods_of(&eq), set(&["c"]));
        assert_eq!(pods_of(&lit(false)), set(&[]));
        assert_eq!(pods_of(&lit(true)), None);
        let negated = in_list(pod(), vec![lit("a")], &true, &schema()).expect("in list");
        assert_eq!(pods_of(&negated), None);
        let both: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            in_list(pod(), vec![lit("a"), lit("b")], &false, &schema()).expect("in list"),
            Operator::And,
            in_list(pod(), vec![lit("b"), lit("c")], &false, &schema()).expect("in list"),
        ));
        assert_eq!(pods_of(&both), set(&["b"]));
    }
}
