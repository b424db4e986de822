//! Alert rules: pure functions of a snapshot. Each yields zero or more [`Finding`]s, one per
//! series that is in an alerting condition *now*; hysteresis, cooldown and the rest are the
//! engine's business. Thresholds come from the configuration (health thresholds, performance
//! baselines, `alerting.rules`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Category, Severity};
use crate::config::{AlertingConfig, Config};
use crate::monitor::health::AVAILABILITY_CHECK;
use crate::monitor::snapshot::{Snapshot, Status};

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
    PERFORMANCE_DEGRADATION,
    CONFIGURATION_CHANGED,
];

/// The rule ids named in `alerting.rules.disabled` must exist: a typo would silently leave the
/// rule on. Returns the bad key, its value and why, as [`crate::config::Check::bad`] reports them.
pub fn validate(alerting: &AlertingConfig) -> Result<(), (&'static str, String, String)> {
    for id in &alerting.rules.disabled {
        if !RULE_IDS.contains(&id.as_str()) {
            return Err((
                "alerting.rules.disabled",
                format!("{id:?}"),
                format!("unknown rule; known: {}", RULE_IDS.join(", ")),
            ));
        }
    }
    Ok(())
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
pub const PERFORMANCE_DEGRADATION: &str = "performance-degradation";
/// Raised by the engine when the configuration differs from the previous run's.
pub const CONFIGURATION_CHANGED: &str = "configuration-changed";
/// Raised by the engine when a maintenance window starts (resolved when it ends).
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
    let probe_gaps = if hm.enabled {
        crate::monitor::probes::specs(config)
            .iter()
            .map(|s| {
                let attempts = u64::from(s.retries) + 1;
                let per_run = attempts * s.timeout.as_millis() as u64
                    + u64::from(s.retries) * s.retry_delay.as_millis() as u64;
                (s.name.clone(), s.interval.as_millis() as u64 + per_run)
            })
            .collect()
    } else {
        Vec::new()
    };
    let all: Vec<Box<dyn Rule>> = vec![
        Box::new(CodexUnavailable),
        Box::new(ProbeFailing),
        Box::new(ProbeMachinery { probe_gaps }),
        Box::new(FailureRate {
            warning: ar.failure_rate_warning,
            critical: ar.failure_rate_critical,
            min_executions: ar.min_executions,
        }),
        Box::new(SlowResponses {
            max_execution_time: hm.thresholds.max_execution_time as f64,
            baseline_p95: config.baselines.p95_time.map(|v| v as f64),
            baseline_p99: config.baselines.p99_time.map(|v| v as f64),
            min_executions: ar.min_executions,
        }),
        Box::new(MemoryUsage {
            warning_mb: hm.thresholds.max_memory_usage as f64,
            critical_mb: ar
                .memory_critical_mb
                .unwrap_or(hm.thresholds.max_memory_usage * 2) as f64,
        }),
        Box::new(CpuUsage {
            warning_percent: ar.cpu_warning_percent,
        }),
        Box::new(ProcessCount {
            max: hm.thresholds.max_concurrent_processes as f64,
        }),
        Box::new(QueueBacklog {
            size: ar.queue_backlog,
            wait_ms: ar.queue_wait,
        }),
        Box::new(PerformanceDegradation {
            baselines: config.baselines.clone(),
            min_executions: ar.min_executions,
        }),
    ];
    all.into_iter()
        .filter(|r| !ar.disabled.iter().any(|d| d == r.id()))
        .collect()
}

/// Critical: the availability probe finds Codex unusable (not found, crashing, hanging).
pub struct CodexUnavailable;

impl Rule for CodexUnavailable {
    fn id(&self) -> &'static str {
        CODEX_UNAVAILABLE
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let report = &ctx.snapshot.report;
        let Some(check) = report
            .checks
            .iter()
            .find(|c| c.name == AVAILABILITY_CHECK && c.status >= Status::Critical)
        else {
            return;
        };
        let mut d = Map::new();
        for key in [
            "executable",
            "error",
            "exitCode",
            "signal",
            "timedOut",
            "stderr",
        ] {
            if let Some(v) = check.details.get(key) {
                d.insert(key.into(), v.clone());
            }
        }
        d.insert("duration".into(), json!(check.duration));
        d.insert(
            "retryCount".into(),
            check.details.get("retryCount").cloned().unwrap_or(json!(0)),
        );
        let mut recommendations = report.recommendations.clone();
        if recommendations.is_empty() {
            recommendations = strings(&[
                "Verify Codex CLI installation",
                "Restart the service if necessary",
            ]);
        } else if !recommendations.iter().any(|r| r.starts_with("Restart")) {
            recommendations.push("Restart the service if necessary".into());
        }
        out.push(Finding {
            key: CODEX_UNAVAILABLE.into(),
            rule: CODEX_UNAVAILABLE.into(),
            severity: Severity::Critical,
            category: Category::Availability,
            title: "Codex CLI Unavailable".into(),
            message: check.message.clone(),
            details: d,
            recommendations,
            runbook: "codex-cli-unavailable".into(),
        });
    }
}

