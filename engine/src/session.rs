//! [`Session`]: SQL on behalf of someone. A session sees the rows its [`Access`] allows and
//! may run only the statements it allows; each query can carry its own memory limit.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::dataframe::DataFrame;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use vigil_query::functions::bounded::QueryGuards;
use vigil_query::interrupt::{Interrupt, interruptible};
use vigil_query::sql::{Statement, statement};
use vigil_storage::{SignalKind, Store};

use crate::error::{EngineError, Result};
use crate::memory::QueryMemory;
use crate::table::{
    HoldsTable, KindTable, PodsTable, RollupView, SignalsTable, Visibility, rollup_view_name,
    rules_table,
};
use crate::write::WritePath;

/// What a session may see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The rows every table scan yields.
    pub visibility: Visibility,
    /// May change the store or the session: `INSERT`, `COPY .. TO`, `CREATE`/`DROP`
    /// (external tables and views included), `SET`, `PREPARE`, `FLUSH`, `COMPACT`. Without
    /// it a session only reads (`SELECT`, `EXPLAIN`, `SHOW`, `DESCRIBE`).
    pub writes: bool,
}

impl Access {
    /// Everything: what the embedding program itself gets from [`crate::Db::sql`].
    pub fn full() -> Self {
        Access {
            visibility: Visibility::all(),
            writes: true,
        }
    }

    /// Read-only SQL over the rows `visibility` allows.
    pub fn read_only(visibility: Visibility) -> Self {
        Access {
            visibility,
            writes: false,
        }
    }
}

/// Limits of one query.
#[derive(Debug, Clone, Default)]
pub struct QueryLimits {
    /// The memory it may hold: its sorts, joins and aggregates (spilling where they can),
    /// each result batch it hands out, and at most as much for one call of a function whose
    /// output grows (`repeat`, `lpad`...). `None` shares the session's pool.
    pub memory: Option<QueryMemory>,
    /// Ends the query from outside (a deadline, a client gone, the process stopping): checked
    /// before every batch of every scan and join, so even a CPU-bound aggregate ends within a
    /// batch. `None`: the query ends when its stream is dropped.
    pub interrupt: Option<Interrupt>,
}

/// One statement, planned and checked against the session's [`Access`].
#[derive(Debug, Clone)]
pub enum Planned {
    /// SQL planned by DataFusion, temporal extensions included.
    Query(LogicalPlan),
    /// `FLUSH` or `COMPACT`.
    Command(StoreCommand),
}

impl Planned {
    /// The schema of the result.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Planned::Query(plan) => Arc::clone(plan.schema().inner()),
            Planned::Command(command) => command.schema(),
        }
    }

    /// True for statements that change the store or the session (DML, DDL, `COPY`, `SET`,
    /// `FLUSH`, `COMPACT`...), false for queries.
    pub fn changes_something(&self) -> bool {
        match self {
            Planned::Command(_) => true,
            Planned::Query(plan) => matches!(
                plan,
                LogicalPlan::Dml(_)
                    | LogicalPlan::Ddl(_)
                    | LogicalPlan::Copy(_)
                    | LogicalPlan::Statement(_)
            ),
        }
    }

    /// The types of the `$1`, `$2`.. parameters, by name, in order; `None` where the SQL
    /// does not say.
    pub fn parameters(&self) -> Result<Vec<(String, Option<DataType>)>> {
        let Planned::Query(plan) = self else {
            return Ok(Vec::new());
        };
        let mut params: Vec<(String, Option<DataType>)> =
            plan.get_parameter_types()?.into_iter().collect();
        params.sort_by_key(|(name, _)| parameter_position(name));
        Ok(params)
    }
}

/// `$3` sorts after `$2`, and named parameters after numbered ones.
fn parameter_position(name: &str) -> (usize, String) {
    match name.trim_start_matches('$').parse::<usize>() {
        Ok(n) => (n, String::new()),
        Err(_) => (usize::MAX, name.to_string()),
    }
}

/// Store-management statements (vigil's own, parsed by `vigil_query::sql::statement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCommand {
    /// Write every hot row into segments.
    Flush,
    /// Merge small segments.
    Compact,
    /// Run a retention pass now (`ENFORCE RETENTION`).
    EnforceRetention,
}

