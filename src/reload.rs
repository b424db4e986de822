//! Reloading the configuration of a running agent (`SIGHUP`, or a change of the configuration
//! file when `reload.watchFile` is on) without dropping state.
//!
//! The new configuration is loaded and validated exactly like at start. Invalid: rejected with
//! the reason (error log, `errors-*.log`, `codex_sentinel_config_reloads_total{result="rejected"}`)
//! and the running configuration kept. Valid: published as an [`Update`] on a watch channel; the
//! monitor (thresholds, probe list), the probe scheduler (intervals, timeouts, commands) and the
//! alert engine (rules, hysteresis, cooldown, maintenance windows) take it in place, keeping
//! their statistics, alert series and queued notifications; the alert engine raises the
//! "configuration changed" info alert listing what changed, secrets redacted.
//!
//! Some settings are bound to resources opened at start (the listening socket, the state
//! directory, exporters, notifier connections, the operations-log reader): a change of those is
//! listed as `restartRequired` in the alert and the log, and the running value is kept until
//! the next start ([`RESTART_ONLY`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::watch;

use crate::catalog;
use crate::config::{Config, ConfigError, Secret};
use crate::telemetry::Telemetry;

/// Key prefixes whose new values take effect only at the next start.
pub const RESTART_ONLY: &[&str] = &[
    "healthMonitoring.endpoints",
    "stateDir",
    "export",
    "logging",
    "operationsLog",
    "processes",
    "auditLog",
    "history",
    "diskUsage",
    "reload",
    "alerting.enabled",
    "alerting.webhook",
    "alerting.slack",
    "alerting.email",
    "alerting.alertmanager",
    "alerting.delivery",
    "alerting.generatorUrl",
    "alerting.maintenance.token",
];

