//! The one error type of `vigil-storage`.
//!
//! Variants say whose problem it is: the caller's input (`InvalidBatch`, `InvalidPolicy`, `InvalidHold`),
//! something retryable (`ShuttingDown`), damage on disk (`Corrupted`), or the environment
//! (`Io`, `RocksDb`, `Parquet`, `Arrow`).

use std::path::PathBuf;

/// Result alias used throughout the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A record batch offered for writing does not fit the kind's schema.
    #[error("invalid {kind} batch: column `{column}`: {problem}")]
    InvalidBatch {
        kind: &'static str,
        column: String,
        problem: String,
    },

    /// Bytes on disk that do not decode: a torn or truncated file, a bad record.
    #[error("corrupted {}: {what}", file.display())]
    Corrupted { file: PathBuf, what: String },

    /// The directory was written by a format version this build does not read.
    #[error("unsupported store format version {found} in {}: this build reads version {supported}", dir.display())]
    UnsupportedFormat {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },

    /// Another process has the store open.
    #[error(
        "the store in {} is open in another process (a running `vigil serve`?): stop it, or \
         query it through the server",
        dir.display()
    )]
    InUse { dir: PathBuf },

    /// The store is closing; the write was not made durable and may be retried elsewhere.
    #[error("the store is shutting down; the write was not acknowledged")]
    ShuttingDown,

    /// An invalid option value given to `Store::open`.
    #[error("invalid store option `{option}`: {problem}")]
    InvalidOption {
        option: &'static str,
        problem: String,
    },

    /// A retention rule that cannot be enforced as written.
    #[error("retention {rule}: {problem}")]
    InvalidPolicy { rule: String, problem: String },

    /// A legal hold that cannot be placed as asked.
    #[error("invalid hold: {0}")]
    InvalidHold(String),

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("RocksDB: {0}")]
    RocksDb(#[from] rocksdb::Error),

    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupted(file: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        StorageError::Corrupted {
            file: file.into(),
            what: what.into(),
        }
    }

    /// True when the caller sent something wrong (a bad batch, policy or hold), as opposed to
    /// a failure of the store itself.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StorageError::InvalidBatch { .. }
                | StorageError::InvalidOption { .. }
                | StorageError::InvalidPolicy { .. }
                | StorageError::InvalidHold(_)
        )
    }
}
