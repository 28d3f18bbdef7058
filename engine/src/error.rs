//! The one error type of the `vigil` engine crate.

use datafusion::error::DataFusionError;
use vigil_query::QueryError;
pub use vigil_query::error::location_of;
use vigil_storage::StorageError;

/// Result alias of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything an embedding program can get back from [`crate::Db`].
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store refused or failed a write, or could not open.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// The SQL session could not be set up.
    #[error(transparent)]
    Query(#[from] QueryError),

    /// Planning or running SQL failed; for bad SQL the message points at the problem.
    #[error("{}", describe(.0))]
    Sql(#[from] DataFusionError),

    /// The session may not run this statement (it only reads, or only sees some
    /// namespaces).
    #[error("not allowed: {0}")]
    NotAllowed(String),

    /// A blocking task (a write or flush run off the async runtime) did not finish.
    #[error("background task failed: {0}")]
    Task(String),
}

impl EngineError {
    /// Where in the SQL text the problem is (1-based line and column), where the parser or
    /// planner said: from spans and DataFusion diagnostics, never from message text.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            EngineError::Query(e) => e.location(),
            EngineError::Sql(e) => location_of(e),
            _ => None,
        }
    }

    /// True when the caller sent something wrong (bad SQL, a bad batch): retrying the same
    /// request will fail the same way.
    pub fn is_user_error(&self) -> bool {
        match self {
            EngineError::Storage(e) => e.is_user_error(),
            EngineError::Query(_) => true,
            EngineError::Sql(e) => is_user_datafusion_error(e),
            EngineError::NotAllowed(_) => true,
            EngineError::Task(_) => false,
        }
    }
}

fn is_user_datafusion_error(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            true
        }
        DataFusionError::NotImplemented(_) => true,
        // Errors the data and the SQL cause while running: casts, parsing, division by
        // zero, bad arguments to functions.
        DataFusionError::Execution(_) => true,
        DataFusionError::ArrowError(e, _) => matches!(
            e.as_ref(),
            datafusion::arrow::error::ArrowError::CastError(_)
                | datafusion::arrow::error::ArrowError::ParseError(_)
                | datafusion::arrow::error::ArrowError::DivideByZero
                | datafusion::arrow::error::ArrowError::ComputeError(_)
                | datafusion::arrow::error::ArrowError::InvalidArgumentError(_)
                | datafusion::arrow::error::ArrowError::ArithmeticOverflow(_)
                // Files an admin's statement points at (`CREATE EXTERNAL TABLE`, `COPY`).
                | datafusion::arrow::error::ArrowError::CsvError(_)
                | datafusion::arrow::error::ArrowError::JsonError(_)
        ),
        DataFusionError::Context(_, inner) => is_user_datafusion_error(inner),
        DataFusionError::Shared(inner) => is_user_datafusion_error(inner),
        // The planner reports several problems of one statement together.
        DataFusionError::Collection(errors) => {
            !errors.is_empty() && errors.iter().all(is_user_datafusion_error)
        }
        DataFusionError::Diagnostic(_, inner) => is_user_datafusion_error(inner),
        DataFusionError::External(inner) => inner
            .downcast_ref::<StorageError>()
            .is_some_and(StorageError::is_user_error),
        _ => false,
    }
}

/// DataFusion's messages, without the nested "External error: " noise for store errors.
fn describe(e: &DataFusionError) -> String {
    match e {
        DataFusionError::External(inner) => match inner.downcast_ref::<StorageError>() {
            Some(storage) => storage.to_string(),
            None => e.to_string(),
        },
        DataFusionError::Context(ctx, inner) => format!("{ctx}: {}", describe(inner)),
        _ => e.to_string(),
    }
}
