//! Reading the agent's state files so that a damaged one never stops the agent.
//!
//! Every file under `stateDir` is written atomically (temp file, fsync, rename), but a file
//! can still be damaged: a disk that filled up, a kill -9 on a filesystem without ordered
//! renames, a hand edit. Such a file is moved aside to `<name>.corrupt-<epoch ms>` (kept for a
//! post-mortem, never overwritten), reported once — error log, `errors-*.log` line, the
//! `codex_sentinel_state_files_recovered_total{kind}` counter and a recommendation in
//! `/health/codex` — and the agent starts that part with fresh state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use serde::de::DeserializeOwned;

use crate::catalog;
use crate::telemetry::Telemetry;

/// Reads and parses `path`. Missing: `Ok(None)`. Unparsable (corrupt, truncated, empty, not
/// UTF-8): moved aside, reported, `Ok(None)`. Unreadable for another reason (permissions):
/// `Err`, since moving it would not help and the operator must fix the directory.
pub fn load_json<T: DeserializeOwned>(
    path: &Path,
    kind: &'static str,
    telemetry: &Telemetry,
) -> Result<Option<T>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            quarantine(path, kind, &describe(&e, bytes.len()), telemetry);
            Ok(None)
        }
    }
}

fn describe(e: &serde_json::Error, len: usize) -> String {
    if len == 0 {
        "empty file".into()
    } else if e.is_eof() {
        format!("truncated after {len} bytes ({e})")
    } else {
        e.to_string()
    }
}

/// Moves a damaged state file aside and reports it.
pub fn quarantine(path: &Path, kind: &'static str, error: &str, telemetry: &Telemetry) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let stamp = crate::util::now_ms();
    let mut moved_to = path.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut n = 1;
    while moved_to.exists() {
        moved_to = path.with_file_name(format!("{name}.corrupt-{stamp}-{n}"));
        n += 1;
    }
    let moved = std::fs::rename(path, &moved_to);
    match &moved {
        Ok(()) => {
            tracing::error!(kind, file = %path.display(), moved_to = %moved_to.display(), error, "state file corrupt: moved aside, starting this part with fresh state")
        }
        Err(e) => {
            tracing::error!(kind, file = %path.display(), error, rename_error = %crate::logging::error_chain(&e), "state file corrupt and cannot be moved aside: it will be overwritten with fresh state")
        }
    }
    telemetry.error(
        "state",
        &format!("state file {} corrupt: {error}", path.display()),
        serde_json::json!({ "kind": kind, "file": path, "movedTo": moved.is_ok().then_some(&moved_to) }),
    );
    telemetry.add(&catalog::STATE_FILES_RECOVERED, &[kind], 1);
    telemetry.recommend(format!(
        "State file {} was corrupt ({}); moved to {} and started fresh: inspect it, then delete it",
        path.display(),
        error,
        moved_to.display()
    ));
}

/// Latest bytes per file, written by one thread; see [`Persister`].
#[derive(Default)]
struct Queue {
    /// Newest bytes per file not yet taken by the writer: a newer version replaces an older
    /// one (coalescing), so the queue holds at most one entry per file.
    pending: BTreeMap<PathBuf, Vec<u8>>,
    /// The writer is writing what it took.
    busy: bool,
    /// The owner is gone: write what is pending, then exit.
    closed: bool,
    /// Failed writes per file since the start, and the last error.
    failures: BTreeMap<PathBuf, (u64, String)>,
    /// Files written (each a temporary file, fsync, rename, fsync of the directory).
    writes: u64,
    /// Writes that failed, to be tried again: bytes, failed attempts, when. A newer version
    /// submitted meanwhile replaces the entry.
    retry: BTreeMap<PathBuf, (Vec<u8>, u32, std::time::Instant)>,
    /// At shutdown the failed writes get one last attempt, then are given up.
    last_attempt_done: bool,
    /// Failed attempts so far of the retries now in `pending`.
    retry_attempts: BTreeMap<PathBuf, (u32, std::time::Instant)>,
    #[cfg(test)]
    paused: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes whoever waits for the writer to be idle ([`StateWriter::flushed`]).
    idle: tokio::sync::Notify,
}

