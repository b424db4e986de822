//! The alerting endpoints: `GET {path}/alerts` (active alerts, maintenance, notification
//! counters) and `POST`/`DELETE {path}/alerts/maintenance`, guarded by a bearer token
//! (`CODEX_ALERT_MAINTENANCE_TOKEN`; without one the endpoint refuses).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{token_matches, Command, Handle, MaintenanceStatus};
use crate::util::http::json;
use crate::util::now_ms;

/// Maintenance length when the request does not say.
pub const DEFAULT_MAINTENANCE_MS: u64 = 3_600_000;

fn reply(code: StatusCode, v: Value) -> Response {
    json(code, Bytes::from(serde_json::to_vec(&v).expect("json")))
}

pub async fn list(State(alerting): State<Option<Handle>>) -> Response {
    match &alerting {
        Some(h) => reply(StatusCode::OK, h.view.borrow().to_json()),
        None => reply(
            StatusCode::OK,
            json!({"enabled": false, "alerts": [], "maintenance": null,
                   "message": "alerting is disabled (ENABLE_CODEX_ALERTING=true turns it on)"}),
        ),
    }
}

/// Checks the bearer token; `Err` is the response to send.
#[allow(clippy::result_large_err)] // the error is the HTTP answer, built once per request
fn authorize<'a>(
    alerting: &'a Option<Handle>,
    headers: &HeaderMap,
) -> Result<&'a Handle, Response> {
    let Some(handle) = alerting else {
        return Err(reply(
            StatusCode::NOT_FOUND,
            json!({"error": "alerting is disabled"}),
        ));
    };
    let Some(expected) = &handle.maintenance_token else {
        return Err(reply(
            StatusCode::FORBIDDEN,
            json!({"error": "maintenance endpoint disabled: set CODEX_ALERT_MAINTENANCE_TOKEN"}),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty() || !token_matches(presented.trim(), expected) {
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong bearer token"}),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return Err(r);
    }
    Ok(handle)
}

fn maintenance_reply(m: Option<MaintenanceStatus>) -> Response {
    reply(
        StatusCode::OK,
        json!({"maintenance": m, "active": m.is_some()}),
    )
}

/// Body (optional, JSON): `{"duration": ms}` or `{"until": epoch ms | RFC 3339}`, and
/// `"reason"`. Default: one hour.
pub async fn start_maintenance(
    State(alerting): State<Option<Handle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let handle = match authorize(&alerting, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "body must be a JSON object: {\"duration\": ms} or {\"until\": time}, optional \"reason\""}),
                )
            }
        }
    };
    let now = now_ms();
    let until = match (&req["until"], &req["duration"]) {
        (Value::Null, Value::Null) => Some(now + DEFAULT_MAINTENANCE_MS),
        (Value::Null, d) => d.as_u64().filter(|d| *d > 0).map(|d| now + d),
        (Value::String(s), _) => crate::util::time::parse_time(s),
        (u, _) => u.as_u64(),
    };
    let Some(until) = until.filter(|u| *u > now) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "until must be in the future (epoch ms or RFC 3339); duration must be > 0 ms"}),
        );
    };
    let reason = req["reason"]
        .as_str()
        .unwrap_or("maintenance (started through the API)")
        .chars()
        .take(500)
        .collect();
    let (tx, rx) = oneshot::channel();
    send(
        handle,
        Command::StartMaintenance {
            until,
            reason,
            reply: tx,
        },
        rx,
    )
    .await
}

pub async fn end_maintenance(
    State(alerting): State<Option<Handle>>,
    headers: HeaderMap,
) -> Response {
    let handle = match authorize(&alerting, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    send(handle, Command::EndMaintenance { reply: tx }, rx).await
}

async fn send(
    handle: &Handle,
    cmd: Command,
    rx: oneshot::Receiver<Option<MaintenanceStatus>>,
) -> Response {
    let unavailable = || {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the alert engine is not running"}),
        )
    };
    if handle.commands.send(cmd).await.is_err() {
        return unavailable();
    }
    match tokio::time::timeout(std::time::Duration::from_secs(5), rx).await {
        Ok(Ok(m)) => maintenance_reply(m),
        _ => unavailable(),
    }
}
