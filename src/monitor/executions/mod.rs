//! Execution and reliability statistics from the operations log.
//!
//! The operations-log reader sends [`ExecutionBatch`]es; this module folds them into
//! per-operation-type aggregates twice: *since start* (cumulative, the Prometheus histogram and
//! counters) and in per-minute *slots* keyed by each execution's own timestamp, from which the
//! rolling window is merged on demand. Every aggregate keeps exact counts, sums and
//! distribution buckets plus a [`sketch::Sketch`] for median/p95/p99 (≤ 0.5 % relative error).
//!
//! Exactly once: each batch carries the reader's file positions *after* its lines. The
//! statistics and those positions are written together, atomically, to one checkpoint file in
//! the state directory ([`CHECKPOINT_FILE`]); on start the monitor loads the statistics and the
//! reader the positions from the same file. Whatever happens between two checkpoints (crash,
//! kill -9, power loss after the file's fsync) is re-read and re-counted from a consistent pair.

mod aggregate;
mod batch;
mod checkpoint;
mod checks;
pub mod sketch;
mod window;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::snapshot::{ExecutionMetrics, RecentFailure, ReliabilityMetrics, Sample, SampleValue};
use crate::catalog;
use crate::config::Config;
use crate::statefile::StateWriter;
use aggregate::{Aggregate, Placement};
pub use batch::{Execution, ExecutionBatch, FileCursor, LineResult, Outcome, MAX_PLAUSIBLE_MS};
use checkpoint::Persisted;
pub use checkpoint::{
    checkpoint_path, load_checkpoint, Checkpoint, CHECKPOINT_FILE, CHECKPOINT_INTERVAL,
    CHECKPOINT_VERSION,
};
pub use window::SLOTS_PER_WINDOW;

/// Distinct operation types kept; further ones are counted as [`OTHER_OPERATION_TYPE`].
pub const MAX_OPERATION_TYPES: usize = 32;
pub const OTHER_OPERATION_TYPE: &str = "other";
/// Operation type of lines without `operationType`.
pub const UNKNOWN_OPERATION_TYPE: &str = "unknown";
/// Entries of `recentFailures`.
pub const RECENT_FAILURES: usize = 20;
/// Characters of an error text kept in `recentFailures`.
pub const ERROR_TEXT_LIMIT: usize = 500;

/// What the monitor knows of the reader (not persisted).
#[derive(Debug, Clone, Default)]
struct ReaderView {
    seen: bool,
    dir_exists: bool,
}

/// The operations-log statistics, owned by the monitor.
#[derive(Debug)]
pub struct ExecutionStats {
    enabled: bool,
    window_ms: u64,
    slot_ms: u64,
    state: Persisted,
    cursors: Vec<FileCursor>,
    checkpoint: Option<PathBuf>,
    dir: PathBuf,
    pattern: String,
    dirty: bool,
    last_write: Option<Instant>,
    /// Failed checkpoint writes the state writer reported, as last looked at.
    write_failures: u64,
    /// Writes the checkpoint on the agent's state-file thread.
    writer: StateWriter,
    reader: ReaderView,
}

impl Default for ExecutionStats {
    /// Disabled and empty (no checkpoint is read or written).
    fn default() -> Self {
        let mut config = Config::default();
        config.operations_log.enabled = false;
        ExecutionStats::new(
            &config,
            &super::Telemetry::default(),
            StateWriter::default(),
        )
    }
}

impl ExecutionStats {
    /// Statistics for `config`, restored from the checkpoint when the log is enabled.
    pub fn new(config: &Config, telemetry: &super::Telemetry, writer: StateWriter) -> Self {
        let ol = &config.operations_log;
        let mut stats = ExecutionStats {
            enabled: ol.enabled,
            window_ms: ol.window,
            slot_ms: (ol.window / SLOTS_PER_WINDOW).max(1),
            state: Persisted::default(),
            cursors: Vec::new(),
            checkpoint: None,
            dir: ol.dir.clone(),
            pattern: ol.pattern.clone(),
            dirty: false,
            last_write: None,
            write_failures: 0,
            writer,
            reader: ReaderView::default(),
        };
        if ol.enabled {
            let path = checkpoint_path(config);
            if let Some(c) = load_checkpoint::<Persisted>(&path, telemetry) {
                tracing::info!(
                    path = %path.display(),
                    executions = c.stats.totals.iter().map(|a| a.total).sum::<u64>(),
                    "operations-log statistics restored"
                );
                stats.state = c.stats;
                stats.cursors = c.cursors;
            }
            stats.checkpoint = Some(path);
        }
        stats
    }

