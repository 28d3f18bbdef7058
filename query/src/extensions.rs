//! Installing vigil's SQL extensions on a DataFusion session.
//!
//! [`install`] adds, to any `SessionStateBuilder`: the relation planner that plans ASOF
//! joins and MATCH_RECOGNIZE, a query planner whose extension planners turn their logical
//! nodes into operators, the physical optimizer rule that plans time-band joins as sorted
//! merges, the time functions, and the bounds on functions whose output can grow without
//! limit. Run SQL through [`crate::sql::sql`] so the temporal
//! spellings sqlparser does not know are rewritten first.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::sql::sqlparser::ast::TableFactor;

use crate::asof::AsofExtensionPlanner;
use crate::asof::plan::plan_asof_nested_join;
use crate::band::BandJoinRule;
use crate::functions::gapfill::{GapFillExtensionPlanner, GapFillRule};
use crate::key_filter::KeyFilterExtensionPlanner;
use crate::match_recognize::MatchRecognizeExtensionPlanner;
use crate::match_recognize::plan::{MatchRecognizeAst, plan_match_recognize};
use crate::partial_sort::PartialSortRule;
use datafusion::optimizer::Analyzer;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;

/// Adds vigil's temporal SQL to a session being built.
pub fn install(builder: SessionStateBuilder) -> SessionStateBuilder {
    let mut builder = builder;
    let planners = builder.relation_planners().get_or_insert_with(Vec::new);
    planners.insert(
        0,
        Arc::new(TemporalRelationPlanner) as Arc<dyn RelationPlanner>,
    );
    // The band join rule runs right after join selection, before distribution and sort
    // requirements are enforced, so DataFusion adds the merges and sorts it needs.
    let mut rules = builder
        .physical_optimizer_rules()
        .take()
        .unwrap_or_else(|| PhysicalOptimizer::new().rules);
    let at = rules
        .iter()
        .position(|r| r.name() == "join_selection")
        .map_or(0, |i| i + 1);
    rules.insert(at, Arc::new(BandJoinRule));
    // Sorts of inputs sorted by a prefix of the key (series-major metric scans under
    // operators that want (pod, ts)) become partial sorts, once the sorts are all placed.
    let at = rules
        .iter()
        .position(|r| r.name() == "EnsureRequirements")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(PartialSortRule));
    let functions = builder.scalar_functions().get_or_insert_with(Vec::new);
    functions.extend(crate::functions::scalar_functions());
    *functions = crate::functions::bounded::bound_growing(std::mem::take(functions));
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend(crate::functions::aggregate_functions());
    // Gap filling rewrites the plan as the SQL planner made it, after type coercion.
    let mut analyzer = Analyzer::new().rules;
    analyzer.push(Arc::new(GapFillRule));
    builder
        .with_analyzer_rules(analyzer)
        .with_physical_optimizer_rules(rules)
        .with_query_planner(Arc::new(TemporalQueryPlanner))
}

/// Plans the table factors DataFusion's SQL planner does not know: ASOF joins (as the last
/// join of a nested join, see [`crate::sql::nest_asof_joins`]) and MATCH_RECOGNIZE.
#[derive(Debug, Default)]
pub struct TemporalRelationPlanner;

impl RelationPlanner for TemporalRelationPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        match relation {
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } if table_with_joins
                .joins
                .last()
                .is_some_and(crate::sql::is_asof) =>
            {
                let plan = plan_asof_nested_join(*table_with_joins, context)?;
                Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
                    plan, alias,
                ))))
            }
            TableFactor::MatchRecognize {
                table,
                partition_by,
                order_by,
                measures,
                rows_per_match,
                after_match_skip,
                pattern,
                symbols,
                alias,
            } => {
                let ast = MatchRecognizeAst {
                    table: *table,
                    partition_by,
                    order_by,
                    measures,
                    rows_per_match,
                    after_match_skip,
                    pattern,
                    symbols,
                    alias: None,
                };
                let plan = plan_match_recognize(ast, context)?;
                Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
                    plan, alias,
                ))))
            }
            other => Ok(RelationPlanning::Original(Box::new(other))),
        }
    }
}

/// DataFusion's physical planner with vigil's extension planners.
#[derive(Debug, Default)]
pub struct TemporalQueryPlanner;

#[async_trait]
impl QueryPlanner for TemporalQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(AsofExtensionPlanner),
            Arc::new(MatchRecognizeExtensionPlanner),
            Arc::new(KeyFilterExtensionPlanner),
            Arc::new(GapFillExtensionPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}
