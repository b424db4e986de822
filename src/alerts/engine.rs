//! The alert engine: turns rule findings into alerts and notifications.
//!
//! Per series (rule id plus subject) the lifecycle is
//! `pending` (condition seen) → `firing` after `holdEvaluations` consecutive hits →
//! resolved after `clearEvaluations` consecutive misses. A pending series that misses once is
//! forgotten, so a condition toggling every evaluation never fires.
//!
//! On top of that, in this order:
//! - `maxActiveAlerts`: a series that would fire while that many are firing stays pending
//!   (counted as held back; the most severe get the free slots first);
//! - cooldown: a firing series whose previous firing notification is younger than `cooldown`
//!   is active but not notified until the cooldown ends (still firing then: notified);
//! - maintenance: no firing notifications while a window is active; alerts still fire and
//!   resolve, resolved notifications of alerts notified before still go out, and alerts that
//!   are still firing when the window ends are notified then;
//! - escalation (warning → critical of the same series) is notified at once, cooldown or not;
//! - aggregation: events raised within `aggregationWindow` of the first go out as one
//!   notification at the end of the window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::fingerprint::fingerprint;
use super::notify::{self, Notifier};
use super::rules::{self, Finding, Rule, RuleContext};
pub use super::state::{EngineState, Series, INFO_EVENT_TTL_MS};
use super::store::Store;
use super::{
    delivery, ActiveAlert, AlertBody, AlertEvent, AlertStatus, AlertsView, Category, Command,
    Handle, MaintenanceStatus, Notification, NotificationCounters, Severity, SinkKind,
};
use crate::config::{AlertingConfig, Config};
use crate::monitor::snapshot::Snapshot;
use crate::monitor::{Observation, ObservationSender};
use crate::statefile::Persister;
use crate::util::now_ms;
use crate::util::time::{format_rfc3339, parse_time};

/// The engine's settings, from `alerting`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub hold: u32,
    pub clear: u32,
    pub cooldown: u64,
    pub max_active: usize,
    /// `Some(window ms)` when aggregation is on.
    pub aggregation_window: Option<u64>,
    pub runbook_base: String,
    /// Planned maintenance windows: (start, end, reason), epoch ms.
    pub windows: Vec<(u64, u64, String)>,
    /// The `maintenance` info event is raised at a window's start and end (rule not disabled).
    pub maintenance_events: bool,
}

impl EngineSettings {
    pub fn from_config(a: &AlertingConfig) -> Self {
        EngineSettings {
            hold: a.hold_evaluations.max(1),
            clear: a.clear_evaluations.max(1),
            cooldown: a.cooldown,
            max_active: a.max_active_alerts.max(1),
            aggregation_window: a.aggregation.then_some(a.aggregation_window),
            runbook_base: a.runbook_base_url.clone(),
            windows: a
                .maintenance
                .windows
                .iter()
                .filter_map(|w| {
                    Some((
                        parse_time(&w.start)?,
                        parse_time(&w.end)?,
                        w.reason
                            .clone()
                            .unwrap_or_else(|| "planned maintenance".into()),
                    ))
                })
                .collect(),
            maintenance_events: !a.rules.disabled.iter().any(|r| r == rules::MAINTENANCE),
        }
    }
}

/// Rules plus state; all decisions, no I/O (the task around it persists and publishes).
pub struct Engine {
    settings: EngineSettings,
    rules: Vec<Box<dyn Rule>>,
    state: EngineState,
    evaluations: u64,
    evaluated_at: u64,
    held_back: usize,
    findings: Vec<Finding>,
}