    /// Folds a batch in. `now` (epoch ms) places timestamps from the future at now. Each
    /// execution's duration also goes to `observed` (per operation type, in seconds) when given.
    pub fn apply(
        &mut self,
        batch: ExecutionBatch,
        now: u64,
        mut observed: Option<&mut crate::monitor::observed::Observed>,
    ) {
        self.reader.seen = true;
        self.reader.dir_exists = batch.dir_exists;
        let map: Vec<u16> = batch
            .operation_types
            .iter()
            .map(|name| self.type_index(name))
            .collect();
        let horizon = self.window_start(now);
        for e in &batch.executions {
            let t = map.get(usize::from(e.operation)).copied().unwrap_or(0);
            let at = Placement::of(e.duration);
            self.state.totals[usize::from(t)].record(e, at);
            if let Some(observed) = observed.as_deref_mut() {
                let name = &self.state.operation_types[usize::from(t)];
                observed.push(
                    &catalog::EXECUTION_TIME,
                    std::slice::from_ref(name),
                    e.duration / 1000.0,
                );
            }
            let ts = e.timestamp.min(now);
            if ts >= horizon {
                self.slot(ts).aggregate(t).record(e, at);
            }
            if e.outcome != Outcome::Success {
                self.remember_failure(e, t, ts);
            }
        }
        for r in LineResult::ALL {
            let n = batch.lines[r.index()];
            if n > 0 {
                *self.state.lines.entry(r.as_str().into()).or_default() += n;
            }
        }
        for (kind, n) in batch.read_errors {
            *self.state.read_errors.entry(kind.into()).or_default() += n;
        }
        self.cursors = batch.cursors;
        self.evict(now);
        self.dirty = true;
        if self.last_write.is_none() {
            self.write_checkpoint();
        }
    }

    /// Called by the monitor's loop: drops expired slots, writes a due checkpoint.
    pub fn tick(&mut self, now: u64) {
        self.evict(now);
        self.check_writes();
        if self.dirty
            && self
                .last_write
                .is_none_or(|t| t.elapsed() >= CHECKPOINT_INTERVAL)
        {
            self.write_checkpoint();
        }
    }

    /// Writes the checkpoint now if anything changed (shutdown).
    pub fn flush(&mut self) {
        if self.dirty {
            self.write_checkpoint();
        }
    }

    fn type_index(&mut self, name: &str) -> u16 {
        let types = &mut self.state.operation_types;
        if let Some(i) = types.iter().position(|t| t == name) {
            return i as u16;
        }
        let name = if types.len() >= MAX_OPERATION_TYPES - 1 && name != OTHER_OPERATION_TYPE {
            OTHER_OPERATION_TYPE
        } else {
            name
        };
        if let Some(i) = types.iter().position(|t| t == name) {
            return i as u16;
        }
        types.push(name.to_string());
        self.state.totals.push(Aggregate::default());
        (types.len() - 1) as u16
    }

    fn remember_failure(&mut self, e: &Execution, t: u16, ts: u64) {
        let error = match (&e.error, e.outcome) {
            (Some(text), _) => text.to_string(),
            (None, Outcome::Timeout) => "timed out".to_string(),
            (None, _) => "failed (no error text)".to_string(),
        };
        let failure = RecentFailure {
            timestamp: ts,
            operation_type: self.state.operation_types[usize::from(t)].clone(),
            error,
            duration: e.duration,
        };
        let list = &mut self.state.recent_failures;
        let at = list.partition_point(|f| f.timestamp > failure.timestamp);
        if at < RECENT_FAILURES {
            list.insert(at, failure);
            list.truncate(RECENT_FAILURES);
        }
    }

    fn totals(&self) -> Aggregate {
        let mut all = Aggregate::default();
        for a in &self.state.totals {
            all.merge(a);
        }
        all
    }

