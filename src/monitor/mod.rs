//! The monitor: the single owner of state. Sources send [`Observation`]s through a bounded
//! queue; the monitor folds them into rolling statistics and publishes an immutable
//! [`Snapshot`] that every reader (HTTP, exporters, alerts) takes without waiting.

pub mod availability;
pub mod disk;
pub mod executions;
pub mod health;
pub mod history;
pub mod limits;
pub mod observed;
pub mod probes;
pub mod resources;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, MetricDef};
use crate::config::Config;
use crate::statefile::Persister;
pub use crate::telemetry::Telemetry;
use crate::util::now_ms;
use availability::AvailabilityTracker;
use executions::{ExecutionBatch, ExecutionStats};
use health::Evaluated;
use probes::{Ending, ProbeRun, ProbeSpec};
use resources::{ResourceSample, ResourceStats};
use snapshot::{
    HealthCheck, HealthReport, MetricsReport, Performance, ProbeSummary, Sample, SampleValue,
    Snapshot, Status,
};

/// A monitor that has not published for this long is stuck: `/livez` fails and the
/// `agent-stalled` rule fires.
pub const LIVENESS_STALE_MS: u64 = 30_000;
/// Capacity of the observation queue. Sources never wait: when it is full they drop and count.
pub const QUEUE_CAPACITY: usize = 1024;
/// How often the snapshot is republished even without observations (uptime, windows move).
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What sources tell the monitor.
#[derive(Debug)]
pub enum Observation {
    /// A finished probe run, with how late it started against its schedule.
    Probe {
        run: ProbeRun,
        start_delay: Duration,
    },
    Resources(ResourceSample),
    /// Lines read from the operations log, with the reader's positions after them.
    Executions(ExecutionBatch),
    /// Bytes used by the log directories.
    Disk(disk::DiskSample),
    /// What the alert engine shows in `/health/codex` and the metrics (active alerts,
    /// maintenance, notification counters), sent when that changed, not at every evaluation.
    Alerts(Arc<dyn AlertsShown>),
}

/// What the monitor shows of the alert engine. Defined here, implemented by the engine's
/// view: the monitor knows nothing of alerting, the engine only sends to the monitor.
pub trait AlertsShown: std::fmt::Debug + Send + Sync {
    /// The entries of `/health/codex` `alerts`.
    fn alerts_json(&self) -> Vec<serde_json::Value>;
    /// Series for the metric exporters (active alerts, notification counters and queues).
    fn samples(&self) -> Vec<Sample>;
}

impl Observation {
    fn source(&self) -> &'static str {
        match self {
            Observation::Probe { .. } => "probe",
            Observation::Resources(_) => "processes",
            Observation::Executions(_) => "oplog",
            Observation::Disk(_) => "disk",
            Observation::Alerts(_) => "alerts",
        }
    }
}

/// The sending side handed to sources: never blocks.
#[derive(Debug, Clone)]
pub struct ObservationSender {
    tx: mpsc::Sender<Observation>,
    telemetry: Telemetry,
}

impl ObservationSender {
    /// Queues the observation, or drops and counts it when the monitor is behind.
    pub fn send(&self, obs: Observation) {
        let source = obs.source();
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(obs) {
            self.telemetry.observation_dropped(source);
            tracing::warn!(source, "monitor queue full: observation dropped");
        }
    }

    /// Queues the observation, waiting for room: for sources whose input is durable (the
    /// operations log), where waiting loses nothing and dropping would lose data. `false`
    /// when the monitor is gone.
    pub async fn send_wait(&self, obs: Observation) -> bool {
        self.tx.send(obs).await.is_ok()
    }

    /// The agent's telemetry handle, for the parts a source starts.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }
}

/// Creates the queue between sources and the monitor, and the agent's [`Telemetry`].
pub fn channel() -> (ObservationSender, mpsc::Receiver<Observation>, Telemetry) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let telemetry = Telemetry::default();
    (
        ObservationSender {
            tx,
            telemetry: telemetry.clone(),
        },
        rx,
        telemetry,
    )
}

#[derive(Debug, Default, Clone)]
struct ProbeStats {
    summary: ProbeSummary,
    errors: u64,
    /// Per-bucket counts of attempt durations (bounds of `PROBE_DURATION`, then +Inf).
    duration_counts: Vec<u64>,
    duration_sum: f64,
    duration_count: u64,
}