impl StoreCommand {
    /// The statement as written.
    pub fn name(self) -> &'static str {
        match self {
            StoreCommand::Flush => "FLUSH",
            StoreCommand::Compact => "COMPACT",
            StoreCommand::EnforceRetention => "ENFORCE RETENTION",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            StoreCommand::Flush => &["segments_written", "rows_flushed"],
            StoreCommand::Compact => &["segments_merged", "segments_written", "rows_compacted"],
            StoreCommand::EnforceRetention => &[
                "rows_deleted",
                "rows_rolled_up",
                "rollup_rows_written",
                "rows_held",
                "segments_dropped",
                "segments_rewritten",
                "bytes_freed",
            ],
        }
    }

    fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns()
                .iter()
                .map(|n| Field::new(*n, DataType::UInt64, false))
                .collect::<Vec<_>>(),
        ))
    }

    fn run(self, store: &Store) -> Result<Vec<u64>> {
        Ok(match self {
            StoreCommand::Flush => {
                let s = store.flush()?;
                vec![s.segments as u64, s.rows]
            }
            StoreCommand::Compact => {
                let s = store.compact()?;
                vec![s.inputs as u64, s.outputs as u64, s.rows]
            }
            StoreCommand::EnforceRetention => {
                let r = store.enforce_retention()?;
                vec![
                    r.total_deleted(),
                    r.rows_rolled_up,
                    r.rollup_rows_written,
                    r.rows_held,
                    r.segments_dropped as u64,
                    r.segments_rewritten as u64,
                    r.bytes_freed,
                ]
            }
        })
    }
}

