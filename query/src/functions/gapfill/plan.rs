//! Plans [`GapFillNode`]s as [`GapFillExec`]s.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

use super::exec::GapFillExec;
use super::node::GapFillNode;

/// Plans [`GapFillNode`]s.
#[derive(Debug, Default)]
pub struct GapFillExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<GapFillNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal("GapFill needs one input".into()));
        };
        Ok(Some(Arc::new(GapFillExec::new(
            Arc::clone(input),
            node.spec.clone(),
        ))))
    }
}
