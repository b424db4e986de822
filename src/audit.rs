//! The specification's audit log files, written by the agent:
//! `<dir>/health-checks-YYYY-MM-DD.log`, `errors-YYYY-MM-DD.log`, `performance-YYYY-MM-DD.log`
//! (UTC days), one JSON object a line.
//!
//! ```text
//!  snapshots (watch) ─▶ recorder task ─┐                      ┌▶ health-checks-<day>.log
//!  Telemetry::error(..) ───────────────┼▶ bounded queue ─▶ writer thread ─▶ errors-<day>.log
//!  SIGUSR1 → AuditLog::reopen() ───────┘   (drops counted)    └▶ performance-<day>.log
//! ```
//!
//! - Lines: one per probe result the monitor published (`health-checks`, with the probe's
//!   `runs` count), one per change of status of the other checks,
//!   one per `performanceInterval` (`performance`), and one per failed probe, rejected reload,
//!   recovered state file or other agent error (`errors`). Each carries `seq`, numbered per
//!   stream from 1 at start, so a reader can prove nothing was lost across a rotation.
//! - The writer is a plain thread that writes each line with one `write` on an append-mode
//!   file: nothing is buffered in the process, so a line is either in the file or counted.
//! - `SIGUSR1` closes every file; the next line opens the file by name again. After logrotate
//!   renamed a file, lines queued before the signal end in the renamed file, later ones in the
//!   new file.
//! - A full disk or an unwritable directory is logged once (and once more when it recovers),
//!   counted in `codex_sentinel_audit_log_lines_total{result="failed"}`, never fatal.
//! - Retention: files of these streams (rotated copies included) whose modification time is
//!   older than `retentionDays` are deleted at start, at each new day, at `SIGUSR1` and hourly.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog;
use crate::config::AuditLogConfig;
use crate::monitor::snapshot::{Snapshot, Status};
use crate::telemetry::{ErrorLine, Telemetry};
use crate::util::now_ms;

/// Lines waiting for the writer. Beyond this the newest line is dropped and counted: a slow
/// disk must not grow memory or stall the agent.
pub const QUEUE_CAPACITY: usize = 4096;
/// How often retention runs besides the day change and `SIGUSR1`.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// One file series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    HealthChecks,
    Errors,
    Performance,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::HealthChecks, Stream::Errors, Stream::Performance];

    /// File name prefix, as the specification names the files.
    pub fn prefix(self) -> &'static str {
        match self {
            Stream::HealthChecks => "health-checks",
            Stream::Errors => "errors",
            Stream::Performance => "performance",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// `<dir>/<prefix>-YYYY-MM-DD.log` for the UTC day of `ms`.
    pub fn file_for(self, dir: &Path, ms: u64) -> PathBuf {
        dir.join(format!("{}-{}.log", self.prefix(), day_of(ms)))
    }
}

/// `YYYY-MM-DD` (UTC) of an epoch-ms time.
pub fn day_of(ms: u64) -> String {
    crate::util::time::format_rfc3339(ms)[..10].to_string()
}

enum Msg {
    Line(Stream, u64, Map<String, Value>),
    Reopen,
}

/// The `result` labels of `codex_sentinel_audit_log_lines_total`.
const WRITTEN: &str = "written";
const FAILED: &str = "failed";
const DROPPED: &str = "dropped";

/// One agent's audit log: the queue of its writer thread (none when the files are off or the
/// agent stopped) and the telemetry its lines are counted in. Clones share the queue.
#[derive(Clone, Default)]
pub struct AuditLog {
    queue: Arc<Mutex<Option<SyncSender<Msg>>>>,
    telemetry: Telemetry,
}

