//! Alert rules: pure functions of a snapshot. Each yields zero or more [`Finding`]s, one per
//! series that is in an alerting condition *now*; hysteresis, cooldown and the rest are the
//! engine's business.
//!
//! One judgement per condition: a condition that has a health check (availability, error rate,
//! execution time, memory, process count, log disk usage, extra probes) is judged by that check alone
//! (`monitor::limits` says where each threshold comes from) and its rule raises the check's
//! status as the alert's severity, with the check's message, details and recommendations. So
//! `/health/codex`, `check`, the metrics and the alerts cannot disagree. Only conditions without
//! a check (CPU, queue backlog, baselines, the agent's own probing) compare thresholds here.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Category, Severity};
use crate::config::{AlertingConfig, Config};
use crate::monitor::disk::DISK_USAGE_CHECK;
use crate::monitor::health::AVAILABILITY_CHECK;
use crate::monitor::resources::{MEMORY_CHECK, PROCESS_COUNT_CHECK};
use crate::monitor::snapshot::{HealthCheck, Snapshot, Status};

/// Every rule id, for `alerting.rules.disabled` and the documentation.
pub const RULE_IDS: &[&str] = &[
    CODEX_UNAVAILABLE,
    PROBE_FAILING,
    PROBE_MACHINERY,
    FAILURE_RATE,
    SLOW_RESPONSES,
    MEMORY_USAGE,
    CPU_USAGE,
    PROCESS_COUNT,
    QUEUE_BACKLOG,
    DISK_USAGE,
    PERFORMANCE_DEGRADATION,
    CONFIGURATION_CHANGED,
    MAINTENANCE,
];

/// The rule ids named in `alerting.rules.disabled` must exist: a typo would silently leave the
/// rule on. Returns each unknown id as (key, value, why), as [`crate::config::Check::bad`]
/// reports them.
pub fn validate(alerting: &AlertingConfig) -> Vec<(&'static str, String, String)> {
    alerting
        .rules
        .disabled
        .iter()
        .filter(|id| !RULE_IDS.contains(&id.as_str()))
        .map(|id| {
            (
                "alerting.rules.disabled",
                format!("{id:?}"),
                format!("unknown rule; known: {}", RULE_IDS.join(", ")),
            )
        })
        .collect()
}

pub const CODEX_UNAVAILABLE: &str = "codex-unavailable";
pub const PROBE_FAILING: &str = "probe-failing";
pub const PROBE_MACHINERY: &str = "probe-machinery";
pub const FAILURE_RATE: &str = "failure-rate";
pub const SLOW_RESPONSES: &str = "slow-responses";
pub const MEMORY_USAGE: &str = "memory-usage";
pub const CPU_USAGE: &str = "cpu-usage";
pub const PROCESS_COUNT: &str = "process-count";
pub const QUEUE_BACKLOG: &str = "queue-backlog";
pub const DISK_USAGE: &str = "disk-usage";
pub const PERFORMANCE_DEGRADATION: &str = "performance-degradation";
/// Raised by the engine when the configuration differs from the previous run's.
pub const CONFIGURATION_CHANGED: &str = "configuration-changed";
/// Raised by the engine when a maintenance window starts (resolved when it ends). Disabling
/// it keeps the silencing and drops only the start/end notifications.
pub const MAINTENANCE: &str = "maintenance";

/// A series in an alerting condition, with everything a notification says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Series identity: the rule id, plus `:<subject>` when a rule has several series.
    pub key: String,
    pub rule: String,
    pub severity: Severity,
    pub category: Category,
    pub title: String,
    pub message: String,
    pub details: Map<String, Value>,
    pub recommendations: Vec<String>,
    /// Appended to `alerting.runbookBaseUrl`.
    pub runbook: String,
}

/// What a rule looks at.
pub struct RuleContext<'a> {
    pub snapshot: &'a Snapshot,
    /// Epoch ms of the evaluation.
    pub now: u64,
}