/// Everything the monitor knows.
pub struct Monitor {
    config: Arc<Config>,
    specs: Vec<ProbeSpec>,
    started: Instant,
    /// Latest evaluation per check name.
    checks: BTreeMap<String, Evaluated>,
    probes: BTreeMap<String, ProbeStats>,
    availability: AvailabilityTracker,
    resources: ResourceStats,
    executions: ExecutionStats,
    disk: disk::DiskStats,
    /// The agent's own counters and error lines (see [`crate::telemetry`]).
    telemetry: Telemetry,
    /// What the checks judge against: the one place thresholds are resolved.
    limits: limits::Limits,
    /// The alert engine's latest view ([`Observation::Alerts`]), when alerting is on.
    alerts: Option<Arc<dyn AlertsShown>>,
    /// Applied configuration reloads.
    updates: Option<watch::Receiver<Arc<crate::config::update::Update>>>,
    /// Per-hour aggregates for reports and learned baselines.
    history: history::History,
    /// The agent's one state-writer thread (shared with the alert store): the checkpoint and
    /// the history are written there, no fsync on this task.
    persister: Arc<Persister>,
    /// Individual values for push exporters ([`observed`]).
    observed: observed::ObservedSender,
}

impl Monitor {
    /// A monitor with a state-writer thread of its own (`check`, tests, benchmarks).
    pub fn new(config: Arc<Config>, specs: Vec<ProbeSpec>, telemetry: Telemetry) -> Self {
        Self::with_persister(config, specs, telemetry, Arc::new(Persister::start()))
    }

    /// A monitor whose files are written by `persister`, the writer thread of the agent.
    pub fn with_persister(
        config: Arc<Config>,
        specs: Vec<ProbeSpec>,
        telemetry: Telemetry,
        persister: Arc<Persister>,
    ) -> Self {
        let probes = specs
            .iter()
            .map(|s| {
                let stats = ProbeStats {
                    summary: ProbeSummary {
                        name: s.name.clone(),
                        ..Default::default()
                    },
                    duration_counts: vec![0; catalog::PROBE_DURATION.buckets.len() + 1],
                    ..Default::default()
                };
                (s.name.clone(), stats)
            })
            .collect();
        let executions = ExecutionStats::new(&config, &telemetry, persister.writer());
        let limits = limits::Limits::from_config(&config);
        let config_growth_window = config.disk_usage.growth_window;
        let history = history::History::new(&config, &telemetry, persister.writer());
        Monitor {
            resources: ResourceStats::new(config.processes.window),
            limits,
            config,
            specs,
            started: Instant::now(),
            checks: BTreeMap::new(),
            probes,
            availability: AvailabilityTracker::default(),
            executions,
            disk: disk::DiskStats::new(config_growth_window),
            telemetry,
            alerts: None,
            updates: None,
            history,
            persister,
            observed: Default::default(),
        }
    }

    /// Publishes every execution and probe duration on `sender` as it is applied.
    pub fn with_observed(mut self, sender: observed::ObservedSender) -> Self {
        self.observed = sender;
        self
    }

    /// Takes new thresholds and probe lists from configuration reloads.
    pub fn with_config_updates(
        mut self,
        mut updates: watch::Receiver<Arc<crate::config::update::Update>>,
    ) -> Self {
        updates.mark_unchanged();
        self.updates = Some(updates);
        self
    }

    /// Applies a reloaded configuration, keeping every statistic: probes that still exist keep
    /// their counts and last result; removed probes disappear from the reports.
    pub fn reconfigure(&mut self, config: Arc<Config>, specs: Vec<ProbeSpec>) {
        self.probes
            .retain(|name, _| specs.iter().any(|s| &s.name == name));
        self.checks
            .retain(|name, _| specs.iter().any(|s| &s.name == name));
        for s in &specs {
            self.probes
                .entry(s.name.clone())
                .or_insert_with(|| ProbeStats {
                    summary: ProbeSummary {
                        name: s.name.clone(),
                        ..Default::default()
                    },
                    duration_counts: vec![0; catalog::PROBE_DURATION.buckets.len() + 1],
                    ..Default::default()
                });
        }
        self.limits = limits::Limits::from_config(&config);
        self.specs = specs;
        self.config = config;
    }