impl Engine {
    pub fn new(settings: EngineSettings, rules: Vec<Box<dyn Rule>>, state: EngineState) -> Self {
        Engine {
            settings,
            rules,
            state,
            evaluations: 0,
            evaluated_at: 0,
            held_back: 0,
            findings: Vec::new(),
        }
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// One evaluation at `now` (epoch ms). Returns the notifications to send (ids unassigned).
    pub fn evaluate(&mut self, snapshot: &Snapshot, now: u64) -> Vec<Notification> {
        let mut out = Vec::new();
        self.evaluations += 1;
        self.evaluated_at = now;
        let eval = self.evaluations;
        self.state
            .recent_info
            .retain(|e| now < e.starts_at.saturating_add(INFO_EVENT_TTL_MS));
        self.update_maintenance(now, &mut out);
        let silenced = self.state.maintenance.is_some();

        let mut findings = std::mem::take(&mut self.findings);
        findings.clear();
        let ctx = RuleContext { snapshot, now };
        for rule in &self.rules {
            rule.evaluate(&ctx, &mut findings);
        }
        for f in findings.drain(..) {
            match self.state.series.get_mut(&f.key) {
                Some(s) if s.seen_in == eval => {
                    if f.severity > s.finding.severity {
                        s.finding = f;
                    }
                }
                Some(s) => {
                    // Capped: beyond `hold` the count says nothing new and would dirty the state.
                    s.hits = (s.hits + 1).min(self.settings.hold);
                    s.misses = 0;
                    s.seen_in = eval;
                    s.finding = f;
                }
                None => {
                    let key = f.key.clone();
                    self.state.series.insert(
                        key,
                        Series {
                            hits: 1,
                            misses: 0,
                            firing: false,
                            since: now,
                            fired_at: 0,
                            notified: false,
                            notified_severity: None,
                            finding: f,
                            seen_in: eval,
                        },
                    );
                }
            }
        }
        self.findings = findings;

        // Misses: pending series are forgotten at once, firing ones resolve after `clear`.
        let clear = self.settings.clear;
        let mut resolved = Vec::new();
        self.state.series.retain(|key, s| {
            if s.seen_in == eval || key == rules::MAINTENANCE {
                return true;
            }
            s.hits = 0;
            s.misses = (s.misses + 1).min(clear);
            if !s.firing {
                return false;
            }
            if s.misses >= clear {
                resolved.push(s.clone());
                return false;
            }
            true
        });
        for s in resolved {
            if s.notified {
                let event = self.resolved_event(&s, now);
                self.emit(event, now, &mut out);
            }
        }

        // Promotions, most severe first, within maxActiveAlerts.
        let mut active = self
            .state
            .series
            .iter()
            .filter(|(k, s)| s.firing && k.as_str() != rules::MAINTENANCE)
            .count();
        let mut candidates: Vec<(Severity, u64, String)> = self
            .state
            .series
            .iter()
            .filter(|(_, s)| !s.firing && s.hits >= self.settings.hold)
            .map(|(k, s)| (s.finding.severity, s.since, k.clone()))
            .collect();
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.held_back = 0;
        for (_, _, key) in candidates {
            if active >= self.settings.max_active {
                self.held_back += 1;
                continue;
            }
            if let Some(s) = self.state.series.get_mut(&key) {
                s.firing = true;
                s.fired_at = now;
                active += 1;
            }
        }

        // Firing notifications: new, after cooldown or maintenance, and escalations.
        if !silenced {
            let cooldown = self.settings.cooldown;
            let mut to_notify = Vec::new();
            for (key, s) in &self.state.series {
                if !s.firing || key == rules::MAINTENANCE {
                    continue;
                }
                let due = if !s.notified {
                    self.state
                        .last_notice
                        .get(key)
                        .is_none_or(|t| now >= t.saturating_add(cooldown))
                } else {
                    s.notified_severity.is_some_and(|n| s.finding.severity > n)
                };
                if due {
                    to_notify.push(key.clone());
                }
            }
            for key in to_notify {
                let event = {
                    let s = self.state.series.get_mut(&key).expect("series exists");
                    s.notified = true;
                    s.notified_severity = Some(s.finding.severity);
                    Self::firing_event(&self.settings, s)
                };
                self.state.last_notice.insert(key, now);
                self.emit(event, now, &mut out);
            }
        }
        let cooldown = self.settings.cooldown;
        let series = &self.state.series;
        self.state
            .last_notice
            .retain(|k, t| series.contains_key(k) || now < t.saturating_add(cooldown));
        self.flush_group(now, &mut out);
        out
    }

    /// Starts maintenance through the endpoint until `until` (epoch ms).
    pub fn start_maintenance(&mut self, until: u64, reason: String, now: u64) -> Vec<Notification> {
        self.state.manual_maintenance = Some(MaintenanceStatus {
            until,
            reason,
            source: "api".into(),
        });
        let mut out = Vec::new();
        self.update_maintenance(now, &mut out);
        self.flush_group(now, &mut out);
        out
    }

    /// Ends maintenance started through the endpoint (planned windows stay in force).
    pub fn end_maintenance(&mut self, now: u64) -> Vec<Notification> {
        self.state.manual_maintenance = None;
        let mut out = Vec::new();
        self.update_maintenance(now, &mut out);
        self.flush_group(now, &mut out);
        out
    }

    pub fn maintenance(&self) -> Option<&MaintenanceStatus> {
        self.state.maintenance.as_ref()
    }

    /// Compares the configuration with the previous run's and raises the info event
    /// `configuration-changed` listing the keys that differ. The first run only records it.
    pub fn config_changed(
        &mut self,
        config: BTreeMap<String, String>,
        enabled: bool,
        now: u64,
    ) -> Vec<Notification> {
        let previous = std::mem::replace(&mut self.state.config, config);
        if previous.is_empty() || previous == self.state.config || !enabled {
            return Vec::new();
        }
        let mut changed: Vec<String> = self
            .state
            .config
            .keys()
            .chain(previous.keys())
            .filter(|k| previous.get(*k) != self.state.config.get(*k))
            .cloned()
            .collect();
        changed.sort();
        changed.dedup();
        self.raise_config_changed(
            &previous,
            &changed,
            &[],
            "differ from the previous run",
            now,
        )
    }

    /// A reload was applied (see [`crate::reload`]): takes the new rules and settings, keeping
    /// every series, cooldown and queued event, and raises `configuration-changed` once with
    /// the keys the reloader found changed (secrets included, values redacted).
    pub fn config_reloaded(
        &mut self,
        update: &crate::reload::Update,
        enabled: bool,
        now: u64,
    ) -> Vec<Notification> {
        self.settings = EngineSettings::from_config(&update.config.alerting);
        self.rules = rules::builtin_rules(&update.config);
        let previous = std::mem::replace(
            &mut self.state.config,
            crate::config::flatten(&update.loaded),
        );
        if !enabled || update.changed.is_empty() {
            return Vec::new();
        }
        let what = format!("changed on reload ({})", update.trigger);
        self.raise_config_changed(
            &previous,
            &update.changed,
            &update.restart_required,
            &what,
            now,
        )
    }

    fn raise_config_changed(
        &mut self,
        previous: &BTreeMap<String, String>,
        changed: &[String],
        restart_required: &[String],
        what: &str,
        now: u64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        let shown: Vec<Value> = changed
            .iter()
            .take(50)
            .map(|k| {
                let mut change = json!({
                    "key": k,
                    "previous": previous.get(k),
                    "current": self.state.config.get(k),
                });
                if !restart_required.is_empty() {
                    change["applied"] = json!(!restart_required.contains(k));
                }
                change
            })
            .collect();
        let mut details: serde_json::Map<String, Value> =
            [("changes".to_string(), Value::Array(shown))]
                .into_iter()
                .collect();
        let mut recommendations =
            vec!["Confirm the change was intended (codex-sentinel config show)".to_string()];
        if !restart_required.is_empty() {
            details.insert("restartRequired".into(), json!(restart_required));
            recommendations.push(format!(
                "Restart the agent to apply: {}",
                restart_required.join(", ")
            ));
        }
        let finding = Finding {
            key: rules::CONFIGURATION_CHANGED.into(),
            rule: rules::CONFIGURATION_CHANGED.into(),
            severity: Severity::Info,
            category: Category::Configuration,
            title: "Codex monitoring configuration changed".into(),
            message: format!(
                "{} setting(s) {what}: {}",
                changed.len(),
                changed
                    .iter()
                    .take(5)
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            details,
            recommendations,
            runbook: "configuration-changed".into(),
        };
        let event = AlertEvent {
            key: finding.key.clone(),
            rule: finding.rule.clone(),
            status: AlertStatus::Firing,
            starts_at: now,
            ends_at: None,
            body: body_of(&self.settings, &finding, now),
        };
        self.state.recent_info.retain(|e| e.key != event.key);
        self.state.recent_info.push(event.clone());
        self.emit(event, now, &mut out);
        self.flush_group(now, &mut out);
        out
    }

    /// What the endpoints show.
    pub fn view(&self, sinks: &[SinkKind], counters: Arc<NotificationCounters>) -> AlertsView {
        let mut active: Vec<ActiveAlert> = self
            .state
            .series
            .iter()
            .filter(|(_, s)| s.firing)
            .map(|(k, s)| ActiveAlert {
                id: k.clone(),
                status: AlertStatus::Firing,
                starts_at: s.since,
                notified: s.notified,
                expires_at: None,
                body: body_of(&self.settings, &s.finding, s.fired_at),
            })
            .collect();
        active.extend(self.state.recent_info.iter().map(|e| ActiveAlert {
            id: e.key.clone(),
            status: AlertStatus::Firing,
            starts_at: e.starts_at,
            notified: !sinks.is_empty(),
            expires_at: Some(e.starts_at.saturating_add(INFO_EVENT_TTL_MS)),
            body: e.body.clone(),
        }));
        active.sort_by(|a, b| {
            b.body
                .severity
                .cmp(&a.body.severity)
                .then(a.starts_at.cmp(&b.starts_at))
        });
        AlertsView {
            enabled: true,
            evaluated_at: self.evaluated_at,
            evaluations: self.evaluations,
            pending: self.state.series.values().filter(|s| !s.firing).count(),
            active,
            held_back: self.held_back,
            maintenance: self.state.maintenance.clone(),
            sinks: sinks.to_vec(),
            counters,
            queue: None,
            maintenance_guard: None,
        }
    }

    /// The maintenance in force at `now`: the endpoint's, else a planned window's.
    fn current_maintenance(&mut self, now: u64) -> Option<MaintenanceStatus> {
        if let Some(m) = &self.state.manual_maintenance {
            if m.until > now {
                return Some(m.clone());
            }
            self.state.manual_maintenance = None;
        }
        self.settings
            .windows
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&now))
            .map(|(_, end, reason)| MaintenanceStatus {
                until: *end,
                reason: reason.clone(),
                source: "config".into(),
            })
    }

