//! Runs each probe on its own schedule and reports the runs to the monitor.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::probe::{run_probe, ProbeSpec};
use crate::monitor::{Observation, ObservationSender};

/// Probes `spec` every `spec.interval`, the first run at once, until shutdown. A run that
/// overruns its interval delays the next one rather than stacking runs.
pub async fn probe_loop(spec: ProbeSpec, sender: ObservationSender, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let scheduled: Instant = tokio::select! {
            t = ticks.tick() => t,
            _ = shutdown.cancelled() => return,
        };
        let start_delay = Instant::now().saturating_duration_since(scheduled);
        let run = run_probe(&spec, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        tracing::debug!(probe = %spec.name, attempts = run.attempts.len(), ending = %run.last().ending, "probe finished");
        sender.send(Observation::Probe { run, start_delay });
    }
}
