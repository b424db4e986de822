//! One set of executions reduced to counts, sums, the distribution buckets and a sketch: the
//! unit both the since-start totals and every window slot are made of.

use serde::{Deserialize, Serialize};

use super::sketch::{self, Sketch};
use super::{Execution, Outcome};
use crate::catalog;
use crate::monitor::snapshot::{ExecutionMetrics, ExecutionTimeDistribution};

/// Counts, sums, distribution and sketch of a set of executions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Aggregate {
    pub(super) total: u64,
    pub(super) success: u64,
    pub(super) failed: u64,
    pub(super) timed_out: u64,
    /// Executions with `retryCount > 0`.
    pub(super) retried: u64,
    pub(super) duration_sum_ms: f64,
    pub(super) queue_wait_sum_ms: f64,
    pub(super) queue_wait_count: u64,
    /// Per bucket of [`catalog::EXECUTION_TIME_BUCKETS`] (`(previous, bound]`), then over.
    pub(super) buckets: [u64; 6],
    pub(super) sketch: Sketch,
}

/// The distribution bucket of a duration: the same edges as the Prometheus histogram, so
/// `under5s` is exactly `le="5"` minus `le="1"`.
pub(super) fn bucket_of(duration_ms: f64) -> usize {
    let secs = duration_ms / 1000.0;
    catalog::EXECUTION_TIME_BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(catalog::EXECUTION_TIME_BUCKETS.len())
}

/// Where an execution goes in every aggregate, computed once per execution.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    pub(super) bucket: usize,
    pub(super) sketch_index: Option<i32>,
}

impl Placement {
    pub(super) fn of(duration_ms: f64) -> Self {
        Placement {
            bucket: bucket_of(duration_ms),
            sketch_index: (duration_ms >= sketch::MIN_VALUE_MS)
                .then(|| sketch::bucket_index(duration_ms)),
        }
    }
}

impl Aggregate {
    pub(super) fn record(&mut self, e: &Execution, at: Placement) {
        self.total += 1;
        match e.outcome {
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failed += 1,
            Outcome::Timeout => self.timed_out += 1,
        }
        if e.retry_count > 0 {
            self.retried += 1;
        }
        self.duration_sum_ms += e.duration;
        if let Some(q) = e.queue_wait {
            self.queue_wait_sum_ms += q;
            self.queue_wait_count += 1;
        }
        self.buckets[at.bucket] += 1;
        self.sketch.record_at(e.duration, at.sketch_index);
    }

    pub(super) fn merge(&mut self, o: &Aggregate) {
        self.total += o.total;
        self.success += o.success;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.retried += o.retried;
        self.duration_sum_ms += o.duration_sum_ms;
        self.queue_wait_sum_ms += o.queue_wait_sum_ms;
        self.queue_wait_count += o.queue_wait_count;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sketch.merge(&o.sketch);
    }

    pub(super) fn metrics(&self) -> ExecutionMetrics {
        let b = self.buckets;
        ExecutionMetrics {
            total_executions: self.total,
            successful_executions: self.success,
            failed_executions: self.failed,
            timed_out_executions: self.timed_out,
            average_execution_time: if self.total == 0 {
                0.0
            } else {
                self.duration_sum_ms / self.total as f64
            },
            median_execution_time: self.sketch.quantile(0.5),
            p95_execution_time: self.sketch.quantile(0.95),
            p99_execution_time: self.sketch.quantile(0.99),
            execution_time_distribution: ExecutionTimeDistribution {
                under_1s: b[0],
                under_5s: b[1],
                under_10s: b[2],
                under_30s: b[3],
                under_60s: b[4],
                over_60s: b[5],
            },
        }
    }

    pub(super) fn percent(&self, n: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / self.total as f64
        }
    }
}
