//! Durable alerting state: the engine's state (series, cooldowns, maintenance, aggregation
//! buffer) and the outbox of pending deliveries live in ONE file, `<stateDir>/alerts/state.json`,
//! written atomically (temp file, fsync, rename, fsync of the directory). One file means one
//! commit point: a notification is queued and its alert marked notified together, so a crash
//! can neither lose it nor queue it twice.
//!
//! A delivery is removed only after its sink accepted it. Killed between the sink's answer and
//! that write, the agent sends it again after a restart: at-least-once with a stable
//! notification id that receivers can use to drop the duplicate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::state::EngineState;
use super::{Notification, SinkKind};
use crate::statefile::Persister;
use crate::telemetry::Telemetry;

/// Name of the state file inside `<stateDir>/alerts/`.
pub const STATE_FILE: &str = "state.json";
/// Pending deliveries kept per sink. A sink down for hours while alerts keep coming would grow
/// the file without bound: beyond this, the oldest waiting notification (never the one being
/// sent) is dropped, logged and counted as undelivered.
pub const MAX_PENDING_PER_SINK: usize = 1000;

/// One notification waiting for one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: u64,
    pub sink: SinkKind,
    pub notification: Notification,
    /// Attempts made so far.
    pub attempts: u32,
    /// Epoch ms before which no attempt is made (backoff, `Retry-After`).
    pub not_before: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Persisted {
    engine: EngineState,
    outbox: Vec<Delivery>,
    next_notification_id: u64,
    next_delivery_id: u64,
}

/// The state file and the in-memory copy it mirrors.
pub struct Store {
    file: Option<PathBuf>,
    inner: Mutex<Persisted>,
    wake: Mutex<BTreeMap<SinkKind, Arc<Notify>>>,
    /// The agent's state-writer thread (shared with the monitor): the lock above is never held
    /// across an fsync.
    persister: Arc<Persister>,
    /// Failed writes already reported.
    write_failures: Mutex<u64>,
    /// This agent's id, stamped on every notification ([`super::identity`]).
    instance: String,
}

