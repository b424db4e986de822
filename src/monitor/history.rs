//! Compact per-hour history in `<stateDir>/history.json`: executions (counts, duration sum,
//! max and a mergeable quantile sketch), availability probes, and Codex CPU/memory sampled
//! every second while Codex processes run. Kept for `history.retentionDays` (default 30);
//! read by `codex-sentinel report` and by the learned baselines ([`learn`]).
//!
//! The monitor owns it (it sees every observation); it is written atomically at most once a
//! minute and at shutdown. Executions are placed by their own timestamp, so a backfilled
//! operations log lands in the hours it happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::executions::sketch::Sketch;
use super::executions::{Execution, Outcome};
use super::Telemetry;
use crate::statefile::StateWriter;

/// Name of the history file inside `stateDir`.
pub const HISTORY_FILE: &str = "history.json";
/// Format version of the file; another version is moved aside like a corrupt file.
pub const HISTORY_VERSION: u32 = 1;
const HOUR_MS: u64 = 3_600_000;
/// How often a changed history is written.
const WRITE_EVERY: Duration = Duration::from_secs(60);

/// One hour's aggregates. Sums, not averages, so hours add up exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Hour {
    /// Epoch ms of the hour's start (UTC).
    pub start: u64,
    pub executions: u64,
    pub successes: u64,
    pub failures: u64,
    pub timeouts: u64,
    /// ms.
    pub duration_sum: f64,
    /// ms.
    pub duration_max: f64,
    pub durations: Sketch,
    /// Availability probe runs, and how many found Codex available.
    pub probes: u64,
    pub probes_available: u64,
    /// One-second samples of the Codex processes, taken while any runs.
    pub resource_samples: u64,
    /// Percent of one core, summed over Codex processes.
    pub cpu_sum: f64,
    pub cpu_max: f64,
    /// MB of resident memory, summed over Codex processes.
    pub memory_sum_mb: f64,
    pub memory_max_mb: f64,
    pub processes_max: u64,
}

