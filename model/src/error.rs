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

    /// Text that is not an RFC 3339 instant.
    #[error("{0:?} is not an RFC 3339 time")]
    NotRfc3339(String),

    /// An RFC 3339 instant outside what nanoseconds since the epoch in 64 bits can hold.
    #[error("{0:?} is out of range: timestamps run from {earliest} to {latest}", earliest = crate::time::EARLIEST, latest = crate::time::LATEST)]
    TimeOutOfRange(String),

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
