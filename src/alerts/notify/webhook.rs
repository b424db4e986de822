//! Generic webhook: the specification's JSON body (timestamp, severity, title, message,
//! category, details, recommendations, runbook), exactly, one POST per notification.
//!
//! Lifecycle travels in headers so the body keeps the specification's shape:
//! `X-Codex-Sentinel-Status: firing|resolved|mixed` and `Idempotency-Key` (stable per
//! notification, for receivers that drop duplicates after a crash-and-retry).

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::{classify_response, request_error, SendError};
use crate::alerts::{AlertStatus, Notification, Severity};
use crate::config::Secret;

pub struct Webhook {
    client: reqwest::Client,
    url: Secret,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Webhook {
    pub fn new(
        client: reqwest::Client,
        url: Secret,
        headers: &BTreeMap<String, Secret>,
    ) -> Result<Self, String> {
        let mut list = Vec::new();
        for (name, value) in headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("alerting.webhook.headers: invalid header name {name:?}"))?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                format!(
                    "alerting.webhook.headers: the value of {name:?} is not a valid header value"
                )
            })?;
            v.set_sensitive(true);
            list.push((n, v));
        }
        Ok(Webhook {
            client,
            url,
            headers: list,
        })
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let mut req = self
            .client
            .post(self.url.expose())
            .header("Idempotency-Key", idempotency_key(n))
            .header("X-Codex-Sentinel-Status", n.status_label())
            .json(&body(n));
        for (name, value) in &self.headers {
            req = req.header(name.clone(), value.clone());
        }
        let resp = req.send().await.map_err(request_error)?;
        classify_response(resp).await
    }
}

/// Stable per notification and agent state: the same after a restart re-sends it.
pub fn idempotency_key(n: &Notification) -> String {
    crate::alerts::identity::notification_key(n)
}

/// The specification's body. One event: its body as is. A group (aggregation): the same
/// shape summarising the group, each alert's own body under `details.alerts`.
pub fn body(n: &Notification) -> Value {
    if let [only] = n.events.as_slice() {
        return serde_json::to_value(&only.body).expect("body serializes");
    }
    let worst = n.worst_severity();
    let lead = n
        .events
        .iter()
        .find(|e| e.body.severity == worst && e.status == AlertStatus::Firing)
        .or_else(|| n.events.iter().find(|e| e.body.severity == worst))
        .expect("a group has events");
    let mut recommendations: Vec<String> = Vec::new();
    for e in &n.events {
        for r in &e.body.recommendations {
            if !recommendations.contains(r) {
                recommendations.push(r.clone());
            }
        }
    }
    let alerts: Vec<Value> = n
        .events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e.body).expect("body serializes");
            v["id"] = json!(e.key);
            v["status"] = json!(e.status.as_str());
            v
        })
        .collect();
    let mut details = Map::new();
    details.insert("aggregated".into(), json!(true));
    details.insert("count".into(), json!(n.events.len()));
    details.insert("alerts".into(), Value::Array(alerts));
    json!({
        "timestamp": n.created,
        "severity": worst,
        "title": group_title(n),
        "message": n.events.iter().map(|e| format!("[{}] {}: {}", label(e.body.severity, e.status), e.body.title, e.body.message)).collect::<Vec<_>>().join("\n"),
        "category": lead.body.category,
        "details": details,
        "recommendations": recommendations,
        "runbook": lead.body.runbook,
    })
}

/// `3 Codex alerts: 1 critical, 1 warning, 1 resolved`.
pub fn group_title(n: &Notification) -> String {
    let mut parts = Vec::new();
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        let c = n
            .events
            .iter()
            .filter(|e| e.status == AlertStatus::Firing && e.body.severity == sev)
            .count();
        if c > 0 {
            parts.push(format!("{c} {}", sev.as_str()));
        }
    }
    let resolved = n
        .events
        .iter()
        .filter(|e| e.status == AlertStatus::Resolved)
        .count();
    if resolved > 0 {
        parts.push(format!("{resolved} resolved"));
    }
    format!("{} Codex alerts: {}", n.events.len(), parts.join(", "))
}

/// `CRITICAL`, or `RESOLVED` for a resolved event.
pub fn label(sev: Severity, status: AlertStatus) -> String {
    match status {
        AlertStatus::Resolved => "RESOLVED".into(),
        AlertStatus::Firing => sev.as_str().to_uppercase(),
    }
}
