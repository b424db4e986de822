//! Availability of Codex over time, from the availability probe's results.
//!
//! Definitions (documented in docs/metrics.md): Codex is *up* from a probe that found it
//! available until the next probe that did not. A *failure* is an up → down change; a
//! *recovery* is a down → up change. `availability` is the share of the time since the first
//! probe that Codex was up; `mtbf` is up-time per failure and `mttr` down-time per recovery.

use super::snapshot::ReliabilityMetrics;

#[derive(Debug, Default)]
pub struct AvailabilityTracker {
    /// State since the last change, and when (epoch ms) it began.
    state: Option<(bool, u64)>,
    up_ms: u64,
    down_ms: u64,
    failures: u64,
    recoveries: u64,
    /// Down-time of completed outages.
    repaired_down_ms: u64,
}

impl AvailabilityTracker {
    /// Records a probe's verdict at `at` (epoch ms).
    pub fn record(&mut self, available: bool, at: u64) {
        match self.state {
            None => self.state = Some((available, at)),
            Some((up, since)) if up != available => {
                let span = at.saturating_sub(since);
                if up {
                    self.up_ms += span;
                    self.failures += 1;
                } else {
                    self.down_ms += span;
                    self.repaired_down_ms += span;
                    self.recoveries += 1;
                }
                self.state = Some((available, at));
            }
            Some(_) => {}
        }
    }

    pub fn is_available(&self) -> bool {
        self.state.is_some_and(|(up, _)| up)
    }

    /// Fills availability, mtbf and mttr for `now` (epoch ms).
    pub fn fill(&self, r: &mut ReliabilityMetrics, now: u64) {
        let Some((up, since)) = self.state else {
            return;
        };
        let open = now.saturating_sub(since);
        let (up_ms, down_ms) = if up {
            (self.up_ms + open, self.down_ms)
        } else {
            (self.up_ms, self.down_ms + open)
        };
        let total = up_ms + down_ms;
        r.availability = if total == 0 {
            if up {
                100.0
            } else {
                0.0
            }
        } else {
            up_ms as f64 * 100.0 / total as f64
        };
        r.mtbf = if self.failures == 0 {
            0.0
        } else {
            up_ms as f64 / self.failures as f64
        };
        r.mttr = if self.recoveries == 0 {
            0.0
        } else {
            self.repaired_down_ms as f64 / self.recoveries as f64
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_means_follow_the_definitions() {
        let mut t = AvailabilityTracker::default();
        t.record(true, 0);
        t.record(true, 500);
        t.record(false, 1_000); // failure after 1 s up
        t.record(true, 1_250); // recovered after 250 ms
        let mut r = ReliabilityMetrics::default();
        t.fill(&mut r, 2_000); // 750 ms more up
        assert_eq!(r.availability, 1_750.0 * 100.0 / 2_000.0);
        assert_eq!(r.mtbf, 1_750.0);
        assert_eq!(r.mttr, 250.0);
        assert!(t.is_available());
    }
}
