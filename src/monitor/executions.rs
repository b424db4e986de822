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

pub mod sketch;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::health::Evaluated;
use super::snapshot::{
    ExecutionMetrics, ExecutionTimeDistribution, HealthCheck, QueueMetrics, RecentFailure,
    ReliabilityMetrics, Sample, SampleValue, Status,
};
use crate::config::Config;
use crate::export::catalog;
use crate::sources::oplog::parse::LineResult;
use crate::sources::oplog::FileCursor;
use sketch::Sketch;

/// The checkpoint's file name inside the state directory.
pub const CHECKPOINT_FILE: &str = "operations-log.json";
/// Format version of the checkpoint; another version is ignored (and the reader starts fresh).
pub const CHECKPOINT_VERSION: u32 = 1;
/// Checkpoints are written at most this often (and at shutdown).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Slots per window: the window moves in steps of `window / SLOTS_PER_WINDOW` (1 min for 1 h).
pub const SLOTS_PER_WINDOW: u64 = 60;
/// Distinct operation types kept; further ones are counted as [`OTHER_OPERATION_TYPE`].
pub const MAX_OPERATION_TYPES: usize = 32;
pub const OTHER_OPERATION_TYPE: &str = "other";
/// Operation type of lines without `operationType`.
pub const UNKNOWN_OPERATION_TYPE: &str = "unknown";
/// Entries of `recentFailures`.
pub const RECENT_FAILURES: usize = 20;
/// Characters of an error text kept in `recentFailures`.
pub const ERROR_TEXT_LIMIT: usize = 500;
/// Rate checks (`success-rate`, `error-rate`) judge only from this many executions in the window.
pub const MIN_EXECUTIONS_FOR_RATES: u64 = 10;

/// How an execution ended. A timeout is never a success, whatever `result.success` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
}

impl Outcome {
    pub fn from_flags(success: bool, timed_out: bool) -> Self {
        match (success, timed_out) {
            (_, true) => Outcome::Timeout,
            (true, false) => Outcome::Success,
            (false, false) => Outcome::Failure,
        }
    }
}

/// One execution as the application logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Epoch ms.
    pub timestamp: u64,
    /// Index into [`ExecutionBatch::operation_types`].
    pub operation: u16,
    /// ms.
    pub duration: f64,
    pub outcome: Outcome,
    pub retry_count: u32,
    /// ms.
    pub queue_wait: Option<f64>,
    /// Kept for failures and timeouts only (shortened to [`ERROR_TEXT_LIMIT`]).
    pub error: Option<Box<str>>,
}

/// What the operations-log reader sends: executions, line results, and where it now stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionBatch {
    /// Names of the operation types the executions refer to by index.
    pub operation_types: Vec<String>,
    pub executions: Vec<Execution>,
    /// Lines by [`LineResult`] index.
    pub lines: [u64; 6],
    /// Reading problems by kind (`open`, `read`, `truncated_without_copy`, …).
    pub read_errors: Vec<(&'static str, u64)>,
    /// The reader's position in every file it follows, after this batch.
    pub cursors: Vec<FileCursor>,
    /// Whether the log directory exists.
    pub dir_exists: bool,
    /// Held until the monitor has applied the batch: the reader counts the clones of its
    /// ticket to bound the batches in flight (and so its memory).
    pub ticket: std::sync::Arc<()>,
}

/// Counts, sums, distribution and sketch of a set of executions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Aggregate {
    total: u64,
    success: u64,
    failed: u64,
    timed_out: u64,
    /// Executions with `retryCount > 0`.
    retried: u64,
    duration_sum_ms: f64,
    queue_wait_sum_ms: f64,
    queue_wait_count: u64,
    /// Per bucket of [`catalog::EXECUTION_TIME_BUCKETS`] (`(previous, bound]`), then over.
    buckets: [u64; 6],
    sketch: Sketch,
}

/// The distribution bucket of a duration: the same edges as the Prometheus histogram, so
/// `under5s` is exactly `le="5"` minus `le="1"`.
fn bucket_of(duration_ms: f64) -> usize {
    let secs = duration_ms / 1000.0;
    catalog::EXECUTION_TIME_BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(catalog::EXECUTION_TIME_BUCKETS.len())
}