/// SQL run with one [`Access`]: a DataFusion session whose tables show only the rows the
/// access allows. Cheap to share behind an `Arc`; queries run concurrently.
pub struct Session {
    ctx: SessionContext,
    store: Arc<Store>,
    access: Access,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        writes: Arc<WritePath>,
        options: &vigil_query::SessionOptions,
        access: Access,
    ) -> Result<Session> {
        let store = Arc::clone(writes.store());
        if access.writes && access.visibility.allowed().is_some() {
            return Err(EngineError::NotAllowed(
                "a session restricted to some namespaces cannot also write: its DDL and COPY \
                 could reach other namespaces' rows"
                    .into(),
            ));
        }
        let ctx = vigil_query::new_context(options)?;
        let visibility = &access.visibility;
        for kind in SignalKind::STORED {
            let mut table =
                KindTable::new(kind, Arc::clone(&store)).with_visibility(visibility.clone());
            if access.writes {
                table = table.with_writes(Arc::clone(&writes));
            }
            ctx.register_table(kind.table_name(), Arc::new(table))?;
        }
        let mut steps = store.retention_policy().steps();
        steps.extend([Duration::from_secs(60), Duration::from_secs(3600)]);
        for step in steps {
            let view = RollupView::new(step, Arc::clone(&store), visibility.clone());
            ctx.register_table(rollup_view_name(step), Arc::new(view))?;
        }
        ctx.register_table(
            "retention_rules",
            Arc::new(rules_table(&store, visibility)?),
        )?;
        let holds = HoldsTable::new(Arc::clone(&store), visibility.clone());
        ctx.register_table("retention_holds", Arc::new(holds))?;
        let signals = SignalsTable::new(Arc::clone(&store)).with_visibility(visibility.clone());
        ctx.register_table("signals", Arc::new(signals))?;
        let pods = PodsTable::new(Arc::clone(&store)).with_visibility(visibility.clone());
        ctx.register_table("pods", Arc::new(pods))?;
        Ok(Session { ctx, store, access })
    }

    /// What this session may see and do.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The DataFusion session, to register more tables or functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans one statement and checks it against the session's access.
    pub async fn plan(&self, sql: &str) -> Result<Planned> {
        let state = self.ctx.state();
        let planned = match statement::parse(&state, sql)? {
            Statement::Flush => Planned::Command(StoreCommand::Flush),
            Statement::Compact => Planned::Command(StoreCommand::Compact),
            Statement::EnforceRetention => Planned::Command(StoreCommand::EnforceRetention),
            Statement::ShowRetention => Planned::Query(
                vigil_query::sql::logical_plan(
                    &self.ctx,
                    "SELECT * FROM retention_rules ORDER BY rule",
                )
                .await?,
            ),
            Statement::ShowHolds => Planned::Query(
                vigil_query::sql::logical_plan(
                    &self.ctx,
                    "SELECT * FROM retention_holds ORDER BY id",
                )
                .await?,
            ),
            Statement::Sql(statement) => Planned::Query(state.statement_to_plan(*statement).await?),
        };
        self.check(&planned)?;
        Ok(planned)
    }

    /// Refuses what the session's access does not allow.
    fn check(&self, planned: &Planned) -> Result<()> {
        let plan = match planned {
            Planned::Command(command) if !self.access.writes => {
                return Err(EngineError::NotAllowed(format!(
                    "{} changes the store: {READ_ONLY}",
                    command.name()
                )));
            }
            Planned::Command(_) => return Ok(()),
            Planned::Query(plan) => plan,
        };
        if !self.access.writes
            && let Some(what) = changing_statement(plan)
        {
            return Err(EngineError::NotAllowed(format!(
                "{what} is not allowed: {READ_ONLY}"
            )));
        }
        // EXPLAIN shows how many segments and rows the whole store holds, and EXPLAIN ANALYZE
        // counts rows before the namespace filter.
        if self.access.visibility.allowed().is_some()
            && matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
        {
            return Err(EngineError::NotAllowed(
                "EXPLAIN shows counts of the whole store; a session restricted to some \
                 namespaces cannot run it"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Runs a planned statement with `params` bound to its placeholders, streaming the
    /// result. Dropping the stream cancels the query.
    pub async fn execute(
        &self,
        planned: Planned,
        params: Option<ParamValues>,
        limits: QueryLimits,
    ) -> Result<SendableRecordBatchStream> {
        self.check(&planned)?;
        let plan = match planned {
            Planned::Command(command) => return self.run_command(command).await,
            Planned::Query(plan) => plan,
        };
        let plan = match params {
            Some(params) => plan.with_param_values(params)?,
            None => plan,
        };
        let mut state = self.ctx.state();
        if let Some(memory) = &limits.memory {
            let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
                .with_memory_pool(memory.pool())
                .build_arc()?;
            if let Some(guards) = state
                .config_mut()
                .options_mut()
                .extensions
                .get_mut::<QueryGuards>()
            {
                guards.max_function_output_bytes = memory.limit();
            }
            // Functions read the configuration the execution started with.
            state.mark_start_execution();
            state = SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build();
        }
        // DDL and SET change the context they run on: run those on the session itself.
        let frame = if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) {
            self.ctx.execute_logical_plan(plan).await?
        } else {
            DataFrame::new(state, plan)
        };
        let stream = match &limits.interrupt {
            None => frame.execute_stream().await?,
            Some(interrupt) => {
                interrupt.check()?;
                let task = Arc::new(frame.task_ctx());
                let plan = interruptible(frame.create_physical_plan().await?, interrupt)?;
                execute_stream(plan, task)?
            }
        };
        Ok(match &limits.memory {
            Some(memory) => memory.account(stream),
            None => stream,
        })
    }

    /// Plans and runs one statement.
    pub async fn sql(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let planned = self.plan(sql).await?;
        self.execute(planned, None, QueryLimits::default()).await
    }

    async fn run_command(&self, command: StoreCommand) -> Result<SendableRecordBatchStream> {
        let store = Arc::clone(&self.store);
        let values = tokio::task::spawn_blocking(move || command.run(&store))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        let schema = command.schema();
        let columns = values
            .into_iter()
            .map(|v| Arc::new(UInt64Array::from(vec![v])) as _)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(datafusion::error::DataFusionError::from)?;
        let stream = futures::stream::iter(vec![Ok(batch)]);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Why a read-only session refuses a statement, and what would run it.
const READ_ONLY: &str = "this session may only read (SELECT, EXPLAIN, SHOW, DESCRIBE); statements \
    that write, create tables, read or write files, or change settings need the admin scope";

/// The first statement in `plan` (subqueries included) that changes the store or the
/// session, by name (`INSERT INTO`, `CREATE EXTERNAL TABLE`, `COPY`, `SET VARIABLE`...).
fn changing_statement(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    // The walk only stops early; it cannot fail.
    let _ = plan.apply_with_subqueries(|node| {
        found = match node {
            LogicalPlan::Dml(dml) => Some(dml.op.to_string().to_uppercase()),
            LogicalPlan::Ddl(ddl) => Some(words_of(ddl.name())),
            LogicalPlan::Copy(_) => Some("COPY".to_string()),
            LogicalPlan::Statement(statement) => Some(words_of(statement.name())),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// `CreateExternalTable` as `CREATE EXTERNAL TABLE`.
fn words_of(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_node_names_read_as_statements() {
        assert_eq!(words_of("CreateExternalTable"), "CREATE EXTERNAL TABLE");
        assert_eq!(words_of("SetVariable"), "SET VARIABLE");
        assert_eq!(words_of("Prepare"), "PREPARE");
    }
}