    fn update_maintenance(&mut self, now: u64, out: &mut Vec<Notification>) {
        let current = self.current_maintenance(now);
        match (&self.state.maintenance, &current) {
            (None, Some(m)) if !self.settings.maintenance_events => {
                tracing::info!(until = m.until, reason = %m.reason, source = %m.source, "maintenance started: new alert notifications are silenced (the maintenance event is disabled)");
            }
            (None, Some(m)) => {
                let finding = maintenance_finding(m);
                let event = AlertEvent {
                    key: finding.key.clone(),
                    rule: finding.rule.clone(),
                    status: AlertStatus::Firing,
                    starts_at: now,
                    ends_at: None,
                    body: body_of(&self.settings, &finding, now),
                };
                self.state.series.insert(
                    rules::MAINTENANCE.into(),
                    Series {
                        hits: 1,
                        misses: 0,
                        firing: true,
                        since: now,
                        fired_at: now,
                        notified: true,
                        notified_severity: Some(Severity::Info),
                        finding,
                        seen_in: 0,
                    },
                );
                tracing::info!(until = m.until, reason = %m.reason, source = %m.source, "maintenance started: new alert notifications are silenced");
                self.emit(event, now, out);
            }
            (Some(_), None) => {
                if let Some(s) = self.state.series.remove(rules::MAINTENANCE) {
                    let event = self.resolved_event(&s, now);
                    self.emit(event, now, out);
                }
                tracing::info!("maintenance ended: alert notifications resume");
            }
            (Some(old), Some(new)) if old != new => {
                if let Some(s) = self.state.series.get_mut(rules::MAINTENANCE) {
                    s.finding = maintenance_finding(new);
                }
            }
            _ => {}
        }
        self.state.maintenance = current;
    }