/// Where an execution goes in every aggregate, computed once per execution.
#[derive(Clone, Copy)]
struct Placement {
    bucket: usize,
    sketch_index: Option<i32>,
}

impl Placement {
    fn of(duration_ms: f64) -> Self {
        Placement {
            bucket: bucket_of(duration_ms),
            sketch_index: (duration_ms >= sketch::MIN_VALUE_MS)
                .then(|| sketch::bucket_index(duration_ms)),
        }
    }
}

impl Aggregate {
    fn record(&mut self, e: &Execution, at: Placement) {
        self.total += 1;
        match e.outcome {
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::Timeout => self.timed_out += 1,
        }
        if e.retry_count > 0 {
            self.retried += 1;
        }
        self.duration_sum_ms += e.duration;
        if let Some(q) = e.queue_wait {
            self.queue_wait_sum_ms += q;
            self.queue_wait_count += 1;
        }
        self.buckets[at.bucket] += 1;
        self.sketch.record_at(e.duration, at.sketch_index);
    }

    fn merge(&mut self, o: &Aggregate) {
        self.total += o.total;
        self.success += o.success;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.retried += o.retried;
        self.duration_sum_ms += o.duration_sum_ms;
        self.queue_wait_sum_ms += o.queue_wait_sum_ms;
        self.queue_wait_count += o.queue_wait_count;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sketch.merge(&o.sketch);
    }

    fn metrics(&self) -> ExecutionMetrics {
        let b = self.buckets;
        ExecutionMetrics {
            total_executions: self.total,
            successful_executions: self.success,
            failed_executions: self.failed,
            timed_out_executions: self.timed_out,
            average_execution_time: if self.total == 0 {
                0.0
            } else {
                self.duration_sum_ms / self.total as f64
            },
            median_execution_time: self.sketch.quantile(0.5),
            p95_execution_time: self.sketch.quantile(0.95),
            p99_execution_time: self.sketch.quantile(0.99),
            execution_time_distribution: ExecutionTimeDistribution {
                under_1s: b[0],
                under_5s: b[1],
                under_10s: b[2],
                under_30s: b[3],
                under_60s: b[4],
                over_60s: b[5],
            },
        }
    }

    fn percent(&self, n: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / self.total as f64
        }
    }
}

/// The executions whose timestamps fall into one slot of the window, per operation type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Slot {
    /// Epoch ms of the slot's start (a multiple of the slot length).
    start: u64,
    per_type: Vec<(u16, Aggregate)>,
}

impl Slot {
    fn aggregate(&mut self, t: u16) -> &mut Aggregate {
        match self.per_type.iter().position(|(k, _)| *k == t) {
            Some(i) => &mut self.per_type[i].1,
            None => {
                self.per_type.push((t, Aggregate::default()));
                &mut self.per_type.last_mut().expect("just pushed").1
            }
        }
    }

    fn merged(&self) -> Aggregate {
        let mut all = Aggregate::default();
        for (_, a) in &self.per_type {
            all.merge(a);
        }
        all
    }
}

/// Everything that survives a restart, written with the reader's positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Persisted {
    operation_types: Vec<String>,
    /// Since the state began, per operation type (index as in `operation_types`).
    totals: Vec<Aggregate>,
    slots: VecDeque<Slot>,
    /// Newest first.
    recent_failures: Vec<RecentFailure>,
    /// Lines by result name.
    lines: BTreeMap<String, u64>,
    read_errors: BTreeMap<String, u64>,
}

/// The checkpoint file: the reader's positions and the statistics they produced.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint<S> {
    pub version: u32,
    /// `operationsLog.dir` and `operationsLog.pattern` the positions belong to.
    pub dir: PathBuf,
    pub pattern: String,
    pub cursors: Vec<FileCursor>,
    pub stats: S,
}

/// Path of the checkpoint for a configuration.
pub fn checkpoint_path(config: &Config) -> PathBuf {
    config.state_dir.join(CHECKPOINT_FILE)
}

