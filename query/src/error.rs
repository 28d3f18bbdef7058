//! The one error type of `vigil-query`.

/// Result alias of the query crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// What can go wrong while setting up or analysing SQL.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Invalid configuration of the SQL session (a bad option value).
    #[error("invalid SQL session setting `{setting}`: {problem}")]
    InvalidSetting { setting: String, problem: String },

    /// SQL that cannot be parsed, with what is wrong.
    #[error("SQL syntax error: {0}")]
    Syntax(String),

    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}
