//! The operations-log source: tails `logs/codex/codex-operations-YYYY-MM-DD.jsonl` (written by
//! the application, one JSON object a line) and sends the executions it finds to the monitor.
//!
//! - [`parse`]: one line → the used fields, borrowed, never panicking.
//! - [`tail`]: which files to read and from where (rotation, truncation, positions).
//! - this module: the task that polls every [`POLL_INTERVAL`] and hands batches over.
//!
//! Unlike the probes, this source never drops: the file is its buffer, so when the monitor's
//! queue is full it waits ([`ObservationSender::send_wait`]) and reads on afterwards. Positions
//! are persisted by the monitor together with the statistics they produced (see
//! [`crate::monitor::executions`]), which is what makes counting exactly-once across restarts.

pub mod parse;
pub mod tail;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::monitor::executions::{checkpoint_path, load_checkpoint, Checkpoint};
use crate::monitor::{Observation, ObservationSender, Telemetry};
use crate::util::now_ms;
pub use tail::FileCursor;
use tail::{TailConfig, Tailer};

/// How often the files are looked at when caught up (an appended line shows within ~this).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Batches sent but not yet applied by the monitor, at most: bounds the reader's memory when
/// it reads faster than the monitor folds (a backlog being read).
pub const MAX_BATCHES_IN_FLIGHT: usize = 4;

/// Builds the tailer for `config`, resuming from the checkpoint when it belongs to the same
/// directory and pattern.
pub fn tailer(config: &Config, telemetry: &Telemetry) -> Tailer {
    let ol = &config.operations_log;
    let path = checkpoint_path(config);
    let cursors = match load_checkpoint::<serde::de::IgnoredAny>(&path, telemetry) {
        Some(Checkpoint {
            dir,
            pattern,
            cursors,
            ..
        }) if dir == ol.dir && pattern == ol.pattern => Some(cursors),
        Some(_) => {
            tracing::info!(
                "operations-log location changed since the last checkpoint: starting fresh"
            );
            None
        }
        None => None,
    };
    Tailer::new(
        TailConfig::new(ol.dir.clone(), &ol.pattern, ol.backfill),
        cursors,
    )
}

/// Runs until shutdown: polls the files, sends what it read, waits when caught up.
pub async fn run(config: Arc<Config>, sender: ObservationSender, shutdown: CancellationToken) {
    let ol = &config.operations_log;
    tracing::info!(dir = %ol.dir.display(), pattern = %ol.pattern, backfill = ol.backfill, "operations-log reader started");
    let mut tailer = tailer(&config, sender.telemetry());
    let ticket = Arc::new(());
    // Until shutdown: poll, hand over, wait while nothing more is there.
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = batches_settled(&ticket) => {}
        }
        let more;
        (tailer, more) = match poll_once(tailer, &ticket, &sender).await {
            Some(v) => v,
            None => return,
        };
        if !more {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
    // One last read: lines written just before SIGTERM (a Job's last executions) still reach
    // the monitor, which applies them before its final snapshot (the agent's stop bounds this).
    let mut batches = 0u32;
    loop {
        batches_settled(&ticket).await;
        let more;
        (tailer, more) = match poll_once(tailer, &ticket, &sender).await {
            Some(v) => v,
            None => return,
        };
        batches += 1;
        if !more {
            break;
        }
    }
    tracing::info!(
        polls = batches,
        "operations log read one last time before stopping"
    );
}

/// Waits until at most [`MAX_BATCHES_IN_FLIGHT`] batches are unapplied (memory bound).
async fn batches_settled(ticket: &Arc<()>) {
    while Arc::strong_count(ticket) > MAX_BATCHES_IN_FLIGHT {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls the log once on a blocking thread and hands the batch over. Returns the tailer and
/// whether more is waiting, or `None` when reading must stop (a bug, or the monitor is gone).
async fn poll_once(
    mut tailer: Tailer,
    ticket: &Arc<()>,
    sender: &ObservationSender,
) -> Option<(Tailer, bool)> {
    let polled = tokio::task::spawn_blocking(move || {
        let out = tailer.poll(now_ms());
        (tailer, out)
    })
    .await;
    let (tailer, out) = match polled {
        Ok(v) => v,
        Err(e) => {
            // A bug, not bad input (that is counted): stop reading rather than loop on it.
            tracing::error!(error = %crate::logging::error_chain(&e), "operations-log reader failed; executions are no longer read");
            return None;
        }
    };
    if let Some(mut batch) = out.batch {
        batch.ticket = ticket.clone();
        if !sender.send_wait(Observation::Executions(batch)).await {
            return None; // the monitor is gone
        }
    }
    Some((tailer, out.more))
}
