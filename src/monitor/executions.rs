//! Execution statistics from the operations log (filled by the operations-log reader).

use super::snapshot::{ExecutionMetrics, ReliabilityMetrics};

/// One execution as the application logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Epoch ms.
    pub timestamp: u64,
    pub operation_type: String,
    /// ms.
    pub duration: f64,
    pub success: bool,
    pub timed_out: bool,
    pub error: Option<String>,
    pub retry_count: u32,
    /// ms.
    pub queue_wait: Option<f64>,
}

/// Until the operations log is read, reports honest zeros.
#[derive(Debug, Default)]
pub struct ExecutionStats {
    total: u64,
}

impl ExecutionStats {
    pub fn record(&mut self, _execution: &Execution) {
        self.total += 1;
    }

    pub fn metrics(&self) -> ExecutionMetrics {
        ExecutionMetrics::default()
    }

    /// Fills the execution-derived parts of the reliability metrics.
    pub fn fill_reliability(&self, _reliability: &mut ReliabilityMetrics) {}
}
