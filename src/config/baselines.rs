//! `baselines`: performance baselines, set or learned from history.

use serde::{Deserialize, Serialize};

use super::Check;

/// Performance baselines (`CODEX_PERF_BASELINE_*`). Unset values are not used, unless `learn`
/// fills them from history (an explicit value always wins).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Baselines {
    /// Fill unset baselines with the ones learned from history (`codex-sentinel baseline show`).
    pub learn: bool,
    /// Days of history a learned baseline needs and uses.
    pub learning_days: u64,
    pub avg_time: Option<u64>,
    pub p95_time: Option<u64>,
    pub p99_time: Option<u64>,
    pub success_rate: Option<f64>,
    pub availability: Option<f64>,
    pub memory_mb: Option<u64>,
    pub max_processes: Option<u64>,
}

impl Default for Baselines {
    fn default() -> Self {
        Baselines {
            learn: false,
            learning_days: 7,
            avg_time: None,
            p95_time: None,
            p99_time: None,
            success_rate: None,
            availability: None,
            memory_mb: None,
            max_processes: None,
        }
    }
}

impl Baselines {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.learning_days == 0 {
            bad(
                "baselines.learningDays",
                "0".into(),
                "must be at least 1 day",
            );
        }
        for (key, v) in [
            ("baselines.successRate", self.success_rate),
            ("baselines.availability", self.availability),
        ] {
            if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
                bad(key, v.to_string(), "a percentage must be within 0..100");
            }
        }
    }
}