/// Reads the checkpoint, if there is a usable one. `S` lets the reader skip the statistics.
pub fn load_checkpoint<S: serde::de::DeserializeOwned>(path: &Path) -> Option<Checkpoint<S>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %crate::logging::error_chain(&e), "cannot read the operations-log checkpoint; starting fresh");
            return None;
        }
    };
    match serde_json::from_slice::<Checkpoint<S>>(&bytes) {
        Ok(c) if c.version == CHECKPOINT_VERSION => Some(c),
        Ok(c) => {
            tracing::warn!(path = %path.display(), version = c.version, "operations-log checkpoint has another format version; starting fresh");
            None
        }
        Err(e) => {
            crate::statefile::quarantine(path, "oplog", &e.to_string());
            None
        }
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

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
    write_failures: u64,
    reader: ReaderView,
    min_success_rate: f64,
    max_error_rate: f64,
    max_execution_time: u64,
    baselines: crate::config::Baselines,
}

impl Default for ExecutionStats {
    /// Disabled and empty (no checkpoint is read or written).
    fn default() -> Self {
        let mut config = Config::default();
        config.operations_log.enabled = false;
        ExecutionStats::new(&config)
    }
}

impl ExecutionStats {
    /// Statistics for `config`, restored from the checkpoint when the log is enabled.
    pub fn new(config: &Config) -> Self {
        let ol = &config.operations_log;
        let thresholds = &config.health_monitoring.thresholds;
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
            reader: ReaderView::default(),
            min_success_rate: thresholds.min_success_rate,
            max_error_rate: thresholds.max_error_rate,
            max_execution_time: thresholds.max_execution_time,
            baselines: config.baselines.clone(),
        };
        if ol.enabled {
            let path = checkpoint_path(config);
            if let Some(c) = load_checkpoint::<Persisted>(&path) {
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

    /// Takes the thresholds and baselines of a reloaded configuration; the statistics stay.
    pub fn reconfigure(&mut self, config: &Config) {
        let t = &config.health_monitoring.thresholds;
        self.min_success_rate = t.min_success_rate;
        self.max_error_rate = t.max_error_rate;
        self.max_execution_time = t.max_execution_time;
        self.baselines = config.baselines.clone();
    }

    /// Folds a batch in. `now` (epoch ms) places timestamps from the future at now.
    pub fn apply(&mut self, batch: ExecutionBatch, now: u64) {
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

    fn write_checkpoint(&mut self) {
        let Some(path) = &self.checkpoint else {
            return;
        };
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            dir: self.dir.clone(),
            pattern: self.pattern.clone(),
            cursors: self.cursors.clone(),
            stats: &self.state,
        };
        let bytes = serde_json::to_vec(&checkpoint).expect("checkpoint serializes");
        self.last_write = Some(Instant::now());
        match write_atomically(path, &bytes) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                self.write_failures += 1;
                *self
                    .state
                    .read_errors
                    .entry("checkpoint_write".into())
                    .or_default() += 1;
                // Once a minute at most (one attempt a second while it fails).
                if self.write_failures % 60 == 1 {
                    tracing::warn!(path = %path.display(), error = %crate::logging::error_chain(&e), failures = self.write_failures,
                        "cannot write the operations-log checkpoint: a restart would re-read from the last good one");
                }
            }
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

    /// Start (epoch ms) of the oldest slot still in the window at `now`.
    fn window_start(&self, now: u64) -> u64 {
        let first = now.saturating_sub(self.window_ms);
        first - first % self.slot_ms
    }

    fn slot(&mut self, ts: u64) -> &mut Slot {
        let start = ts - ts % self.slot_ms;
        let slots = &mut self.state.slots;
        if slots.back().is_some_and(|s| s.start == start) {
            return slots.back_mut().expect("checked");
        }
        // Slots are kept sorted by start; nearly every execution lands in the newest one.
        let pos = slots.iter().rposition(|s| s.start <= start);
        match pos {
            Some(i) if slots[i].start == start => &mut slots[i],
            Some(i) => {
                slots.insert(
                    i + 1,
                    Slot {
                        start,
                        per_type: Vec::new(),
                    },
                );
                &mut slots[i + 1]
            }
            None => {
                slots.push_front(Slot {
                    start,
                    per_type: Vec::new(),
                });
                &mut slots[0]
            }
        }
    }

    fn evict(&mut self, now: u64) {
        let horizon = self.window_start(now);
        while self.state.slots.front().is_some_and(|s| s.start < horizon) {
            self.state.slots.pop_front();
        }
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

    /// Window aggregates at `now`: all types merged, and per type.
    fn window(&self, now: u64) -> (Aggregate, BTreeMap<u16, Aggregate>) {
        let horizon = self.window_start(now);
        let mut all = Aggregate::default();
        let mut per_type: BTreeMap<u16, Aggregate> = BTreeMap::new();
        for slot in self.state.slots.iter().filter(|s| s.start >= horizon) {
            for (t, a) in &slot.per_type {
                all.merge(a);
                per_type.entry(*t).or_default().merge(a);
            }
        }
        (all, per_type)
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

    /// `queueMetrics` from `timing.queueWait`. By Little's law the time-average number of
    /// operations waiting equals the total waiting time over the elapsed time: `currentSize` is
    /// that average over the newest complete slot, `peakSize` the highest slot in the window,
    /// `averageWaitTime` the mean wait (ms) of the executions in the window that logged one.
    pub fn queue_metrics(&self, now: u64) -> QueueMetrics {
        let horizon = self.window_start(now);
        let current_slot = now - now % self.slot_ms;
        let (mut wait_sum, mut wait_count, mut peak, mut current) = (0.0, 0u64, 0.0f64, 0.0);
        for slot in self.state.slots.iter().filter(|s| s.start >= horizon) {
            let a = slot.merged();
            wait_sum += a.queue_wait_sum_ms;
            wait_count += a.queue_wait_count;
            let size = a.queue_wait_sum_ms / self.slot_ms as f64;
            peak = peak.max(size);
            if slot.start + self.slot_ms == current_slot {
                current = size;
            }
        }
        QueueMetrics {
            current_size: current,
            peak_size: peak,
            average_wait_time: if wait_count == 0 {
                0.0
            } else {
                wait_sum / wait_count as f64
            },
        }
    }

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
    use super::*;

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
        s.apply(batch, now);
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
        let mut s = ExecutionStats::new(&config);
        let mut e = exec(now - 5000, 0, 1234.0, Outcome::Failure);
        e.error = Some("boom".into());
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions: vec![e, exec(now, 0, 99_000.0, Outcome::Success)],
                lines: [2, 1, 0, 0, 0, 0],
                ..Default::default()
            },
            now,
        );
        s.flush();
        let restored = ExecutionStats::new(&config);
        assert_eq!(restored.metrics(now), s.metrics(now));
        assert_eq!(restored.samples(), s.samples());
        let (mut a, mut b) = (ReliabilityMetrics::default(), ReliabilityMetrics::default());
        s.fill_reliability(&mut a, now);
        restored.fill_reliability(&mut b, now);
        assert_eq!(a, b);
        assert_eq!(b.recent_failures[0].error, "boom");
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
        s.apply(batch, 2000);
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
        s.baselines.p95_time = Some(8000);
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
        );
        let checks = s.checks(now);
        let by = |n: &str| checks.iter().find(|c| c.check.name == n).unwrap();
        assert_eq!(by("success-rate").check.status, Status::Healthy); // 80 % is not below 80
        assert_eq!(by("error-rate").check.status, Status::Warning); // 20 % > 5 %
        assert_eq!(by("execution-time").check.status, Status::Warning); // p95 9 s > 8 s baseline
        s.apply(
            ExecutionBatch {
                operation_types: vec!["audit".into()],
                executions: vec![exec(now, 0, 1.0, Outcome::Failure)],
                ..Default::default()
            },
            now,
        );
        assert_eq!(
            s.checks(now)[0].check.status,
            Status::Critical,
            "80/101 < 80 %"
        );
    }
}