/// For views that hold the store: which file, not its contents.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) `<dir>/state.json`. A file that cannot be parsed is moved
    /// aside (`state.json.corrupt-<ms>`) and reported ([`crate::statefile`]), never silently
    /// overwritten.
    pub fn open(dir: &Path, telemetry: &Telemetry) -> Result<Store, String> {
        Self::open_with(dir, telemetry, Arc::new(Persister::start()))
    }

    /// [`Store::open`], writing through `persister`, the writer thread of the agent.
    pub fn open_with(
        dir: &Path,
        telemetry: &Telemetry,
        persister: Arc<Persister>,
    ) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create alert state directory {}: {e}", dir.display()))?;
        let file = dir.join(STATE_FILE);
        let persisted = crate::statefile::load_json::<Persisted>(&file, "alerts", telemetry)?
            .unwrap_or_default();
        // Fail now, not at the first alert, when the directory is not writable (once, at start).
        let bytes = serde_json::to_vec(&persisted).map_err(|e| e.to_string())?;
        crate::statefile::write_atomically(&file, &bytes)
            .map_err(|e| format!("cannot write alert state in {}: {e}", dir.display()))?;
        let store = Store {
            file: Some(file),
            inner: Mutex::new(persisted),
            wake: Mutex::new(BTreeMap::new()),
            persister,
            write_failures: Mutex::new(0),
            instance: super::identity::instance_id(dir),
        };
        Ok(store)
    }

    /// A store that keeps nothing on disk (benchmarks, unit tests).
    pub fn in_memory() -> Store {
        Store {
            file: None,
            inner: Mutex::new(Persisted::default()),
            wake: Mutex::new(BTreeMap::new()),
            persister: Arc::new(Persister::start()),
            write_failures: Mutex::new(0),
            instance: super::identity::ephemeral_instance_id(),
        }
    }

    pub fn engine_state(&self) -> EngineState {
        self.inner.lock().expect("store lock").engine.clone()
    }

    /// Saves the engine's state and queues `notifications` (ids assigned here) for every sink,
    /// in one write. Returns the notifications with their ids, and per sink how many old
    /// pending deliveries were dropped to stay within [`MAX_PENDING_PER_SINK`].
    pub fn commit(
        &self,
        state: &EngineState,
        notifications: Vec<Notification>,
        sinks: &[SinkKind],
    ) -> Vec<Notification> {
        self.commit_counting(state, notifications, sinks).0
    }

    /// [`Store::commit`], also returning the deliveries dropped per sink.
    pub fn commit_counting(
        &self,
        state: &EngineState,
        notifications: Vec<Notification>,
        sinks: &[SinkKind],
    ) -> (Vec<Notification>, Vec<SinkKind>) {
        let mut inner = self.inner.lock().expect("store lock");
        inner.engine = state.clone();
        let mut out = Vec::with_capacity(notifications.len());
        for mut n in notifications {
            n.id = super::identity::next_id(inner.next_notification_id, crate::util::now_ms());
            inner.next_notification_id = n.id;
            n.instance = self.instance.clone();
            for sink in sinks {
                inner.next_delivery_id += 1;
                let id = inner.next_delivery_id;
                inner.outbox.push(Delivery {
                    id,
                    sink: *sink,
                    notification: n.clone(),
                    attempts: 0,
                    not_before: 0,
                });
            }
            out.push(n);
        }
        let mut dropped = Vec::new();
        for sink in sinks {
            while inner.outbox.iter().filter(|d| d.sink == *sink).count() > MAX_PENDING_PER_SINK {
                // The head may be mid-send: drop the oldest after it.
                let Some(pos) = inner
                    .outbox
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.sink == *sink)
                    .nth(1)
                    .map(|(i, _)| i)
                else {
                    break;
                };
                let d = inner.outbox.remove(pos);
                tracing::error!(sink = sink.as_str(), notification = d.notification.id, alerts = %d.notification.summary(), "alert notification UNDELIVERED: dropped, too many pending for this sink");
                dropped.push(*sink);
            }
        }
        self.write_logged(inner);
        if !out.is_empty() {
            for sink in sinks {
                self.waker(*sink).notify_one();
            }
        }
        (out, dropped)
    }

    /// The oldest pending delivery of `sink`: each sink delivers in order.
    pub fn next_for(&self, sink: SinkKind) -> Option<Delivery> {
        let inner = self.inner.lock().expect("store lock");
        inner.outbox.iter().find(|d| d.sink == sink).cloned()
    }

    /// Pending deliveries of `sink`.
    pub fn pending(&self, sink: SinkKind) -> usize {
        let inner = self.inner.lock().expect("store lock");
        inner.outbox.iter().filter(|d| d.sink == sink).count()
    }

    /// Every pending delivery (tests, diagnostics).
    pub fn outbox(&self) -> Vec<Delivery> {
        self.inner.lock().expect("store lock").outbox.clone()
    }

    /// Records a failed attempt that will be retried at `not_before`.
    pub fn reschedule(&self, id: u64, attempts: u32, not_before: u64) {
        let mut inner = self.inner.lock().expect("store lock");
        if let Some(d) = inner.outbox.iter_mut().find(|d| d.id == id) {
            d.attempts = attempts;
            d.not_before = not_before;
        }
        self.write_logged(inner);
    }

    /// Removes a delivery: delivered, rejected or given up.
    pub fn remove(&self, id: u64) {
        let mut inner = self.inner.lock().expect("store lock");
        inner.outbox.retain(|d| d.id != id);
        self.write_logged(inner);
    }

    /// Drops queued deliveries for sinks no longer configured (reported, not silent).
    pub fn drop_sinks_not_in(&self, sinks: &[SinkKind]) -> usize {
        let mut inner = self.inner.lock().expect("store lock");
        let before = inner.outbox.len();
        inner.outbox.retain(|d| {
            let keep = sinks.contains(&d.sink);
            if !keep {
                tracing::warn!(sink = d.sink.as_str(), notification = d.notification.id, alerts = %d.notification.summary(), "pending alert notification dropped: its sink is no longer configured");
            }
            keep
        });
        let dropped = before - inner.outbox.len();
        if dropped > 0 {
            self.write_logged(inner);
        }
        dropped
    }

    /// The signal a sink's delivery task waits on for new work.
    pub fn waker(&self, sink: SinkKind) -> Arc<Notify> {
        self.wake
            .lock()
            .expect("waker lock")
            .entry(sink)
            .or_default()
            .clone()
    }

    /// Serializes the state and hands the bytes to the writer thread, both under the lock (so
    /// versions reach the writer in order; neither waits for a disk), then releases it. A
    /// failure the writer reported since the last write is logged here.
    fn write_logged(&self, inner: std::sync::MutexGuard<'_, Persisted>) {
        let Some(file) = &self.file else {
            return;
        };
        let writer = self.persister.writer();
        let bytes = serde_json::to_vec(&*inner).expect("alert state serializes");
        writer.submit(file, bytes);
        drop(inner);
        if let Some((failures, e)) = writer.failures(file) {
            let mut reported = self.write_failures.lock().expect("store lock");
            if failures > *reported {
                *reported = failures;
                tracing::error!(error = %e, "cannot persist alert state; a restart may lose or repeat notifications");
            }
        }
    }

    /// Resolves once every change made so far is on disk: a notification is sent, and a
    /// maintenance command answered, only after the state that records it is.
    pub async fn persisted(&self) {
        self.persister.writer().flushed().await;
    }
}
