//! A configuration applied while running, as the running parts receive it. The reloader
//! decides and publishes; the monitor, the alert engine and the probe supervisor take it from
//! here, below them all.

use std::sync::Arc;

use tokio::sync::watch;

use super::Config;

/// What the running parts receive after a successful reload.
#[derive(Debug, Clone)]
pub struct Update {
    /// 0 at start, then one more per applied reload.
    pub generation: u64,
    /// The configuration to run with: the new one, with the sections that
    /// need a restart kept as they run.
    pub config: Arc<Config>,
    /// The configuration as loaded (what the next start will use).
    pub loaded: Arc<Config>,
    /// Keys that differ from the previous configuration, sorted.
    pub changed: Vec<String>,
    /// The subset of `changed` that waits for a restart.
    pub restart_required: Vec<String>,
    /// What triggered it (`SIGHUP`, `config file change`).
    pub trigger: String,
}

/// The next applied reload; never resolves without a reloader (or once it is gone).
pub async fn next_update(updates: &mut Option<watch::Receiver<Arc<Update>>>) -> Arc<Update> {
    match updates {
        Some(rx) => {
            if rx.changed().await.is_ok() {
                return rx.borrow_and_update().clone();
            }
            *updates = None;
            std::future::pending().await
        }
        None => std::future::pending().await,
    }
}
