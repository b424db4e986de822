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
use crate::config::{Config, Effective, Origin};

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
    /// The log directories' usage and growth (the `disk-usage` check).
    pub disk: DiskLimits,
}

/// What the `disk-usage` check judges a log directory against.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskLimits {
    /// Percent of the size limit used. Warning: `maxDiskUsage`; critical: `criticalDiskUsage`.
    pub usage_percent: Bands,
    /// Hours to full at the measured growth rate below which the check is a warning
    /// (`minHoursToFull`; 0: off).
    pub min_hours_to_full: f64,
    /// Bytes the operations-log directory's volume may hold (`operationsLog.sizeLimit`).
    pub operations_log_limit: Option<u64>,
    /// Bytes the audit directory's volume may hold (`auditLog.sizeLimit`).
    pub audit_log_limit: Option<u64>,
}

/// A log directory's state as the `disk-usage` check sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectoryState {
    pub used_bytes: u64,
    pub limit_bytes: u64,
    /// Net bytes per hour over the growth window; `None` until the window is half full.
    pub growth_per_hour: Option<f64>,
}

/// Why a directory is judged as it is: the worse of its two verdicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskVerdict {
    pub status: Status,
    pub usage_percent: f64,
    pub usage_status: Status,
    /// Hours until the limit is reached at the growth rate (`None`: not growing, or unknown).
    pub hours_to_full: Option<f64>,
    pub growth_status: Status,
}

impl DiskLimits {
    /// The one judgement of a directory: usage against the percent bands, and the time its
    /// growth leaves until the limit (a warning, never critical: the usage bands page).
    pub fn judge(&self, d: DirectoryState) -> DiskVerdict {
        let usage_percent = d.used_bytes as f64 * 100.0 / d.limit_bytes.max(1) as f64;
        let usage_status = self.usage_percent.judge(usage_percent);
        let hours_to_full = d
            .growth_per_hour
            .filter(|g| *g > 0.0)
            .map(|g| d.limit_bytes.saturating_sub(d.used_bytes) as f64 / g);
        let growth_status = match hours_to_full {
            Some(h) if self.min_hours_to_full > 0.0 && h < self.min_hours_to_full => {
                Status::Warning
            }
            _ => Status::Healthy,
        };
        DiskVerdict {
            status: usage_status.max(growth_status),
            usage_percent,
            usage_status,
            hours_to_full,
            growth_status,
        }
    }
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
        let processes = t.max_concurrent_processes as f64;
        Limits {
            error_rate: Bands {
                warning: failure_rate_warning(config).0,
                critical: failure_rate_critical(config).0,
            },
            min_executions: ar.min_executions.max(1),
            max_execution_time: t.max_execution_time as f64,
            p95_baseline: config.baselines.p95_time.map(|v| v as f64),
            p99_baseline: config.baselines.p99_time.map(|v| v as f64),
            memory_mb: memory_critical_mb(config).0.map(|critical| Bands {
                warning: t.max_memory_usage as f64,
                critical,
            }),
            processes: (t.max_concurrent_processes > 0).then_some(Bands {
                warning: processes,
                critical: processes * CRITICAL_FACTOR,
            }),
            disk: DiskLimits {
                usage_percent: Bands {
                    warning: t.max_disk_usage,
                    critical: t.critical_disk_usage,
                },
                min_hours_to_full: t.min_hours_to_full,
                operations_log_limit: config.operations_log.size_limit,
                audit_log_limit: config.audit_log.size_limit,
            },
        }
    }
}

/// The error rate (percent) above which executions are a warning, and where it comes from.
fn failure_rate_warning(config: &Config) -> (f64, Origin) {
    match config.alerting.rules.failure_rate_warning {
        Some(v) => (v, Origin::Key("alerting.rules.failureRateWarning")),
        None => (
            config.health_monitoring.thresholds.max_error_rate,
            Origin::From {
                how: "the health threshold",
                key: "healthMonitoring.thresholds.maxErrorRate",
            },
        ),
    }
}

/// The error rate (percent) above which executions are critical, and where it comes from.
fn failure_rate_critical(config: &Config) -> (f64, Origin) {
    match config.alerting.rules.failure_rate_critical {
        Some(v) => (v, Origin::Key("alerting.rules.failureRateCritical")),
        None => (
            100.0 - config.health_monitoring.thresholds.min_success_rate,
            Origin::From {
                how: "100 − minSuccessRate",
                key: "healthMonitoring.thresholds.minSuccessRate",
            },
        ),
    }
}

