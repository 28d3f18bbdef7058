//! The DataFusion session vigil runs SQL in: defaults chosen for data already sorted by
//! (pod, ts) and for timestamps in UTC.

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{QueryError, Result};

/// Knobs of a vigil SQL session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Parallelism of query execution; 0 means one per CPU core.
    pub target_partitions: usize,
    /// Rows per record batch inside query execution.
    pub batch_size: usize,
    /// Memory a query may use for sorts, joins and aggregates, in bytes; `None` is unlimited.
    pub memory_limit: Option<usize>,
    /// Memory for cached Parquet footers and page indexes, in bytes. Point queries over
    /// immutable files skip re-reading them while they fit.
    pub metadata_cache_bytes: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            target_partitions: 0,
            batch_size: 8192,
            memory_limit: None,
            metadata_cache_bytes: 512 << 20,
        }
    }
}

/// The session configuration vigil uses.
pub fn session_config(options: &SessionOptions) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(options.batch_size.max(1))
        // Sources declare their (pod, ts) order; merging sorted streams beats re-sorting.
        .with_prefer_existing_sort(true)
        .with_option_extension(crate::functions::bounded::QueryGuards::default());
    if options.target_partitions > 0 {
        config = config.with_target_partitions(options.target_partitions);
    }
    let opts = config.options_mut();
    opts.execution.time_zone = Some("UTC".to_string());
    opts.execution.parquet.schema_force_view_types = false;
    // Planning errors carry the line and column of the SQL they are about.
    opts.sql_parser.collect_spans = true;
    config
}

/// A new SQL context with vigil's configuration and no tables.
pub fn new_context(options: &SessionOptions) -> Result<SessionContext> {
    let mut runtime =
        RuntimeEnvBuilder::new().with_metadata_cache_limit(options.metadata_cache_bytes);
    if let Some(limit) = options.memory_limit {
        if limit == 0 {
            return Err(QueryError::InvalidSetting {
                setting: "memory_limit".into(),
                problem: "must be more than 0 bytes".into(),
            });
        }
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let builder = SessionStateBuilder::new()
        .with_config(session_config(options))
        .with_runtime_env(runtime.build_arc()?)
        .with_default_features();
    let state = crate::extensions::install(builder).build();
    Ok(SessionContext::new_with_state(state))
}
