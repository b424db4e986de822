//! The health checks judged from the operations log: `success-rate`, `error-rate` and
//! `execution-time`, against [`crate::monitor::limits::Limits`]. Their status is the one
//! judgement of these conditions: the alert rules raise it as it is.

use serde_json::{json, Map, Value};

use super::ExecutionStats;
use crate::monitor::health::Evaluated;
use crate::monitor::limits::Limits;
use crate::monitor::snapshot::{HealthCheck, Status};

impl ExecutionStats {
    /// Health checks `success-rate`, `error-rate` and `execution-time`, once executions exist.
    pub fn checks(&self, now: u64, limits: &Limits) -> Vec<Evaluated> {
        if !self.enabled || !self.has_executions() {
            return Vec::new();
        }
        let (w, _) = self.window(now);
        let m = w.metrics();
        let window_min = self.window_ms as f64 / 60_000.0;
        let mut base = Map::new();
        base.insert("window".into(), json!(self.window_ms));
        base.insert("executions".into(), json!(w.total));
        let check =
            |name: &str, status, message: String, details: Map<String, Value>, recs: &[&str]| {
                Evaluated {
                    check: HealthCheck {
                        name: name.into(),
                        status,
                        message,
                        timestamp: now,
                        duration: 0,
                        details,
                        recommendations: Vec::new(),
                        raises_alert: true,
                    },
                    recommendations: recs.iter().map(|s| s.to_string()).collect(),
                }
            };
        let too_few = w.total < limits.min_executions;
        let few_message = |what: &str| {
            format!(
                "{} executions in the last {window_min} min: too few to judge the {what} (at least {})",
                w.total, limits.min_executions
            )
        };
        let mut out = Vec::new();

        // One judgement for both rate checks: the error rate (failures and timeouts, i.e.
        // 100 − success rate) against the error-rate bands (see `monitor::limits`). The
        // success-rate check shows the same verdict from the success side.
        let success = w.percent(w.success);
        let errors = w.percent(w.failed + w.timed_out);
        let bands = limits.error_rate;
        let status = if too_few {
            Status::Healthy
        } else {
            bands.judge(errors)
        };
        let recs: &[&str] = &[
            "Look at reliabilityMetrics.recentFailures in /health/codex/metrics",
            "Increase CODEX_MAX_RETRIES if failures are transient",
            "Increase CODEX_OPERATION_TIMEOUT if most failures are timeouts",
            "Set CODEX_DEBUG=true in the application for detailed error logs",
        ];

        // The success-rate and error-rate checks share one verdict; their messages differ only
        // in the rate they name.
        let rate_message = |name: &str, value: f64| match status {
            _ if too_few => few_message(&name.to_lowercase()),
            Status::Healthy => format!("{name} {value:.1}% over the last {window_min} min"),
            _ => format!(
                "{name} {value:.1}% over the last {window_min} min: {} ({} failed, {} timed out)",
                band_text(status, bands.warning, bands.critical),
                w.failed,
                w.timed_out
            ),
        };

        let mut d = base.clone();
        d.insert("successRate".into(), json!(success));
        d.insert("minSuccessRate".into(), json!(100.0 - bands.critical));
        let message = rate_message("Success rate", success);
        out.push(check("success-rate", status, message, d, recs));

        let mut d = base.clone();
        d.insert("errorRate".into(), json!(errors));
        d.insert("failureRate".into(), json!(w.percent(w.failed)));
        d.insert("timeoutRate".into(), json!(w.percent(w.timed_out)));
        d.insert("maxErrorRate".into(), json!(bands.warning));
        d.insert("criticalErrorRate".into(), json!(bands.critical));
        let message = rate_message("Error rate", errors);
        out.push(check("error-rate", status, message, d, recs));

        // execution-time: p95 against maxExecutionTime, p95/p99 against their baselines (the
        // average against its baseline is the `performance-degradation` info event).
        let mut d = base;
        d.insert(
            "averageExecutionTime".into(),
            json!(m.average_execution_time),
        );
        d.insert("p95ExecutionTime".into(), json!(m.p95_execution_time));
        d.insert("p99ExecutionTime".into(), json!(m.p99_execution_time));
        d.insert("maxExecutionTime".into(), json!(limits.max_execution_time));
        let mut over_baseline = Vec::new();
        for (name, value, baseline) in [
            ("p95", m.p95_execution_time, limits.p95_baseline),
            ("p99", m.p99_execution_time, limits.p99_baseline),
        ] {
            if let Some(b) = baseline {
                d.insert(format!("{name}Baseline"), json!(b));
                if value > b {
                    over_baseline.push(format!("{name} {value:.0} ms > baseline {b} ms"));
                }
            }
        }
        let (status, message) = if w.total == 0 {
            (
                Status::Healthy,
                format!("No executions in the last {window_min} min"),
            )
        } else if too_few {
            (Status::Healthy, few_message("execution times"))
        } else if m.p95_execution_time > limits.max_execution_time {
            (
                Status::Warning,
                format!(
                    "p95 execution time {:.0} ms is above {} ms over the last {window_min} min",
                    m.p95_execution_time, limits.max_execution_time
                ),
            )
        } else if !over_baseline.is_empty() {
            (
                Status::Warning,
                format!(
                    "Execution times above baseline: {}",
                    over_baseline.join(", ")
                ),
            )
        } else {
            (
                Status::Healthy,
                format!(
                    "p95 execution time {:.0} ms, average {:.0} ms over the last {window_min} min",
                    m.p95_execution_time, m.average_execution_time
                ),
            )
        };
        out.push(check(
            "execution-time",
            status,
            message,
            d,
            &[
                "Increase AUDIT_TIMEOUT_SECONDS for complex operations",
                "Reduce MAX_CONCURRENT_AUDITS to avoid resource contention",
                "Enable ENABLE_AUDIT_CACHING to reduce repeated work",
            ],
        ));
        out
    }
}

/// Which level an unhealthy error rate is above: `above the warning level of 5%`.
fn band_text(status: Status, warning: f64, critical: f64) -> String {
    if status >= Status::Critical {
        format!("error rate above the critical level of {critical}%")
    } else {
        format!("error rate above the warning level of {warning}%")
    }
}