    /// Folds one observation into the state.
    pub fn apply(&mut self, obs: Observation) {
        match obs {
            Observation::Probe { run, start_delay } => self.apply_probe(run, start_delay),
            Observation::Resources(sample) => self.resources.record(sample),
            Observation::Disk(sample) => self.disk.record(sample),
            Observation::Alerts(view) => self.alerts = Some(view),
            Observation::Executions(batch) => {
                let now = now_ms();
                self.history.record_executions(&batch.executions, now);
                let mut observed = observed::Observed::default();
                let listening = self.observed.has_listeners();
                self.executions
                    .apply(batch, now, listening.then_some(&mut observed));
                self.observed.publish(observed);
            }
        }
    }

    fn apply_probe(&mut self, run: ProbeRun, start_delay: Duration) {
        let Some(spec) = self.specs.iter().find(|s| s.name == run.spec_name) else {
            return;
        };
        let last = run.last();
        if last.ending == Ending::Cancelled {
            return;
        }
        let verdict = health::evaluate_probe(spec, &run, &self.config.health_monitoring.thresholds);
        // The agent's own shortage tells nothing about Codex: availability keeps its last verdict.
        let about_codex = !matches!(last.ending, Ending::AgentFault { .. });
        if spec.is_availability && about_codex {
            self.availability.record(verdict.available, last.started);
            self.history.record_probe(verdict.available, last.started);
        }
        let stats = self.probes.get_mut(&spec.name).expect("stats per spec");
        let s = &mut stats.summary;
        s.runs += 1;
        s.retries += u64::from(run.retries());
        s.last_duration = last.duration.as_millis() as u64;
        s.last_run = run.attempts[0].started;
        s.max_start_delay = s.max_start_delay.max(start_delay.as_millis() as u64);
        match &last.ending {
            _ if last.succeeded(spec.expected_exit_code) => s.successes += 1,
            Ending::TimedOut => s.timeouts += 1,
            Ending::SpawnFailed { .. } | Ending::AgentFault { .. } => stats.errors += 1,
            _ => s.failures += 1,
        }
        let mut observed = observed::Observed::default();
        for attempt in &run.attempts {
            let secs = attempt.duration.as_secs_f64();
            observed.push(
                &catalog::PROBE_DURATION,
                std::slice::from_ref(&spec.name),
                secs,
            );
            let bucket = catalog::PROBE_DURATION
                .buckets
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(catalog::PROBE_DURATION.buckets.len());
            stats.duration_counts[bucket] += 1;
            stats.duration_sum += secs;
            stats.duration_count += 1;
        }
        self.observed.publish(observed);
        self.checks.insert(spec.name.clone(), verdict.evaluated);
    }

    /// Whether probes run (`ENABLE_CODEX_HEALTH_MONITORING`); the other sources go on either way.
    fn probing(&self) -> bool {
        self.config.health_monitoring.enabled
    }

    /// Builds the snapshot for `now` (epoch ms).
    pub fn snapshot(&self, now: u64) -> Snapshot {
        let uptime = self.started.elapsed().as_millis() as u64;
        let mut checks: Vec<Evaluated> = Vec::new();
        if self.probing() {
            for spec in &self.specs {
                match self.checks.get(&spec.name) {
                    Some(e) => checks.push(e.clone()),
                    None if spec.is_availability => checks.push(health::pending_check(now)),
                    None => {}
                }
            }
        } else {
            checks.push(health::probes_disabled_check(now));
        }
        checks.extend(self.executions.checks(now, &self.limits));
        checks.extend(self.resources.checks(&self.limits));
        checks.extend(self.disk.check(&self.limits));
        let mut reliability = snapshot::ReliabilityMetrics::default();
        self.executions.fill_reliability(&mut reliability, now);
        self.availability.fill(&mut reliability, now);
        let performance = Performance {
            execution_metrics: self.executions.metrics(now),
            resource_metrics: snapshot::ResourceMetrics {
                queue_metrics: self.executions.queue_metrics(now),
                ..self.resources.metrics()
            },
            reliability_metrics: reliability,
        };
        let mut recommendations = health::recommendations(&checks);
        recommendations.extend(self.telemetry.recommendations());
        if !self.config.health_monitoring.enabled {
            recommendations.push(
                "Health monitoring is disabled (ENABLE_CODEX_HEALTH_MONITORING=false)".into(),
            );
        }
        let report = HealthReport {
            overall: health::overall(&checks),
            timestamp: now,
            uptime,
            checks: checks
                .iter()
                .map(|e| HealthCheck {
                    recommendations: e.recommendations.clone(),
                    ..e.check.clone()
                })
                .collect(),
            performance: performance.clone(),
            alerts: self
                .alerts
                .as_ref()
                .map(|v| v.alerts_json())
                .unwrap_or_default(),
            recommendations,
        };
        let mut metrics = MetricsReport {
            timestamp: now,
            uptime,
            performance,
            probes: self.probes.values().map(|p| p.summary.clone()).collect(),
            extra: {
                let mut extra = serde_json::Map::new();
                self.resources.fill_extra(&mut extra);
                self.disk.fill_extra(&self.limits, &mut extra);
                extra
            },
        };
        self.executions.add_extra(&mut metrics.extra, now);
        let codex_available = self.availability.is_available();
        let samples = self.samples(&report, codex_available, uptime);
        Snapshot::new(
            report,
            metrics,
            samples,
            codex_available,
            self.resources.active_processes(),
        )
    }

