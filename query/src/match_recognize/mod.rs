//! MATCH_RECOGNIZE (SQL:2016 row pattern recognition).
//!
//! [`plan`] turns the parsed clause into a [`MatchRecognizeNode`]; the pattern becomes an
//! automaton ([`pattern`]); [`MatchRecognizeExtensionPlanner`] plans a
//! [`MatchRecognizeExec`], which classifies each input batch vectorised and runs the
//! automaton over the rows of each partition in one pass; [`measures`] computes each match's
//! measures running, one step per row. Semantics are in `docs/sql.md`.

pub mod exec;
pub mod measures;
pub mod node;
pub mod pattern;
pub mod plan;
pub mod reduce;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{ExprSchemable, LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

pub use exec::MatchRecognizeExec;
pub use node::MatchRecognizeNode;

use crate::match_recognize::exec::{MatchPlan, PhysicalPrimitive};
use crate::match_recognize::pattern::Program;
use crate::time;

/// Plans [`MatchRecognizeNode`]s as [`MatchRecognizeExec`]s.
#[derive(Debug, Default)]
pub struct MatchRecognizeExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for MatchRecognizeExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<MatchRecognizeNode>() else {
            return Ok(None);
        };
        let ([logical], [input]) = (logical_inputs, physical_inputs) else {
            return Err(DataFusionError::Internal(
                "MatchRecognize needs one input".into(),
            ));
        };
        let schema = logical.schema();
        let spec = &node.spec;
        let phys = |e: &datafusion::logical_expr::Expr, s: &datafusion::common::DFSchema| {
            planner.create_physical_expr(e, s, session, ctx)
        };
        let partition_by = spec
            .partition_by
            .iter()
            .map(|e| phys(e, schema))
            .collect::<Result<Vec<_>>>()?;
        let order_by = spec
            .order_by
            .iter()
            .map(|o| {
                Ok(PhysicalSortExpr::new(
                    phys(&o.expr, schema)?,
                    arrow::compute::SortOptions {
                        descending: !o.asc,
                        nulls_first: o.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let navs = spec
            .navs
            .iter()
            .map(|n| Ok((phys(&n.expr, schema)?, n.offset)))
            .collect::<Result<Vec<_>>>()?;
        let define_schema = node.define_schema()?;
        let defines = spec
            .defines
            .iter()
            .map(|d| d.as_ref().map(|e| phys(e, &define_schema)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let measure_schema = node.measure_schema()?;
        let primitives = spec
            .primitives
            .iter()
            .map(|p| {
                let input_type = p.expr.as_ref().map(|e| e.get_type(schema)).transpose()?;
                Ok(PhysicalPrimitive {
                    kind: p.kind,
                    var: p.var,
                    expr: p.expr.as_ref().map(|e| phys(e, schema)).transpose()?,
                    data_type: p.kind.data_type(input_type.as_ref()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let measures = spec
            .measures
            .iter()
            .map(|(_, e)| phys(e, &measure_schema))
            .collect::<Result<Vec<_>>>()?;
        let within = match (&spec.within, spec.order_by.first()) {
            (Some(w), Some(o)) => {
                let t = o.expr.get_type(schema)?;
                Some(time::duration_value(w, &t, "WITHIN")?)
            }
            _ => None,
        };
        let program = Program::compile(&spec.pattern)
            .map_err(|e| DataFusionError::Plan(format!("MATCH_RECOGNIZE: {e}")))?;
        let plan = MatchPlan {
            partition_by,
            order_by,
            navs,
            defines,
            define_schema: Arc::new(define_schema.as_arrow().clone()),
            primitives,
            measures,
            measure_schema: Arc::new(measure_schema.as_arrow().clone()),
            program: Arc::new(program),
            vars: spec.vars.clone(),
            within,
            skip: spec.skip,
            all_rows: spec.all_rows,
        };
        Ok(Some(Arc::new(MatchRecognizeExec::new(
            Arc::clone(input),
            plan,
            Arc::new(node.schema.as_arrow().clone()),
        ))))
    }
}