    fn firing_event(settings: &EngineSettings, s: &Series) -> AlertEvent {
        AlertEvent {
            key: s.finding.key.clone(),
            rule: s.finding.rule.clone(),
            status: AlertStatus::Firing,
            starts_at: s.since,
            ends_at: None,
            body: body_of(settings, &s.finding, s.fired_at),
        }
    }

    fn resolved_event(&self, s: &Series, now: u64) -> AlertEvent {
        let mut body = body_of(&self.settings, &s.finding, now);
        // The severity and title the receiver was told: a resolved notification names the
        // alert exactly as its firing one did (the status says it ended).
        body.severity = s.notified_severity.unwrap_or(body.severity);
        body.details.insert("status".into(), json!("resolved"));
        body.message = format!(
            "Resolved after {}. Last condition: {}",
            human_duration(now.saturating_sub(s.since)),
            s.finding.message
        );
        body.details.insert("resolvedAt".into(), json!(now));
        body.details.insert("firingSince".into(), json!(s.since));
        AlertEvent {
            key: s.finding.key.clone(),
            rule: s.finding.rule.clone(),
            status: AlertStatus::Resolved,
            starts_at: s.since,
            ends_at: Some(now),
            body,
        }
    }

    fn emit(&mut self, event: AlertEvent, now: u64, out: &mut Vec<Notification>) {
        match self.settings.aggregation_window {
            Some(_) => {
                if self.state.group.is_empty() {
                    self.state.group_opened = Some(now);
                }
                self.state.group.push(event);
            }
            None => out.push(Notification {
                id: 0,
                instance: String::new(),
                created: now,
                events: vec![event],
            }),
        }
    }