    fn samples(&self, report: &HealthReport, codex_available: bool, uptime_ms: u64) -> Vec<Sample> {
        let mut out = Vec::with_capacity(32);
        let mut push = |def: &'static MetricDef, labels: Vec<String>, value: SampleValue| {
            out.push(Sample { def, labels, value })
        };
        // Probes off: no availability or probe series at all — a 0 would read as "Codex down".
        let probing = self.probing();
        if probing {
            push(
                &catalog::AVAILABILITY,
                vec![],
                SampleValue::Gauge(if codex_available { 1.0 } else { 0.0 }),
            );
        }
        for check in &report.checks {
            push(
                &catalog::HEALTH_STATUS,
                vec![check.name.clone()],
                SampleValue::Gauge(f64::from(check.status.code())),
            );
        }
        for s in self.executions.samples() {
            push(s.def, s.labels, s.value);
        }
        // The exact windowed percentiles (the spec's codex_execution_time_p95): a recording rule
        // over the classic buckets could only interpolate between 1, 5, 10, 30 and 60 s.
        let m = &report.performance.execution_metrics;
        if m.total_executions > 0 {
            for (def, ms) in [
                (&catalog::EXECUTION_TIME_P50, m.median_execution_time),
                (&catalog::EXECUTION_TIME_P95, m.p95_execution_time),
                (&catalog::EXECUTION_TIME_P99, m.p99_execution_time),
            ] {
                push(def, vec![], SampleValue::Gauge(ms / 1000.0));
            }
        }
        if self.config.operations_log.enabled {
            let p = &report.performance;
            let q = &p.resource_metrics.queue_metrics;
            push(
                &catalog::APP_QUEUE_SIZE,
                vec![],
                SampleValue::Gauge(q.current_size),
            );
            push(
                &catalog::APP_QUEUE_WAIT,
                vec![],
                SampleValue::Gauge(q.average_wait_time / 1000.0),
            );
            push(
                &catalog::APP_RETRY_RATE,
                vec![],
                SampleValue::Gauge(p.reliability_metrics.retry_rate / 100.0),
            );
        }
        push(
            &catalog::SUCCESS_RATE,
            vec![],
            SampleValue::Gauge(report.performance.reliability_metrics.success_rate / 100.0),
        );
        push(
            &catalog::MEMORY_USAGE,
            vec![],
            SampleValue::Gauge(self.resources.rss_bytes() as f64),
        );
        push(
            &catalog::CPU_USAGE,
            vec![],
            SampleValue::Gauge(self.resources.cpu_percent()),
        );
        push(
            &catalog::ACTIVE_PROCESSES,
            vec![],
            SampleValue::Gauge(self.resources.active_processes() as f64),
        );
        for (name, p) in self.probes.iter().filter(|_| probing) {
            push(
                &catalog::PROBE_DURATION,
                vec![name.clone()],
                SampleValue::Histogram {
                    counts: p.duration_counts.clone(),
                    sum: p.duration_sum,
                    count: p.duration_count,
                },
            );
        }
        for (name, p) in self.probes.iter().filter(|_| probing) {
            for (result, n) in [
                ("success", p.summary.successes),
                ("failure", p.summary.failures),
                ("timeout", p.summary.timeouts),
                ("error", p.errors),
            ] {
                push(
                    &catalog::PROBE_RUNS,
                    vec![name.clone(), result.into()],
                    SampleValue::Counter(n as f64),
                );
            }
        }
        for (name, p) in &self.probes {
            push(
                &catalog::PROBE_RETRIES,
                vec![name.clone()],
                SampleValue::Counter(p.summary.retries as f64),
            );
        }
        push(
            &catalog::AGENT_UPTIME,
            vec![],
            SampleValue::Gauge(uptime_ms as f64 / 1000.0),
        );
        push(
            &catalog::AGENT_BUILD_INFO,
            vec![env!("CARGO_PKG_VERSION").into()],
            SampleValue::Gauge(1.0),
        );
        for source in ["probe", "processes", "oplog", "disk"] {
            let n = self.telemetry.dropped(source);
            push(
                &catalog::AGENT_DROPPED_OBSERVATIONS,
                vec![source.into()],
                SampleValue::Counter(n as f64),
            );
        }
        if let Some(view) = &self.alerts {
            out.extend(view.samples());
        }
        out.extend(
            self.telemetry
                .counters()
                .into_iter()
                .map(|(def, labels, n)| Sample {
                    def,
                    labels,
                    value: SampleValue::Counter(n as f64),
                }),
        );
        self.resources.extra_samples(&mut out);
        self.disk.samples(&self.limits, &mut out);
        out
    }

    /// Runs until shutdown: applies observations as they come, publishes after each batch and
    /// every [`PUBLISH_INTERVAL`]. At shutdown, applies what is still queued (the readers'
    /// last batches) and publishes once more, for the exporters' last export.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Observation>,
        publish: watch::Sender<Arc<Snapshot>>,
        heartbeat: Arc<AtomicU64>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // With every source stopped (or none configured) the monitor still publishes.
        let mut sources_open = true;
        let mut updates = self.updates.take();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    while let Ok(obs) = rx.try_recv() {
                        self.apply(obs);
                    }
                    let now = now_ms();
                    self.executions.tick(now);
                    publish.send_replace(Arc::new(self.snapshot(now)));
                    break;
                }
                update = crate::config::update::next_update(&mut updates) => {
                    let specs = probes::specs(&update.config);
                    self.reconfigure(update.config.clone(), specs);
                }
                obs = rx.recv(), if sources_open => {
                    let Some(obs) = obs else {
                        sources_open = false;
                        continue;
                    };
                    self.apply(obs);
                    while let Ok(more) = rx.try_recv() {
                        self.apply(more);
                    }
                }
                _ = tick.tick() => {
                    let now = now_ms();
                    // Only while Codex runs: an idle hour would pull the averages (and a
                    // learned memory baseline) towards zero.
                    if self.resources.active_processes() > 0 {
                        self.history.record_resources(
                        self.resources.cpu_percent(),
                        self.resources.rss_bytes() as f64 / 1_048_576.0,
                            self.resources.active_processes(),
                            now,
                        );
                    }
                    self.history.tick(now);
                }
            }
            let now = now_ms();
            self.executions.tick(now);
            publish.send_replace(Arc::new(self.snapshot(now)));
            heartbeat.store(now, Ordering::Relaxed);
        }
        // The operations-log positions and statistics, as far as they were applied.
        self.executions.flush();
        self.history.flush();
        self.persister.writer().flushed().await;
    }
}

