//! The immutable picture the monitor publishes: the specification's JSON shapes (camelCase,
//! epoch milliseconds) plus the metric samples every exporter reads. Renderings are made lazily,
//! once per snapshot, so a request costs a clone of ready bytes.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog::MetricDef;

/// Health status, ordered from best to worst; also the `check` exit code (Nagios convention).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Healthy,
    Warning,
    Critical,
    Unavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unavailable => "unavailable",
        }
    }

    /// 0 healthy, 1 warning, 2 critical, 3 unavailable.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether HTTP health endpoints answer 200 (healthy, warning) or 503.
    pub fn is_serving(self) -> bool {
        self <= Status::Warning
    }
}

/// One entry of `checks[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub name: String,
    pub status: Status,
    pub message: String,
    /// Epoch ms when the check was made.
    pub timestamp: u64,
    /// ms the check took.
    pub duration: u64,
    pub details: serde_json::Map<String, serde_json::Value>,
    /// What an operator should do about this check (the report merges them, worst first); the
    /// alert a check raises carries the same texts. Not in the specification's JSON.
    #[serde(skip)]
    pub recommendations: Vec<String>,
    /// Whether an unhealthy status is a judgement of Codex that alert rules raise. False for
    /// placeholders about the agent itself (first probe not done yet, processes not sampled):
    /// they show in `/health/codex` and `check` but page nobody.
    #[serde(skip, default = "yes")]
    pub raises_alert: bool,
}

fn yes() -> bool {
    true
}

/// `GET /health/codex`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub overall: Status,
    pub timestamp: u64,
    /// ms since the agent started.
    pub uptime: u64,
    pub checks: Vec<HealthCheck>,
    pub performance: Performance,
    pub alerts: Vec<serde_json::Value>,
    pub recommendations: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    pub execution_metrics: ExecutionMetrics,
    pub resource_metrics: ResourceMetrics,
    pub reliability_metrics: ReliabilityMetrics,
}

/// The specification's `ExecutionMetrics`; times in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionMetrics {
    pub total_executions: u64,
    pub successful_executions: u64,
    pub failed_executions: u64,
    pub timed_out_executions: u64,
    pub average_execution_time: f64,
    pub median_execution_time: f64,
    pub p95_execution_time: f64,
    pub p99_execution_time: f64,
    pub execution_time_distribution: ExecutionTimeDistribution,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionTimeDistribution {
    #[serde(rename = "under1s")]
    pub under_1s: u64,
    #[serde(rename = "under5s")]
    pub under_5s: u64,
    #[serde(rename = "under10s")]
    pub under_10s: u64,
    #[serde(rename = "under30s")]
    pub under_30s: u64,
    #[serde(rename = "under60s")]
    pub under_60s: u64,
    #[serde(rename = "over60s")]
    pub over_60s: u64,
}

/// current / peak / average over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat3 {
    pub current: f64,
    pub peak: f64,
    pub average: f64,
}

/// The specification's `ResourceMetrics`: memory in MB, CPU in percent of one core.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetrics {
    pub memory_usage: Stat3,
    pub cpu_usage: Stat3,
    pub process_count: Stat3,
    pub queue_metrics: QueueMetrics,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueMetrics {
    pub current_size: f64,
    pub peak_size: f64,
    /// ms.
    pub average_wait_time: f64,
}

/// The specification's `ReliabilityMetrics`; rates in percent, times in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReliabilityMetrics {
    pub success_rate: f64,
    pub failure_rate: f64,
    pub timeout_rate: f64,
    pub retry_rate: f64,
    pub mtbf: f64,
    pub mttr: f64,
    pub availability: f64,
    pub recent_failures: Vec<RecentFailure>,
}

impl Default for ReliabilityMetrics {
    /// No executions and no probes yet: nothing has failed, so rates are vacuously 100/0.
    fn default() -> Self {
        ReliabilityMetrics {
            success_rate: 100.0,
            failure_rate: 0.0,
            timeout_rate: 0.0,
            retry_rate: 0.0,
            mtbf: 0.0,
            mttr: 0.0,
            availability: 100.0,
            recent_failures: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentFailure {
    pub timestamp: u64,
    pub operation_type: String,
    pub error: String,
    pub duration: f64,
}

/// `GET /health/codex/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub status: Status,
    pub timestamp: u64,
    pub codex_available: bool,
    pub active_processes: u64,
    pub success_rate: f64,
}

/// `GET /health/codex/metrics`: everything measured, without the health verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    pub timestamp: u64,
    pub uptime: u64,
    pub performance: Performance,
    /// Per probe: runs and last outcome.
    pub probes: Vec<ProbeSummary>,
    /// Extra sections contributed by sources (e.g. top processes, operations-log counters).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSummary {
    pub name: String,
    pub runs: u64,
    pub successes: u64,
    pub failures: u64,
    pub timeouts: u64,
    pub retries: u64,
    /// ms of the last run's last attempt.
    pub last_duration: u64,
    /// Epoch ms when the last run started.
    pub last_run: u64,
    /// Worst lateness of a run against its schedule, ms.
    pub max_start_delay: u64,
}

/// A metric value at publish time.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Gauge(f64),
    /// Cumulative since start.
    Counter(f64),
    /// Per-bucket (not cumulative) counts: one per bound of the definition, plus one for +Inf.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// One series: a catalog entry, its label values (in the definition's order) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub def: &'static MetricDef,
    pub labels: Vec<String>,
    pub value: SampleValue,
}

/// What the monitor publishes: reports, samples, and lazily made renderings.
#[derive(Debug)]
pub struct Snapshot {
    pub report: HealthReport,
    pub metrics: MetricsReport,
    pub samples: Vec<Sample>,
    pub codex_available: bool,
    pub active_processes: u64,
    /// Renderings made on first request, one cell per [`Rendering`].
    renderings: [OnceLock<Bytes>; Rendering::COUNT],
}

/// The encodings a snapshot is served in. The JSON ones are the snapshot's own shape; the
/// others are made by their readers (`export::prometheus`) and only cached here, once per
/// snapshot, however many requests ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    HealthJson,
    StatusJson,
    MetricsJson,
    PrometheusText,
    OpenMetricsText,
}

impl Rendering {
    const COUNT: usize = 5;
}

impl Snapshot {
    pub fn new(
        report: HealthReport,
        metrics: MetricsReport,
        samples: Vec<Sample>,
        codex_available: bool,
        active_processes: u64,
    ) -> Self {
        Snapshot {
            report,
            metrics,
            samples,
            codex_available,
            active_processes,
            renderings: Default::default(),
        }
    }

    pub fn status(&self) -> StatusReport {
        StatusReport {
            status: self.report.overall,
            timestamp: self.report.timestamp,
            codex_available: self.codex_available,
            active_processes: self.active_processes,
            success_rate: self.report.performance.reliability_metrics.success_rate,
        }
    }

    /// The rendering `r`, made by `render` on first use and cached for this snapshot.
    pub fn rendered(&self, r: Rendering, render: impl FnOnce(&Snapshot) -> Bytes) -> Bytes {
        self.renderings[r as usize]
            .get_or_init(|| render(self))
            .clone()
    }

    pub fn health_json(&self) -> Bytes {
        self.rendered(Rendering::HealthJson, |s| to_json(&s.report))
    }

    pub fn status_json(&self) -> Bytes {
        self.rendered(Rendering::StatusJson, |s| to_json(&s.status()))
    }

    pub fn metrics_json(&self) -> Bytes {
        self.rendered(Rendering::MetricsJson, |s| to_json(&s.metrics))
    }
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value).expect("report serializes").into()
}