impl Hour {
    /// Adds another hour's (or period's) counts into this one.
    pub fn merge(&mut self, o: &Hour) {
        self.executions += o.executions;
        self.successes += o.successes;
        self.failures += o.failures;
        self.timeouts += o.timeouts;
        self.duration_sum += o.duration_sum;
        self.duration_max = self.duration_max.max(o.duration_max);
        self.durations.merge(&o.durations);
        self.probes += o.probes;
        self.probes_available += o.probes_available;
        self.resource_samples += o.resource_samples;
        self.cpu_sum += o.cpu_sum;
        self.cpu_max = self.cpu_max.max(o.cpu_max);
        self.memory_sum_mb += o.memory_sum_mb;
        self.memory_max_mb = self.memory_max_mb.max(o.memory_max_mb);
        self.processes_max = self.processes_max.max(o.processes_max);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryFile {
    pub version: u32,
    pub hours: Vec<Hour>,
}

/// The history the monitor keeps.
#[derive(Debug, Default)]
pub struct History {
    hours: BTreeMap<u64, Hour>,
    retention_ms: u64,
    path: Option<PathBuf>,
    dirty: bool,
    last_write: Option<Instant>,
    /// Writes `history.json` on the agent's state-file thread.
    writer: StateWriter,
    /// Failed writes the state writer reported, as last looked at.
    write_failures: u64,
}

/// Start of the UTC hour holding `ms`.
pub fn hour_of(ms: u64) -> u64 {
    ms - ms % HOUR_MS
}

/// Reads `<stateDir>/history.json`; a damaged file or another version is moved aside
/// ([`crate::statefile`]) and history starts empty.
pub fn load(state_dir: &Path, telemetry: &Telemetry) -> Result<Vec<Hour>, String> {
    let path = state_dir.join(HISTORY_FILE);
    match crate::statefile::load_json::<HistoryFile>(&path, "history", telemetry)? {
        Some(f) if f.version == HISTORY_VERSION => Ok(f.hours),
        Some(f) => {
            crate::statefile::quarantine(
                &path,
                "history",
                &format!("format version {} (expected {HISTORY_VERSION})", f.version),
                telemetry,
            );
            Ok(Vec::new())
        }
        None => Ok(Vec::new()),
    }
}

impl History {
    /// The history of `config`, restored from its file; in memory only when disabled.
    pub fn new(config: &crate::config::Config, telemetry: &Telemetry, writer: StateWriter) -> Self {
        let h = &config.history;
        let mut history = History {
            retention_ms: h.retention_days.saturating_mul(24 * HOUR_MS),
            writer,
            ..Default::default()
        };
        if !h.enabled {
            return history;
        }
        match load(&config.state_dir, telemetry) {
            Ok(hours) => history.hours = hours.into_iter().map(|h| (h.start, h)).collect(),
            Err(e) => tracing::error!(error = %e, "history not restored; starting empty"),
        }
        history.path = Some(config.state_dir.join(HISTORY_FILE));
        history
    }

    fn hour(&mut self, ms: u64) -> &mut Hour {
        self.dirty = true;
        let start = hour_of(ms);
        self.hours.entry(start).or_insert_with(|| Hour {
            start,
            ..Default::default()
        })
    }

    pub fn record_executions(&mut self, list: &[Execution], now: u64) {
        for e in list {
            let h = self.hour(e.timestamp.min(now));
            h.executions += 1;
            match e.outcome {
                Outcome::Success => h.successes += 1,
                Outcome::Failure => h.failures += 1,
                Outcome::Timeout => h.timeouts += 1,
            }
            h.duration_sum += e.duration;
            h.duration_max = h.duration_max.max(e.duration);
            h.durations.record(e.duration);
        }
    }

    pub fn record_probe(&mut self, available: bool, at: u64) {
        let h = self.hour(at);
        h.probes += 1;
        h.probes_available += u64::from(available);
    }

    /// One sample of the Codex processes (the monitor calls it once a second).
    pub fn record_resources(&mut self, cpu_percent: f64, memory_mb: f64, processes: u64, at: u64) {
        let h = self.hour(at);
        h.resource_samples += 1;
        h.cpu_sum += cpu_percent;
        h.cpu_max = h.cpu_max.max(cpu_percent);
        h.memory_sum_mb += memory_mb;
        h.memory_max_mb = h.memory_max_mb.max(memory_mb);
        h.processes_max = h.processes_max.max(processes);
    }

    /// Drops hours past retention and writes the file when due.
    pub fn tick(&mut self, now: u64) {
        let horizon = hour_of(now).saturating_sub(self.retention_ms);
        let before = self.hours.len();
        self.hours.retain(|start, _| *start >= horizon);
        self.dirty |= self.hours.len() != before;
        self.check_writes();
        if self.dirty && self.last_write.is_none_or(|t| t.elapsed() >= WRITE_EVERY) {
            self.write();
        }
    }

    /// Writes now if anything changed (shutdown).
    pub fn flush(&mut self) {
        if self.dirty {
            self.write();
        }
    }

    pub fn hours(&self) -> impl Iterator<Item = &Hour> {
        self.hours.values()
    }

    /// Hands the file to the state writer (written on its thread, never here).
    fn write(&mut self) {
        self.last_write = Some(Instant::now());
        self.dirty = false;
        let Some(path) = &self.path else {
            return;
        };
        let file = HistoryFile {
            version: HISTORY_VERSION,
            hours: self.hours.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&file).expect("history serializes");
        self.writer.submit(path, bytes);
    }

    /// A write the state writer reported failed leaves the history dirty: retried when due.
    fn check_writes(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        if let Some((failures, error)) = self.writer.failures(path) {
            if failures > self.write_failures {
                self.write_failures = failures;
                self.dirty = true;
                tracing::warn!(path = %path.display(), error = %error, "cannot write history; retrying in a minute");
            }
        }
    }
}

/// Sums the hours starting at or after `from` (epoch ms).
pub fn total_since<'a>(hours: impl IntoIterator<Item = &'a Hour>, from: u64) -> Hour {
    let mut total = Hour::default();
    for h in hours.into_iter().filter(|h| h.start + HOUR_MS > from) {
        total.merge(h);
    }
    total
}

/// Baselines proposed from history (values in the units of `CODEX_PERF_BASELINE_*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Learned {
    /// Epoch ms of the first and last hour used.
    pub from: u64,
    pub to: u64,
    pub executions: u64,
    pub avg_time: Option<u64>,
    pub p95_time: Option<u64>,
    pub p99_time: Option<u64>,
    pub success_rate: Option<f64>,
    pub availability: Option<f64>,
    pub memory_mb: Option<u64>,
}

/// Proposes baselines from the last `learning_days` of history, once history reaches back
/// that far (`Err` says how far it reaches). Rates need at least `min_executions`.
pub fn learn(
    hours: &[Hour],
    now: u64,
    learning_days: u64,
    min_executions: u64,
) -> Result<Learned, String> {
    let period = learning_days.max(1) * 24 * HOUR_MS;
    let from = now.saturating_sub(period);
    let Some(first) = hours.iter().map(|h| h.start).min() else {
        return Err("no history yet".into());
    };
    if first > from {
        return Err(format!(
            "learning: history covers {:.1} of {learning_days} day(s)",
            now.saturating_sub(first) as f64 / (24 * HOUR_MS) as f64
        ));
    }
    let t = total_since(hours, from);
    if t.executions == 0 && t.probes == 0 && t.resource_samples == 0 {
        return Err(format!("no history in the last {learning_days} day(s)"));
    }
    let enough = t.executions >= min_executions.max(1);
    let round = |v: f64| v.round() as u64;
    Ok(Learned {
        from,
        to: now,
        executions: t.executions,
        avg_time: enough.then(|| round(t.duration_sum / t.executions as f64)),
        p95_time: enough.then(|| round(t.durations.quantile(0.95))),
        p99_time: enough.then(|| round(t.durations.quantile(0.99))),
        success_rate: enough.then(|| percent(t.successes, t.executions)),
        availability: (t.probes > 0).then(|| percent(t.probes_available, t.probes)),
        memory_mb: (t.resource_samples > 0)
            .then(|| round(t.memory_sum_mb / t.resource_samples as f64)),
    })
}