/// The overall status as `check` reports it, for callers that only have a snapshot.
pub fn exit_code(status: Status) -> i32 {
    i32::from(status.code())
}

#[cfg(test)]
mod reload_tests {
    use super::probes::{Attempt, ProbeRun};
    use super::*;

    fn run(name: &str) -> Observation {
        Observation::Probe {
            run: ProbeRun {
                spec_name: name.into(),
                program: "codex".into(),
                attempts: vec![Attempt {
                    started: now_ms(),
                    duration: Duration::from_millis(20),
                    ending: Ending::Exited(0),
                    stdout: "codex-cli 0.171.0\n".into(),
                    stderr_tail: String::new(),
                    pid: 1,
                }],
            },
            start_delay: Duration::ZERO,
        }
    }

    #[test]
    fn reconfigure_keeps_statistics_of_probes_that_remain() {
        let mut cfg = Config::default();
        cfg.operations_log.enabled = false;
        cfg.history.enabled = false;
        cfg.codex.probes = vec![crate::config::ExtraProbe {
            name: "codex-login".into(),
            command: vec!["codex".into(), "login".into()],
            timeout: None,
            interval: None,
            expected_exit_code: 0,
            failure_status: "warning".into(),
        }];
        let cfg = Arc::new(cfg);
        let (_, _, dropped) = channel();
        let mut m = Monitor::new(cfg.clone(), probes::specs(&cfg), dropped);
        for _ in 0..3 {
            m.apply(run(health::AVAILABILITY_CHECK));
        }
        m.apply(run("codex-login"));
        // Reload: faster availability probe, a threshold changed, the extra probe removed.
        let mut new = (*cfg).clone();
        new.health_monitoring.check_interval = 500;
        new.health_monitoring.thresholds.availability_timeout = 1;
        new.codex.probes.clear();
        let new = Arc::new(new);
        m.reconfigure(new.clone(), probes::specs(&new));
        let snap = m.snapshot(now_ms());
        let probes: Vec<(&str, u64)> = snap
            .metrics
            .probes
            .iter()
            .map(|p| (p.name.as_str(), p.runs))
            .collect();
        assert_eq!(probes, vec![(health::AVAILABILITY_CHECK, 3)]);
        // The next run is judged by the new threshold (20 ms > 1 ms: warning).
        m.apply(run(health::AVAILABILITY_CHECK));
        let snap = m.snapshot(now_ms());
        assert_eq!(snap.metrics.probes[0].runs, 4);
        assert_eq!(snap.report.checks[0].status, Status::Warning);
        assert_eq!(snap.report.checks.len(), 1);
    }