    fn flush_group(&mut self, now: u64, out: &mut Vec<Notification>) {
        let Some(opened) = self.state.group_opened else {
            return;
        };
        let window = self.settings.aggregation_window.unwrap_or(0);
        if self.state.group.is_empty() {
            self.state.group_opened = None;
            return;
        }
        if now >= opened.saturating_add(window) {
            out.push(Notification {
                id: 0,
                instance: String::new(),
                created: now,
                events: std::mem::take(&mut self.state.group),
            });
            self.state.group_opened = None;
        }
    }
}

fn maintenance_finding(m: &MaintenanceStatus) -> Finding {
    Finding {
        key: rules::MAINTENANCE.into(),
        rule: rules::MAINTENANCE.into(),
        severity: Severity::Info,
        category: Category::Maintenance,
        title: "Codex maintenance window".into(),
        message: format!(
            "Maintenance until {}: {}. New alert notifications are silenced.",
            format_rfc3339(m.until),
            m.reason
        ),
        details: [
            ("until".to_string(), json!(m.until)),
            ("reason".to_string(), json!(m.reason)),
            ("source".to_string(), json!(m.source)),
        ]
        .into_iter()
        .collect(),
        recommendations: vec![
            "End the window early: DELETE /health/codex/alerts/maintenance (under the configured endpoint path)".into(),
        ],
        runbook: "maintenance".into(),
    }
}

/// The specification's body for a finding, with the alert's identity in `details`: `alertKey`
/// (the series) and `fingerprint` (see [`super::fingerprint`]), the same in every notification
/// of the alert — firing, escalated, resolved — and on every sink.
pub fn body_of(settings: &EngineSettings, f: &Finding, timestamp: u64) -> AlertBody {
    let mut details = f.details.clone();
    details.insert("alertKey".into(), json!(f.key));
    details.insert("fingerprint".into(), json!(fingerprint(&f.key)));
    AlertBody {
        timestamp,
        severity: f.severity,
        title: f.title.clone(),
        message: f.message.clone(),
        category: f.category,
        details,
        recommendations: f.recommendations.clone(),
        runbook: format!("{}{}", settings.runbook_base, f.runbook),
    }
}

