//! Exporters: OTLP, StatsD and the Prometheus exposition, each deriving its names from the one
//! metric catalog ([`crate::catalog`]).
//!
//! Every exporter reads the monitor's published [`Snapshot`](crate::monitor::snapshot::Snapshot)
//! on its own task and its own schedule: a dead, slow or refusing sink costs that task time,
//! never a probe or an HTTP request. Failures are counted in [`ExportErrors`] (published as
//! `codex_sentinel_export_errors_total{exporter}`) and logged through [`FailureLog`], at most once
//! a minute per exporter.

pub mod docs;
pub mod histogram;
pub mod otlp;
pub mod prometheus;
pub mod statsd;

use std::time::{Duration, Instant};

use crate::catalog;
use crate::config::Config;
use crate::telemetry::Telemetry;

/// Names of the exporters, as the `exporter` label spells them.
pub const EXPORTERS: &[&str] = &[otlp::EXPORTER, statsd::EXPORTER];

/// Failed export cycles per exporter (`codex_sentinel_export_errors_total{exporter}`), counted
/// into the agent's telemetry, which the monitor publishes.
#[derive(Debug, Clone)]
pub struct ExportErrors {
    telemetry: Telemetry,
}

impl ExportErrors {
    /// Publishes every exporter's series, at zero until it fails (also when it is off).
    pub fn new(telemetry: Telemetry) -> Self {
        for exporter in EXPORTERS {
            telemetry.declare(&catalog::AGENT_EXPORT_ERRORS, &[exporter]);
        }
        ExportErrors { telemetry }
    }

    pub fn increment(&self, exporter: &str) {
        self.telemetry
            .add(&catalog::AGENT_EXPORT_ERRORS, &[exporter], 1);
    }

    pub fn get(&self, exporter: &str) -> u64 {
        self.telemetry
            .get(&catalog::AGENT_EXPORT_ERRORS, &[exporter])
    }
}

/// How often a failing exporter may log a warning.
/// Most export cycles a failing exporter skips between attempts (see [`FailureLog::backoff_skips`]).
pub const MAX_BACKOFF_SKIPS: u64 = 5;

pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Rate-limited failure logging: the first failure is logged at once, later ones at most every
/// [`FAILURE_LOG_INTERVAL`] with the number suppressed; the recovery is logged once.
#[derive(Debug)]
pub struct FailureLog {
    exporter: &'static str,
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u64,
    suppressed: u64,
}

impl FailureLog {
    pub fn new(exporter: &'static str) -> Self {
        FailureLog {
            exporter,
            failing_since: None,
            last_logged: None,
            failures: 0,
            suppressed: 0,
        }
    }

    /// Consecutive failures so far (0 when the last export worked).
    pub fn consecutive_failures(&self) -> u64 {
        self.failures
    }

    pub fn failure(&mut self, error: &str) {
        let now = Instant::now();
        self.failures += 1;
        self.failing_since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_INTERVAL);
        if due {
            tracing::warn!(
                exporter = self.exporter,
                error,
                consecutive_failures = self.failures,
                suppressed = self.suppressed,
                "export failed; will retry"
            );
            self.last_logged = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }

    pub fn success(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                exporter = self.exporter,
                failures = self.failures,
                failing_for_s = since.elapsed().as_secs(),
                "export resumed"
            );
        }
        self.failures = 0;
        self.suppressed = 0;
        self.last_logged = None;
    }

    /// Cycles to skip after a failure: 0, 1, 3, 7 … up to `max_skip` (a dead sink is tried less
    /// often; nothing is lost because skipped cycles are not collected).
    pub fn backoff_skips(&self, max_skip: u64) -> u64 {
        if self.failures == 0 {
            return 0;
        }
        let exp = (self.failures - 1).min(16) as u32;
        ((1u64 << exp) - 1).min(max_skip)
    }
}

/// Where an exporter's effective setting came from. `config show` prints it next to the value;
/// the exporter resolves both in the same step ([`otlp::Settings::resolve`],
/// [`statsd::Settings::resolve`]), so what is shown is what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The value at this configuration key: the file, a variable or the key's own default
    /// (the figment knows which).
    Key(&'static str),
    /// The exporter's default for an unset key.
    Default,
    /// Filled in by a preset; `from` is the key the value itself is read from (the license
    /// key, the agent's host), if any.
    Preset {
        preset: &'static str,
        from: Option<&'static str>,
    },
    /// Decided from other settings, in words (`on because an endpoint or preset is set`).
    Derived(&'static str),
}

/// One effective exporter setting, under the configuration key it resolves.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub key: String,
    pub value: serde_json::Value,
    pub origin: Origin,
}

impl Effective {
    fn new(key: &str, value: impl Into<serde_json::Value>, origin: Origin) -> Self {
        Effective {
            key: key.to_string(),
            value: value.into(),
            origin,
        }
    }
}

/// Every exporter setting as it will be used, with its origin: the effective part of
/// `config show`. An exporter that is off shows only why (`enabled`).
pub fn effective(config: &Config) -> Result<Vec<Effective>, (&'static str, String, String)> {
    let mut out = otlp::effective(config)?;
    out.extend(statsd::effective(config)?);
    Ok(out)
}

/// Checks the exporter settings that serde cannot: returns (key, value, why) of the first problem.
pub fn validate(config: &Config) -> Result<(), (&'static str, String, String)> {
    otlp::Settings::resolve(config)?;
    statsd::Settings::resolve(config)?;
    Ok(())
}