impl AuditLog {
    fn enqueue(&self, msg: Msg) {
        let guard = self.queue.lock().expect("audit queue lock");
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Line(stream, ..))) => {
                count(&self.telemetry, stream, DROPPED);
            }
            Err(TrySendError::Full(Msg::Reopen)) => {
                tracing::warn!("audit log writer behind: SIGUSR1 reopen request dropped");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Appends a line to `errors-<day>.log` (no-op when the files are off).
    fn error(&self, e: ErrorLine) {
        let mut line = Map::new();
        line.insert("timestamp".into(), json!(e.timestamp));
        line.insert("component".into(), json!(e.component));
        line.insert("message".into(), json!(e.message));
        if !e.details.is_null() {
            line.insert("details".into(), e.details);
        }
        self.enqueue(Msg::Line(Stream::Errors, e.timestamp, line));
    }

    /// Closes the files; the next line of each stream opens its file by name again (`SIGUSR1`).
    pub fn reopen(&self) {
        self.enqueue(Msg::Reopen);
    }

    /// Lets the writer finish what is queued and exit; later lines are not written.
    fn close(&self) {
        self.telemetry.set_error_sink(None);
        *self.queue.lock().expect("audit queue lock") = None;
    }
}

fn count(telemetry: &Telemetry, stream: Stream, result: &str) {
    telemetry.add(&catalog::AUDIT_LOG_LINES, &[stream.prefix(), result], 1);
}

/// Starts the writer thread when `auditLog.enabled` and makes it the destination of the
/// telemetry's error lines. Called first thing at start, so that what goes wrong while starting
/// (a corrupt state file) is in `errors-*.log` too.
pub fn start_writer(config: &AuditLogConfig, telemetry: &Telemetry) -> AuditLog {
    for stream in Stream::ALL {
        for result in [WRITTEN, FAILED, DROPPED] {
            telemetry.declare(&catalog::AUDIT_LOG_LINES, &[stream.prefix(), result]);
        }
    }
    let log = AuditLog {
        queue: Arc::default(),
        telemetry: telemetry.clone(),
    };
    if !config.enabled {
        return log;
    }
    let (tx, rx) = sync_channel(QUEUE_CAPACITY);
    let writer = Writer::new(config.dir.clone(), config.retention_days, telemetry.clone());
    let spawned = std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || writer.run(rx));
    if let Err(e) = spawned {
        tracing::error!(error = %crate::logging::error_chain(&e), "cannot start the audit log writer: audit log files are off");
        return log;
    }
    *log.queue.lock().expect("audit queue lock") = Some(tx);
    let sink = log.clone();
    telemetry.set_error_sink(Some(Box::new(move |line| sink.error(line))));
    tracing::info!(dir = %config.dir.display(), retention_days = config.retention_days, "audit log files enabled");
    log
}

/// Starts the task that turns snapshots into lines (after [`start_writer`]); it closes the
/// queue at shutdown.
pub fn spawn_recorder(
    log: AuditLog,
    config: &AuditLogConfig,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    if !config.enabled {
        return;
    }
    tasks.spawn(record(
        log,
        snapshots,
        Duration::from_millis(config.performance_interval.max(1)),
        shutdown,
    ));
}

/// Turns snapshots into health-check, error and performance lines.
async fn record(
    log: AuditLog,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    performance_interval: Duration,
    shutdown: CancellationToken,
) {
    let mut recorder = Recorder::default();
    let mut perf = tokio::time::interval_at(
        tokio::time::Instant::now() + performance_interval,
        performance_interval,
    );
    perf.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = snapshots.changed() => {
                if changed.is_err() { break }
                let snap = snapshots.borrow_and_update().clone();
                recorder.observe(&log, &snap);
            }
            _ = perf.tick() => {
                let snap = snapshots.borrow().clone();
                performance_line(&log, &snap);
            }
        }
    }
    log.close();
}

fn performance_line(log: &AuditLog, snap: &Snapshot) {
    let now = now_ms();
    let mut line = Map::new();
    line.insert("timestamp".into(), json!(now));
    line.insert("overall".into(), json!(snap.report.overall));
    line.insert("uptime".into(), json!(snap.report.uptime));
    line.insert(
        "performance".into(),
        serde_json::to_value(&snap.report.performance).unwrap_or(Value::Null),
    );
    log.enqueue(Msg::Line(Stream::Performance, now, line));
}