/// `1h 2m`, `3m 4s`, `5s`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// Starts the engine, its delivery tasks and the Alertmanager refresher when
/// `alerting.enabled`; `Ok(None)` when alerting is off. The engine reads the monitor's
/// `snapshots` and tells the `monitor` what to show of it as [`Observation::Alerts`]; its
/// state file is written by `persister`, the agent's writer thread.
pub fn start(
    config: Arc<Config>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    updates: Option<watch::Receiver<Arc<crate::reload::Update>>>,
    monitor: &ObservationSender,
    persister: Arc<Persister>,
    shutdown: CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Option<Handle>, String> {
    let a = &config.alerting;
    if !a.enabled {
        if a.webhook.url.is_some() || a.email.smtp_host.is_some() || a.alertmanager.url.is_some() {
            tracing::warn!("alert notifiers are configured but ENABLE_CODEX_ALERTING is not true: no alerts will be evaluated or sent");
        }
        return Ok(None);
    }
    let notifiers = notify::build(&config)?;
    let sinks: Vec<SinkKind> = notifiers.iter().map(Notifier::kind).collect();
    let store = Arc::new(Store::open_with(
        &config.state_dir.join("alerts"),
        monitor.telemetry(),
        persister,
    )?);
    store.drop_sinks_not_in(&sinks);
    let counters = Arc::new(NotificationCounters::for_sinks(&sinks));
    let now = now_ms();
    let mut engine = Engine::new(
        EngineSettings::from_config(a),
        rules::builtin_rules(&config),
        store.engine_state(),
    );
    let config_rule_on = !a
        .rules
        .disabled
        .iter()
        .any(|r| r == rules::CONFIGURATION_CHANGED);
    let initial = engine.config_changed(crate::config::flatten(&config), config_rule_on, now);
    let initial = store.commit(engine.state(), initial, &sinks);
    log_queued(&initial, &sinks);
    let guard = Arc::new(super::http::MaintenanceGuard::default());
    let live = LiveParts {
        queue: store.clone(),
        guard: guard.clone(),
    };
    let (view_tx, view_rx) = watch::channel(Arc::new(live.view(&engine, &sinks, &counters)));
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let settings = delivery::DeliverySettings::from_config(&a.delivery);
    for notifier in notifiers {
        let notifier = Arc::new(notifier);
        if let Notifier::Alertmanager(am) = notifier.as_ref() {
            tasks.spawn(super::notify::alertmanager::refresh_loop(
                am.clone(),
                view_rx.clone(),
                Duration::from_millis(a.alertmanager.resend_interval),
                settings.timeout,
                shutdown.clone(),
            ));
        }
        tracing::info!(
            sink = notifier.kind().as_str(),
            pending = store.pending(notifier.kind()),
            "alert notifier enabled"
        );
        tasks.spawn(delivery::run(
            notifier,
            store.clone(),
            counters.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
    }
    if sinks.is_empty() {
        tracing::info!(
            "alerting enabled without notifiers: alerts are shown in the health endpoints only"
        );
    }
    tasks.spawn(run(
        engine,
        live,
        sinks,
        counters,
        snapshots,
        view_tx,
        monitor.clone(),
        cmd_rx,
        updates,
        Duration::from_millis(a.evaluation_interval),
        shutdown,
    ));
    Ok(Some(Handle {
        view: view_rx,
        commands: cmd_tx,
        maintenance_token: a.maintenance.token.clone(),
        maintenance_guard: guard,
    }))
}

fn log_queued(notifications: &[Notification], sinks: &[SinkKind]) {
    for n in notifications {
        tracing::info!(
            notification = n.id,
            status = n.status_label(),
            severity = n.worst_severity().as_str(),
            alerts = %n.summary(),
            sinks = %crate::logging::Csv(&sinks.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "alert notification queued"
        );
    }
}

/// The engine task: evaluates on its own interval from the latest snapshot (never waiting for
/// a probe), answers maintenance commands, persists and publishes after each change.
#[allow(clippy::too_many_arguments)]
async fn run(
    mut engine: Engine,
    live: LiveParts,
    sinks: Vec<SinkKind>,
    counters: Arc<NotificationCounters>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    view_tx: watch::Sender<Arc<AlertsView>>,
    monitor: ObservationSender,
    mut commands: mpsc::Receiver<Command>,
    mut updates: Option<watch::Receiver<Arc<crate::reload::Update>>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    if let Some(rx) = updates.as_mut() {
        rx.mark_unchanged();
    }
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let store = live.queue.clone();
    let mut last_saved = engine.state().clone();
    let initial = view_tx.borrow().clone();
    if !tell_monitor(&monitor, initial, &shutdown).await {
        return;
    }
    loop {
        // A command's answer waits until its effect is persisted and published, so a client
        // reading `/alerts` right after its POST sees the new state.
        let mut answer = None;
        let notifications = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let snapshot = snapshots.borrow().clone();
                engine.evaluate(&snapshot, now_ms())
            }
            update = crate::reload::next_update(&mut updates) => {
                let enabled = !update
                    .config
                    .alerting
                    .rules
                    .disabled
                    .iter()
                    .any(|r| r == rules::CONFIGURATION_CHANGED);
                let interval = Duration::from_millis(update.config.alerting.evaluation_interval);
                if interval != tick.period() {
                    tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
                engine.config_reloaded(&update, enabled, now_ms())
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { continue };
                match cmd {
                    Command::StartMaintenance { until, reason, reply } => {
                        answer = Some(reply);
                        engine.start_maintenance(until, reason, now_ms())
                    }
                    Command::EndMaintenance { reply } => {
                        answer = Some(reply);
                        engine.end_maintenance(now_ms())
                    }
                }
            }
        };
        // Persist only what changed (hysteresis counts stop changing once a condition has
        // held `hold` times, so a steady alert costs no writes).
        if !notifications.is_empty() || engine.state() != &last_saved {
            let (sent, dropped) = store.commit_counting(engine.state(), notifications, &sinks);
            for sink in dropped {
                counters.add(sink, super::result::UNDELIVERED);
                counters.add_dropped(sink);
            }
            log_queued(&sent, &sinks);
            last_saved = engine.state().clone();
        }
        // Readers of the endpoint always get the latest view; the monitor is told (and
        // rebuilds its snapshot) only when what it shows changed, not on every evaluation.
        let view = Arc::new(live.view(&engine, &sinks, &counters));
        let mut changed = false;
        view_tx.send_if_modified(|current| {
            changed = current.shown_by_monitor_differs(&view);
            *current = view.clone();
            changed
        });
        if changed && !tell_monitor(&monitor, view, &shutdown).await {
            break;
        }
        if let Some(reply) = answer {
            store.persisted().await;
            let _ = reply.send(engine.maintenance().cloned());
        }
    }
}

/// Hands `view` to the monitor, waiting for room in its queue (a change it shows must not be
/// dropped). `false` when shutting down or the monitor is gone.
async fn tell_monitor(
    monitor: &ObservationSender,
    view: Arc<AlertsView>,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        sent = monitor.send_wait(Observation::Alerts(view)) => sent,
        _ = shutdown.cancelled() => false,
    }
}

/// The parts of the published view that are read live rather than copied at each evaluation:
/// the outbox (pending notifications drain between evaluations) and the maintenance guard.
struct LiveParts {
    queue: Arc<Store>,
    guard: Arc<super::http::MaintenanceGuard>,
}

impl LiveParts {
    fn view(
        &self,
        engine: &Engine,
        sinks: &[SinkKind],
        counters: &Arc<NotificationCounters>,
    ) -> AlertsView {
        AlertsView {
            queue: Some(self.queue.clone()),
            maintenance_guard: Some(self.guard.clone()),
            ..engine.view(sinks, counters.clone())
        }
    }
}
