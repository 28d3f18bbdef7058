//! The one error type of `vigil-model`.

/// Result alias of the model crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What the shared vocabulary can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A signal kind name that is not one of `metric`, `log`, `span`, `audit`, `event`.
    #[error("unknown signal kind `{0}`: expected one of metric, log, span, audit, event")]
    UnknownKind(String),

    /// A batch built by name that does not fit its kind: a column the kind does not have,
    /// or a required column left empty.
    #[error("{kind} batch: column `{column}`: {problem}")]
    InvalidColumn {
        kind: &'static str,
        column: String,
        problem: String,
    },

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
