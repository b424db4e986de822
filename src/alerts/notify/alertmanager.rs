//! Prometheus Alertmanager, API v2 (`POST {url}/api/v2/alerts`). Firing alerts carry
//! `endsAt = now + 4 × resendInterval` and are re-sent every `resendInterval` while they fire
//! (so Alertmanager resolves them by itself if this agent dies); resolved alerts are sent with
//! their real `endsAt`. Alertmanager groups, deduplicates (by labels) and routes them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{classify_response, request_error, SendError};
use crate::alerts::{AlertBody, AlertStatus, AlertsView, Notification, Severity};
use crate::config::Secret;
use crate::util::now_ms;
use crate::util::time::format_rfc3339;

#[derive(Clone)]
pub struct Alertmanager {
    client: reqwest::Client,
    url: Secret,
    generator_url: String,
    resend_interval: Duration,
}

impl Alertmanager {
    pub fn new(
        client: reqwest::Client,
        url: Secret,
        generator_url: String,
        resend_interval: Duration,
    ) -> Self {
        Alertmanager {
            client,
            url,
            generator_url,
            resend_interval,
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/api/v2/alerts", self.url.expose().trim_end_matches('/'))
    }

    /// How long a firing alert stays firing in Alertmanager without a re-send.
    fn validity(&self) -> u64 {
        4 * self.resend_interval.as_millis() as u64
    }

    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.post(&self.alerts(n, now_ms())).await
    }

    /// The alerts a notification posts. `severity` is a label, so Alertmanager sees a warning
    /// and its escalation to critical as two alerts: a critical firing alert also ends the
    /// warning one of the same series at once (a no-op if it never fired), so the warning does
    /// not linger as a duplicate until its `endsAt`.
    pub fn alerts(&self, n: &Notification, now: u64) -> Vec<Value> {
        let mut out = Vec::new();
        for e in &n.events {
            let ends = match e.status {
                AlertStatus::Resolved => e.ends_at.unwrap_or(now),
                AlertStatus::Firing => now + self.validity(),
            };
            out.push(self.alert(&e.key, &e.rule, &e.body, e.starts_at, ends));
            if e.status == AlertStatus::Firing && e.body.severity == Severity::Critical {
                let mut warning = e.body.clone();
                warning.severity = Severity::Warning;
                out.push(self.alert(&e.key, &e.rule, &warning, e.starts_at, now));
            }
        }
        out
    }

    /// One Alertmanager alert. Labels identify it (same labels = same alert there).
    pub fn alert(
        &self,
        key: &str,
        rule: &str,
        body: &AlertBody,
        starts_at: u64,
        ends_at: u64,
    ) -> Value {
        json!({
            "labels": {
                "alertname": alert_name(rule),
                "severity": body.severity.as_str(),
                "category": body.category.as_str(),
                "series": key,
                "fingerprint": crate::alerts::fingerprint::fingerprint(key),
                "service": "codex",
                "instance": crate::alerts::hostname(),
                "job": "codex-sentinel",
            },
            "annotations": {
                "summary": body.title,
                "description": body.message,
                "runbook_url": body.runbook,
                "recommendations": body.recommendations.join("\n"),
                "details": Value::Object(body.details.clone()).to_string(),
            },
            "startsAt": format_rfc3339(starts_at),
            "endsAt": format_rfc3339(ends_at),
            "generatorURL": self.generator_url,
        })
    }

    async fn post(&self, alerts: &[Value]) -> Result<(), SendError> {
        let resp = self
            .client
            .post(self.endpoint())
            .json(&alerts)
            .send()
            .await
            .map_err(request_error)?;
        classify_response(resp).await
    }
}

/// `codex-unavailable` → `CodexUnavailable`.
pub fn alert_name(rule: &str) -> String {
    rule.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Re-sends every notified firing alert each `interval`, so Alertmanager keeps them firing.
/// Failures are logged; the next round tries again (these are refreshes, not notifications:
/// they are not counted in `codex_sentinel_alert_notifications_total`).
pub async fn refresh_loop(
    am: Alertmanager,
    view: watch::Receiver<Arc<AlertsView>>,
    interval: Duration,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first notification is sent by the delivery task
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let current = view.borrow().clone();
        let now = now_ms();
        let alerts: Vec<Value> = current
            .active
            .iter()
            .filter(|a| a.notified)
            .map(|a| {
                let rule = a.id.split(':').next().unwrap_or(&a.id);
                am.alert(&a.id, rule, &a.body, a.starts_at, now + am.validity())
            })
            .collect();
        if alerts.is_empty() {
            continue;
        }
        let sent = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(timeout, am.post(&alerts)) => r,
        };
        match sent {
            Ok(Ok(())) => tracing::debug!(
                alerts = alerts.len(),
                "firing alerts re-sent to Alertmanager"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "re-sending firing alerts to Alertmanager failed; next try in one interval")
            }
            Err(_) => tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "re-sending firing alerts to Alertmanager timed out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertEvent, Category};

    #[test]
    fn a_critical_alert_ends_the_warning_of_its_series() {
        let am = Alertmanager::new(
            crate::util::http::client_builder(Duration::from_secs(5))
                .build()
                .unwrap(),
            Secret::new("http://am.example:9093"),
            "http://agent/alerts".into(),
            Duration::from_secs(60),
        );
        let event = |severity| AlertEvent {
            key: "memory-usage".into(),
            rule: "memory-usage".into(),
            status: AlertStatus::Firing,
            starts_at: 1_000,
            ends_at: None,
            body: AlertBody {
                timestamp: 1_000,
                severity,
                title: "High Codex memory usage".into(),
                message: "m".into(),
                category: Category::Resources,
                details: Default::default(),
                recommendations: vec![],
                runbook: "r".into(),
            },
        };
        let n = |severity| Notification {
            id: 1,
            instance: String::new(),
            created: 1_000,
            events: vec![event(severity)],
        };
        let now = 1_795_000_000_000;
        let warning = am.alerts(&n(Severity::Warning), now);
        assert_eq!(warning.len(), 1);
        let critical = am.alerts(&n(Severity::Critical), now);
        assert_eq!(critical.len(), 2);
        assert_eq!(critical[0]["labels"]["severity"], "critical");
        assert_eq!(critical[1]["labels"]["severity"], "warning");
        assert_eq!(critical[1]["endsAt"], format_rfc3339(now));
        assert_eq!(
            critical[0]["labels"]["fingerprint"],
            critical[1]["labels"]["fingerprint"]
        );
    }
}
