//! Standalone alerting: rules over the monitor's snapshots, an engine that keeps alerts from
//! flapping or storming, and notifiers that deliver each notification once.
//!
//! ```text
//!  Snapshot (watch) ──▶ engine task: rules → hysteresis → max active → cooldown → maintenance
//!                        │                         → aggregation → Notification
//!                        ├─▶ AlertsView ──▶ monitor's queue (Observation::Alerts, when what
//!                        │                  it shows changed) · watch ──▶ server, Alertmanager
//!                        └─▶ store (state + outbox, one file, atomic writes on the agent's
//!                                 one state-writer thread)
//!                                 └─▶ one delivery task per sink (webhook, slack, email,
//!                                     alertmanager): timeout, backoff, Retry-After
//! ```
//!
//! Evaluation and delivery run in their own tasks: a stalled sink delays only its own queue,
//! never probes, evaluation or the other sinks.

pub mod delivery;
pub mod engine;
pub mod fingerprint;
pub mod http;
pub mod identity;
pub mod notify;
pub mod rules;
pub mod state;
pub mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog;
use crate::config::Secret;
use crate::monitor::snapshot::{Sample, SampleValue};

/// How urgent an alert is; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What part of the system an alert is about (the specification's categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Availability,
    Reliability,
    Performance,
    Resources,
    Configuration,
    Maintenance,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Availability => "availability",
            Category::Reliability => "reliability",
            Category::Performance => "performance",
            Category::Resources => "resources",
            Category::Configuration => "configuration",
            Category::Maintenance => "maintenance",
        }
    }
}

/// The specification's webhook body, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBody {
    /// Epoch ms.
    pub timestamp: u64,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub category: Category,
    pub details: Map<String, Value>,
    pub recommendations: Vec<String>,
    pub runbook: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert's change of state, as carried by a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    /// The series: rule id, plus `:<subject>` for rules with several series.
    pub key: String,
    pub rule: String,
    pub status: AlertStatus,
    /// Epoch ms when the condition was first seen.
    pub starts_at: u64,
    /// Epoch ms when it resolved.
    pub ends_at: Option<u64>,
    pub body: AlertBody,
}

impl AlertEvent {
    /// The alert's identity, the same in every notification about it (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        fingerprint::fingerprint(&self.key)
    }
}

/// What the sinks deliver: one event, or several raised within one aggregation window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Time-ordered, increasing across restarts even when the state was lost; with
    /// `instance`, the key receivers use to drop duplicates ([`identity::notification_key`]:
    /// `Idempotency-Key` header, email `Message-ID`).
    pub id: u64,
    /// The agent instance that made it ([`identity::instance_id`]).
    #[serde(default)]
    pub instance: String,
    /// Epoch ms.
    pub created: u64,
    pub events: Vec<AlertEvent>,
}

impl Notification {
    pub fn worst_severity(&self) -> Severity {
        self.events
            .iter()
            .map(|e| e.body.severity)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// `firing`, `resolved`, or `mixed` for a group holding both.
    pub fn status_label(&self) -> &'static str {
        let firing = self.events.iter().any(|e| e.status == AlertStatus::Firing);
        let resolved = self
            .events
            .iter()
            .any(|e| e.status == AlertStatus::Resolved);
        match (firing, resolved) {
            (true, true) => "mixed",
            (false, true) => "resolved",
            _ => "firing",
        }
    }

    /// One line for logs (never contains secrets: titles come from rules).
    pub fn summary(&self) -> String {
        self.events
            .iter()
            .map(|e| format!("{} [{}]", e.body.title, e.status.as_str()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Webhook,
    Slack,
    Email,
    Alertmanager,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Email => "email",
            SinkKind::Alertmanager => "alertmanager",
        }
    }
}

/// Outcomes counted in `codex_sentinel_alert_notifications_total{sink,result}`.
pub mod result {
    /// Accepted by the sink.
    pub const DELIVERED: &str = "delivered";
    /// A failed attempt that will be retried (timeout, connection error, 5xx, 429).
    pub const RETRIED: &str = "retried";
    /// Given up after the last attempt.
    pub const UNDELIVERED: &str = "undelivered";
    /// Refused by the sink (4xx other than 429, permanent SMTP error): not retried.
    pub const REJECTED: &str = "rejected";
    pub const ALL: [&str; 4] = [DELIVERED, RETRIED, UNDELIVERED, REJECTED];
}

/// Notification counters per (sink, result), shared by the delivery tasks, and the
/// notifications dropped per sink because its queue was full.
#[derive(Debug, Default)]
pub struct NotificationCounters {
    counts: Mutex<BTreeMap<(SinkKind, &'static str), u64>>,
    dropped: Mutex<BTreeMap<SinkKind, u64>>,
}

impl NotificationCounters {
    /// Counters that start at zero for every configured sink, so rates work from the start.
    pub fn for_sinks(sinks: &[SinkKind]) -> Self {
        let mut counts = BTreeMap::new();
        for s in sinks {
            for r in result::ALL {
                counts.insert((*s, r), 0);
            }
        }
        NotificationCounters {
            counts: Mutex::new(counts),
            dropped: Mutex::new(sinks.iter().map(|s| (*s, 0)).collect()),
        }
    }

