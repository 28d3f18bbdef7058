//! ASOF JOIN: each left row with the closest right row of equal keys in time.
//!
//! Spellings, semantics and options are documented in `docs/sql.md`. [`plan`] turns the
//! parsed join into an [`AsofJoinNode`]; [`AsofExtensionPlanner`] turns that into an
//! [`AsofJoinExec`], a single streaming pass over inputs sorted by (keys, time).

pub mod exec;
pub mod node;
pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

pub use exec::AsofJoinExec;
pub use node::{AsofJoinNode, AsofOp, AsofOptions};

use crate::sorted_join::JoinInputs;
use crate::time;

/// Plans [`AsofJoinNode`]s as [`AsofJoinExec`]s.
#[derive(Debug, Default)]
pub struct AsofExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for AsofExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<AsofJoinNode>() else {
            return Ok(None);
        };
        let [left_plan, right_plan] = logical_inputs else {
            return Err(DataFusionError::Internal(
                "AsofJoin needs two inputs".into(),
            ));
        };
        let [left, right] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "AsofJoin needs two inputs".into(),
            ));
        };
        let left_schema = left_plan.schema();
        let right_schema = right_plan.schema();
        let on = node
            .on
            .iter()
            .map(|(l, r)| {
                Ok((
                    planner.create_physical_expr(l, left_schema, session, planning_ctx)?,
                    planner.create_physical_expr(r, right_schema, session, planning_ctx)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let left_time =
            planner.create_physical_expr(&node.left_time, left_schema, session, planning_ctx)?;
        let right_time =
            planner.create_physical_expr(&node.right_time, right_schema, session, planning_ctx)?;
        let time_type = left_time.data_type(left.schema().as_ref())?;
        let tolerance = node
            .options
            .tolerance
            .as_ref()
            .map(|t| time::duration_value(t, &time_type, "ASOF TOLERANCE"))
            .transpose()?;
        let inputs = JoinInputs {
            left: Arc::clone(left),
            right: Arc::clone(right),
            on,
            left_time,
            right_time,
            dynamic_filter: None,
        };
        Ok(Some(Arc::new(AsofJoinExec::try_new(
            inputs,
            node.options.op,
            node.options.nearest,
            tolerance,
            node.options.join_type,
            Arc::new(node.schema.as_arrow().clone()),
        )?)))
    }
}
