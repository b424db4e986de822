//! Exactly once: the statistics and the reader's file positions written together, atomically,
//! to one checkpoint file, and read back from it at start.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::aggregate::Aggregate;
use super::window::Slot;
use super::{ExecutionStats, FileCursor};
use crate::config::Config;
use crate::monitor::snapshot::RecentFailure;
use crate::telemetry::Telemetry;

/// The checkpoint's file name inside the state directory.
pub const CHECKPOINT_FILE: &str = "operations-log.json";
/// Format version of the checkpoint; another version is ignored (and the reader starts fresh).
pub const CHECKPOINT_VERSION: u32 = 1;
/// Checkpoints are written at most this often (and at shutdown).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Everything that survives a restart, written with the reader's positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct Persisted {
    pub(super) operation_types: Vec<String>,
    /// Since the state began, per operation type (index as in `operation_types`).
    pub(super) totals: Vec<Aggregate>,
    pub(super) slots: VecDeque<Slot>,
    /// Newest first.
    pub(super) recent_failures: Vec<RecentFailure>,
    /// Lines by result name.
    pub(super) lines: BTreeMap<String, u64>,
    pub(super) read_errors: BTreeMap<String, u64>,
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
pub fn load_checkpoint<S: serde::de::DeserializeOwned>(
    path: &Path,
    telemetry: &Telemetry,
) -> Option<Checkpoint<S>> {
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
            crate::statefile::quarantine(path, "oplog", &e.to_string(), telemetry);
            None
        }
    }
}

impl ExecutionStats {
    /// Hands the checkpoint to the state writer (it is written on its thread, never here).
    pub(super) fn write_checkpoint(&mut self) {
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
        self.writer.submit(path, bytes);
        self.dirty = false;
    }

    /// Counts the writes the state writer reported failed since the last look; a failure
    /// leaves the statistics dirty, so the next due checkpoint tries again.
    pub(super) fn check_writes(&mut self) {
        let Some(path) = &self.checkpoint else {
            return;
        };
        let Some((failures, error)) = self.writer.failures(path) else {
            return;
        };
        let new = failures - self.write_failures;
        if new == 0 {
            return;
        }
        self.write_failures = failures;
        self.dirty = true;
        *self
            .state
            .read_errors
            .entry("checkpoint_write".into())
            .or_default() += new;
        // Once a minute at most (one attempt a second while it fails).
        if (failures - new) / 60 != failures / 60 || failures == new {
            tracing::warn!(path = %path.display(), error = %error, failures = self.write_failures,
                "cannot write the operations-log checkpoint: a restart would re-read from the last good one");
        }
    }
}