/// A rule. Implementations are cheap and stateless: the engine calls every rule on every
/// evaluation.
pub trait Rule: Send + Sync {
    fn id(&self) -> &'static str;
    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>);
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn details(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The built-in rules for a configuration, minus the disabled ones.
pub fn builtin_rules(config: &Config) -> Vec<Box<dyn Rule>> {
    let hm = &config.health_monitoring;
    let ar = &config.alerting.rules;
    let specs = if hm.enabled {
        crate::monitor::probes::specs(config)
    } else {
        Vec::new()
    };
    let probe_gaps = specs
        .iter()
        .map(|s| {
            let attempts = u64::from(s.retries) + 1;
            let per_run = attempts * s.timeout.as_millis() as u64
                + u64::from(s.retries) * s.retry_delay.as_millis() as u64;
            (s.name.clone(), s.interval.as_millis() as u64 + per_run)
        })
        .collect();
    let extra_probes = specs
        .iter()
        .filter(|s| !s.is_availability)
        .map(|s| s.name.clone())
        .collect();
    let mut all: Vec<Box<dyn Rule>> = CHECK_RULES
        .iter()
        .map(|r| Box::new(*r) as Box<dyn Rule>)
        .collect();
    all.extend([
        Box::new(ProbeFailing {
            probes: extra_probes,
        }) as Box<dyn Rule>,
        Box::new(ProbeMachinery { probe_gaps }),
        Box::new(CpuUsage {
            warning_percent: ar.cpu_warning_percent,
        }),
        Box::new(QueueBacklog {
            size: ar.queue_backlog,
            wait_ms: ar.queue_wait,
        }),
        Box::new(PerformanceDegradation {
            baselines: config.baselines.clone(),
            min_executions: ar.min_executions,
        }),
    ]);
    all.into_iter()
        .filter(|r| !ar.disabled.iter().any(|d| d == r.id()))
        .collect()
}

/// The severity an unhealthy check raises: its status (unavailable pages as critical).
fn severity_of(status: Status) -> Option<Severity> {
    match status {
        Status::Healthy => None,
        Status::Warning => Some(Severity::Warning),
        Status::Critical | Status::Unavailable => Some(Severity::Critical),
    }
}

/// What a check says, as a finding of `rule`: the check's status, message, details (plus its
/// duration) and recommendations.
fn finding_from_check(
    check: &HealthCheck,
    key: String,
    rule: &str,
    category: Category,
    title: String,
    runbook: &str,
) -> Option<Finding> {
    if !check.raises_alert {
        return None;
    }
    let severity = severity_of(check.status)?;
    let mut details = check.details.clone();
    details.insert("duration".into(), json!(check.duration));
    Some(Finding {
        key,
        rule: rule.into(),
        severity,
        category,
        title,
        message: check.message.clone(),
        details,
        recommendations: check.recommendations.clone(),
        runbook: runbook.into(),
    })
}

/// A condition judged by one health check, and the alert it raises. The rule adds only what a
/// notification needs besides the check: category, a title (one per rule, whatever the
/// severity, so a receiver matching on it sees the alert resolve) and a runbook.
#[derive(Debug, Clone, Copy)]
pub struct CheckRule {
    pub id: &'static str,
    /// The check whose status this rule raises.
    pub check: &'static str,
    pub category: Category,
    pub title: &'static str,
    pub runbook: &'static str,
}

/// Name of the operations-log check the `failure-rate` rule raises. The `success-rate` check
/// carries the same verdict from the success side and raises nothing of its own.
pub const ERROR_RATE_CHECK: &str = "error-rate";
/// Name of the operations-log check the `slow-responses` rule raises.
pub const EXECUTION_TIME_CHECK: &str = "execution-time";

/// The rules that raise a health check, one each.
pub const CHECK_RULES: [CheckRule; 6] = [
    CheckRule {
        id: CODEX_UNAVAILABLE,
        check: AVAILABILITY_CHECK,
        category: Category::Availability,
        title: "Codex CLI Unavailable",
        runbook: "codex-cli-unavailable",
    },
    CheckRule {
        id: FAILURE_RATE,
        check: ERROR_RATE_CHECK,
        category: Category::Reliability,
        title: "High Codex failure rate",
        runbook: "high-failure-rate",
    },
    CheckRule {
        id: SLOW_RESPONSES,
        check: EXECUTION_TIME_CHECK,
        category: Category::Performance,
        title: "Slow Codex responses",
        runbook: "slow-responses",
    },
    CheckRule {
        id: MEMORY_USAGE,
        check: MEMORY_CHECK,
        category: Category::Resources,
        title: "High Codex memory usage",
        runbook: "memory-usage",
    },
    CheckRule {
        id: PROCESS_COUNT,
        check: PROCESS_COUNT_CHECK,
        category: Category::Resources,
        title: "High Codex process count",
        runbook: "high-process-count",
    },
    CheckRule {
        id: DISK_USAGE,
        check: DISK_USAGE_CHECK,
        category: Category::Resources,
        title: "Codex log volume filling up",
        runbook: "disk-usage",
    },
];

impl Rule for CheckRule {
    fn id(&self) -> &'static str {
        self.id
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let Some(check) = ctx
            .snapshot
            .report
            .checks
            .iter()
            .find(|c| c.name == self.check)
        else {
            return;
        };
        out.extend(finding_from_check(
            check,
            self.id.into(),
            self.id,
            self.category,
            self.title.into(),
            self.runbook,
        ));
    }
}