/// `explicit` with its unset values taken from `learned`: an explicit value always wins.
pub fn fill_baselines(
    explicit: &crate::config::Baselines,
    learned: &Learned,
) -> crate::config::Baselines {
    let mut b = explicit.clone();
    b.avg_time = b.avg_time.or(learned.avg_time);
    b.p95_time = b.p95_time.or(learned.p95_time);
    b.p99_time = b.p99_time.or(learned.p99_time);
    b.success_rate = b.success_rate.or(learned.success_rate);
    b.availability = b.availability.or(learned.availability);
    b.memory_mb = b.memory_mb.or(learned.memory_mb);
    b
}

/// Reads the history without changing anything (reports, learning on reload): a damaged file
/// is an error here, left for the agent to move aside.
pub fn read(state_dir: &Path) -> Result<Vec<Hour>, String> {
    let path = state_dir.join(HISTORY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<HistoryFile>(&bytes) {
        Ok(f) if f.version == HISTORY_VERSION => Ok(f.hours),
        Ok(f) => Err(format!(
            "{}: format version {} (expected {HISTORY_VERSION})",
            path.display(),
            f.version
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// With `baselines.learn`, fills the unset baselines of `config` from the history in its
/// state directory (at start and at each reload). Logs what it did.
pub fn apply_learned(
    mut config: crate::config::Config,
    hours: &[Hour],
    now: u64,
) -> crate::config::Config {
    if !config.baselines.learn {
        return config;
    }
    let b = &config.baselines;
    match learn(
        hours,
        now,
        b.learning_days,
        config.alerting.rules.min_executions,
    ) {
        Ok(l) => {
            let filled = fill_baselines(b, &l);
            tracing::info!(
                executions = l.executions,
                avg_time = filled.avg_time,
                p95_time = filled.p95_time,
                p99_time = filled.p99_time,
                success_rate = filled.success_rate,
                availability = filled.availability,
                memory_mb = filled.memory_mb,
                "baselines learned from history (explicit CODEX_PERF_BASELINE_* values kept)"
            );
            config.baselines = filled;
        }
        Err(why) => {
            tracing::info!(reason = %why, "no learned baselines yet; using the explicit ones")
        }
    }
    config
}

/// `part / whole` in percent, rounded to 0.01.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(ts: u64, ms: f64, outcome: Outcome) -> Execution {
        Execution {
            timestamp: ts,
            operation: 0,
            duration: ms,
            outcome,
            retry_count: 0,
            queue_wait: None,
            error: None,
        }
    }

    #[test]
    fn executions_land_in_their_hour_and_totals_add_up() {
        let mut h = History {
            retention_ms: 30 * 24 * HOUR_MS,
            ..Default::default()
        };
        let t0 = 1_764_115_200_000;
        h.record_executions(
            &[
                exec(t0 + 10, 100.0, Outcome::Success),
                exec(t0 + HOUR_MS + 5, 300.0, Outcome::Failure),
                exec(t0 + HOUR_MS + 6, 200.0, Outcome::Timeout),
            ],
            t0 + 2 * HOUR_MS,
        );
        let hours: Vec<&Hour> = h.hours().collect();
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].executions, 1);
        assert_eq!(hours[1].failures, 1);
        assert_eq!(hours[1].timeouts, 1);
        let t = total_since(h.hours(), t0);
        assert_eq!(t.executions, 3);
        assert_eq!(t.duration_sum, 600.0);
        assert_eq!(t.duration_max, 300.0);
        assert_eq!(total_since(h.hours(), t0 + HOUR_MS).executions, 2);
        h.tick(t0 + 40 * 24 * HOUR_MS);
        assert_eq!(h.hours().count(), 0, "past retention");
    }

    #[test]
    fn learning_waits_for_the_period() {
        let t0 = 1_764_115_200_000;
        let hours = vec![Hour {
            start: t0,
            executions: 20,
            successes: 19,
            failures: 1,
            duration_sum: 2000.0,
            probes: 10,
            probes_available: 9,
            ..Default::default()
        }];
        assert!(learn(&hours, t0 + 2 * 24 * HOUR_MS, 7, 10).is_err());
        let l = learn(&hours, t0 + 7 * 24 * HOUR_MS, 7, 10).unwrap();
        assert_eq!(l.avg_time, Some(100));
        assert_eq!(l.success_rate, Some(95.0));
        assert_eq!(l.availability, Some(90.0));
        assert_eq!(l.memory_mb, None);
    }
}
