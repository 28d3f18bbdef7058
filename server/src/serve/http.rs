//! The HTTP port: OTLP/HTTP (`/v1/metrics`, `/v1/logs`, `/v1/traces`; protobuf or JSON,
//! optionally gzip), the Kubernetes audit webhook (`/v1/audit`), the SQL API, legal holds
//! (`/api/v1/holds`), `/healthz`, `/readyz` and `/metrics`.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router, middleware};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use vigil_ingest::Namespaces;
use vigil_ingest::otlp::{self, Encoding, Signal};

use super::auth::{Authenticator, Principal};
use super::config::Scope;
use super::pipeline::{Accepted, Pipeline, Refusal};
use super::queries::Queries;
use super::{holds_api, sql_api};

/// `google.rpc.Status`, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL codes.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

pub fn router(
    pipeline: Arc<Pipeline>,
    auth: Arc<Authenticator>,
    queries: Arc<Queries>,
    db: Arc<vigil::Db>,
) -> Router {
    // The raw body limit; a gzip body is checked again after decompression.
    let limit = usize::try_from(pipeline.limits().max_request_bytes).unwrap_or(usize::MAX);
    let guard =
        |scope: Option<Scope>| middleware::from_fn_with_state((Arc::clone(&auth), scope), require);
    let ingest = Router::new()
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
        .route("/v1/audit", post(audit))
        .route_layer(guard(Some(Scope::Ingest)));
    let operate = Router::new()
        .route("/metrics", get(prometheus))
        .route_layer(guard(Some(Scope::Admin)))
        .route("/readyz", get(readyz))
        .route_layer(guard(None));
    let sql = Router::new()
        .route("/api/v1/sql", post(sql_api::sql))
        .route_layer(guard(Some(Scope::Query)))
        .with_state(queries);
    let holds = Router::new()
        .route("/api/v1/holds", get(holds_api::list).post(holds_api::place))
        .route("/api/v1/holds/{id}", delete(holds_api::release))
        .route_layer(guard(Some(Scope::Admin)))
        .with_state(db);
    Router::new()
        .merge(ingest)
        .merge(operate)
        .with_state(pipeline)
        .merge(sql)
        .merge(holds)
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(one_host))
}

/// An HTTP/1.1 request without a `Host` header, or with more than one, is answered 400
/// (RFC 9112, section 3.2): which host it is for decides whether a server without tokens
/// answers it at all.
async fn one_host(request: axum::extract::Request, next: middleware::Next) -> Response {
    if request.version() == axum::http::Version::HTTP_11 {
        let hosts = request.headers().get_all(header::HOST).iter().count();
        if hosts != 1 {
            let message = if hosts == 0 {
                "an HTTP/1.1 request needs a Host header".to_string()
            } else {
                format!("an HTTP/1.1 request takes one Host header, not {hosts}")
            };
            let body = serde_json::json!({"error": {"code": "bad_request", "message": message}});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    }
    next.run(request).await
}

/// Lets a request through when its bearer token grants `scope` (or, with `None`, is any
/// valid token), with the caller in the request's extensions.
async fn require(
    State((auth, scope)): State<(Arc<Authenticator>, Option<Scope>)>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !auth.host_allowed(host) {
        let body = serde_json::json!({"error": {"code": "forbidden", "message":
            "this server has no tokens and answers only requests to a loopback host name"}});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let checked = match scope {
        Some(scope) => auth.authorize(header, scope),
        None => auth.authenticate(header),
    };
    match checked {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => {
            let (status, code) = if e.is_unauthenticated() {
                (StatusCode::UNAUTHORIZED, "unauthenticated")
            } else {
                (StatusCode::FORBIDDEN, "forbidden")
            };
            let body = serde_json::json!({"error": {"code": code, "message": e.to_string()}});
            let mut response = (status, axum::Json(body)).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vigil\""),
                );
            }
            response
        }
    }
}

async fn readyz(State(p): State<Arc<Pipeline>>) -> Response {
    if p.accepting() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn prometheus(State(p): State<Arc<Pipeline>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        p.telemetry.render(),
    )
        .into_response()
}

async fn metrics(
    State(p): State<Arc<Pipeline>>,
    Extension(caller): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    otlp_export(p, Signal::Metrics, caller.writes().clone(), headers, body).await
}

async fn logs(
    State(p): State<Arc<Pipeline>>,
    Extension(caller): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    otlp_export(p, Signal::Logs, caller.writes().clone(), headers, body).await
}

async fn traces(
    State(p): State<Arc<Pipeline>>,
    Extension(caller): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    otlp_export(p, Signal::Traces, caller.writes().clone(), headers, body).await
}

/// The request's encoding from its `Content-Type`.
fn encoding(headers: &HeaderMap) -> Result<Encoding, String> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = value.split(';').next().unwrap_or_default().trim();
    match media.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        "" => Err(
            "Content-Type is missing; OTLP/HTTP takes application/x-protobuf or application/json"
                .into(),
        ),
        other => Err(format!(
            "Content-Type {other:?} is not supported; OTLP/HTTP takes application/x-protobuf or application/json"
        )),
    }
}

