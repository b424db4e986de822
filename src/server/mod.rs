//! The HTTP endpoints. Read-only: every answer comes from the latest published snapshot, so a
//! request never waits for a probe, a sample or an exporter. How connections are accepted and
//! bounded is [`listener`]'s business; TLS and authentication, configured by the web config file
//! ([`webconfig`]), are [`tls`]'s and [`auth`]'s.

pub mod auth;
pub mod listener;
pub mod tls;
pub mod webconfig;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tokio::sync::watch;

use crate::export::prometheus;
use crate::monitor::snapshot::Snapshot;
pub use crate::monitor::LIVENESS_STALE_MS;
use crate::util::http::json;
use crate::util::now_ms;

#[derive(Clone)]
pub struct AppState {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Epoch ms of the monitor's last publication (0: none yet).
    pub heartbeat: Arc<AtomicU64>,
    /// The alert engine, when alerting is on.
    pub alerting: Option<crate::alerts::Handle>,
}

/// The alerting endpoints see only the alert engine's handle.
impl axum::extract::FromRef<AppState> for Option<crate::alerts::Handle> {
    fn from_ref(state: &AppState) -> Self {
        state.alerting.clone()
    }
}

impl AppState {
    fn latest(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }
}

/// Routes: `{base}`, `{base}/status`, `{base}/metrics`, `/metrics`, `/livez`, `/readyz`, and
/// alerting's `{base}/alerts` and `{base}/alerts/maintenance` (POST/DELETE, token-guarded).
/// Other paths answer 404, other methods 405 (with `Allow`).
pub fn router(base_path: &str, state: AppState) -> Router {
    let base = base_path.trim_end_matches('/');
    Router::new()
        .route(base, get(health))
        .route(&format!("{base}/status"), get(status))
        .route(&format!("{base}/metrics"), get(detailed_metrics))
        .route(&format!("{base}/alerts"), get(crate::alerts::http::list))
        .route(
            &format!("{base}/alerts/maintenance"),
            post(crate::alerts::http::start_maintenance)
                .delete(crate::alerts::http::end_maintenance)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::alerts::http::MAX_BODY_BYTES,
                )),
        )
        .route("/metrics", get(prometheus_metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

fn health_code(snapshot: &Snapshot) -> StatusCode {
    if snapshot.report.overall.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// 200 when healthy or warning, 503 when critical or unavailable.
async fn health(State(state): State<AppState>) -> Response {
    let snap = state.latest();
    json(health_code(&snap), snap.health_json())
}

/// Same status codes as the full report.
async fn status(State(state): State<AppState>) -> Response {
    let snap = state.latest();
    json(health_code(&snap), snap.status_json())
}

/// Always 200: metrics are data, not a verdict.
async fn detailed_metrics(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, state.latest().metrics_json())
}

/// Prometheus text 0.0.4, or OpenMetrics when the `Accept` header asks for it.
async fn prometheus_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snap = state.latest();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = if prometheus::wants_openmetrics(accept) {
        (
            prometheus::OPENMETRICS_CONTENT_TYPE,
            prometheus::exposition(&snap, true),
        )
    } else {
        (
            prometheus::TEXT_CONTENT_TYPE,
            prometheus::exposition(&snap, false),
        )
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The agent itself is alive: its monitor loop keeps publishing. Never depends on Codex.
async fn livez(State(state): State<AppState>) -> Response {
    let last = state.heartbeat.load(Ordering::Relaxed);
    let age = now_ms().saturating_sub(last);
    if last == 0 || age <= LIVENESS_STALE_MS {
        json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(format!(
                r#"{{"status":"stalled","lastPublishAgeMs":{age}}}"#
            )),
        )
    }
}

/// Ready once the monitor has published its first snapshot. Never depends on Codex.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.heartbeat.load(Ordering::Relaxed) != 0 {
        json(StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(br#"{"status":"starting"}"#),
        )
    }
}

async fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        Bytes::from_static(br#"{"error":"not found"}"#),
    )
}

/// The router behind authentication when the web config file asks for it ([`auth`]).
pub fn secured(app: Router, auth: Option<Arc<auth::Authenticator>>) -> Router {
    match auth {
        Some(auth) => app.layer(axum::middleware::from_fn_with_state(auth, auth::require)),
        None => app,
    }
}