/// Remembers what was already written, so each probe run and each status change is one line.
#[derive(Default)]
struct Recorder {
    /// Probe name → runs seen.
    runs: BTreeMap<String, u64>,
    /// Non-probe check name → last status.
    statuses: BTreeMap<String, Status>,
}

impl Recorder {
    fn observe(&mut self, log: &AuditLog, snap: &Snapshot) {
        for probe in &snap.metrics.probes {
            let seen = self.runs.entry(probe.name.clone()).or_insert(0);
            if probe.runs == *seen {
                continue;
            }
            *seen = probe.runs;
            if let Some(check) = snap.report.checks.iter().find(|c| c.name == probe.name) {
                health_line(log, check, "probe", Some(probe.runs));
            }
        }
        for check in &snap.report.checks {
            if self.runs.contains_key(&check.name) {
                continue;
            }
            if self.statuses.get(&check.name) != Some(&check.status) {
                self.statuses.insert(check.name.clone(), check.status);
                health_line(log, check, "status-change", None);
            }
        }
    }
}

/// `runs`: the probe's run count, so a reader sees when two runs fell between two snapshots
/// (only the latest result is on record then).
fn health_line(
    log: &AuditLog,
    check: &crate::monitor::snapshot::HealthCheck,
    cause: &str,
    runs: Option<u64>,
) {
    let mut line = match serde_json::to_value(check) {
        Ok(Value::Object(m)) => m,
        _ => return,
    };
    line.insert("check".into(), json!(check.name));
    line.remove("name");
    line.insert("cause".into(), json!(cause));
    if let Some(runs) = runs {
        line.insert("runs".into(), json!(runs));
    }
    let ts = check.timestamp;
    if matches!(check.status, Status::Critical | Status::Unavailable) {
        let mut err = Map::new();
        err.insert("timestamp".into(), json!(ts));
        err.insert("component".into(), json!("health-check"));
        err.insert("check".into(), json!(check.name));
        err.insert("status".into(), json!(check.status));
        err.insert("message".into(), json!(check.message));
        log.enqueue(Msg::Line(Stream::Errors, ts, err));
    }
    log.enqueue(Msg::Line(Stream::HealthChecks, ts, line));
}

/// An open file and the day it is for.
struct Open {
    day: String,
    file: File,
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    retention_days: u64,
    open: [Option<Open>; 3],
    seq: [u64; 3],
    /// A write of this stream failed and has not succeeded since (report once).
    failing: [bool; 3],
    last_retention: Option<Instant>,
    telemetry: Telemetry,
}

impl Writer {
    fn new(dir: PathBuf, retention_days: u64, telemetry: Telemetry) -> Self {
        Writer {
            dir,
            retention_days,
            open: [None, None, None],
            seq: [0; 3],
            failing: [false; 3],
            last_retention: None,
            telemetry,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        self.retention();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Msg::Line(stream, ts, line)) => self.write(stream, ts, line),
                Ok(Msg::Reopen) => {
                    self.open = [None, None, None];
                    tracing::info!(dir = %self.dir.display(), "audit log files reopened (SIGUSR1)");
                    self.retention();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self
                .last_retention
                .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
            {
                self.retention();
            }
        }
    }

    fn write(&mut self, stream: Stream, ts: u64, mut line: Map<String, Value>) {
        let i = stream.index();
        self.seq[i] += 1;
        line.insert("seq".into(), json!(self.seq[i]));
        let mut bytes = serde_json::to_vec(&line).expect("JSON line serializes");
        bytes.push(b'\n');
        let day = day_of(ts);
        let result = self.file(stream, &day).and_then(|f| f.write_all(&bytes));
        match result {
            Ok(()) => {
                count(&self.telemetry, stream, WRITTEN);
                if std::mem::replace(&mut self.failing[i], false) {
                    tracing::info!(stream = stream.prefix(), "audit log writable again");
                }
            }
            Err(e) => {
                count(&self.telemetry, stream, FAILED);
                // Reopen on the next line: the directory may come back or be recreated.
                self.open[i] = None;
                if !std::mem::replace(&mut self.failing[i], true) {
                    tracing::error!(stream = stream.prefix(), dir = %self.dir.display(), error = %crate::logging::error_chain(&e), "cannot write audit log; lines are counted as failed until it works again");
                }
            }
        }
    }