/// Raises the checks of the extra probes (`codex.probes`), one series per probe, at the
/// probe's `failureStatus`. Never the availability probe or the other checks: they have their
/// own rules.
pub struct ProbeFailing {
    pub probes: Vec<String>,
}

impl Rule for ProbeFailing {
    fn id(&self) -> &'static str {
        PROBE_FAILING
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        for check in &ctx.snapshot.report.checks {
            if !self.probes.contains(&check.name) {
                continue;
            }
            out.extend(finding_from_check(
                check,
                format!("{PROBE_FAILING}:{}", check.name),
                PROBE_FAILING,
                Category::Availability,
                format!("Codex probe {} failing", check.name),
                "codex-probe-failing",
            ));
        }
    }
}

/// Critical: the agent's own probing is broken — the monitor stopped publishing, or a probe
/// has not reported for more than twice its longest expected gap.
pub struct ProbeMachinery {
    /// (probe, longest expected ms between two results).
    pub probe_gaps: Vec<(String, u64)>,
}

/// Slack on top of twice the expected gap, so a loaded host does not page anyone.
const PROBE_OVERDUE_SLACK_MS: u64 = 10_000;

impl Rule for ProbeMachinery {
    fn id(&self) -> &'static str {
        PROBE_MACHINERY
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let snap = ctx.snapshot;
        let mut problems = Vec::new();
        let mut d = Map::new();
        let snapshot_age = ctx.now.saturating_sub(snap.report.timestamp);
        if snapshot_age > crate::monitor::LIVENESS_STALE_MS {
            problems.push(format!(
                "the monitor has not published for {snapshot_age} ms"
            ));
            d.insert("snapshotAgeMs".into(), json!(snapshot_age));
        }
        let agent_start = snap.report.timestamp.saturating_sub(snap.report.uptime);
        let mut overdue = Vec::new();
        for (name, gap) in &self.probe_gaps {
            let Some(p) = snap.metrics.probes.iter().find(|p| &p.name == name) else {
                continue;
            };
            let last = if p.runs > 0 { p.last_run } else { agent_start };
            let age = snap.report.timestamp.saturating_sub(last);
            if age > 2 * gap + PROBE_OVERDUE_SLACK_MS {
                overdue.push(json!({"probe": name, "lastResultAgeMs": age, "expectedGapMs": gap}));
                problems.push(format!("probe {name} has not reported for {age} ms"));
            }
        }
        if problems.is_empty() {
            return;
        }
        if !overdue.is_empty() {
            d.insert("overdueProbes".into(), Value::Array(overdue));
        }
        out.push(Finding {
            key: PROBE_MACHINERY.into(),
            rule: PROBE_MACHINERY.into(),
            severity: Severity::Critical,
            category: Category::Reliability,
            title: "Codex probe machinery failing".into(),
            message: format!("codex-sentinel cannot watch Codex: {}", problems.join("; ")),
            details: d,
            recommendations: strings(&[
                "Check the agent's log for errors",
                "Check the node for process or file-descriptor limits",
                "Restart codex-sentinel",
            ]),
            runbook: "probe-machinery-failure".into(),
        });
    }
}

/// Warning: Codex processes use more CPU than `cpuWarningPercent`.
pub struct CpuUsage {
    pub warning_percent: f64,
}

impl Rule for CpuUsage {
    fn id(&self) -> &'static str {
        CPU_USAGE
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let cpu = ctx.snapshot.report.performance.resource_metrics.cpu_usage;
        if cpu.current <= self.warning_percent {
            return;
        }
        out.push(Finding {
            key: CPU_USAGE.into(),
            rule: CPU_USAGE.into(),
            severity: Severity::Warning,
            category: Category::Resources,
            title: "High Codex CPU usage".into(),
            message: format!(
                "Codex processes use {}% CPU (threshold {}%)",
                round1(cpu.current),
                self.warning_percent
            ),
            details: details(&[
                ("currentPercent", json!(round1(cpu.current))),
                ("peakPercent", json!(round1(cpu.peak))),
                ("averagePercent", json!(round1(cpu.average))),
                ("thresholdPercent", json!(self.warning_percent)),
            ]),
            recommendations: strings(&[
                "Reduce concurrency (MAX_CONCURRENT_AUDITS=3)",
                "Check for runaway Codex processes in the detailed metrics",
            ]),
            runbook: "high-cpu".into(),
        });
    }
}