/// Whether a changed key only applies at the next start.
pub fn needs_restart(key: &str) -> bool {
    RESTART_ONLY.iter().any(|p| {
        key == *p
            || key
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

pub use crate::config::update::{next_update, Update};

/// The result of one reload request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `changed` is empty when only the learned baselines changed.
    Applied {
        changed: Vec<String>,
        restart_required: Vec<String>,
    },
    Unchanged,
    Rejected(String),
}

/// The `result` labels of `codex_sentinel_config_reloads_total`.
const RESULTS: [&str; 3] = ["applied", "unchanged", "rejected"];

/// Owns the current configuration and publishes reloads.
pub struct Reloader {
    tx: watch::Sender<Arc<Update>>,
    /// Serialises reloads (a signal and a file change at once).
    lock: Mutex<()>,
    /// Counts the outcomes (`codex_sentinel_config_reloads_total`) and reports rejections.
    telemetry: Telemetry,
}

impl Reloader {
    /// `config` is what runs (learned baselines filled in), `loaded` what was read.
    pub fn new(
        config: Arc<Config>,
        loaded: Arc<Config>,
        telemetry: Telemetry,
    ) -> (Reloader, watch::Receiver<Arc<Update>>) {
        for result in RESULTS {
            telemetry.declare(&catalog::CONFIG_RELOADS, &[result]);
        }
        let (tx, rx) = watch::channel(Arc::new(Update {
            generation: 0,
            config,
            loaded,
            changed: Vec::new(),
            restart_required: Vec::new(),
            trigger: "start".into(),
        }));
        (
            Reloader {
                tx,
                lock: Mutex::new(()),
                telemetry,
            },
            rx,
        )
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Update>> {
        self.tx.subscribe()
    }

    /// Applies a freshly loaded configuration, or reports why it was not.
    pub fn reload(&self, loaded: Result<Config, ConfigError>, trigger: &str) -> Outcome {
        let _guard = self.lock.lock().expect("reload lock");
        let loaded = match loaded {
            Ok(c) => c,
            Err(e) => {
                self.telemetry
                    .add(&catalog::CONFIG_RELOADS, &["rejected"], 1);
                // Every problem, on the one line a log event has.
                let reason = e.problems().collect::<Vec<_>>().join("; ");
                tracing::error!(trigger, reason = %reason, "configuration reload rejected: the running configuration is kept");
                self.telemetry.error(
                    "reload",
                    &format!("configuration reload rejected: {reason}"),
                    json!({ "trigger": trigger }),
                );
                return Outcome::Rejected(reason);
            }
        };
        let current = self.tx.borrow().clone();
        let changed = changed_keys(&current.loaded, &loaded);
        let mut effective = keep_restart_only(&current.config, loaded.clone());
        if effective.baselines.learn && effective.history.enabled {
            // Relearned from the history as the monitor last wrote it (read only).
            let hours = crate::monitor::history::read(&effective.state_dir).unwrap_or_default();
            effective =
                crate::monitor::history::apply_learned(effective, &hours, crate::util::now_ms());
        }
        if changed.is_empty() && effective.baselines == current.config.baselines {
            self.telemetry
                .add(&catalog::CONFIG_RELOADS, &["unchanged"], 1);
            tracing::info!(trigger, "configuration reloaded: nothing changed");
            return Outcome::Unchanged;
        }
        let restart_required: Vec<String> = changed
            .iter()
            .filter(|k| needs_restart(k))
            .cloned()
            .collect();
        self.telemetry
            .add(&catalog::CONFIG_RELOADS, &["applied"], 1);
        tracing::info!(
            trigger,
            changed = %changed.join(", "),
            restart_required = %restart_required.join(", "),
            "configuration reloaded"
        );
        self.tx.send_replace(Arc::new(Update {
            generation: current.generation + 1,
            config: Arc::new(effective),
            loaded: Arc::new(loaded),
            changed: changed.clone(),
            restart_required: restart_required.clone(),
            trigger: trigger.into(),
        }));
        Outcome::Applied {
            changed,
            restart_required,
        }
    }
}

/// The new configuration with every [`RESTART_ONLY`] section taken from the running one.
pub fn keep_restart_only(running: &Config, mut new: Config) -> Config {
    new.health_monitoring.endpoints = running.health_monitoring.endpoints.clone();
    new.state_dir = running.state_dir.clone();
    new.export = running.export.clone();
    new.logging = running.logging.clone();
    new.operations_log = running.operations_log.clone();
    new.processes = running.processes.clone();
    new.audit_log = running.audit_log.clone();
    new.history = running.history.clone();
    new.disk_usage = running.disk_usage.clone();
    new.reload = running.reload.clone();
    let (a, r) = (&mut new.alerting, &running.alerting);
    a.enabled = r.enabled;
    a.webhook = r.webhook.clone();
    a.slack = r.slack.clone();
    a.email = r.email.clone();
    a.alertmanager = r.alertmanager.clone();
    a.delivery = r.delivery.clone();
    a.generator_url = r.generator_url.clone();
    a.maintenance.token = r.maintenance.token.clone();
    new
}

/// Keys whose values differ, secrets included (compared by value, shown redacted).
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (crate::config::flatten(old), crate::config::flatten(new));
    let (sa, sb) = (secret_values(old), secret_values(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .chain(
            sa.keys()
                .chain(sb.keys())
                .filter(|k| sa.get(*k) != sb.get(*k)),
        )
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Every secret by key, exposed: only ever compared, never shown.
fn secret_values(c: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, s: Option<&Secret>| {
        if let Some(s) = s {
            out.insert(key, s.expose().to_string());
        }
    };
    put(
        "alerting.webhook.url".into(),
        c.alerting.webhook.url.as_ref(),
    );
    put(
        "alerting.email.smtpPass".into(),
        c.alerting.email.smtp_pass.as_ref(),
    );
    put(
        "alerting.alertmanager.url".into(),
        c.alerting.alertmanager.url.as_ref(),
    );
    put(
        "alerting.maintenance.token".into(),
        c.alerting.maintenance.token.as_ref(),
    );
    put("export.otlp.apiKey".into(), c.export.otlp.api_key.as_ref());
    for (name, v) in &c.alerting.webhook.headers {
        put(format!("alerting.webhook.headers.{name}"), Some(v));
    }
    for (name, v) in &c.export.otlp.headers {
        put(format!("export.otlp.headers.{name}"), Some(v));
    }
    out
}

/// What identifies a version of the configuration file: its bytes (mtime alone misses edits
/// within one second and `cp -p`).
pub fn file_fingerprint(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// The configuration file a reload reads: `--config FILE`, else the default file.
pub fn watched_file(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_prefixes_match_whole_segments() {
        assert!(needs_restart("healthMonitoring.endpoints.port"));
        assert!(needs_restart("stateDir"));
        assert!(needs_restart("alerting.enabled"));
        assert!(!needs_restart("alerting.enabledX"));
        assert!(!needs_restart("healthMonitoring.checkInterval"));
        assert!(!needs_restart("alerting.cooldown"));
    }

    #[test]
    fn secret_changes_are_detected_without_showing_values() {
        let a = Config::default();
        let mut b = a.clone();
        b.alerting.maintenance.token = Some(Secret::new("t1"));
        let mut c = b.clone();
        c.alerting.maintenance.token = Some(Secret::new("t2"));
        assert_eq!(changed_keys(&a, &b), vec!["alerting.maintenance.token"]);
        assert_eq!(changed_keys(&b, &c), vec!["alerting.maintenance.token"]);
        assert!(changed_keys(&c, &c).is_empty());
    }

    #[test]
    fn rejected_and_applied_reloads() {
        let telemetry = Telemetry::default();
        let (r, rx) = Reloader::new(
            Arc::new(Config::default()),
            Arc::new(Config::default()),
            telemetry.clone(),
        );
        // Every problem is in the reason, on one line.
        assert_eq!(
            r.reload(Err(ConfigError("bad one\nbad two".into())), "test"),
            Outcome::Rejected("bad one; bad two".into())
        );
        assert_eq!(rx.borrow().generation, 0);
        assert_eq!(r.reload(Ok(Config::default()), "test"), Outcome::Unchanged);
        let mut c = Config::default();
        c.health_monitoring.check_interval = 1234;
        c.health_monitoring.endpoints.port = 1;
        let out = r.reload(Ok(c), "test");
        assert_eq!(
            out,
            Outcome::Applied {
                changed: vec![
                    "healthMonitoring.checkInterval".into(),
                    "healthMonitoring.endpoints.port".into()
                ],
                restart_required: vec!["healthMonitoring.endpoints.port".into()],
            }
        );
        let u = rx.borrow().clone();
        assert_eq!(u.generation, 1);
        assert_eq!(u.config.health_monitoring.check_interval, 1234);
        assert_eq!(u.config.health_monitoring.endpoints.port, 3000);
        assert_eq!(u.loaded.health_monitoring.endpoints.port, 1);
        for result in RESULTS {
            assert_eq!(telemetry.get(&catalog::CONFIG_RELOADS, &[result]), 1);
        }
    }
}
