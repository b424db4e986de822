//! Rate-limited warnings: a bad file or a flood of bad lines must not flood the agent's log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Logs a warning per kind at most once per period, with the number suppressed since.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: HashMap<&'static str, (Instant, u64)>,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: HashMap::new(),
        }
    }

    /// Logs `message()` unless this kind was logged within the period (then only counts it).
    /// Returns whether it logged.
    pub fn warn(&mut self, kind: &'static str, message: impl FnOnce() -> String) -> bool {
        let now = Instant::now();
        match self.last.get_mut(kind) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                false
            }
            entry => {
                let suppressed = entry.map_or(0, |(_, n)| *n);
                tracing::warn!(kind, suppressed, "{}", message());
                self.last.insert(kind, (now, 0));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_period_per_kind() {
        let mut t = Throttle::new(Duration::from_secs(60));
        assert!(t.warn("a", || "first".into()));
        assert!(!t.warn("a", || "second".into()));
        assert!(t.warn("b", || "other kind".into()));
        assert_eq!(t.last["a"].1, 1);
    }
}