/// Writes the agent's state files on one plain thread, so that no fsync ever runs on an async
/// worker or under a lock an async task waits for. One per agent: `start()` shares it (in an
/// `Arc`) between the monitor (checkpoint, history) and the alert store. A failed write (full
/// disk, deleted state directory: it is made again) is retried with backoff
/// ([`retry_backoff`]) and once more at shutdown. [`StateWriter::submit`] hands serialized
/// bytes over and returns at once; a file submitted again before the thread took it is written
/// once, with the newest bytes. Dropping the persister writes what is pending and ends the
/// thread (at teardown: everything submitted is on disk once the last owner is gone).
pub struct Persister {
    writer: StateWriter,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A handle to submit files to the [`Persister`]'s thread.
#[derive(Clone)]
pub struct StateWriter {
    shared: Arc<Shared>,
}

impl Persister {
    pub fn start() -> Persister {
        let shared = StateWriter::default().shared;
        let thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || write_loop(&thread));
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                // Without the thread nothing is written; say so once, loudly.
                tracing::error!(error = %e, "cannot start the state-file writer: state is not persisted");
                None
            }
        };
        Persister {
            writer: StateWriter { shared },
            thread,
        }
    }

    pub fn writer(&self) -> StateWriter {
        self.writer.clone()
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.writer.lock().closed = true;
        self.writer.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for StateWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWriter").finish_non_exhaustive()
    }
}

impl Default for StateWriter {
    /// A writer without a thread: for state that is kept in memory only (nothing submitted to
    /// it is ever written).
    fn default() -> Self {
        StateWriter {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
                idle: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl StateWriter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared.queue.lock().expect("state writer lock")
    }

    /// Queues `bytes` as the new content of `path`, replacing a version not yet written.
    pub fn submit(&self, path: &Path, bytes: Vec<u8>) {
        self.lock().pending.insert(path.to_path_buf(), bytes);
        self.shared.work.notify_one();
    }

    /// Failed writes of `path` so far and the last error.
    pub fn failures(&self, path: &Path) -> Option<(u64, String)> {
        self.lock().failures.get(path).cloned()
    }

    /// Files written so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Resolves once everything submitted before the call is on disk (or failed).
    pub async fn flushed(&self) {
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let q = self.lock();
                if q.pending.is_empty() && !q.busy {
                    return;
                }
            }
            idle.await;
        }
    }

    /// Blocks until everything submitted is on disk (or failed): for tests without a runtime.
    #[cfg(test)]
    pub(crate) fn wait_idle(&self) {
        loop {
            {
                let q = self.lock();
                if q.pending.is_empty() && !q.busy {
                    return;
                }
            }
            std::thread::yield_now();
        }
    }

    #[cfg(test)]
    fn pause(&self, paused: bool) {
        self.lock().paused = paused;
        self.shared.work.notify_one();
    }
}

fn write_loop(shared: &Shared) {
    let mut q = shared.queue.lock().expect("state writer lock");
    loop {
        #[cfg(test)]
        let paused = q.paused;
        #[cfg(not(test))]
        let paused = false;
        if q.pending.is_empty() || paused {
            if q.closed && q.pending.is_empty() {
                if q.retry.is_empty() || q.last_attempt_done {
                    return;
                }
                // Shutting down: every failed write is tried once more now.
                q.last_attempt_done = true;
                let retry = std::mem::take(&mut q.retry);
                for (path, (bytes, _, _)) in retry {
                    q.pending.entry(path).or_insert(bytes);
                }
                continue;
            }
            let next_due = q.retry.values().map(|(_, _, due)| *due).min();
            q = match next_due {
                Some(due) => {
                    let wait = due.saturating_duration_since(std::time::Instant::now());
                    let (q, _) = shared
                        .work
                        .wait_timeout(q, wait)
                        .expect("state writer lock");
                    q
                }
                None => shared.work.wait(q).expect("state writer lock"),
            };
            // Failed writes whose time has come go back to the queue (unless a newer version
            // of the same file is already there).
            let now = std::time::Instant::now();
            let due: Vec<PathBuf> = q
                .retry
                .iter()
                .filter(|(_, (_, _, at))| *at <= now)
                .map(|(p, _)| p.clone())
                .collect();
            for path in due {
                if let Some((bytes, attempts, at)) = q.retry.remove(&path) {
                    if q.pending.contains_key(&path) {
                        continue;
                    }
                    q.pending.insert(path.clone(), bytes);
                    // Remembered so that a second failure continues the backoff.
                    q.retry_attempts.insert(path, (attempts, at));
                }
            }
            continue;
        }
        let batch = std::mem::take(&mut q.pending);
        q.busy = true;
        drop(q);
        let outcomes: Vec<(PathBuf, Vec<u8>, std::io::Result<()>)> = batch
            .into_iter()
            .map(|(path, bytes)| {
                let result = write_atomically(&path, &bytes);
                (path, bytes, result)
            })
            .collect();
        q = shared.queue.lock().expect("state writer lock");
        for (path, bytes, result) in outcomes {
            let previous = q.retry_attempts.remove(&path).map_or(0, |(n, _)| n);
            match result {
                Ok(()) => q.writes += 1,
                Err(e) => {
                    let entry = q.failures.entry(path.clone()).or_insert((0, String::new()));
                    entry.0 += 1;
                    entry.1 = crate::logging::error_chain(&e);
                    // Retried (a full disk frees up, a deleted directory is made again by the
                    // next attempt) unless a newer version is already queued.
                    if !q.pending.contains_key(&path) && !q.last_attempt_done {
                        let attempts = previous + 1;
                        let due = std::time::Instant::now() + retry_backoff(attempts);
                        q.retry.insert(path, (bytes, attempts, due));
                    }
                }
            }
        }
        q.busy = false;
        if q.pending.is_empty() {
            shared.idle.notify_waiters();
        }
    }
}

