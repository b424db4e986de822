//! One delivery task per sink: takes the sink's oldest pending notification from the store,
//! sends it under a timeout, and records the outcome. Order per sink is kept (a notification
//! waiting for a retry holds back the later ones of the same sink, so a receiver never sees
//! "resolved" before "firing"); sinks are independent of each other.
//!
//! Retry policy: timeouts, connection errors, 5xx and transient SMTP errors are retried with
//! exponential backoff (`initialBackoff` doubling up to `maxBackoff`, with jitter: each wait is
//! between half and all of the nominal one); HTTP 429 waits for `Retry-After`; other 4xx and
//! permanent SMTP errors are not retried. After `maxAttempts` the notification is logged as
//! undelivered and counted.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::notify::{Notifier, SendError};
use super::store::Store;
use super::{result, NotificationCounters};
use crate::config::DeliveryConfig;
use crate::util::now_ms;

/// The longest `Retry-After` honoured; a larger value is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl DeliverySettings {
    pub fn from_config(c: &DeliveryConfig) -> Self {
        DeliverySettings {
            timeout: Duration::from_millis(c.timeout),
            max_attempts: c.max_attempts.max(1),
            initial_backoff: Duration::from_millis(c.initial_backoff),
            max_backoff: Duration::from_millis(c.max_backoff.max(c.initial_backoff)),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): nominal
    /// `initial × 2^(attempt-1)` capped at `max_backoff`, then jittered into [½, 1] of that.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let nominal = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let half = nominal / 2;
        let jitter = random_u64() % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter)
    }
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish()
}

/// Delivers `notifier`'s queue until shutdown.
pub async fn run(
    notifier: Arc<Notifier>,
    store: Arc<Store>,
    counters: Arc<NotificationCounters>,
    settings: DeliverySettings,
    shutdown: CancellationToken,
) {
    let sink = notifier.kind();
    let wake = store.waker(sink);
    let mut last_send: Option<Instant> = None;
    loop {
        let Some(d) = store.next_for(sink) else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => continue,
            }
        };
        // At least once: what is sent is on disk first, so a crash re-sends rather than loses.
        store.persisted().await;
        let now = now_ms();
        if d.not_before > now {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(d.not_before - now)) => {}
            }
            continue;
        }
        if let (Some(last), Some(spacing)) = (last_send, notifier.min_spacing()) {
            let wait = spacing.saturating_sub(last.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        last_send = Some(Instant::now());
        let attempt = d.attempts + 1;
        let outcome = tokio::select! {
            // Shutting down mid-send: the delivery stays queued and is sent after a restart.
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(settings.timeout, notifier.send(&d.notification)) => match r {
                Ok(r) => r,
                Err(_) => Err(SendError::retryable(format!("no answer within {} ms", settings.timeout.as_millis()))),
            },
        };
        let n = &d.notification;
        match outcome {
            Ok(()) => {
                store.remove(d.id);
                counters.add(sink, result::DELIVERED);
                tracing::info!(sink = sink.as_str(), notification = n.id, attempt, status = n.status_label(), alerts = %n.summary(), "alert notification delivered");
            }
            Err(SendError::Permanent(reason)) => {
                store.remove(d.id);
                counters.add(sink, result::REJECTED);
                tracing::error!(sink = sink.as_str(), notification = n.id, attempt, error = %reason, alerts = %n.summary(), "alert notification rejected by the sink; not retried");
            }
            Err(SendError::Retryable {
                reason,
                retry_after,
            }) => {
                if attempt >= settings.max_attempts {
                    store.remove(d.id);
                    counters.add(sink, result::UNDELIVERED);
                    tracing::error!(sink = sink.as_str(), notification = n.id, attempts = attempt, last_error = %reason, alerts = %n.summary(), "alert notification UNDELIVERED: giving up after the last attempt");
                } else {
                    let wait = match retry_after {
                        Some(w) => w.min(MAX_RETRY_AFTER),
                        None => settings.backoff(attempt),
                    };
                    store.reschedule(d.id, attempt, now_ms() + wait.as_millis() as u64);
                    counters.add(sink, result::RETRIED);
                    tracing::warn!(sink = sink.as_str(), notification = n.id, attempt, retry_in_ms = wait.as_millis() as u64, error = %reason, "alert notification failed; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let s = DeliverySettings {
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(1000),
            max_backoff: Duration::from_millis(5000),
        };
        for _ in 0..50 {
            let b1 = s.backoff(1).as_millis();
            assert!((500..=1000).contains(&b1), "{b1}");
            let b3 = s.backoff(3).as_millis();
            assert!((2000..=4000).contains(&b3), "{b3}");
            let b9 = s.backoff(9).as_millis();
            assert!((2500..=5000).contains(&b9), "{b9}");
        }
    }
}
