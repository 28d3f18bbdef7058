//! Running SQL with vigil's temporal extensions on a DataFusion session.
//!
//! [`statement::parse`] reads one statement: vigil's own commands, or SQL with the few
//! spellings sqlparser cannot parse rewritten ([`tokens`]), parsed with DataFusion's parser,
//! and every ASOF join isolated in a nested join so the relation planner sees it
//! ([`nest_asof_joins`]). [`logical_plan`] and [`sql`] plan SQL on the session, whose
//! relation planner and extension planners (installed by [`crate::install`]) take over from
//! there.

pub mod depth;
pub mod statement;
pub mod tokens;

pub use statement::Statement;

use std::ops::ControlFlow;

use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Join, JoinOperator, Select, TableFactor, TableWithJoins, VisitMut, VisitorMut,
};

use crate::error::{QueryError, Result};

/// Plans and runs one SQL statement on `ctx`, temporal extensions included.
pub async fn sql(ctx: &SessionContext, text: &str) -> Result<DataFrame> {
    let plan = logical_plan(ctx, text).await?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

/// The logical plan of one SQL statement, temporal extensions included. vigil's own
/// statements (`FLUSH`...) are not SQL to DataFusion: they are refused here, and run by
/// whoever parses with [`statement::parse`] (the engine's sessions).
pub async fn logical_plan(ctx: &SessionContext, text: &str) -> Result<LogicalPlan> {
    let state = ctx.state();
    match statement::parse(&state, text)? {
        Statement::Sql(statement) => Ok(state.statement_to_plan(*statement).await?),
        own => Err(QueryError::syntax(format!(
            "{} is a vigil statement: run it through a vigil session",
            own.name()
        ))),
    }
}

/// Nests the ASOF joins of a parsed statement (see [`nest_asof_joins`]).
pub(crate) fn nest_statement(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(inner) => {
            let _ = inner.visit(&mut AsofNester);
        }
        DFStatement::Explain(explain) => nest_statement(&mut explain.statement),
        DFStatement::CopyTo(copy) => {
            if let datafusion::sql::parser::CopyToSource::Query(query) = &mut copy.source {
                let _ = query.visit(&mut AsofNester);
            }
        }
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => {}
    }
}

/// Rewrites `FROM a ASOF JOIN b .. JOIN c ..` into `FROM (a ASOF JOIN b ..) JOIN c ..`.
///
/// DataFusion's join planner rejects ASOF joins, but hands every table factor, nested joins
/// included, to the relation planners first. After this rewrite an ASOF join is only ever
/// the last join of a nested join, which [`crate::asof::AsofRelationPlanner`] plans.
pub fn nest_asof_joins(from: &mut TableWithJoins) {
    let Some(last) = from.joins.iter().rposition(is_asof) else {
        return;
    };
    let rest = from.joins.split_off(last + 1);
    let joins = std::mem::replace(&mut from.joins, rest);
    from.relation = TableFactor::NestedJoin {
        table_with_joins: Box::new(TableWithJoins {
            relation: from.relation.clone(),
            joins,
        }),
        alias: None,
    };
}

/// True for a join with the ASOF operator.
pub fn is_asof(join: &Join) -> bool {
    matches!(join.join_operator, JoinOperator::AsOf { .. })
}

struct AsofNester;

impl VisitorMut for AsofNester {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for from in &mut select.from {
            nest_asof_joins(from);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = factor
        {
            // Only when an ASOF join is followed by other joins: one that is already last
            // is what the relation planner expects.
            let joins = &table_with_joins.joins;
            if joins
                .iter()
                .rposition(is_asof)
                .is_some_and(|i| i + 1 < joins.len())
            {
                nest_asof_joins(table_with_joins);
            }
        }
        ControlFlow::Continue(())
    }
}