/// The wait before retrying a write that failed `attempts` times: 100 ms doubling up to 30 s.
pub fn retry_backoff(attempts: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64 << attempts.saturating_sub(1).min(9))
        .min(std::time::Duration::from_secs(30))
}

/// Publishes `codex_sentinel_state_files_recovered_total{kind}` for every kind, zero included.
pub fn declare(telemetry: &Telemetry) {
    for kind in KINDS {
        telemetry.declare(&catalog::STATE_FILES_RECOVERED, &[kind]);
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content:
/// temporary file, fsync, rename, fsync of the directory (where the filesystem allows it).
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

/// Every kind of state file the agent keeps.
pub const KINDS: &[&str] = &["alerts", "oplog", "history"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_moved_aside_and_missing_ones_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.json");
        let t = Telemetry::default();
        assert_eq!(
            load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
            None
        );
        for bad in [&b""[..], b"{\"a\": [1, 2", b"\xff\xfe", b"{} trailing"] {
            std::fs::write(&f, bad).unwrap();
            assert_eq!(
                load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
                None
            );
            assert!(!f.exists(), "moved aside");
        }
        assert_eq!(t.get(&catalog::STATE_FILES_RECOVERED, &["history"]), 4);
        assert_eq!(t.recommendations().len(), 4);
        let aside = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(aside >= 1);
        std::fs::write(&f, b"{\"a\": 1}").unwrap();
        assert_eq!(
            load_json::<serde_json::Value>(&f, "history", &t).unwrap(),
            Some(serde_json::json!({"a": 1}))
        );
    }

    #[tokio::test]
    async fn versions_submitted_while_the_writer_is_busy_are_written_once_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state.json");
        let persister = Persister::start();
        let w = persister.writer();
        w.pause(true);
        for i in 0..100 {
            w.submit(&f, format!("{{\"version\": {i}}}").into_bytes());
        }
        assert_eq!(w.lock().pending.len(), 1, "one entry per file");
        w.pause(false);
        w.flushed().await;
        assert_eq!(w.writes(), 1);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "{\"version\": 99}");
    }

    #[tokio::test]
    async fn a_failed_write_is_counted_and_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"file").unwrap();
        let bad = blocker.join("state.json");
        let good = dir.path().join("good.json");
        let persister = Persister::start();
        let w = persister.writer();
        w.submit(&bad, b"{}".to_vec());
        w.submit(&good, b"{}".to_vec());
        w.flushed().await;
        let (n, error) = w.failures(&bad).expect("the failure is reported");
        assert_eq!(n, 1);
        assert!(!error.is_empty());
        assert_eq!(w.failures(&good), None);
        assert_eq!(std::fs::read(&good).unwrap(), b"{}");
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_with_backoff_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, b"file").unwrap();
        let file = blocker.join("state.json");
        let persister = Persister::start();
        let w = persister.writer();
        w.submit(&file, b"[7]".to_vec());
        w.flushed().await;
        assert_eq!(w.failures(&file).map(|f| f.0), Some(1));
        // The disk "recovers" (the state directory can be made again): the same bytes land
        // without anyone submitting them again.
        std::fs::remove_file(&blocker).unwrap();
        let t0 = std::time::Instant::now();
        while std::fs::read(&file).ok().as_deref() != Some(b"[7]".as_slice()) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "not retried"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_write_that_keeps_failing_is_tried_once_more_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("state");
        std::fs::write(&blocker, b"file").unwrap();
        let file = blocker.join("state.json");
        let persister = Persister::start();
        let w = persister.writer();
        w.submit(&file, b"[8]".to_vec());
        w.wait_idle();
        std::fs::remove_file(&blocker).unwrap();
        // Shutting down before the next retry is due: the last attempt writes it.
        drop(persister);
        assert_eq!(std::fs::read(&file).unwrap(), b"[8]");
    }

    #[test]
    fn dropping_the_persister_writes_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("last.json");
        let persister = Persister::start();
        let w = persister.writer();
        w.pause(true);
        w.submit(&f, b"[1]".to_vec());
        w.pause(false);
        drop(persister);
        assert_eq!(w.writes(), 1);
        assert_eq!(std::fs::read(&f).unwrap(), b"[1]");
    }
}
