//! The alerting endpoints: `GET {path}/alerts` (active alerts, maintenance, notification
//! counters) and `POST`/`DELETE {path}/alerts/maintenance`, guarded by a bearer token
//! (`CODEX_ALERT_MAINTENANCE_TOKEN`; without one the endpoint refuses).
//!
//! The maintenance endpoint silences every alert, so guessing its token must be slow and
//! visible: every refusal is counted (`codex_sentinel_maintenance_auth_failures_total`) and
//! logged at most every 10 s; a client with [`MAX_FAILURES_PER_CLIENT`] wrong tokens within
//! [`THROTTLE_WINDOW`] gets `429` for the rest of that window, whatever it sends. A reason is
//! at most [`MAX_REASON_CHARS`] characters and a window at most [`MAX_MAINTENANCE_MS`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{token_matches, Command, Handle, MaintenanceStatus};
use crate::util::http::json;
use crate::util::now_ms;

/// Maintenance length when the request does not say.
pub const DEFAULT_MAINTENANCE_MS: u64 = 3_600_000;
/// The longest maintenance the endpoint accepts (7 days): a forgotten window must end.
pub const MAX_MAINTENANCE_MS: u64 = 7 * 24 * 3_600_000;
/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The largest request body of the maintenance endpoint.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Wrong tokens a client may send within [`THROTTLE_WINDOW`] before it is throttled.
pub const MAX_FAILURES_PER_CLIENT: u32 = 5;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at once; beyond that, new clients share one allowance.
const MAX_TRACKED_CLIENTS: usize = 1024;

/// Counts, logs (rate-limited) and throttles refused maintenance requests, per client address.
#[derive(Debug)]
pub struct MaintenanceGuard {
    wrong_token: AtomicU64,
    throttled: AtomicU64,
    /// Per client (`None`: the shared allowance once the table is full): window start, failures.
    clients: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
    log: Mutex<crate::logging::RateLimit>,
}

impl Default for MaintenanceGuard {
    fn default() -> Self {
        MaintenanceGuard {
            wrong_token: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
            log: Mutex::new(crate::logging::RateLimit::new(Duration::from_secs(10))),
        }
    }
}

impl MaintenanceGuard {
    /// `Some(retry after)` while `client` is throttled.
    fn throttled_for(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = if clients.contains_key(&client) {
            client
        } else if clients.len() >= MAX_TRACKED_CLIENTS {
            None
        } else {
            return None;
        };
        let (since, failures) = *clients.get(&key)?;
        let left = THROTTLE_WINDOW.checked_sub(now.saturating_duration_since(since))?;
        (failures >= MAX_FAILURES_PER_CLIENT).then_some(left)
    }

    /// Notes a wrong or missing token from `client`.
    fn failed(&self, client: Option<IpAddr>, now: Instant) {
        self.wrong_token.fetch_add(1, Ordering::Relaxed);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if !clients.contains_key(&client) && clients.len() >= MAX_TRACKED_CLIENTS {
            clients.retain(|_, (since, _)| now.saturating_duration_since(*since) < THROTTLE_WINDOW);
        }
        let key = if clients.contains_key(&client) || clients.len() < MAX_TRACKED_CLIENTS {
            client
        } else {
            None
        };
        let entry = clients.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= THROTTLE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let failures = entry.1;
        drop(clients);
        self.log_refusal(client, "wrong or missing token", failures);
    }

    fn log_refusal(&self, client: Option<IpAddr>, why: &str, failures: u32) {
        let allowed = self.log.lock().unwrap_or_else(|e| e.into_inner()).allow();
        if let Some(suppressed) = allowed {
            let client = client.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
            tracing::warn!(%client, reason = why, failures_in_window = failures, suppressed, "maintenance endpoint: request refused");
        }
    }

    /// Refusals by reason, for the metric.
    pub fn refusals(&self) -> [(&'static str, u64); 2] {
        [
            ("wrong_token", self.wrong_token.load(Ordering::Relaxed)),
            ("throttled", self.throttled.load(Ordering::Relaxed)),
        ]
    }

    pub fn refusals_json(&self) -> Value {
        let [(a, x), (b, y)] = self.refusals();
        json!({ a: x, b: y })
    }
}

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

/// The client's address, when the server recorded it for the connection.
pub type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn client_ip(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// Checks the bearer token; `Err` is the response to send.
#[allow(clippy::result_large_err)] // the error is the HTTP answer, built once per request
fn authorize<'a>(
    alerting: &'a Option<Handle>,
    headers: &HeaderMap,
    peer: &Peer,
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
    let guard = &handle.maintenance_guard;
    let client = client_ip(peer);
    let now = Instant::now();
    if let Some(left) = guard.throttled_for(client, now) {
        guard.throttled.fetch_add(1, Ordering::Relaxed);
        guard.log_refusal(
            client,
            "throttled after repeated wrong tokens",
            MAX_FAILURES_PER_CLIENT,
        );
        let mut r = reply(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "too many wrong tokens from this client; try again later"}),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(left.as_secs().max(1)),
        );
        return Err(r);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty() || !token_matches(presented.trim(), expected) {
        guard.failed(client, now);
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
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let handle = match authorize(&alerting, &headers, &peer) {
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
    if until - now > MAX_MAINTENANCE_MS {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("a maintenance window may last at most {MAX_MAINTENANCE_MS} ms (7 days)")}),
        );
    }
    let reason = req["reason"]
        .as_str()
        .unwrap_or("maintenance (started through the API)");
    if reason.chars().count() > MAX_REASON_CHARS {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("reason may be at most {MAX_REASON_CHARS} characters")}),
        );
    }
    let reason = reason.to_string();
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
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let handle = match authorize(&alerting, &headers, &peer) {
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
