//! The one error type of the ingest decoders: a request or file that cannot be read at all.

/// A request (or file) vigil cannot decode; individual bad records are not errors but
/// rejections counted in [`crate::Decoded`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("malformed protobuf {message}: {source}")]
    Protobuf {
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("invalid OTLP/JSON {message}: {detail}")]
    Json {
        message: &'static str,
        detail: String,
    },
    #[error("invalid audit event{at}: {detail}")]
    Audit { at: String, detail: String },
    /// Decoded rows that do not fit their kind's schema.
    #[error("decoded rows: {0}")]
    Rows(#[from] vigil_model::ModelError),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
