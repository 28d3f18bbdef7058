//! `POST /api/v1/sql`: SQL over HTTP with JSON in and out (rows or columns, with types), or
//! an Arrow IPC stream when the request accepts `application/vnd.apache.arrow.stream`.
//!
//! ```json
//! {"sql": "SELECT pod, max(value) FROM metrics WHERE ts BETWEEN $start AND $end GROUP BY pod",
//!  "start": "2026-11-25T10:00:00Z", "end": "2026-11-25T11:00:00Z", "limit": 1000}
//! ```
//!
//! `start` and `end` (RFC 3339 or integer nanoseconds) are bound to the `$start` and `$end`
//! parameters; `params` binds others, as a list (`$1`, `$2`..) or an object (`$name`).
//! `limit` caps the rows returned (`truncated` says when more were there).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Principal;
use super::queries::{Queries, QueryFailure};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    sql: String,
    #[serde(default)]
    params: Option<Params>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    end: Option<Value>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    format: Format,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Params {
    List(Vec<Value>),
    Named(serde_json::Map<String, Value>),
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Format {
    /// `"rows": [[v, v..], ..]`
    #[default]
    Rows,
    /// `"columns": [{"name", "type", "values": [..]}, ..]`
    Columns,
}

/// A request's error: an HTTP status and a JSON body with a code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    location: Option<(u64, u64)>,
}

impl ApiError {
    fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            location: None,
        }
    }
}

impl From<QueryFailure> for ApiError {
    fn from(f: QueryFailure) -> ApiError {
        let status = match &f {
            QueryFailure::Invalid { .. } => StatusCode::BAD_REQUEST,
            QueryFailure::NotAllowed(_) => StatusCode::FORBIDDEN,
            QueryFailure::Busy { .. } | QueryFailure::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueryFailure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            QueryFailure::ResourcesExhausted(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueryFailure::MemoryCeiling => StatusCode::SERVICE_UNAVAILABLE,
            QueryFailure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let location = match &f {
            QueryFailure::Invalid { location, .. } => *location,
            _ => None,
        };
        ApiError {
            status,
            code: f.code(),
            message: f.to_string(),
            location,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some((line, column)) = self.location {
            error["line"] = json!(line);
            error["column"] = json!(column);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// The handler.
pub async fn sql(
    State(queries): State<Arc<Queries>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    // JSON only: a browser can send other types across origins without asking first.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    if !json {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "invalid_request",
            message: "send the request as Content-Type: application/json".into(),
            location: None,
        });
    }
    // A struct also reads from a JSON array, by position: only an object names its fields.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "request body: a JSON object such as {\"sql\": \"SELECT 1\"} was expected",
        ));
    }
    let request: SqlRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("request body: {e}")))?;
    let config = queries.config();
    let limit = request.limit.unwrap_or(config.http_default_limit);
    if limit > config.http_max_rows {
        return Err(ApiError::bad_request(
            "limit_too_large",
            format!(
                "limit {limit} is over the server's maximum of {} rows (query.http_max_rows)",
                config.http_max_rows
            ),
        ));
    }
    let session = principal.session().ok_or_else(|| ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message: format!("token {:?} may not query", principal.name),
        location: None,
    })?;
    let deadline = queries.deadline();
    let planned = queries.plan(session, &request.sql, deadline).await?;
    let wanted = planned.parameters().map_err(QueryFailure::from_engine)?;
    let params = if wanted.is_empty() {
        None
    } else {
        Some(bind(&request)?)
    };
    let stream = queries
        .run(session, planned, params, deadline, &request.sql)
        .await?;
    let arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if arrow {
        return arrow_response(stream, limit);
    }
    let schema = stream.schema();
    let memory_limit = usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX);
    let (batches, truncated) = take(stream, limit, memory_limit).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = json_columns(&schema, &batches)
        .map_err(|e| ApiError::from(QueryFailure::Internal(e.to_string())))?;
    let mut body = json!({
        "row_count": rows,
        "truncated": truncated,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
    });
    let described: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    match request.format {
        Format::Columns => {
            let with_values: Vec<Value> = described
                .into_iter()
                .zip(columns)
                .map(|(mut d, values)| {
                    d["values"] = Value::Array(values);
                    d
                })
                .collect();
            body["columns"] = Value::Array(with_values);
        }
        Format::Rows => {
            let mut rows_out = vec![Vec::with_capacity(columns.len()); rows];
            for column in columns {
                for (row, value) in rows_out.iter_mut().zip(column) {
                    row.push(value);
                }
            }
            body["columns"] = Value::Array(described);
            body["rows"] = Value::Array(rows_out.into_iter().map(Value::Array).collect());
        }
    }
    Ok(Json(body).into_response())
}

/// The parameter values of a request: a list, or named values with `start` and `end`.
fn bind(request: &SqlRequest) -> Result<ParamValues, ApiError> {
    let mut named: HashMap<String, ScalarValue> = HashMap::new();
    for (name, value) in [("start", &request.start), ("end", &request.end)] {
        if let Some(value) = value {
            named.insert(name.to_string(), time_value(name, value)?);
        }
    }
    match &request.params {
        Some(Params::List(values)) => {
            if !named.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "with start/end, give params as an object ($name), not a list",
                ));
            }
            let values = values
                .iter()
                .enumerate()
                .map(|(i, v)| scalar(&format!("params[{i}]"), v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ParamValues::List(
                values.into_iter().map(Into::into).collect(),
            ))
        }
        Some(Params::Named(map)) => {
            for (name, value) in map {
                named.insert(name.clone(), scalar(&format!("params.{name}"), value)?);
            }
            Ok(ParamValues::Map(
                named.into_iter().map(|(k, v)| (k, v.into())).collect(),
            ))
        }
        None => Ok(ParamValues::Map(
            named.into_iter().map(|(k, v)| (k, v.into())).collect(),
        )),
    }
}