/// Warning: operations queue up (size or average wait over the thresholds).
pub struct QueueBacklog {
    pub size: f64,
    pub wait_ms: f64,
}

impl Rule for QueueBacklog {
    fn id(&self) -> &'static str {
        QUEUE_BACKLOG
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let q = &ctx
            .snapshot
            .report
            .performance
            .resource_metrics
            .queue_metrics;
        if q.current_size <= self.size && q.average_wait_time <= self.wait_ms {
            return;
        }
        out.push(Finding {
            key: QUEUE_BACKLOG.into(),
            rule: QUEUE_BACKLOG.into(),
            severity: Severity::Warning,
            category: Category::Performance,
            title: "Codex queue backlog".into(),
            message: format!(
                "{} operations queued, average wait {} ms (thresholds {} / {} ms)",
                q.current_size,
                q.average_wait_time.round(),
                self.size,
                self.wait_ms
            ),
            details: details(&[
                ("currentSize", json!(q.current_size)),
                ("peakSize", json!(q.peak_size)),
                ("averageWaitTime", json!(q.average_wait_time)),
                ("sizeThreshold", json!(self.size)),
                ("waitThreshold", json!(self.wait_ms)),
            ]),
            recommendations: strings(&[
                "Check whether Codex executions are slow or hanging",
                "Raise concurrency if the node has spare CPU and memory",
            ]),
            runbook: "queue-backlog".into(),
        });
    }
}

/// Info: a metric is worse than its `CODEX_PERF_BASELINE_*` value (one series per metric).
pub struct PerformanceDegradation {
    pub baselines: crate::config::Baselines,
    pub min_executions: u64,
}

impl Rule for PerformanceDegradation {
    fn id(&self) -> &'static str {
        PERFORMANCE_DEGRADATION
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let perf = &ctx.snapshot.report.performance;
        let b = &self.baselines;
        let enough = perf.execution_metrics.total_executions >= self.min_executions
            && perf.execution_metrics.total_executions > 0;
        let probed = ctx.snapshot.metrics.probes.iter().any(|p| p.runs > 0);
        // (series, metric, observed, baseline, unit, worse when above)
        let mut checks: Vec<(&str, &str, f64, f64, &str, bool)> = Vec::new();
        if let (Some(base), true) = (b.avg_time, enough) {
            let v = perf.execution_metrics.average_execution_time;
            checks.push((
                "avg-time",
                "average execution time",
                v,
                base as f64,
                "ms",
                true,
            ));
        }
        if let (Some(base), true) = (b.success_rate, enough) {
            let v = perf.reliability_metrics.success_rate;
            checks.push(("success-rate", "success rate", v, base, "%", false));
        }
        if let (Some(base), true) = (b.availability, probed) {
            let v = perf.reliability_metrics.availability;
            checks.push(("availability", "availability", v, base, "%", false));
        }
        if let Some(base) = b.memory_mb {
            let v = perf.resource_metrics.memory_usage.current;
            checks.push(("memory", "memory usage", v, base as f64, "MB", true));
        }
        if let Some(base) = b.max_processes {
            let v = perf.resource_metrics.process_count.current;
            checks.push(("processes", "process count", v, base as f64, "", true));
        }
        for (series, metric, observed, baseline, unit, above) in checks {
            let worse = if above {
                observed > baseline
            } else {
                observed < baseline
            };
            if !worse {
                continue;
            }
            out.push(Finding {
                key: format!("{PERFORMANCE_DEGRADATION}:{series}"),
                rule: PERFORMANCE_DEGRADATION.into(),
                severity: Severity::Info,
                category: Category::Performance,
                title: format!("Codex {metric} worse than baseline"),
                message: format!(
                    "Codex {metric} is {}{unit}, baseline {baseline}{unit}",
                    round1(observed)
                ),
                details: details(&[
                    ("metric", json!(series)),
                    ("observed", json!(round1(observed))),
                    ("baseline", json!(baseline)),
                ]),
                recommendations: strings(&[
                    "Compare with the last weeks' metrics to see whether the baseline is still right",
                    "Check recent deployments and Codex CLI upgrades",
                ]),
                runbook: "performance-degradation".into(),
            });
        }
    }
}