/// MB of Codex memory that is critical (`None`: the memory check is off), and where it comes
/// from.
fn memory_critical_mb(config: &Config) -> (Option<f64>, Origin) {
    let max = config.health_monitoring.thresholds.max_memory_usage;
    match config.alerting.rules.memory_critical_mb {
        _ if max == 0 => (
            None,
            Origin::Derived("memory check off: healthMonitoring.thresholds.maxMemoryUsage is 0"),
        ),
        Some(v) => (
            Some(v as f64),
            Origin::Key("alerting.rules.memoryCriticalMb"),
        ),
        None => (
            Some(max as f64 * CRITICAL_FACTOR),
            Origin::From {
                how: "1.5 × maxMemoryUsage",
                key: "healthMonitoring.thresholds.maxMemoryUsage",
            },
        ),
    }
}

/// The alert-rule keys that default to health thresholds, as the checks and rules use them:
/// `config show`'s view of this module.
pub fn effective(config: &Config) -> Vec<Effective> {
    let (warning, warning_origin) = failure_rate_warning(config);
    let (critical, critical_origin) = failure_rate_critical(config);
    let (memory, memory_origin) = memory_critical_mb(config);
    vec![
        Effective::new("alerting.rules.failureRateWarning", warning, warning_origin),
        Effective::new(
            "alerting.rules.failureRateCritical",
            critical,
            critical_origin,
        ),
        Effective::new("alerting.rules.memoryCriticalMb", memory, memory_origin),
    ]
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
    fn config_show_sees_the_limits_the_checks_use() {
        let mut c = Config::default();
        c.health_monitoring.thresholds.min_success_rate = 90.0;
        c.health_monitoring.thresholds.max_memory_usage = 333;
        c.alerting.rules.failure_rate_warning = Some(7.5);
        let l = Limits::from_config(&c);
        let shown: Vec<serde_json::Value> = effective(&c).into_iter().map(|e| e.value).collect();
        assert_eq!(
            shown,
            [
                serde_json::json!(l.error_rate.warning),
                serde_json::json!(l.error_rate.critical),
                serde_json::json!(l.memory_mb.unwrap().critical),
            ]
        );
        assert_eq!(shown[2], 499.5);
    }

    #[test]
    fn defaults_are_five_and_twenty_percent() {
        let l = Limits::default();
        assert_eq!((l.error_rate.warning, l.error_rate.critical), (5.0, 20.0));
        assert_eq!(l.memory_mb.unwrap().critical, 750.0);
        assert_eq!(l.processes.unwrap().critical, 15.0);
    }

    #[test]
    fn disk_usage_is_judged_by_percent_of_the_limit_and_hours_to_full() {
        let l = Limits::default().disk;
        assert_eq!(
            (l.usage_percent.warning, l.usage_percent.critical),
            (80.0, 95.0)
        );
        let mib = 1u64 << 20;
        let dir = |used: u64, growth: Option<f64>| DirectoryState {
            used_bytes: used * mib,
            limit_bytes: 100 * mib,
            growth_per_hour: growth,
        };
        let v = l.judge(dir(50, None));
        assert_eq!(
            (v.status, v.usage_percent, v.hours_to_full),
            (Status::Healthy, 50.0, None)
        );
        assert_eq!(l.judge(dir(81, None)).status, Status::Warning);
        assert_eq!(l.judge(dir(96, None)).status, Status::Critical);
        // 50 MiB left at 5 MiB/h: full in 10 h, sooner than 24 h.
        let v = l.judge(dir(50, Some(5.0 * mib as f64)));
        assert_eq!(v.hours_to_full, Some(10.0));
        assert_eq!(
            (v.usage_status, v.growth_status, v.status),
            (Status::Healthy, Status::Warning, Status::Warning)
        );
        // 50 MiB left at 1 MiB/h: 50 h. Shrinking: never full.
        assert_eq!(l.judge(dir(50, Some(mib as f64))).status, Status::Healthy);
        assert_eq!(l.judge(dir(50, Some(-(mib as f64)))).hours_to_full, None);
        // Critical usage stays critical whatever the growth says.
        assert_eq!(
            l.judge(dir(97, Some(5.0 * mib as f64))).status,
            Status::Critical
        );
        let mut c = Config::default();
        c.health_monitoring.thresholds.min_hours_to_full = 0.0;
        c.operations_log.size_limit = Some(100 * mib);
        let off = Limits::from_config(&c).disk;
        assert_eq!(off.operations_log_limit, Some(100 * mib));
        assert_eq!(
            off.judge(dir(50, Some(50.0 * mib as f64))).status,
            Status::Healthy
        );
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
