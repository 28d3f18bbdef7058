//! `/api/v1/holds`: legal holds on a running server (admin scope). `GET` lists them, `POST`
//! places one (`{"pod", "namespace"?, "from", "to", "reason"?}` with RFC 3339 instants) and
//! answers it with its id, `DELETE /api/v1/holds/{id}` releases one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil::{Db, Hold, HoldRequest};

/// The body of `POST /api/v1/holds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceHold {
    pub pod: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub reason: String,
}

fn error(status: StatusCode, message: String) -> Response {
    let code = if status == StatusCode::NOT_FOUND {
        "not_found"
    } else if status.is_client_error() {
        "invalid_request"
    } else {
        "internal"
    };
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn describe(hold: &Hold) -> Value {
    json!({
        "id": hold.id,
        "namespace": hold.namespace,
        "pod": hold.pod,
        "from": rfc3339(hold.from_ns),
        "to": rfc3339(hold.to_ns),
        "reason": hold.reason,
        "placed_at": rfc3339(hold.placed_ns),
    })
}

/// Runs a store call off the async workers (each is a synced RocksDB write or read).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> vigil::Result<T> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if e.is_user_error() => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

pub async fn list(State(db): State<Arc<Db>>) -> Response {
    let d = Arc::clone(&db);
    match blocking(move || d.holds()).await {
        Ok(holds) => {
            Json(json!({"holds": holds.iter().map(describe).collect::<Vec<_>>()})).into_response()
        }
        Err(response) => response,
    }
}

pub async fn place(
    State(db): State<Arc<Db>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // JSON only: a browser can send other types across origins without asking first.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the hold as Content-Type: application/json".into(),
        );
    }
    let request: PlaceHold = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let instant = |field: &str, text: &str| -> Result<i64, String> {
        vigil::time::parse_rfc3339(text).map_err(|e| format!("{field}: {e}"))
    };
    let (from_ns, to_ns) = match (instant("from", &request.from), instant("to", &request.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let hold = HoldRequest {
        namespace: request.namespace,
        pod: request.pod,
        from_ns,
        to_ns,
        reason: request.reason,
    };
    match blocking(move || db.place_hold(hold)).await {
        Ok(hold) => (StatusCode::CREATED, Json(describe(&hold))).into_response(),
        Err(response) => response,
    }
}

pub async fn release(State(db): State<Arc<Db>>, Path(id): Path<u64>) -> Response {
    match blocking(move || db.release_hold(id)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no hold has id {id}")),
        Err(response) => response,
    }
}