/// Warning or critical (the probe's `failureStatus`): an extra probe fails.
pub struct ProbeFailing;

impl Rule for ProbeFailing {
    fn id(&self) -> &'static str {
        PROBE_FAILING
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        for check in &ctx.snapshot.report.checks {
            if check.name == AVAILABILITY_CHECK || check.status == Status::Healthy {
                continue;
            }
            let severity = if check.status >= Status::Critical {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let mut d = check.details.clone();
            d.insert("check".into(), json!(check.name));
            d.insert("duration".into(), json!(check.duration));
            out.push(Finding {
                key: format!("{PROBE_FAILING}:{}", check.name),
                rule: PROBE_FAILING.into(),
                severity,
                category: Category::Availability,
                title: format!("Codex probe {} failing", check.name),
                message: check.message.clone(),
                details: d,
                recommendations: strings(&[
                    "Run the probe's command by hand to see the error",
                    "Check the Codex CLI's login and configuration",
                ]),
                runbook: "codex-probe-failing".into(),
            });
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

/// Critical above `failureRateCritical`, warning above `failureRateWarning` (one series that
/// escalates, so a worsening rate does not resolve one alert to raise another).
pub struct FailureRate {
    pub warning: f64,
    pub critical: f64,
    pub min_executions: u64,
}

impl Rule for FailureRate {
    fn id(&self) -> &'static str {
        FAILURE_RATE
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let perf = &ctx.snapshot.report.performance;
        let total = perf.execution_metrics.total_executions;
        if total < self.min_executions || total == 0 {
            return;
        }
        let r = &perf.reliability_metrics;
        let rate = (100.0 - r.success_rate).max(r.failure_rate);
        let (severity, title, threshold) = if rate > self.critical {
            (Severity::Critical, "High Codex failure rate", self.critical)
        } else if rate > self.warning {
            (
                Severity::Warning,
                "Moderate Codex failure rate",
                self.warning,
            )
        } else {
            return;
        };
        out.push(Finding {
            key: FAILURE_RATE.into(),
            rule: FAILURE_RATE.into(),
            severity,
            category: Category::Reliability,
            title: title.into(),
            message: format!(
                "{}% of Codex executions failed in the window (threshold {threshold}%)",
                round1(rate)
            ),
            details: details(&[
                ("failureRate", json!(round1(rate))),
                ("threshold", json!(threshold)),
                ("totalExecutions", json!(total)),
                (
                    "failedExecutions",
                    json!(perf.execution_metrics.failed_executions),
                ),
                (
                    "timedOutExecutions",
                    json!(perf.execution_metrics.timed_out_executions),
                ),
                (
                    "recentFailures",
                    json!(r.recent_failures.iter().take(5).collect::<Vec<_>>()),
                ),
            ]),
            recommendations: strings(&[
                "Look at recentFailures and the operations log for the error pattern",
                "Increase retry attempts (CODEX_MAX_RETRIES=3)",
                "Increase the operation timeout (CODEX_OPERATION_TIMEOUT=45000)",
                "Enable detailed error logging (CODEX_DEBUG=true)",
            ]),
            runbook: "high-failure-rate".into(),
        });
    }
}

/// Warning: p95 above `maxExecutionTime`, or p95/p99 above their baselines.
pub struct SlowResponses {
    pub max_execution_time: f64,
    pub baseline_p95: Option<f64>,
    pub baseline_p99: Option<f64>,
    pub min_executions: u64,
}

impl Rule for SlowResponses {
    fn id(&self) -> &'static str {
        SLOW_RESPONSES
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let m = &ctx.snapshot.report.performance.execution_metrics;
        if m.total_executions < self.min_executions || m.total_executions == 0 {
            return;
        }
        let mut reasons = Vec::new();
        if m.p95_execution_time > self.max_execution_time {
            reasons.push(format!(
                "p95 {} ms > maxExecutionTime {} ms",
                m.p95_execution_time.round(),
                self.max_execution_time
            ));
        }
        if let Some(b) = self.baseline_p95.filter(|b| m.p95_execution_time > *b) {
            reasons.push(format!(
                "p95 {} ms > baseline {b} ms",
                m.p95_execution_time.round()
            ));
        }
        if let Some(b) = self.baseline_p99.filter(|b| m.p99_execution_time > *b) {
            reasons.push(format!(
                "p99 {} ms > baseline {b} ms",
                m.p99_execution_time.round()
            ));
        }
        if reasons.is_empty() {
            return;
        }
        out.push(Finding {
            key: SLOW_RESPONSES.into(),
            rule: SLOW_RESPONSES.into(),
            severity: Severity::Warning,
            category: Category::Performance,
            title: "Slow Codex responses".into(),
            message: format!("Codex executions are slow: {}", reasons.join(", ")),
            details: details(&[
                ("p95ExecutionTime", json!(m.p95_execution_time)),
                ("p99ExecutionTime", json!(m.p99_execution_time)),
                ("averageExecutionTime", json!(m.average_execution_time)),
                ("maxExecutionTime", json!(self.max_execution_time)),
                ("baselineP95", json!(self.baseline_p95)),
                ("baselineP99", json!(self.baseline_p99)),
                ("totalExecutions", json!(m.total_executions)),
            ]),
            recommendations: strings(&[
                "Check system load (CPU, memory) on the node",
                "Reduce concurrency to avoid resource contention (MAX_CONCURRENT_AUDITS=3)",
                "Enable caching to reduce repeated work (ENABLE_AUDIT_CACHING=true)",
            ]),
            runbook: "slow-responses".into(),
        });
    }
}

/// Warning above `maxMemoryUsage`, critical (exhaustion) above `memoryCriticalMb`.
pub struct MemoryUsage {
    pub warning_mb: f64,
    pub critical_mb: f64,
}

impl Rule for MemoryUsage {
    fn id(&self) -> &'static str {
        MEMORY_USAGE
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let mem = ctx
            .snapshot
            .report
            .performance
            .resource_metrics
            .memory_usage;
        let (severity, title, threshold) = if mem.current > self.critical_mb {
            (
                Severity::Critical,
                "Codex memory exhaustion",
                self.critical_mb,
            )
        } else if mem.current > self.warning_mb {
            (
                Severity::Warning,
                "High Codex memory usage",
                self.warning_mb,
            )
        } else {
            return;
        };
        out.push(Finding {
            key: MEMORY_USAGE.into(),
            rule: MEMORY_USAGE.into(),
            severity,
            category: Category::Resources,
            title: title.into(),
            message: format!(
                "Codex processes use {} MB of memory (threshold {threshold} MB)",
                round1(mem.current)
            ),
            details: details(&[
                ("currentMb", json!(round1(mem.current))),
                ("peakMb", json!(round1(mem.peak))),
                ("averageMb", json!(round1(mem.average))),
                ("thresholdMb", json!(threshold)),
            ]),
            recommendations: strings(&[
                "Reduce session history size (MAX_SESSION_HISTORY=500)",
                "Enable more aggressive cleanup (SESSION_CLEANUP_INTERVAL=1800000)",
                "Reduce concurrent sessions (MAX_CONCURRENT_SESSIONS=25)",
            ]),
            runbook: "memory-usage".into(),
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

/// Warning: more Codex processes than `maxConcurrentProcesses`.
pub struct ProcessCount {
    pub max: f64,
}

impl Rule for ProcessCount {
    fn id(&self) -> &'static str {
        PROCESS_COUNT
    }

    fn evaluate(&self, ctx: &RuleContext<'_>, out: &mut Vec<Finding>) {
        let p = ctx
            .snapshot
            .report
            .performance
            .resource_metrics
            .process_count;
        if p.current <= self.max {
            return;
        }
        out.push(Finding {
            key: PROCESS_COUNT.into(),
            rule: PROCESS_COUNT.into(),
            severity: Severity::Warning,
            category: Category::Resources,
            title: "High Codex process count".into(),
            message: format!(
                "{} Codex processes are running (threshold {})",
                p.current, self.max
            ),
            details: details(&[
                ("current", json!(p.current)),
                ("peak", json!(p.peak)),
                ("threshold", json!(self.max)),
            ]),
            recommendations: strings(&[
                "Reduce concurrency (MAX_CONCURRENT_AUDITS, MAX_CONCURRENT_SESSIONS)",
                "Look for Codex processes that never exit (hung executions)",
            ]),
            runbook: "high-process-count".into(),
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