    /// A notification of `sink` dropped because the sink's queue was full.
    pub fn add_dropped(&self, sink: SinkKind) {
        *self
            .dropped
            .lock()
            .expect("counter lock")
            .entry(sink)
            .or_default() += 1;
    }

    pub fn dropped(&self, sink: SinkKind) -> u64 {
        self.dropped
            .lock()
            .expect("counter lock")
            .get(&sink)
            .copied()
            .unwrap_or(0)
    }

    pub fn add(&self, sink: SinkKind, result: &'static str) {
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry((sink, result))
            .or_default() += 1;
    }

    pub fn get(&self, sink: SinkKind, result: &'static str) -> u64 {
        self.counts
            .lock()
            .expect("counter lock")
            .get(&(sink, result))
            .copied()
            .unwrap_or(0)
    }

    fn all(&self) -> Vec<((SinkKind, &'static str), u64)> {
        self.counts
            .lock()
            .expect("counter lock")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// An alert that is firing now, as `/health/codex` `alerts[]` shows it: the specification's
/// body plus its identity and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    pub id: String,
    pub status: AlertStatus,
    /// Epoch ms when the condition was first seen.
    pub starts_at: u64,
    /// A firing notification went out (false while silenced by cooldown or maintenance, and
    /// when no sink is configured).
    pub notified: bool,
    /// Epoch ms after which an info event is no longer listed (info events only: they have no
    /// condition that resolves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(flatten)]
    pub body: AlertBody,
}

/// Maintenance as the endpoints show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// Epoch ms.
    pub until: u64,
    pub reason: String,
    /// `api` (the endpoint) or `config` (a planned window).
    pub source: String,
}

/// What the engine publishes after each evaluation.
#[derive(Debug, Clone, Default)]
pub struct AlertsView {
    pub enabled: bool,
    /// Epoch ms of the last evaluation (0: none yet).
    pub evaluated_at: u64,
    pub evaluations: u64,
    pub active: Vec<ActiveAlert>,
    /// Conditions holding but not yet for `holdEvaluations`.
    pub pending: usize,
    /// Conditions that would fire but are held back by `maxActiveAlerts`.
    pub held_back: usize,
    pub maintenance: Option<MaintenanceStatus>,
    pub sinks: Vec<SinkKind>,
    pub counters: Arc<NotificationCounters>,
    /// The outbox, read live: how many notifications each sink still has to deliver.
    pub queue: Option<Arc<store::Store>>,
    /// Refusals of the maintenance endpoint, read live.
    pub maintenance_guard: Option<Arc<http::MaintenanceGuard>>,
}

impl AlertsView {
    /// Whether the monitor shows `other` differently (active alerts, maintenance); counters
    /// and queue depths are read live and need no new view.
    pub fn shown_by_monitor_differs(&self, other: &AlertsView) -> bool {
        self.maintenance != other.maintenance || self.alerts_json() != other.alerts_json()
    }

    /// The entries of `/health/codex` `alerts`.
    pub fn alerts_json(&self) -> Vec<Value> {
        self.active
            .iter()
            .map(|a| serde_json::to_value(a).expect("alert serializes"))
            .collect()
    }

    /// (sink, pending, dropped) for every configured sink: the agent's own notification queue,
    /// not the application's.
    pub fn notification_queue(&self) -> Vec<(SinkKind, usize, u64)> {
        self.sinks
            .iter()
            .map(|s| {
                let pending = self.queue.as_ref().map_or(0, |q| q.pending(*s));
                (*s, pending, self.counters.dropped(*s))
            })
            .collect()
    }

    /// `GET {path}/alerts`.
    pub fn to_json(&self) -> Value {
        let mut notifications = Map::new();
        for ((sink, result), n) in self.counters.all() {
            let entry = notifications
                .entry(sink.as_str())
                .or_insert_with(|| Value::Object(Map::new()));
            entry[result] = Value::from(n);
        }
        serde_json::json!({
            "enabled": self.enabled,
            "timestamp": self.evaluated_at,
            "evaluations": self.evaluations,
            "alerts": self.alerts_json(),
            "pending": self.pending,
            "heldBack": self.held_back,
            "maintenance": self.maintenance,
            "sinks": self.sinks.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "notifications": notifications,
            "notificationQueue": self.notification_queue().into_iter().map(|(sink, pending, dropped)| {
                (sink.as_str().to_string(), serde_json::json!({
                    "pending": pending,
                    "dropped": dropped,
                    "capacity": store::MAX_PENDING_PER_SINK,
                }))
            }).collect::<Map<String, Value>>(),
            "maintenanceAuthFailures": self.maintenance_guard.as_ref().map(|g| g.refusals_json()),
        })
    }