    /// `ENABLE_CODEX_HEALTH_MONITORING=false`: the availability check says the probes are off
    /// (not "waiting"), no availability or probe series exist, process checks go on.
    #[test]
    fn probes_switched_off_are_off_not_waiting_and_not_zero() {
        let mut cfg = Config::default();
        cfg.operations_log.enabled = false;
        cfg.history.enabled = false;
        cfg.health_monitoring.enabled = false;
        let cfg = Arc::new(cfg);
        let (_, _, dropped) = channel();
        let mut m = Monitor::new(cfg.clone(), probes::specs(&cfg), dropped);
        m.apply(Observation::Resources(ResourceSample {
            timestamp: now_ms(),
            processes: 2,
            rss_bytes: 1 << 20,
            ..Default::default()
        }));
        let snap = m.snapshot(now_ms());
        let a = &snap.report.checks[0];
        assert_eq!(a.name, health::AVAILABILITY_CHECK);
        assert_eq!(a.status, Status::Healthy);
        assert!(
            a.message.starts_with("Probes are disabled"),
            "{}",
            a.message
        );
        assert!(!a.raises_alert);
        let names: Vec<&str> = snap.report.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![health::AVAILABILITY_CHECK, "memory-usage", "process-count"]
        );
        let defs: Vec<&str> = snap.samples.iter().map(|s| s.def.name).collect();
        assert!(!defs.contains(&catalog::AVAILABILITY.name), "{defs:?}");
        assert!(!defs.contains(&catalog::PROBE_RUNS.name));
        assert!(defs.contains(&catalog::ACTIVE_PROCESSES.name));
        assert_eq!(snap.report.overall, Status::Healthy);
    }

    /// The application's queue and retries reach every exporter as catalog samples, named
    /// apart from the agent's notification queue.
    #[test]
    fn application_queue_and_retry_rate_are_exported() {
        let state = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.history.enabled = false;
        cfg.state_dir = state.path().to_path_buf();
        let cfg = Arc::new(cfg);
        let (_, _, telemetry) = channel();
        let mut m = Monitor::new(cfg.clone(), probes::specs(&cfg), telemetry);
        let now = now_ms();
        let exec = |retry_count| executions::Execution {
            timestamp: now,
            operation: 0,
            duration: 1_000.0,
            outcome: executions::Outcome::Success,
            retry_count,
            queue_wait: Some(2_000.0),
            error: None,
        };
        m.apply(Observation::Executions(ExecutionBatch {
            operation_types: vec!["audit".into()],
            executions: (0..20).map(|i| exec(i % 2)).collect(),
            ..Default::default()
        }));
        let snap = m.snapshot(now);
        let value = |def: &MetricDef| {
            snap.samples
                .iter()
                .find(|s| s.def.name == def.name)
                .map(|s| match s.value {
                    SampleValue::Gauge(v) => v,
                    _ => panic!("{} is a gauge", def.name),
                })
                .unwrap_or_else(|| panic!("{} missing", def.name))
        };
        assert_eq!(value(&catalog::APP_QUEUE_WAIT), 2.0);
        assert_eq!(value(&catalog::APP_RETRY_RATE), 0.5);
        let q = &snap.report.performance.resource_metrics.queue_metrics;
        assert_eq!(value(&catalog::APP_QUEUE_SIZE), q.current_size);
        assert_eq!(
            catalog::APP_QUEUE_WAIT.prometheus_name(),
            "codex_operations_queue_wait_seconds"
        );
    }
}
