//! The agent's own counters that no source observes: observations dropped on a full queue,
//! failed export cycles, audit-log lines, configuration reloads, recovered state files, and the
//! `errors-*.log` lines the parts report.
//!
//! One [`Telemetry`] is created with the monitor's queue (`monitor::channel`) by each `start()`
//! and handed down to every part that counts; the monitor reads it when it builds a snapshot.
//! Nothing here is process-global: two agents in one process count apart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::catalog::MetricDef;

/// An `errors-*.log` line reported by a part of the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLine {
    /// Epoch ms.
    pub timestamp: u64,
    pub component: String,
    pub message: String,
    pub details: Value,
}

/// Where error lines go: the audit-log writer, when the files are on.
pub type ErrorSink = Box<dyn Fn(ErrorLine) + Send + Sync>;

/// The handle; cheap to clone, every clone counts into the same agent.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Observations dropped on a full queue, per source.
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// Counters in the order they were first declared or counted (the order they are published).
    counters: Mutex<Vec<Counter>>,
    /// Recommendations for `/health/codex` (a recovered state file).
    recommendations: Mutex<Vec<String>>,
    errors: Mutex<Option<ErrorSink>>,
}

/// A series; found by the definition's name (catalog entries are consts: each use may have
/// its own address).
struct Counter {
    def: &'static MetricDef,
    labels: Vec<String>,
    value: u64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Publishes the series `def{labels}` from now on, at zero until counted.
    pub fn declare(&self, def: &'static MetricDef, labels: &[&str]) {
        self.add(def, labels, 0);
    }

    /// Adds `n` to the counter `def{labels}`.
    pub fn add(&self, def: &'static MetricDef, labels: &[&str], n: u64) {
        let mut counters = self.inner.counters.lock().expect("telemetry lock");
        match counters
            .iter_mut()
            .find(|c| c.def.name == def.name && c.labels.iter().eq(labels.iter()))
        {
            Some(c) => c.value += n,
            None => counters.push(Counter {
                def,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                value: n,
            }),
        }
    }

    /// The counter `def{labels}` (0 when never counted).
    pub fn get(&self, def: &'static MetricDef, labels: &[&str]) -> u64 {
        let counters = self.inner.counters.lock().expect("telemetry lock");
        counters
            .iter()
            .find(|c| c.def.name == def.name && c.labels.iter().eq(labels.iter()))
            .map_or(0, |c| c.value)
    }

    /// Every declared or counted series with its value, in declaration order.
    pub fn counters(&self) -> Vec<(&'static MetricDef, Vec<String>, u64)> {
        let counters = self.inner.counters.lock().expect("telemetry lock");
        counters
            .iter()
            .map(|c| (c.def, c.labels.clone(), c.value))
            .collect()
    }

    /// Counts an observation dropped on a full queue.
    pub fn observation_dropped(&self, source: &'static str) {
        *self
            .inner
            .dropped
            .lock()
            .expect("telemetry lock")
            .entry(source)
            .or_default() += 1;
    }

    /// Observations dropped from `source` so far.
    pub fn dropped(&self, source: &str) -> u64 {
        let dropped = self.inner.dropped.lock().expect("telemetry lock");
        dropped.get(source).copied().unwrap_or(0)
    }

    /// Adds a recommendation shown in `/health/codex` from now on.
    pub fn recommend(&self, text: String) {
        self.inner
            .recommendations
            .lock()
            .expect("telemetry lock")
            .push(text);
    }

    pub fn recommendations(&self) -> Vec<String> {
        self.inner
            .recommendations
            .lock()
            .expect("telemetry lock")
            .clone()
    }

    /// Reports an `errors-*.log` line (dropped when the audit files are off).
    pub fn error(&self, component: &str, message: &str, details: Value) {
        let sink = self.inner.errors.lock().expect("telemetry lock");
        if let Some(sink) = sink.as_ref() {
            sink(ErrorLine {
                timestamp: crate::util::now_ms(),
                component: component.into(),
                message: message.into(),
                details,
            });
        }
    }

    /// Sends error lines to `sink` from now on (`None`: nowhere, e.g. at shutdown).
    pub fn set_error_sink(&self, sink: Option<ErrorSink>) {
        *self.inner.errors.lock().expect("telemetry lock") = sink;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn clones_count_together_and_separate_handles_apart() {
        let a = Telemetry::default();
        let b = Telemetry::default();
        a.declare(&catalog::CONFIG_RELOADS, &["applied"]);
        a.clone().add(&catalog::CONFIG_RELOADS, &["applied"], 2);
        a.add(&catalog::CONFIG_RELOADS, &["rejected"], 1);
        assert_eq!(a.get(&catalog::CONFIG_RELOADS, &["applied"]), 2);
        assert_eq!(b.get(&catalog::CONFIG_RELOADS, &["applied"]), 0);
        let labels: Vec<Vec<String>> = a.counters().into_iter().map(|c| c.1).collect();
        assert_eq!(
            labels,
            [vec!["applied".to_string()], vec!["rejected".into()]]
        );
        assert!(b.counters().is_empty());
    }
}
