//! The agent's own behaviour: its log format, audit files, history, configuration reloads, and
//! the application settings it accepts but does not act on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Check;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `CODEX_DEBUG=true` raises the level to debug.
    pub debug: bool,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            debug: false,
            format: "text".into(),
        }
    }
}

/// The specification's `logs/audit/*.log` files, written by the agent: one JSON object a line,
/// one file per stream and UTC day. `SIGUSR1` reopens them (logrotate's `postrotate`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditLogConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// Files of these streams older than this many days are deleted by the agent (0 = keep all,
    /// e.g. when logrotate does it).
    pub retention_days: u64,
    /// ms between lines of `performance-YYYY-MM-DD.log`.
    pub performance_interval: u64,
    /// Bytes the directory's volume may hold (in the chart: the state volume's `sizeLimit`,
    /// shared with the state files); `None`: usage is measured but not judged.
    #[serde(deserialize_with = "super::disk::deserialize_size_limit")]
    pub size_limit: Option<u64>,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            enabled: true,
            dir: PathBuf::from("logs/audit"),
            retention_days: 0,
            performance_interval: 60_000,
            size_limit: None,
        }
    }
}

/// Per-hour aggregates kept in `stateDir` for reports and learned baselines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HistoryConfig {
    pub enabled: bool,
    /// Days of hourly aggregates kept.
    pub retention_days: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            retention_days: 30,
        }
    }
}

/// How a running agent picks up a new configuration. `SIGHUP` always reloads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Also reload when the configuration file changes (checked every `watchInterval`).
    pub watch_file: bool,
    /// ms between checks of the configuration file.
    pub watch_interval: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch_file: false,
            watch_interval: 2_000,
        }
    }
}

/// The application's own tuning variables from the specification's tuning guide. Accepted so that
/// a shared environment file does not trip the agent, shown by `config show`, otherwise unused.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApplicationSettings {
    pub audit_timeout_seconds: Option<u64>,
    pub max_concurrent_audits: Option<u64>,
    pub enable_audit_caching: Option<bool>,
    pub max_session_history: Option<u64>,
    pub session_cleanup_interval: Option<u64>,
    pub max_concurrent_sessions: Option<u64>,
}

impl LoggingConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if !matches!(self.format.as_str(), "text" | "json") {
            bad(
                "logging.format",
                format!("{:?}", self.format),
                "must be text or json",
            );
        }
    }
}

impl AuditLogConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.enabled && self.performance_interval == 0 {
            bad("auditLog.performanceInterval", "0".into(), "must be > 0 ms");
        }
    }
}

impl HistoryConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.enabled && self.retention_days == 0 {
            bad(
                "history.retentionDays",
                "0".into(),
                "must be at least 1 day",
            );
        }
    }
}

impl ReloadConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.watch_file && self.watch_interval == 0 {
            bad("reload.watchInterval", "0".into(), "must be > 0 ms");
        }
    }
}
