//! Exporters: the push exporters (OTLP, StatsD) and the Prometheus exposition, each deriving its
//! names from the one metric catalog ([`crate::catalog`]).
//!
//! A push exporter implements [`PushExporter`] and is listed once in [`REGISTRY`]; [`start`]
//! runs each enabled one on its own task in the one scheduling loop ([`run`]): interval,
//! backoff, rate-limited failure log ([`FailureLog`]) and the error counter
//! ([`ExportErrors`], published as `codex_sentinel_export_errors_total{exporter}`). A dead, slow
//! or refusing sink costs its own task time, never a probe or an HTTP request.
//!
//! Adding an exporter: one file implementing [`PushExporter`] plus one line in [`REGISTRY`].

pub mod deltas;
pub mod docs;
pub mod filter;
pub mod otlp;
pub mod otlp_limits;
pub mod otlp_reports;
pub mod prometheus;
pub mod semconv;
pub mod statsd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::config::Config;
use crate::monitor::observed::{Observed, ObservedSender};
use crate::monitor::snapshot::Snapshot;
use crate::telemetry::Telemetry;

/// A configuration problem: (key, value, why).
pub type Problem = (&'static str, String, String);

/// Why one export failed: the error and its causes (formatted with
/// [`crate::logging::error_chain`] when logged).
pub type ExportError = Box<dyn std::error::Error + Send + Sync>;

/// A push exporter: receives the individual values the monitor observed and, every
/// [`interval`](PushExporter::interval), sends the latest snapshot.
///
/// Shutdown: the loop abandons an [`export`](PushExporter::export) in flight at its next
/// `.await` and then gives [`final_export`](PushExporter::final_export) one last try. So what an
/// implementation must never leave half done — a StatsD batch whose counter deltas are already
/// taken would be resent in part — it does without awaiting, after its last `.await`; what may
/// be abandoned safely — an OTLP request, which the SDK rebuilds from its aggregation — it awaits.
#[async_trait::async_trait]
pub trait PushExporter: Send {
    /// The `exporter` label value and log field.
    fn name(&self) -> &'static str;

    fn interval(&self) -> Duration;

    /// Logs where it sends to, once, when its task starts.
    fn log_start(&self);

    /// Takes values observed since the last call (execution and probe durations). Must not
    /// block: it runs between exports on the exporter's task.
    fn observe(&mut self, observed: &Observed);

    /// One export of `snapshot` and of what was observed since the last export.
    async fn export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError>;

    /// The last export at shutdown, within the agent's shutdown deadline.
    async fn final_export(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), ExportError>;
}

/// Builds an exporter from configuration: `Ok(None)` when it is off. Must do no I/O (it also
/// validates configurations that are never run).
pub type Configure = fn(&Config) -> Result<Option<Box<dyn PushExporter>>, Problem>;

/// Every push exporter: its `exporter` label value and how it is configured.
pub const REGISTRY: &[(&str, Configure)] = &[
    (otlp::EXPORTER, otlp::configure),
    (statsd::EXPORTER, statsd::configure),
];

/// Failed export cycles per exporter (`codex_sentinel_export_errors_total{exporter}`), keyed by
/// the exporter's own name, counted into the agent's telemetry, which the monitor publishes.
#[derive(Debug, Clone)]
pub struct ExportErrors {
    telemetry: Telemetry,
}

impl ExportErrors {
    /// Publishes every registered exporter's series, at zero until it fails (also when it is
    /// off).
    pub fn new(telemetry: Telemetry) -> Self {
        for (exporter, _) in REGISTRY {
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

/// Checks the exporter settings that serde cannot: the first problem as (key, value, why).
pub fn validate(config: &Config) -> Result<(), Problem> {
    filter::MetricFilter::from_config(config)?;
    for (_, configure) in REGISTRY {
        configure(config)?;
    }
    Ok(())
}

/// Series a backend stores for `samples`: one per gauge or counter sample; a classic histogram
/// one per bucket plus `+Inf`, `_sum` and `_count` (as Prometheus stores them).
pub fn series_count(samples: &[crate::monitor::snapshot::Sample]) -> usize {
    samples
        .iter()
        .map(|s| match s.def.kind {
            catalog::MetricKind::Histogram => s.def.buckets.len() + 3,
            _ => 1,
        })
        .sum()
}

/// Starts every enabled exporter on its own task in `tasks`, and logs how many series the
/// agent pushes now — after `export.metrics` ([`filter`]) — and how many `/metrics` shows (the
/// fleet's cost per agent; it grows with operation types and probes).
pub fn start(
    config: &Config,
    snapshots: &watch::Receiver<Arc<Snapshot>>,
    observed: &ObservedSender,
    errors: &Arc<ExportErrors>,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    // Validated with the configuration at load: an error here cannot happen.
    let filter = Arc::new(filter::MetricFilter::from_config(config).unwrap_or_default());
    let (series, prometheus_series) = {
        let snapshot = snapshots.borrow();
        (
            series_count(&filter.snapshot(&snapshot).samples),
            series_count(&snapshot.samples),
        )
    };
    tracing::info!(
        series,
        prometheus_series,
        filtered = !filter.is_empty(),
        "metric series at start (pushed; on /metrics)"
    );
    for (_, configure) in REGISTRY {
        if let Ok(Some(exporter)) = configure(config) {
            tasks.spawn(run(
                exporter,
                filter.clone(),
                snapshots.clone(),
                observed.subscribe(),
                errors.clone(),
                shutdown.clone(),
            ));
        }
    }
}

/// Most export cycles a failing exporter skips between attempts (see [`FailureLog::backoff_skips`]).
pub const MAX_BACKOFF_SKIPS: u64 = 5;

/// The scheduling loop every push exporter runs in: takes observed values as they come,
/// exports every interval, backs off while failing (skipped cycles collect nothing, so nothing
/// but the failed batch is lost), counts and logs failures, and exports once more at shutdown.
/// The exporter sees only the metrics `filter` allows.
pub async fn run(
    mut exporter: Box<dyn PushExporter>,
    filter: Arc<filter::MetricFilter>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    mut observed: broadcast::Receiver<Arc<Observed>>,
    errors: Arc<ExportErrors>,
    shutdown: CancellationToken,
) {
    let name = exporter.name();
    exporter.log_start();
    let mut log = FailureLog::new(name);
    let interval = exporter.interval();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut skip = 0u64;
    let mut observing = true;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = observed.recv(), if observing => {
                match batch {
                    Ok(batch) => exporter.observe(&filter.observed(&batch)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(exporter = name, batches = n, "exporter fell behind the monitor: observed values lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => observing = false,
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        if skip > 0 {
            skip -= 1;
            continue;
        }
        take_observed(&mut observed, &filter, exporter.as_mut());
        let snapshot = filter.snapshot(&snapshots.borrow());
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = exporter.export(&snapshot) => r,
        };
        match result {
            Ok(()) => log.success(),
            Err(e) => {
                errors.increment(name);
                log.failure(&crate::logging::error_chain(&*e));
                skip = log.backoff_skips(MAX_BACKOFF_SKIPS);
            }
        }
    }
    take_observed(&mut observed, &filter, exporter.as_mut());
    let snapshot = filter.snapshot(&snapshots.borrow());
    match exporter.final_export(&snapshot).await {
        Ok(()) => tracing::debug!(exporter = name, "final export sent"),
        Err(e) => {
            errors.increment(name);
            tracing::warn!(exporter = name, error = %crate::logging::error_chain(&*e), "final export failed");
        }
    }
}

/// Hands the exporter every batch already queued, so an export includes all values observed
/// before it.
fn take_observed(
    observed: &mut broadcast::Receiver<Arc<Observed>>,
    filter: &filter::MetricFilter,
    exporter: &mut dyn PushExporter,
) {
    loop {
        match observed.try_recv() {
            Ok(batch) => exporter.observe(&filter.observed(&batch)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                tracing::warn!(
                    exporter = exporter.name(),
                    batches = n,
                    "exporter fell behind the monitor: observed values lost"
                );
            }
            Err(_) => return,
        }
    }
}

/// How often a failing exporter may log a warning.
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

pub use crate::config::{Effective, Origin};

/// Every exporter setting as it will be used, with its origin: the effective part of
/// `config show`. An exporter that is off shows only why (`enabled`).
pub fn effective(config: &Config) -> Result<Vec<Effective>, (&'static str, String, String)> {
    let mut out = otlp::effective(config)?;
    out.extend(statsd::effective(config)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::snapshot::{Sample, SampleValue};

    #[test]
    fn a_classic_histogram_costs_its_buckets_plus_three_series() {
        let samples = vec![
            Sample {
                def: &catalog::AVAILABILITY,
                labels: vec![],
                value: SampleValue::Gauge(1.0),
            },
            Sample {
                def: &catalog::EXECUTION_TIME,
                labels: vec!["review".into()],
                value: SampleValue::Histogram {
                    counts: vec![0; 6],
                    sum: 0.0,
                    count: 0,
                },
            },
        ];
        // 1 gauge + 5 bounds + +Inf + _sum + _count.
        assert_eq!(series_count(&samples), 1 + 5 + 3);
    }

    #[test]
    fn errors_are_counted_under_the_exporters_own_name() {
        let (_tx, _rx, telemetry) = crate::monitor::channel();
        let errors = ExportErrors::new(telemetry);
        errors.increment("otlp");
        errors.increment("somewhere-new");
        assert_eq!(errors.get("otlp"), 1);
        assert_eq!(errors.get("statsd"), 0);
        assert_eq!(errors.get("somewhere-new"), 1);
    }
}
