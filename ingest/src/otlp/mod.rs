//! OTLP (OpenTelemetry protocol) requests to rows: metrics, logs and traces, from protobuf or
//! OTLP/JSON (hex trace and span ids, integer enums, 64-bit integers as strings or numbers).

pub mod common;
pub mod json;
pub mod logs;
pub mod metrics;
pub mod traces;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::{Decoded, IngestError, Namespaces, Result};

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
    Traces,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Signal::Metrics => "ExportMetricsServiceRequest",
            Signal::Logs => "ExportLogsServiceRequest",
            Signal::Traces => "ExportTraceServiceRequest",
        }
    }
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// Decodes a request body of `signal`; `now_ns` stands in for missing times. Records of
/// namespaces outside `namespaces` are rejected.
pub fn decode(
    signal: Signal,
    encoding: Encoding,
    body: &[u8],
    now_ns: i64,
    namespaces: &Namespaces,
) -> Result<Decoded> {
    match signal {
        Signal::Metrics => {
            let (mut request, normalized) =
                parse::<ExportMetricsServiceRequest>(signal, encoding, body)?;
            normalized.restore(&mut request);
            let mut decoded = metrics::decode(&request, now_ns, namespaces)?;
            normalized.count_into(&mut decoded);
            Ok(decoded)
        }
        Signal::Logs => logs::decode(
            &parse::<ExportLogsServiceRequest>(signal, encoding, body)?.0,
            now_ns,
            namespaces,
        ),
        Signal::Traces => traces::decode(
            &parse::<ExportTraceServiceRequest>(signal, encoding, body)?.0,
            now_ns,
            namespaces,
        ),
    }
}

/// The request, and for OTLP/JSON what normalising it set aside.
fn parse<T: Message + Default + serde::de::DeserializeOwned>(
    signal: Signal,
    encoding: Encoding,
    body: &[u8],
) -> Result<(T, json::Normalized)> {
    match encoding {
        Encoding::Protobuf => T::decode(body)
            .map(|request| (request, json::Normalized::default()))
            .map_err(|source| IngestError::Protobuf {
                message: signal.message(),
                source,
            }),
        Encoding::Json => {
            let invalid = |detail: String| IngestError::Json {
                message: signal.message(),
                detail,
            };
            let mut value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
            let normalized = json::normalize(signal, &mut value).map_err(invalid)?;
            // The error names the field: `resourceSpans[0].scopeSpans[0].spans[2].traceId: ...`.
            let request =
                serde_path_to_error::deserialize(value).map_err(|e| invalid(e.to_string()))?;
            Ok((request, normalized))
        }
    }
}
