//! `operationsLog`: where the application's operations log lives and the window of its metrics.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Check;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OperationsLogConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    /// File name with `YYYY-MM-DD` standing for the day.
    pub pattern: String,
    /// Read today's file from its start (true) or from its end (false) on first sight.
    pub backfill: bool,
    /// ms of the rolling window of execution metrics.
    pub window: u64,
    /// Bytes the directory's volume may hold (the chart passes the emptyDir's `sizeLimit`);
    /// `None`: usage is measured but not judged.
    #[serde(deserialize_with = "super::disk::deserialize_size_limit")]
    pub size_limit: Option<u64>,
}

impl Default for OperationsLogConfig {
    fn default() -> Self {
        OperationsLogConfig {
            enabled: true,
            dir: PathBuf::from("logs/codex"),
            pattern: "codex-operations-YYYY-MM-DD.jsonl".into(),
            backfill: false,
            window: 3_600_000,
            size_limit: None,
        }
    }
}

impl OperationsLogConfig {
    /// Checks serde cannot express; every problem names its key and source.
    pub(crate) fn validate(&self, c: &Check) {
        let bad = |key: &str, value: String, why: &str| c.bad(key, value, why);
        if self.window == 0 {
            bad("operationsLog.window", "0".into(), "must be > 0 ms");
        }
        if !self.pattern.contains("YYYY-MM-DD") {
            bad(
                "operationsLog.pattern",
                format!("{:?}", self.pattern),
                "must contain YYYY-MM-DD",
            );
        }
    }
}
