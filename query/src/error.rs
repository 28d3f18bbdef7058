//! The one error type of `vigil-query`.

/// Result alias of the query crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// What can go wrong while setting up or analysing SQL.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Invalid configuration of the SQL session (a bad option value).
    #[error("invalid SQL session setting `{setting}`: {problem}")]
    InvalidSetting { setting: String, problem: String },

    /// SQL that cannot be parsed, with what is wrong and, where known, where: the 1-based
    /// line and column.
    #[error("SQL syntax error: {message}")]
    Syntax {
        message: String,
        location: Option<(u64, u64)>,
    },

    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl QueryError {
    /// A syntax error without a position.
    pub fn syntax(message: impl Into<String>) -> QueryError {
        QueryError::Syntax {
            message: message.into(),
            location: None,
        }
    }

    /// Where in the SQL text the problem is (1-based line and column), where known: from the
    /// tokenizer's location or the span of a DataFusion diagnostic.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            QueryError::Syntax { location, .. } => *location,
            QueryError::DataFusion(e) => location_of(e),
            QueryError::InvalidSetting { .. } => None,
        }
    }
}

/// The start of a DataFusion error's diagnostic span, if it has one.
pub fn location_of(e: &datafusion::error::DataFusionError) -> Option<(u64, u64)> {
    e.diagnostic()
        .and_then(|d| d.span)
        .map(|span| (span.start.line, span.start.column))
}