    /// Whether any execution was ever read (checks and window metrics are shown from then on).
    pub fn has_executions(&self) -> bool {
        self.state.totals.iter().any(|a| a.total > 0)
    }

    /// The specification's `executionMetrics`, over the rolling window.
    pub fn metrics(&self, now: u64) -> ExecutionMetrics {
        self.window(now).0.metrics()
    }

    /// Fills rates and `recentFailures` (availability, mtbf and mttr come from the probes).
    pub fn fill_reliability(&self, r: &mut ReliabilityMetrics, now: u64) {
        let (w, _) = self.window(now);
        if w.total > 0 {
            r.success_rate = w.percent(w.success);
            r.failure_rate = w.percent(w.failed);
            r.timeout_rate = w.percent(w.timed_out);
            r.retry_rate = w.percent(w.retried);
        }
        r.recent_failures = self.state.recent_failures.clone();
    }

    /// Extra sections of `/health/codex/metrics`: totals since the state began, per-type
    /// metrics, and the reader's state.
    pub fn add_extra(&self, extra: &mut Map<String, Value>, now: u64) {
        if !self.enabled {
            return;
        }
        let (_, window_by_type) = self.window(now);
        let mut by_type = Map::new();
        for (i, name) in self.state.operation_types.iter().enumerate() {
            let window = window_by_type
                .get(&(i as u16))
                .map(Aggregate::metrics)
                .unwrap_or_default();
            by_type.insert(
                name.clone(),
                json!({
                    "window": window,
                    "sinceStart": self.state.totals[i].metrics(),
                }),
            );
        }
        extra.insert(
            "executionMetricsSinceStart".into(),
            json!(self.totals().metrics()),
        );
        extra.insert(
            "executionMetricsByOperationType".into(),
            Value::Object(by_type),
        );
        let files: Vec<Value> = self
            .cursors
            .iter()
            .map(|c| json!({"path": c.path, "offset": c.offset}))
            .collect();
        extra.insert(
            "operationsLog".into(),
            json!({
                "dir": self.dir,
                "pattern": self.pattern,
                "window": self.window_ms,
                "readerStarted": self.reader.seen,
                "directoryExists": self.reader.dir_exists,
                "files": files,
                "lines": self.state.lines,
                "readErrors": self.state.read_errors,
            }),
        );
    }

