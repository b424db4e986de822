//! Slack incoming webhooks. `text` is always set (mobile notifications show only it); one
//! attachment per alert, coloured by severity (green when resolved). `channel` and `username`
//! are sent for legacy webhooks; Slack-app webhooks ignore them (the app's settings win).
//! Slack allows about one message per second per webhook: the delivery task spaces sends by
//! [`MIN_SPACING`] and honours `Retry-After` on 429.

use std::time::Duration;

use serde_json::{json, Value};

use super::webhook::{group_title, label};
use super::{classify_response, request_error, SendError};
use crate::alerts::{AlertStatus, Notification, Severity};
use crate::config::Secret;

/// At most one message per second per webhook.
pub const MIN_SPACING: Duration = Duration::from_secs(1);
/// Slack renders at most this many attachments well; the rest are counted in the text.
const MAX_ATTACHMENTS: usize = 20;

pub struct Slack {
    client: reqwest::Client,
    url: Secret,
    channel: Option<String>,
    username: Option<String>,
}

impl Slack {
    pub fn new(
        client: reqwest::Client,
        url: Secret,
        channel: Option<String>,
        username: Option<String>,
    ) -> Self {
        Slack {
            client,
            url,
            channel,
            username,
        }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let payload = payload(n, self.channel.as_deref(), self.username.as_deref());
        let resp = self
            .client
            .post(self.url.expose())
            .json(&payload)
            .send()
            .await
            .map_err(request_error)?;
        classify_response(resp).await
    }
}

pub fn color(sev: Severity, status: AlertStatus) -> &'static str {
    match (status, sev) {
        (AlertStatus::Resolved, _) => "#2eb67d",
        (_, Severity::Critical) => "#e01e5a",
        (_, Severity::Warning) => "#ecb22e",
        (_, Severity::Info) => "#36c5f0",
    }
}

/// The Slack message for a notification.
pub fn payload(n: &Notification, channel: Option<&str>, username: Option<&str>) -> Value {
    let text = match n.events.as_slice() {
        [e] => format!(
            "[{}] {}: {}",
            label(e.body.severity, e.status),
            e.body.title,
            e.body.message
        ),
        events => {
            let mut t = format!(
                "[{}] {}",
                n.worst_severity().as_str().to_uppercase(),
                group_title(n)
            );
            if events.len() > MAX_ATTACHMENTS {
                t.push_str(&format!(" ({} not shown)", events.len() - MAX_ATTACHMENTS));
            }
            t
        }
    };
    let attachments: Vec<Value> = n
        .events
        .iter()
        .take(MAX_ATTACHMENTS)
        .map(|e| {
            let mut fields = vec![
                json!({"title": "Severity", "value": e.body.severity.as_str(), "short": true}),
                json!({"title": "Category", "value": e.body.category.as_str(), "short": true}),
            ];
            if !e.body.recommendations.is_empty() {
                fields.push(json!({
                    "title": "Recommendations",
                    "value": e.body.recommendations.iter().map(|r| format!("• {r}")).collect::<Vec<_>>().join("\n"),
                    "short": false
                }));
            }
            let mut a = json!({
                "color": color(e.body.severity, e.status),
                "fallback": format!("[{}] {}", label(e.body.severity, e.status), e.body.title),
                "title": e.body.title,
                "text": e.body.message,
                "fields": fields,
                "footer": format!("codex-sentinel · {} · {}", e.key, e.fingerprint()),
                "ts": e.body.timestamp / 1000,
            });
            if e.body.runbook.starts_with("http://") || e.body.runbook.starts_with("https://") {
                a["title_link"] = json!(e.body.runbook);
            } else {
                fields_push_runbook(&mut a, &e.body.runbook);
            }
            a
        })
        .collect();
    let mut p = json!({ "text": text, "attachments": attachments });
    if let Some(c) = channel {
        p["channel"] = json!(c);
    }
    if let Some(u) = username {
        p["username"] = json!(u);
    }
    p
}

fn fields_push_runbook(a: &mut Value, runbook: &str) {
    if let Some(fields) = a["fields"].as_array_mut() {
        fields.push(json!({"title": "Runbook", "value": runbook, "short": false}));
    }
}
