//! Individual values the monitor observed (execution durations per operation type, probe
//! attempt durations), handed to push exporters as they arrive so that every value reaches a
//! platform as itself, not rebuilt from histogram buckets.
//!
//! The monitor publishes one [`Observed`] batch per applied observation on a broadcast channel
//! of [`OBSERVED_CAPACITY`] batches: it never waits; an exporter that falls that far behind
//! loses the oldest batches and counts the loss (bounded memory either way).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::catalog::MetricDef;

/// Batches an exporter may fall behind before it loses the oldest.
pub const OBSERVED_CAPACITY: usize = 4096;

/// Values of one histogram series observed in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSeries {
    /// A histogram metric of the catalog.
    pub def: &'static MetricDef,
    /// Label values, in the order of `def.labels` (as the snapshot's samples spell them).
    pub labels: Vec<String>,
    /// In the metric's unit (seconds).
    pub values: Vec<f64>,
}

/// One batch of observed values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub series: Vec<ObservedSeries>,
}

impl Observed {
    /// Adds `value` to the series `(def, labels)`.
    pub fn push(&mut self, def: &'static MetricDef, labels: &[String], value: f64) {
        match self
            .series
            .iter_mut()
            .find(|s| s.def.name == def.name && s.labels == labels)
        {
            Some(s) => s.values.push(value),
            None => self.series.push(ObservedSeries {
                def,
                labels: labels.to_vec(),
                values: vec![value],
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.values.is_empty())
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }
}

/// The monitor's side: publishes batches when anyone listens.
#[derive(Debug, Clone)]
pub struct ObservedSender(broadcast::Sender<Arc<Observed>>);

impl Default for ObservedSender {
    fn default() -> Self {
        ObservedSender(broadcast::channel(OBSERVED_CAPACITY).0)
    }
}

impl ObservedSender {
    /// Whether a batch would reach anyone (building one is skipped otherwise).
    pub fn has_listeners(&self) -> bool {
        self.0.receiver_count() > 0
    }

    pub fn publish(&self, batch: Observed) {
        if !batch.is_empty() && self.has_listeners() {
            let _ = self.0.send(Arc::new(batch));
        }
    }

    /// A receiver that sees every batch published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Observed>> {
        self.0.subscribe()
    }
}
