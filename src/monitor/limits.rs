//! The limits every judged condition is measured against, resolved once from the configuration.
//!
//! One judgement per condition: the health checks (`/health/codex`, `check`, the
//! `codex_health_check_status`-style series) are the only place a threshold is compared, and the
//! alert rules derive their severity from the checks' status (see `alerts::rules`). So this is
//! the one place that says which setting a threshold comes from:
//!
//! - a health threshold (`CODEX_HEALTH_THRESHOLD_*`) is the default;
//! - an alert-specific override (`CODEX_ALERT_FAILURE_RATE_*`, `CODEX_ALERT_MEMORY_CRITICAL_MB`)
//!   replaces it when set — for the check as well as the alert, so the two never disagree.
//!
//! The error rate counts everything that did not succeed (failures *and* timeouts): it is
//! `100 − successRate`, so the `success-rate` and `error-rate` checks and the `failure-rate`
//! alert judge one number.

use super::snapshot::Status;
use crate::config::Config;

/// Above a warning level, or above a critical one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub warning: f64,
    pub critical: f64,
}

impl Bands {
    /// `Critical` above `critical`, `Warning` above `warning`, else `Healthy` (a value equal to a
    /// threshold is not above it). Critical is tested first, so bands set the wrong way round
    /// (warning above critical) still page at the critical level.
    pub fn judge(&self, value: f64) -> Status {
        if value > self.critical {
            Status::Critical
        } else if value > self.warning {
            Status::Warning
        } else {
            Status::Healthy
        }
    }
}

/// Above this many times `maxMemoryUsage` / `maxConcurrentProcesses`, memory and process count
/// are critical (memory: unless `CODEX_ALERT_MEMORY_CRITICAL_MB` says otherwise).
pub const CRITICAL_FACTOR: f64 = 1.5;

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Percent of executions that did not succeed (failed or timed out).
    /// Warning: `alerting.rules.failureRateWarning` else `maxErrorRate`;
    /// critical: `alerting.rules.failureRateCritical` else `100 − minSuccessRate`.
    pub error_rate: Bands,
    /// Rates are not judged on fewer executions than this (`alerting.rules.minExecutions`).
    pub min_executions: u64,
    /// ms of p95 above which executions are slow (`maxExecutionTime`).
    pub max_execution_time: f64,
    /// ms baselines of p95 and p99 (`CODEX_PERF_BASELINE_P95_TIME`, `..._P99_TIME`).
    pub p95_baseline: Option<f64>,
    pub p99_baseline: Option<f64>,
    /// MB across Codex processes; `None` when `maxMemoryUsage` is 0 (check off).
    /// Warning: `maxMemoryUsage`; critical: `alerting.rules.memoryCriticalMb` else
    /// `maxMemoryUsage × 1.5`.
    pub memory_mb: Option<Bands>,
    /// Codex processes; `None` when `maxConcurrentProcesses` is 0 (check off).
    /// Warning: `maxConcurrentProcesses`; critical: `maxConcurrentProcesses × 1.5`.
    pub processes: Option<Bands>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&Config::default())
    }
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        let t = &config.health_monitoring.thresholds;
        let ar = &config.alerting.rules;
        let memory = t.max_memory_usage as f64;
        let processes = t.max_concurrent_processes as f64;
        Limits {
            error_rate: Bands {
                warning: ar.failure_rate_warning.unwrap_or(t.max_error_rate),
                critical: ar
                    .failure_rate_critical
                    .unwrap_or(100.0 - t.min_success_rate),
            },
            min_executions: ar.min_executions.max(1),
            max_execution_time: t.max_execution_time as f64,
            p95_baseline: config.baselines.p95_time.map(|v| v as f64),
            p99_baseline: config.baselines.p99_time.map(|v| v as f64),
            memory_mb: (t.max_memory_usage > 0).then(|| Bands {
                warning: memory,
                critical: ar
                    .memory_critical_mb
                    .map_or(memory * CRITICAL_FACTOR, |v| v as f64),
            }),
            processes: (t.max_concurrent_processes > 0).then_some(Bands {
                warning: processes,
                critical: processes * CRITICAL_FACTOR,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_thresholds_drive_unless_an_alert_override_is_set() {
        let mut c = Config::default();
        c.health_monitoring.thresholds.min_success_rate = 85.0;
        c.health_monitoring.thresholds.max_error_rate = 10.0;
        let l = Limits::from_config(&c);
        assert_eq!(
            l.error_rate,
            Bands {
                warning: 10.0,
                critical: 15.0
            }
        );
        c.alerting.rules.failure_rate_warning = Some(12.0);
        c.alerting.rules.failure_rate_critical = Some(30.0);
        c.alerting.rules.memory_critical_mb = Some(2000);
        let l = Limits::from_config(&c);
        assert_eq!(
            l.error_rate,
            Bands {
                warning: 12.0,
                critical: 30.0
            }
        );
        assert_eq!(l.memory_mb.unwrap().critical, 2000.0);
    }

    #[test]
    fn defaults_are_five_and_twenty_percent() {
        let l = Limits::default();
        assert_eq!((l.error_rate.warning, l.error_rate.critical), (5.0, 20.0));
        assert_eq!(l.memory_mb.unwrap().critical, 750.0);
        assert_eq!(l.processes.unwrap().critical, 15.0);
    }

    #[test]
    fn a_value_at_a_threshold_is_not_above_it() {
        let b = Bands {
            warning: 5.0,
            critical: 20.0,
        };
        assert_eq!(b.judge(5.0), Status::Healthy);
        assert_eq!(b.judge(5.1), Status::Warning);
        assert_eq!(b.judge(20.0), Status::Warning);
        assert_eq!(b.judge(20.1), Status::Critical);
    }
}