    /// Series for the metric exporters.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        for severity in Severity::ALL {
            let n = self
                .active
                .iter()
                .filter(|a| a.body.severity == severity)
                .count();
            out.push(Sample {
                def: &catalog::ALERTS_ACTIVE,
                labels: vec![severity.as_str().into()],
                value: SampleValue::Gauge(n as f64),
            });
        }
        for ((sink, result), n) in self.counters.all() {
            out.push(Sample {
                def: &catalog::ALERT_NOTIFICATIONS,
                labels: vec![sink.as_str().into(), result.into()],
                value: SampleValue::Counter(n as f64),
            });
        }
        for (sink, pending, dropped) in self.notification_queue() {
            out.push(Sample {
                def: &catalog::NOTIFICATIONS_PENDING,
                labels: vec![sink.as_str().into()],
                value: SampleValue::Gauge(pending as f64),
            });
            out.push(Sample {
                def: &catalog::NOTIFICATIONS_DROPPED,
                labels: vec![sink.as_str().into()],
                value: SampleValue::Counter(dropped as f64),
            });
        }
        if let Some(guard) = &self.maintenance_guard {
            for (reason, n) in guard.refusals() {
                out.push(Sample {
                    def: &catalog::MAINTENANCE_AUTH_FAILURES,
                    labels: vec![reason.into()],
                    value: SampleValue::Counter(n as f64),
                });
            }
        }
        out
    }
}

impl crate::monitor::AlertsShown for AlertsView {
    fn alerts_json(&self) -> Vec<Value> {
        AlertsView::alerts_json(self)
    }

    fn samples(&self) -> Vec<Sample> {
        AlertsView::samples(self)
    }
}

/// Requests the HTTP server sends to the engine.
#[derive(Debug)]
pub enum Command {
    StartMaintenance {
        until: u64,
        reason: String,
        reply: oneshot::Sender<Option<MaintenanceStatus>>,
    },
    EndMaintenance {
        reply: oneshot::Sender<Option<MaintenanceStatus>>,
    },
}

/// What the rest of the agent holds of a running alert engine.
#[derive(Clone)]
pub struct Handle {
    pub view: watch::Receiver<Arc<AlertsView>>,
    pub commands: mpsc::Sender<Command>,
    /// Bearer token of the maintenance endpoint.
    pub maintenance_token: Option<Secret>,
    /// Counts, logs and throttles refused maintenance requests.
    pub maintenance_guard: Arc<http::MaintenanceGuard>,
}

/// Compares a presented token with the configured one in time that does not depend on where
/// they differ.
pub fn token_matches(presented: &str, expected: &Secret) -> bool {
    let (a, b) = (presented.as_bytes(), expected.expose().as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The host name, for Alertmanager's `instance` label and email `Message-ID`s (read once).
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(read_hostname).clone()
}

fn read_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub use engine::start;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notification_queue_shows_pending_and_dropped_per_sink() {
        let store = Arc::new(store::Store::in_memory());
        let sinks = [SinkKind::Webhook, SinkKind::Email];
        let counters = Arc::new(NotificationCounters::for_sinks(&sinks));
        let n = Notification {
            id: 0,
            instance: String::new(),
            created: 1,
            events: Vec::new(),
        };
        store.commit(
            &Default::default(),
            vec![n.clone(), n],
            &[SinkKind::Webhook],
        );
        counters.add_dropped(SinkKind::Webhook);
        let view = AlertsView {
            enabled: true,
            sinks: sinks.to_vec(),
            counters,
            queue: Some(store),
            ..Default::default()
        };
        let q = &view.to_json()["notificationQueue"];
        assert_eq!(q["webhook"]["pending"], 2);
        assert_eq!(q["webhook"]["dropped"], 1);
        assert_eq!(q["email"]["pending"], 0);
        let pending: Vec<f64> = view
            .samples()
            .iter()
            .filter(|s| s.def.name == catalog::NOTIFICATIONS_PENDING.name)
            .map(|s| match s.value {
                SampleValue::Gauge(v) => v,
                _ => f64::NAN,
            })
            .collect();
        assert_eq!(pending, [2.0, 0.0]);
    }

    #[test]
    fn tokens_compare_exactly() {
        let t = Secret::new("s3cret-token");
        assert!(token_matches("s3cret-token", &t));
        assert!(!token_matches("s3cret-tokem", &t));
        assert!(!token_matches("s3cret-token2", &t));
        assert!(!token_matches("", &t));
    }
}