    /// Prometheus/OTLP/StatsD samples: the execution-time histogram and execution counters per
    /// operation type (cumulative since the state began), and the reader's line counters.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        for (name, a) in self.state.operation_types.iter().zip(&self.state.totals) {
            out.push(Sample {
                def: &catalog::EXECUTION_TIME,
                labels: vec![name.clone()],
                value: SampleValue::Histogram {
                    counts: a.buckets.to_vec(),
                    sum: a.duration_sum_ms / 1000.0,
                    count: a.total,
                },
            });
        }
        for (name, a) in self.state.operation_types.iter().zip(&self.state.totals) {
            for (result, n) in [
                ("success", a.success),
                ("failure", a.failed),
                ("timeout", a.timed_out),
            ] {
                out.push(Sample {
                    def: &catalog::EXECUTIONS,
                    labels: vec![name.clone(), result.into()],
                    value: SampleValue::Counter(n as f64),
                });
            }
        }
        for r in LineResult::ALL {
            out.push(Sample {
                def: &catalog::OPLOG_LINES,
                labels: vec![r.as_str().into()],
                value: SampleValue::Counter(
                    self.state.lines.get(r.as_str()).copied().unwrap_or(0) as f64
                ),
            });
        }
        for (kind, n) in &self.state.read_errors {
            out.push(Sample {
                def: &catalog::OPLOG_READ_ERRORS,
                labels: vec![kind.clone()],
                value: SampleValue::Counter(*n as f64),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::aggregate::bucket_of;
    use super::*;
    use crate::monitor::snapshot::Status;

    fn exec(ts: u64, op: u16, duration: f64, outcome: Outcome) -> Execution {
        Execution {
            timestamp: ts,
            operation: op,
            duration,
            outcome,
            retry_count: 0,
            queue_wait: None,
            error: None,
        }
    }

    fn stats(window: u64) -> ExecutionStats {
        ExecutionStats {
            enabled: true,
            window_ms: window,
            slot_ms: window / SLOTS_PER_WINDOW,
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_are_disjoint_and_timeouts_win() {
        assert_eq!(Outcome::from_flags(true, true), Outcome::Timeout);
        assert_eq!(Outcome::from_flags(false, false), Outcome::Failure);
        assert_eq!(Outcome::from_flags(true, false), Outcome::Success);
    }

    #[test]
    fn buckets_match_prometheus_le_edges() {
        assert_eq!(bucket_of(1000.0), 0);
        assert_eq!(bucket_of(1000.5), 1);
        assert_eq!(bucket_of(60_000.0), 4);
        assert_eq!(bucket_of(60_000.1), 5);
    }

    #[test]
    fn window_slides_and_totals_stay() {
        let hour = 3_600_000;
        let mut s = stats(hour);
        let now = 10 * hour;
        let batch = ExecutionBatch {
            operation_types: vec!["audit".into(), "review".into()],
            executions: vec![
                exec(now - 2 * hour, 0, 100.0, Outcome::Success), // outside the window
                exec(now - 1000, 0, 2000.0, Outcome::Failure),
                exec(now - 500, 1, 70_000.0, Outcome::Timeout),
                exec(now + 99_999, 1, 500.0, Outcome::Success), // from the future: now
            ],
            ..Default::default()
        };
        s.apply(batch, now, None);
        let m = s.metrics(now);
        assert_eq!(
            (
                m.total_executions,
                m.successful_executions,
                m.failed_executions,
                m.timed_out_executions
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(m.average_execution_time, (2000.0 + 70_000.0 + 500.0) / 3.0);
        assert_eq!(m.execution_time_distribution.under_1s, 1);
        assert_eq!(m.execution_time_distribution.under_5s, 1);
        assert_eq!(m.execution_time_distribution.over_60s, 1);
        assert_eq!(s.totals().total, 4);
        let mut r = ReliabilityMetrics::default();
        s.fill_reliability(&mut r, now);
        assert_eq!(r.recent_failures.len(), 2);
        assert_eq!(r.recent_failures[0].error, "timed out");
        assert_eq!(r.recent_failures[0].operation_type, "review");
        assert!(r.recent_failures[0].timestamp >= r.recent_failures[1].timestamp);
        // An hour and a slot later, the window is empty; totals are not.
        let later = now + hour + hour / SLOTS_PER_WINDOW + 1;
        s.tick(later);
        assert_eq!(s.metrics(later).total_executions, 0);
        assert_eq!(s.totals().total, 4);
        let mut r = ReliabilityMetrics::default();
        s.fill_reliability(&mut r, later);
        assert_eq!(r.success_rate, 100.0);
    }

    #[test]
    fn queue_metrics_follow_littles_law() {
        let hour = 3_600_000;
        let minute = hour / SLOTS_PER_WINDOW;
        let mut s = stats(hour);
        let now = 100 * hour + 30_000; // half-way through a minute
        let this_minute = now - now % minute;
        let mut executions = Vec::new();
        // Last complete minute: 60 executions that each waited 2 s → on average 2 waiting.
        for i in 0..60 {
            let mut e = exec(this_minute - minute + i * 1000, 0, 10.0, Outcome::Success);
            e.queue_wait = Some(2000.0);
            executions.push(e);
        }
        // Ten minutes earlier: 30 executions that waited 10 s each → 5 waiting on average.
        for i in 0..30 {
            let mut e = exec(
                this_minute - 10 * minute + i * 1000,
                0,
                10.0,
                Outcome::Success,
            );
            e.queue_wait = Some(10_000.0);
            executions.push(e);
        }
        executions.push(exec(now, 0, 10.0, Outcome::Success)); // no queueWait logged
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions,
                ..Default::default()
            },
            now,
            None,
        );
        let q = s.queue_metrics(now);
        assert_eq!(q.current_size, 2.0);
        assert_eq!(q.peak_size, 5.0);
        assert_eq!(
            q.average_wait_time,
            (60.0 * 2000.0 + 30.0 * 10_000.0) / 90.0
        );
    }

    #[test]
    fn checkpoint_round_trip_restores_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let now = crate::util::now_ms();
        let persister = crate::statefile::Persister::start();
        let mut s = ExecutionStats::new(
            &config,
            &crate::telemetry::Telemetry::default(),
            persister.writer(),
        );
        let mut e = exec(now - 5000, 0, 1234.0, Outcome::Failure);
        e.error = Some("boom".into());
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions: vec![e, exec(now, 0, 99_000.0, Outcome::Success)],
                lines: [2, 1, 0, 0, 0, 0, 0],
                ..Default::default()
            },
            now,
            None,
        );
        s.flush();
        persister.writer().wait_idle();
        let restored = ExecutionStats::new(
            &config,
            &crate::telemetry::Telemetry::default(),
            persister.writer(),
        );
        assert_eq!(restored.metrics(now), s.metrics(now));
        assert_eq!(restored.samples(), s.samples());
        let (mut a, mut b) = (ReliabilityMetrics::default(), ReliabilityMetrics::default());
        s.fill_reliability(&mut a, now);
        restored.fill_reliability(&mut b, now);
        assert_eq!(a, b);
        assert_eq!(b.recent_failures[0].error, "boom");
    }

    /// An unwritable state directory costs the monitor nothing but a counted error: the write
    /// fails on the writer thread, and the next tick counts it and keeps the statistics dirty.
    #[test]
    fn a_failed_checkpoint_write_is_counted_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"file").unwrap();
        let config = Config {
            state_dir: blocker.join("state"),
            ..Default::default()
        };
        let persister = crate::statefile::Persister::start();
        let mut s = ExecutionStats::new(
            &config,
            &crate::telemetry::Telemetry::default(),
            persister.writer(),
        );
        let now = crate::util::now_ms();
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions: vec![exec(now, 0, 10.0, Outcome::Success)],
                ..Default::default()
            },
            now,
            None,
        );
        persister.writer().wait_idle();
        s.tick(now);
        assert_eq!(s.state.read_errors.get("checkpoint_write"), Some(&1));
        assert!(s.dirty, "retried at the next due checkpoint");
        assert_eq!(s.metrics(now).total_executions, 1);
    }

    #[test]
    fn operation_types_are_bounded() {
        let mut s = stats(3_600_000);
        let names: Vec<String> = (0..100).map(|i| format!("op{i}")).collect();
        let batch = ExecutionBatch {
            executions: (0..100)
                .map(|i| exec(1000, i as u16, 1.0, Outcome::Success))
                .collect(),
            operation_types: names,
            ..Default::default()
        };
        s.apply(batch, 2000, None);
        assert_eq!(s.state.operation_types.len(), MAX_OPERATION_TYPES);
        assert_eq!(
            s.state.operation_types.last().map(String::as_str),
            Some(OTHER_OPERATION_TYPE)
        );
        assert_eq!(s.totals().total, 100);
        assert_eq!(
            s.state.totals.last().unwrap().total,
            100 - (MAX_OPERATION_TYPES as u64 - 1)
        );
    }

    #[test]
    fn checks_follow_thresholds_and_baselines() {
        let mut s = stats(3_600_000);
        let mut config = Config::default();
        config.baselines.p95_time = Some(8000);
        let limits = crate::monitor::limits::Limits::from_config(&config);
        let now = 100_000_000;
        let mut executions: Vec<Execution> = (0..80)
            .map(|_| exec(now, 0, 9000.0, Outcome::Success))
            .collect();
        executions.extend((0..20).map(|_| exec(now, 0, 100.0, Outcome::Failure)));
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions,
                ..Default::default()
            },
            now,
            None,
        );
        let checks = s.checks(now, &limits);
        let by = |n: &str| checks.iter().find(|c| c.check.name == n).unwrap();
        // One judgement: 20 % errors is above 5 % but not above 100 − 80 %.
        assert_eq!(by("success-rate").check.status, Status::Warning);
        assert_eq!(by("error-rate").check.status, Status::Warning);
        assert_eq!(by("execution-time").check.status, Status::Warning); // p95 9 s > 8 s baseline
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions: vec![exec(now, 0, 1.0, Outcome::Failure)],
                ..Default::default()
            },
            now,
            None,
        );
        assert_eq!(
            s.checks(now, &limits)[0].check.status,
            Status::Critical,
            "80/101 < 80 %"
        );
    }
}