fn scalar(what: &str, value: &Value) -> Result<ScalarValue, ApiError> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("{what}: parameters are null, booleans, numbers or strings"),
            ));
        }
    })
}

/// `start`/`end`: RFC 3339 text or integer nanoseconds since the epoch, as a UTC timestamp.
fn time_value(name: &str, value: &Value) -> Result<ScalarValue, ApiError> {
    let bad = |why: String| ApiError::bad_request("invalid_request", format!("{name}: {why}"));
    let ns = match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| bad(format!("{n} is not integer nanoseconds since the epoch")))?,
        Value::String(s) => vigil::time::parse_rfc3339(s).map_err(|e| bad(e.to_string()))?,
        _ => {
            return Err(bad(format!(
                "expected an RFC 3339 time or integer nanoseconds, got {value}"
            )));
        }
    };
    Ok(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

/// Up to `limit` rows, and whether more were there. Stops reading (cancelling the query)
/// once past the limit. A JSON answer is built in memory: the batches it collects may hold at
/// most `memory_limit` bytes together (each batch alone is already within the query's pool).
async fn take(
    mut stream: SendableRecordBatchStream,
    limit: usize,
    memory_limit: usize,
) -> Result<(Vec<RecordBatch>, bool), ApiError> {
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut held = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(QueryFailure::from_datafusion)?;
        held = held.saturating_add(batch.get_array_memory_size());
        if held > memory_limit {
            return Err(ApiError::from(QueryFailure::ResourcesExhausted(format!(
                "the JSON answer would hold more than {memory_limit} bytes after {rows} rows; \
                 ask for fewer rows or columns, or for Arrow IPC, which streams"
            ))));
        }
        if rows + batch.num_rows() > limit {
            batches.push(batch.slice(0, limit - rows));
            return Ok((batches, true));
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok((batches, false))
}

/// Each column's values as JSON, through arrow's JSON writer (so every type is rendered as
/// arrow renders it: numbers, strings, lists, maps as objects, timestamps as RFC 3339), but
/// NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn json_columns(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<Vec<Value>>, datafusion::arrow::error::ArrowError> {
    let n = schema.fields().len();
    let mut columns: Vec<Vec<Value>> = vec![Vec::new(); n];
    // Positional names, so duplicate or odd column names cannot collide.
    let renamed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = RecordBatch::try_new(Arc::clone(&renamed), batch.columns().to_vec())?;
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
        writer.write(&batch)?;
        writer.finish()?;
        let rows: Vec<serde_json::Map<String, Value>> =
            serde_json::from_slice(&writer.into_inner())
                .map_err(|e| datafusion::arrow::error::ArrowError::JsonError(e.to_string()))?;
        for (r, mut row) in rows.into_iter().enumerate() {
            for (i, column) in columns.iter_mut().enumerate() {
                let value = crate::output::non_finite(batch.column(i).as_ref(), r)
                    .or_else(|| row.remove(&format!("c{i}")))
                    .unwrap_or(Value::Null);
                column.push(value);
            }
        }
    }
    Ok(columns)
}

/// An Arrow IPC stream being written: the writer's buffer is sent after each message.
struct IpcBody {
    stream: SendableRecordBatchStream,
    writer: Option<StreamWriter<Vec<u8>>>,
    rows: usize,
    limit: usize,
}

impl IpcBody {
    /// The next bytes to send, or `None` once the end-of-stream marker went out.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Vec<u8>>> {
        let writer = self.writer.as_mut()?;
        let pending = std::mem::take(writer.get_mut());
        if !pending.is_empty() {
            return Some(Ok(pending));
        }
        let next = if self.rows < self.limit {
            self.stream.next().await
        } else {
            None
        };
        let result = match next {
            Some(Ok(batch)) => {
                let batch = batch.slice(0, batch.num_rows().min(self.limit - self.rows));
                self.rows += batch.num_rows();
                writer.write(&batch)
            }
            Some(Err(e)) => {
                self.writer = None;
                let failure = QueryFailure::from_datafusion(e);
                return Some(Err(std::io::Error::other(failure.to_string())));
            }
            None => {
                let end = writer.finish().map(|()| std::mem::take(writer.get_mut()));
                self.writer = None;
                return Some(end.map_err(std::io::Error::other));
            }
        };
        match result {
            Ok(()) => Some(Ok(std::mem::take(writer.get_mut()))),
            Err(e) => {
                self.writer = None;
                Some(Err(std::io::Error::other(e)))
            }
        }
    }
}

/// Streams the result as Arrow IPC, batch by batch, up to `limit` rows.
fn arrow_response(stream: SendableRecordBatchStream, limit: usize) -> Result<Response, ApiError> {
    let writer = StreamWriter::try_new(Vec::new(), &stream.schema())
        .map_err(|e| ApiError::from(QueryFailure::Internal(e.to_string())))?;
    let body = IpcBody {
        stream,
        writer: Some(writer),
        rows: 0,
        limit,
    };
    let chunks = futures::stream::unfold(body, |mut body| async move {
        body.next_chunk().await.map(|chunk| (chunk, body))
    });
    Ok((
        [(header::CONTENT_TYPE, ARROW_STREAM)],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// True for a `Content-Type` of JSON: the media type `application/json`, in any case, with
/// or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn media_types_are_compared_without_regard_to_case_or_parameters() {
        for accepted in [
            "application/json",
            "APPLICATION/JSON",
            "Application/Json; charset=utf-8",
            " application/json ;charset=UTF-8",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "text/plain",
            "application/jsonx",
            "application/json-seq",
            "",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }
}