/// The body, decompressed per `Content-Encoding`, within the size limit.
fn decompress(headers: &HeaderMap, body: Bytes, limit: u64) -> Result<Bytes, Refusal> {
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match coding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&body[..]).take(limit + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| Refusal::Invalid(format!("gzip body cannot be decompressed: {e}")))?;
            if out.len() as u64 > limit {
                return Err(Refusal::TooLarge {
                    size: out.len() as u64,
                    limit,
                });
            }
            Ok(Bytes::from(out))
        }
        other => Err(Refusal::Invalid(format!(
            "Content-Encoding {other:?} is not supported; use gzip or none"
        ))),
    }
}

async fn otlp_export(
    p: Arc<Pipeline>,
    signal: Signal,
    writes: Namespaces,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match encoding(&headers) {
        Ok(e) => e,
        Err(message) => {
            p.telemetry
                .reject(signal.as_str(), "unsupported_media_type");
            return status_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Encoding::Json,
                INVALID_ARGUMENT,
                &message,
                None,
            );
        }
    };
    let body = match decompress(&headers, body, p.limits().max_request_bytes) {
        Ok(b) => b,
        Err(refusal) => {
            p.telemetry.reject(signal.as_str(), refusal.reason());
            return refusal_response(&p, &refusal, encoding);
        }
    };
    let size = body.len() as u64;
    let now = p.now_ns();
    let outcome = p
        .ingest(signal.as_str(), size, move || {
            otlp::decode(signal, encoding, &body, now, &writes).map_err(Refusal::from)
        })
        .await;
    match outcome {
        Ok(accepted) => export_response(signal, encoding, &accepted),
        Err(refusal) => refusal_response(&p, &refusal, encoding),
    }
}

fn export_response(signal: Signal, encoding: Encoding, a: &Accepted) -> Response {
    let rejected = i64::try_from(a.rejected).unwrap_or(i64::MAX);
    let partial = a.rejected > 0;
    let message = a.message.clone();
    macro_rules! respond {
        ($response:expr) => {{
            let response = $response;
            match encoding {
                Encoding::Protobuf => (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    response.encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => {
                    // A full success is `{}`: an unset partialSuccess is left out, not null.
                    let mut json = serde_json::to_value(&response).unwrap_or_default();
                    if let Some(object) = json.as_object_mut() {
                        object.retain(|_, v| !v.is_null());
                    }
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                        .into_response()
                }
            }
        }};
    }
    match signal {
        Signal::Metrics => respond!(ExportMetricsServiceResponse {
            partial_success: partial.then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }),
        Signal::Logs => respond!(ExportLogsServiceResponse {
            partial_success: partial.then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }),
        Signal::Traces => respond!(ExportTraceServiceResponse {
            partial_success: partial.then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }),
    }
}

fn status_response(
    status: StatusCode,
    encoding: Encoding,
    code: i32,
    message: &str,
    retry_after: Option<u32>,
) -> Response {
    let body = RpcStatus {
        code,
        message: message.to_string(),
    };
    let mut response = match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response(),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn refusal_response(p: &Pipeline, refusal: &Refusal, encoding: Encoding) -> Response {
    let retry = Some(p.limits().retry_after_seconds);
    let message = refusal.message();
    match refusal {
        Refusal::Busy => status_response(
            StatusCode::TOO_MANY_REQUESTS,
            encoding,
            RESOURCE_EXHAUSTED,
            &message,
            retry,
        ),
        Refusal::TooLarge { .. } => status_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            encoding,
            INVALID_ARGUMENT,
            &message,
            None,
        ),
        Refusal::Invalid(_) => status_response(
            StatusCode::BAD_REQUEST,
            encoding,
            INVALID_ARGUMENT,
            &message,
            None,
        ),
        Refusal::Internal(_) => status_response(
            StatusCode::SERVICE_UNAVAILABLE,
            encoding,
            INTERNAL,
            &message,
            retry,
        ),
        Refusal::Unavailable => status_response(
            StatusCode::SERVICE_UNAVAILABLE,
            encoding,
            UNAVAILABLE,
            &message,
            retry,
        ),
    }
}

/// The audit webhook: what the API server's webhook backend posts (`EventList` JSON).
async fn audit(
    State(p): State<Arc<Pipeline>>,
    Extension(caller): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !media.to_ascii_lowercase().starts_with("application/json") {
        p.telemetry.reject("audit", "unsupported_media_type");
        return status_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Json,
            INVALID_ARGUMENT,
            &format!(
                "Content-Type {media:?} is not supported; the audit webhook takes application/json"
            ),
            None,
        );
    }
    let body = match decompress(&headers, body, p.limits().max_request_bytes) {
        Ok(b) => b,
        Err(refusal) => {
            p.telemetry.reject("audit", refusal.reason());
            return refusal_response(&p, &refusal, Encoding::Json);
        }
    };
    let size = body.len() as u64;
    let outcome = p
        .ingest("audit", size, move || {
            vigil_ingest::audit::decode_webhook(&body, caller.writes())
                .map_err(|e| Refusal::Invalid(e.to_string()))
        })
        .await;
    match outcome {
        Ok(a) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "accepted": a.accepted,
                "rejected": a.rejected,
                "message": a.message,
            })
            .to_string(),
        )
            .into_response(),
        Err(refusal) => refusal_response(&p, &refusal, Encoding::Json),
    }
}