    fn file(&mut self, stream: Stream, day: &str) -> std::io::Result<&mut File> {
        let i = stream.index();
        let stale = self.open[i].as_ref().is_none_or(|o| o.day != day);
        if stale {
            let new_day = self.open[i].as_ref().is_some_and(|o| o.day.as_str() < day);
            self.open[i] = None;
            if new_day {
                self.retention();
            }
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(format!("{}-{day}.log", stream.prefix()));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.open[i] = Some(Open {
                day: day.to_string(),
                file,
            });
        }
        Ok(&mut self.open[i].as_mut().expect("just opened").file)
    }

    /// Deletes files of these streams older than `retention_days` (by modification time, so
    /// rotated and compressed copies count too).
    fn retention(&mut self) {
        self.last_retention = Some(Instant::now());
        if self.retention_days == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let max_age = Duration::from_secs(self.retention_days * 86_400);
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !Stream::ALL
                .iter()
                .any(|s| name.starts_with(&format!("{}-", s.prefix())))
            {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            if old {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "audit log file past retention deleted")
                    }
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), error = %crate::logging::error_chain(&e), "cannot delete audit log file past retention")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_day_of_their_timestamp_and_reopen_follows_renames() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path().to_path_buf(), 0, Telemetry::default());
        let day1 = 1_764_115_200_000; // 2025-11-26T00:00:00Z
        w.write(Stream::Errors, day1, Map::new());
        w.write(Stream::Errors, day1 + 86_400_000, Map::new());
        let a = std::fs::read_to_string(dir.path().join("errors-2025-11-26.log")).unwrap();
        let b = std::fs::read_to_string(dir.path().join("errors-2025-11-27.log")).unwrap();
        assert_eq!(a, "{\"seq\":1}\n");
        assert_eq!(b, "{\"seq\":2}\n");
        std::fs::rename(
            dir.path().join("errors-2025-11-27.log"),
            dir.path().join("errors-2025-11-27.log.1"),
        )
        .unwrap();
        w.write(Stream::Errors, day1 + 86_400_000, Map::new());
        w.open = [None, None, None];
        w.write(Stream::Errors, day1 + 86_400_000, Map::new());
        let rotated = std::fs::read_to_string(dir.path().join("errors-2025-11-27.log.1")).unwrap();
        let fresh = std::fs::read_to_string(dir.path().join("errors-2025-11-27.log")).unwrap();
        assert_eq!(rotated, "{\"seq\":2}\n{\"seq\":3}\n");
        assert_eq!(fresh, "{\"seq\":4}\n");
    }

    #[test]
    fn an_unwritable_directory_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"file").unwrap();
        let telemetry = Telemetry::default();
        let mut w = Writer::new(blocker.join("audit"), 0, telemetry.clone());
        w.write(Stream::Performance, 0, Map::new());
        w.write(Stream::Performance, 0, Map::new());
        let failed = telemetry.get(&catalog::AUDIT_LOG_LINES, &["performance", FAILED]);
        assert_eq!(failed, 2);
        assert!(w.failing[Stream::Performance.index()]);
    }

    #[test]
    fn retention_deletes_old_files_of_these_streams_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("health-checks-2020-01-01.log.2.gz");
        let other = dir.path().join("codex-operations-2020-01-01.jsonl");
        let fresh = dir.path().join("errors-2099-01-01.log");
        for f in [&old, &other, &fresh] {
            std::fs::write(f, b"x").unwrap();
        }
        let past = SystemTime::now() - Duration::from_secs(10 * 86_400);
        for f in [&old, &other] {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let mut w = Writer::new(dir.path().to_path_buf(), 7, Telemetry::default());
        w.retention();
        assert!(!old.exists());
        assert!(other.exists());
        assert!(fresh.exists());
    }
}
