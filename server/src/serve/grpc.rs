//! The gRPC port: OTLP's `MetricsService`, `LogsService` and `TraceService`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use vigil_ingest::{Namespaces, otlp};

use super::auth::{Authenticator, Principal};
use super::config::Scope;
use super::pipeline::{Accepted, Pipeline, Refusal};

/// The three OTLP services over one pipeline.
#[derive(Debug, Clone)]
pub struct Otlp {
    pipeline: Arc<Pipeline>,
}

fn status(refusal: Refusal) -> Status {
    let message = refusal.message();
    match refusal {
        // OTLP: RESOURCE_EXHAUSTED is retryable only with RetryInfo; UNAVAILABLE always is.
        Refusal::Busy | Refusal::Unavailable | Refusal::Internal(_) => Status::unavailable(message),
        Refusal::TooLarge { .. } => Status::resource_exhausted(message),
        Refusal::Invalid(_) => Status::invalid_argument(message),
    }
}

/// The namespaces the caller may write, as the interceptor found them.
fn writes_of<T>(request: &Request<T>) -> Namespaces {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .map(|p| p.writes().clone())
        .unwrap_or_default()
}

fn rejected(a: &Accepted) -> Option<(i64, String)> {
    (a.rejected > 0).then(|| {
        (
            i64::try_from(a.rejected).unwrap_or(i64::MAX),
            a.message.clone(),
        )
    })
}

#[tonic::async_trait]
impl MetricsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let writes = writes_of(&request);
        let request = request.into_inner();
        let size = request.encoded_len() as u64;
        let now = self.pipeline.now_ns();
        let a = self
            .pipeline
            .ingest("metrics", size, move || {
                otlp::metrics::decode(&request, now, &writes).map_err(Refusal::from)
            })
            .await
            .map_err(status)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: rejected(&a).map(|(n, m)| ExportMetricsPartialSuccess {
                rejected_data_points: n,
                error_message: m,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let writes = writes_of(&request);
        let request = request.into_inner();
        let size = request.encoded_len() as u64;
        let now = self.pipeline.now_ns();
        let a = self
            .pipeline
            .ingest("logs", size, move || {
                otlp::logs::decode(&request, now, &writes).map_err(Refusal::from)
            })
            .await
            .map_err(status)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: rejected(&a).map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let writes = writes_of(&request);
        let request = request.into_inner();
        let size = request.encoded_len() as u64;
        let now = self.pipeline.now_ns();
        let a = self
            .pipeline
            .ingest("traces", size, move || {
                otlp::traces::decode(&request, now, &writes).map_err(Refusal::from)
            })
            .await
            .map_err(status)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: rejected(&a).map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        }))
    }
}

/// The services, with gzip accepted and the request size limit applied.
pub fn routes(pipeline: Arc<Pipeline>, auth: Arc<Authenticator>) -> Routes {
    let limit = usize::try_from(pipeline.limits().max_request_bytes).unwrap_or(usize::MAX);
    let otlp = Otlp { pipeline };
    let ingest = move |request: Request<()>| -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        let principal = auth
            .authorize(header, Scope::Ingest)
            .map_err(|e| e.status())?;
        let mut request = request;
        request.extensions_mut().insert(principal);
        Ok(request)
    };
    Routes::new(InterceptedService::new(
        MetricsServiceServer::new(otlp.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
        ingest.clone(),
    ))
    .add_service(InterceptedService::new(
        LogsServiceServer::new(otlp.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
        ingest.clone(),
    ))
    .add_service(InterceptedService::new(
        TraceServiceServer::new(otlp)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit),
        ingest,
    ))
}

/// tonic answers a request that is not valid protobuf with INTERNAL (as gRPC's status-code
/// guide suggests); for OTLP that is the client's error, so vigil says INVALID_ARGUMENT,
/// which clients do not retry.
pub fn invalid_protobuf_is_invalid_argument<B>(
    mut response: http::Response<B>,
) -> http::Response<B> {
    let headers = response.headers_mut();
    let is_decode_error = headers.get("grpc-status").is_some_and(|s| s == "13")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.starts_with("failed%20to%20decode") || m.starts_with("failed to decode")
            });
    if is_decode_error {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}
