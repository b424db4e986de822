//! The rolling window: per-minute slots keyed by each execution's own timestamp, merged on
//! demand, and the queue figures derived from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::Aggregate;
use super::ExecutionStats;
use crate::monitor::snapshot::QueueMetrics;

/// Slots per window: the window moves in steps of `window / SLOTS_PER_WINDOW` (1 min for 1 h).
pub const SLOTS_PER_WINDOW: u64 = 60;
/// The executions whose timestamps fall into one slot of the window, per operation type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Slot {
    /// Epoch ms of the slot's start (a multiple of the slot length).
    pub(super) start: u64,
    pub(super) per_type: Vec<(u16, Aggregate)>,
}

impl Slot {
    pub(super) fn aggregate(&mut self, t: u16) -> &mut Aggregate {
        match self.per_type.iter().position(|(k, _)| *k == t) {
            Some(i) => &mut self.per_type[i].1,
            None => {
                self.per_type.push((t, Aggregate::default()));
                &mut self.per_type.last_mut().expect("just pushed").1
            }
        }
    }

    pub(super) fn merged(&self) -> Aggregate {
        let mut all = Aggregate::default();
        for (_, a) in &self.per_type {
            all.merge(a);
        }
        all
    }
}

impl ExecutionStats {
    /// Start (epoch ms) of the oldest slot still in the window at `now`.
    pub(super) fn window_start(&self, now: u64) -> u64 {
        let first = now.saturating_sub(self.window_ms);
        first - first % self.slot_ms
    }

    pub(super) fn slot(&mut self, ts: u64) -> &mut Slot {
        let start = ts - ts % self.slot_ms;
        let slots = &mut self.state.slots;
        if slots.back().is_some_and(|s| s.start == start) {
            return slots.back_mut().expect("checked");
        }
        // Slots are kept sorted by start; nearly every execution lands in the newest one.
        let pos = slots.iter().rposition(|s| s.start <= start);
        match pos {
            Some(i) if slots[i].start == start => &mut slots[i],
            Some(i) => {
                slots.insert(
                    i + 1,
                    Slot {
                        start,
                        per_type: Vec::new(),
                    },
                );
                &mut slots[i + 1]
            }
            None => {
                slots.push_front(Slot {
                    start,
                    per_type: Vec::new(),
                });
                &mut slots[0]
            }
        }
    }

    pub(super) fn evict(&mut self, now: u64) {
        let horizon = self.window_start(now);
        while self.state.slots.front().is_some_and(|s| s.start < horizon) {
            self.state.slots.pop_front();
        }
    }

    /// Window aggregates at `now`: all types merged, and per type.
    pub(super) fn window(&self, now: u64) -> (Aggregate, BTreeMap<u16, Aggregate>) {
        let horizon = self.window_start(now);
        let mut all = Aggregate::default();
        let mut per_type: BTreeMap<u16, Aggregate> = BTreeMap::new();
        for slot in self.state.slots.iter().filter(|s| s.start >= horizon) {
            for (t, a) in &slot.per_type {
                all.merge(a);
                per_type.entry(*t).or_default().merge(a);
            }
        }
        (all, per_type)
    }

    /// `queueMetrics` from `timing.queueWait`. By Little's law the time-average number of
    /// operations waiting equals the total waiting time over the elapsed time: `currentSize` is
    /// that average over the newest complete slot, `peakSize` the highest slot in the window,
    /// `averageWaitTime` the mean wait (ms) of the executions in the window that logged one.
    pub fn queue_metrics(&self, now: u64) -> QueueMetrics {
        let horizon = self.window_start(now);
        let current_slot = now - now % self.slot_ms;
        let (mut wait_sum, mut wait_count, mut peak, mut current) = (0.0, 0u64, 0.0f64, 0.0);
        for slot in self.state.slots.iter().filter(|s| s.start >= horizon) {
            let a = slot.merged();
            wait_sum += a.queue_wait_sum_ms;
            wait_count += a.queue_wait_count;
            let size = a.queue_wait_sum_ms / self.slot_ms as f64;
            peak = peak.max(size);
            if slot.start + self.slot_ms == current_slot {
                current = size;
            }
        }
        QueueMetrics {
            current_size: current,
            peak_size: peak,
            average_wait_time: if wait_count == 0 {
                0.0
            } else {
                wait_sum / wait_count as f64
            },
        }
    }
}
