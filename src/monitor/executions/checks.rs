//! The health checks judged from the operations log: `success-rate`, `error-rate` and
//! `execution-time`, against the thresholds and the baselines.

use serde_json::{json, Map, Value};

use super::{ExecutionStats, MIN_EXECUTIONS_FOR_RATES};
use crate::monitor::health::Evaluated;
use crate::monitor::snapshot::{HealthCheck, Status};

impl ExecutionStats {
    /// Health checks `success-rate`, `error-rate` and `execution-time`, once executions exist.
    pub fn checks(&self, now: u64) -> Vec<Evaluated> {
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
                    },
                    recommendations: recs.iter().map(|s| s.to_string()).collect(),
                }
            };
        let too_few = w.total < MIN_EXECUTIONS_FOR_RATES;
        let few_message = |what: &str| {
            format!(
                "{} executions in the last {window_min} min: too few to judge the {what} (at least {MIN_EXECUTIONS_FOR_RATES})",
                w.total
            )
        };
        let mut out = Vec::new();

        // success-rate: critical below minSuccessRate (the specification's "high failure
        // rate"), warning below the baseline when one is set.
        let success = w.percent(w.success);
        let mut d = base.clone();
        d.insert("successRate".into(), json!(success));
        d.insert("minSuccessRate".into(), json!(self.min_success_rate));
        if let Some(b) = self.baselines.success_rate {
            d.insert("baseline".into(), json!(b));
        }
        let (status, message) = if too_few {
            (Status::Healthy, few_message("success rate"))
        } else if success < self.min_success_rate {
            (
                Status::Critical,
                format!(
                    "Success rate {success:.1}% is below {}% over the last {window_min} min",
                    self.min_success_rate
                ),
            )
        } else if let Some(b) = self.baselines.success_rate.filter(|b| success < *b) {
            (
                Status::Warning,
                format!("Success rate {success:.1}% is below the baseline {b}%"),
            )
        } else {
            (
                Status::Healthy,
                format!("Success rate {success:.1}% over the last {window_min} min"),
            )
        };
        out.push(check(
            "success-rate",
            status,
            message,
            d,
            &[
                "Look at reliabilityMetrics.recentFailures in /health/codex/metrics",
                "Increase CODEX_MAX_RETRIES if failures are transient",
                "Increase CODEX_OPERATION_TIMEOUT if most failures are timeouts",
                "Set CODEX_DEBUG=true in the application for detailed error logs",
            ],
        ));

        // error-rate: everything that did not succeed (failures and timeouts).
        let errors = w.percent(w.failed + w.timed_out);
        let mut d = base.clone();
        d.insert("errorRate".into(), json!(errors));
        d.insert("failureRate".into(), json!(w.percent(w.failed)));
        d.insert("timeoutRate".into(), json!(w.percent(w.timed_out)));
        d.insert("maxErrorRate".into(), json!(self.max_error_rate));
        let (status, message) = if too_few {
            (Status::Healthy, few_message("error rate"))
        } else if errors > self.max_error_rate {
            (
                Status::Warning,
                format!(
                    "Error rate {errors:.1}% is above {}% over the last {window_min} min ({} failed, {} timed out)",
                    self.max_error_rate, w.failed, w.timed_out
                ),
            )
        } else {
            (
                Status::Healthy,
                format!("Error rate {errors:.1}% over the last {window_min} min"),
            )
        };
        out.push(check(
            "error-rate",
            status,
            message,
            d,
            &[
                "Look at reliabilityMetrics.recentFailures in /health/codex/metrics",
                "Increase CODEX_MAX_RETRIES if failures are transient",
                "Set CODEX_DEBUG=true in the application for detailed error logs",
            ],
        ));

        // execution-time: p95 against maxExecutionTime, then avg/p95/p99 against baselines.
        let mut d = base;
        d.insert(
            "averageExecutionTime".into(),
            json!(m.average_execution_time),
        );
        d.insert("p95ExecutionTime".into(), json!(m.p95_execution_time));
        d.insert("p99ExecutionTime".into(), json!(m.p99_execution_time));
        d.insert("maxExecutionTime".into(), json!(self.max_execution_time));
        let mut over_baseline = Vec::new();
        for (name, value, baseline) in [
            ("average", m.average_execution_time, self.baselines.avg_time),
            ("p95", m.p95_execution_time, self.baselines.p95_time),
            ("p99", m.p99_execution_time, self.baselines.p99_time),
        ] {
            if let Some(b) = baseline {
                d.insert(format!("{name}Baseline"), json!(b));
                if w.total > 0 && value > b as f64 {
                    over_baseline.push(format!("{name} {value:.0} ms > baseline {b} ms"));
                }
            }
        }
        let (status, message) = if w.total == 0 {
            (
                Status::Healthy,
                format!("No executions in the last {window_min} min"),
            )
        } else if m.p95_execution_time > self.max_execution_time as f64 {
            (
                Status::Warning,
                format!(
                    "p95 execution time {:.0} ms is above {} ms over the last {window_min} min",
                    m.p95_execution_time, self.max_execution_time
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
